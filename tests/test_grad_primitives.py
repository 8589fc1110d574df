"""kt.grad on every primitive, checked against finite differences."""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad


def rnd(*shape, seed=0, low=None):
    """A tiny random float64 array; ``low`` shifts it to be positive."""
    r = np.random.default_rng(seed + 7 * len(shape) + sum(shape))
    x = r.standard_normal(shape)
    if low is not None:
        x = low + np.abs(x)
    return x


def away_from_zero(*shape, seed=0):
    x = rnd(*shape, seed=seed)
    return np.where(np.abs(x) < 0.1, 0.5, x)


# ---------------------------------------------------------------- arithmetic

def f_add(a, b):
    return np.sum(np.sin(a + b))


def f_sub(a, b):
    return np.sum(np.sin(a - b))


def f_mul(a, b):
    return np.sum(np.sin(a * b))


def f_div(a, b):
    return np.sum(np.sin(a / b))


def f_pow_ab(a, b):
    return np.sum(a ** b)


BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),        # row vector, 1-D
    ((3, 4), (1, 4)),      # row vector, 2-D
    ((3, 4), (3, 1)),      # column vector
    ((3, 1), (1, 4)),      # both broadcast
    ((3, 4), ()),          # 0-d array
    ((2, 3, 4), (3, 4)),   # 3-D with 2-D
    ((2, 3, 4), (3, 1)),
    ((4,), (2, 3, 4)),
]


@pytest.mark.parametrize("f", [f_add, f_sub, f_mul, f_div, f_pow_ab],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("sa,sb", BROADCAST_SHAPES, ids=str)
def test_binary_broadcast(f, sa, sb):
    a = rnd(*sa, low=0.5) if f is f_pow_ab else rnd(*sa)
    b = rnd(*sb, seed=1, low=0.5) if f is f_div else rnd(*sb, seed=1)
    check_grad(f, [a, b], wrt=(0, 1))
    # and in the other order of broadcasting
    if f is not f_pow_ab:
        b2 = rnd(*sb, seed=2, low=0.5)
        check_grad(f, [b2, rnd(*sa, seed=3, low=0.5)], wrt=(0, 1))


def f_scalar_left(x):
    return np.sum(2.0 * x + 3.0 - x / 4.0 + 1.0 / x - (5.0 - x) * x)


def f_python_scalar_ops(x):
    return np.sum(x * 2 - 3 + 4 / x)


@pytest.mark.parametrize("f", [f_scalar_left, f_python_scalar_ops], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3,), (2, 3)])
def test_python_scalar_operands(f, shape):
    check_grad(f, [rnd(*shape, low=0.5)])


def f_pow_const(x):
    return np.sum(x ** 3 + x ** 2.5 + x ** -1 + x ** 0.5)


def f_const_pow(x):
    return np.sum(2.0 ** x + 0.5 ** x)


def f_array_pow_array(a, b):
    return np.sum(a ** b)


def f_np_power(a, b):
    return np.sum(np.power(a, b))


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_powers(shape):
    check_grad(f_pow_const, [rnd(*shape, low=0.5)])
    check_grad(f_const_pow, [rnd(*shape)])
    check_grad(f_array_pow_array, [rnd(*shape, low=0.5), rnd(*shape, seed=1)], wrt=(0, 1))
    check_grad(f_np_power, [rnd(*shape, low=0.5), rnd(*shape, seed=1)], wrt=(0, 1))


def f_square_of_power_int(x):
    return np.sum(x ** 2)


def test_power_two_of_negative_values():
    # x ** 2 on negative values: the exponent's gradient must not be involved
    x = np.array([-1.5, -0.5, 0.7])
    g = check_grad(f_square_of_power_int, [x])
    np.testing.assert_allclose(g, 2 * x)


def f_neg(x):
    return np.sum(np.sin(-x))


def f_pos(x):
    return np.sum(np.sin(+x) * x)


def f_np_ufuncs_arith(a, b):
    return np.sum(np.add(a, b) * np.subtract(a, b) + np.multiply(a, b) / np.divide(a, b + 3.0))


@pytest.mark.parametrize("shape", [(3,), (2, 3)])
def test_unary_and_named_arith(shape):
    check_grad(f_neg, [rnd(*shape)])
    check_grad(f_pos, [rnd(*shape)])
    check_grad(f_np_ufuncs_arith, [rnd(*shape, low=0.5), rnd(*shape, seed=1, low=0.5)],
               wrt=(0, 1))


# ---------------------------------------------------------------- products

def f_matmul_op(a, b):
    return np.sum(np.sin(a @ b))


def f_dot(a, b):
    return np.sum(np.sin(np.dot(a, b)))


def f_matmul_fn(a, b):
    return np.sum(np.sin(np.matmul(a, b)))


PRODUCT_SHAPES = [((2, 3), (3, 4)), ((2, 3), (3,)), ((3,), (3, 4)), ((3,), (3,)),
                  ((1, 3), (3, 1))]


@pytest.mark.parametrize("f", [f_matmul_op, f_dot, f_matmul_fn], ids=lambda f: f.__name__)
@pytest.mark.parametrize("sa,sb", PRODUCT_SHAPES, ids=str)
def test_products(f, sa, sb):
    check_grad(f, [rnd(*sa), rnd(*sb, seed=1)], wrt=(0, 1))
    check_grad(f, [rnd(*sa), rnd(*sb, seed=1)], wrt=0)
    check_grad(f, [rnd(*sa), rnd(*sb, seed=1)], wrt=1)


def f_matmul_self(a):
    return np.sum(a @ a)


def test_matmul_same_operand_twice():
    check_grad(f_matmul_self, [rnd(3, 3)])


def f_batched_matmul(a, b):
    return np.sum(np.sin(a @ b))


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 4, 2)), ((2, 3, 4), (4, 2))], ids=str)
def test_batched_matmul(sa, sb):
    check_grad(f_batched_matmul, [rnd(*sa), rnd(*sb, seed=1)], wrt=(0, 1))


# ------------------------------------------------------------ elementwise math

def f_exp(x):
    return np.sum(np.exp(x))


def f_log(x):
    return np.sum(np.log(x))


def f_tanh(x):
    return np.sum(np.tanh(x) * x)


def f_sin(x):
    return np.sum(np.sin(x) * x)


def f_cos(x):
    return np.sum(np.cos(x) * x)


def f_sqrt(x):
    return np.sum(np.sqrt(x) * x)


def f_square(x):
    return np.sum(np.square(x) * np.sin(x))


def f_abs(x):
    return np.sum(np.abs(x) * np.sin(x))


def f_builtin_abs(x):
    return np.sum(abs(x) * np.sin(x))


def f_log1p(x):
    return np.sum(np.log1p(x) * x)


def f_expm1(x):
    return np.sum(np.expm1(x) * x)


def f_clip(x):
    return np.sum(np.clip(x, -0.5, 0.5) * np.cos(x))


def f_clip_method(x):
    return np.sum(x.clip(-0.5, 0.5) ** 2)


def f_relu_max(x):
    return np.sum(np.maximum(0, x) * np.cos(x))


def f_relu_min(x):
    return np.sum(np.minimum(x, 0.0) * np.cos(x))


ELEMENTWISE = [f_exp, f_tanh, f_sin, f_cos, f_square, f_abs, f_builtin_abs, f_expm1,
               f_clip, f_clip_method, f_relu_max, f_relu_min]
POSITIVE = [f_log, f_sqrt, f_log1p]


@pytest.mark.parametrize("f", ELEMENTWISE + POSITIVE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_elementwise(f, shape):
    x = rnd(*shape, low=0.3) if f in POSITIVE else away_from_zero(*shape)
    if f in (f_clip, f_clip_method):
        x = np.where(np.abs(np.abs(x) - 0.5) < 0.05, 0.2, x)
    check_grad(f, [x])


def test_clip_and_relu_gradients_are_masked():
    x = np.array([-2.0, -0.3, 0.3, 2.0])
    g = kt.grad(f_clip_method)(x)
    np.testing.assert_allclose(g, [0.0, -0.6, 0.6, 0.0])
    g = kt.grad(f_relu_max)(x)
    np.testing.assert_allclose(g, np.where(x > 0, np.cos(x) - x * np.sin(x), 0.0))


def f_maximum2(a, b):
    return np.sum(np.maximum(a, b) ** 2)


def f_minimum2(a, b):
    return np.sum(np.minimum(a, b) ** 2)


@pytest.mark.parametrize("f", [f_maximum2, f_minimum2], ids=lambda f: f.__name__)
@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((3, 4), (4,)), ((3, 1), (1, 4))], ids=str)
def test_maximum_minimum_both_arrays(f, sa, sb):
    a, b = rnd(*sa), rnd(*sb, seed=5)
    check_grad(f, [a, b], wrt=(0, 1))


def f_where(x, y):
    return np.sum(np.where(x > 0, x * y, np.sin(y)))


def f_where_broadcast(x, c):
    return np.sum(np.where(x > 0, x, c) ** 2)


@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_where(shape):
    x = away_from_zero(*shape) * np.where(np.arange(np.prod(shape)) % 2, 1, -1).reshape(shape)
    assert (x > 0).any() and (x < 0).any()
    check_grad(f_where, [x, rnd(*shape, seed=1)], wrt=(0, 1))
    check_grad(f_where_broadcast, [x, np.array(0.7)], wrt=(0, 1))


def f_exp2_log2_log10(x):
    return np.sum(np.exp2(x) + np.log2(x) + np.log10(x))


def f_trig(x):
    return np.sum(np.tan(x) + np.arcsin(x) + np.arccos(x) + np.arctan(x) +
                  np.sinh(x) + np.cosh(x) + np.reciprocal(x))


def f_logaddexp(a, b):
    return np.sum(np.logaddexp(a, b))


def test_more_ufuncs():
    x = np.array([0.3, 0.5, 0.7])
    check_grad(f_exp2_log2_log10, [x])
    check_grad(f_trig, [x])
    check_grad(f_logaddexp, [rnd(2, 3), rnd(3, seed=1)], wrt=(0, 1))


# ------------------------------------------------------------------ reductions

def f_sum(x, axis, keepdims):
    return np.sum(np.sin(np.sum(x, axis=axis, keepdims=keepdims)) * 1.5)


def f_mean(x, axis, keepdims):
    return np.sum(np.sin(np.mean(x, axis=axis, keepdims=keepdims)) * 1.5)


def f_max(x, axis, keepdims):
    return np.sum(np.sin(np.max(x, axis=axis, keepdims=keepdims)) * 1.5)


def f_min(x, axis, keepdims):
    return np.sum(np.sin(np.min(x, axis=axis, keepdims=keepdims)) * 1.5)


def f_amax(x, axis, keepdims):
    return np.sum(np.sin(np.amax(x, axis=axis, keepdims=keepdims)) * 1.5)


AXES_2D = [None, 0, 1, -1, (0, 1)]
AXES_3D = [None, 0, 2, -1, (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("f", [f_sum, f_mean, f_max, f_min, f_amax], ids=lambda f: f.__name__)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", [((3, 4), a) for a in AXES_2D] +
                         [((2, 3, 2), a) for a in AXES_3D] + [((5,), 0), ((5,), None)],
                         ids=str)
def test_reductions(f, shape, axis, keepdims):
    x = rnd(*shape)
    check_grad(f, [x, axis, keepdims])


def f_sum_positional_axis(x):
    return np.sum(np.sin(np.sum(x, 0))) + np.sum(np.cos(np.mean(x, 1)))


def f_sum_no_kw(x):
    return np.sum(np.sum(x) * x)


def test_reduction_positional_axis():
    check_grad(f_sum_positional_axis, [rnd(3, 4)])
    check_grad(f_sum_no_kw, [rnd(3, 4)])


def f_max_tie(x):
    return np.max(x)


def test_max_ties_share_gradient():
    # subgradient with ties: any convex combination is valid; check it sums to one
    g = kt.grad(f_max_tie)(np.array([1.0, 3.0, 3.0, 2.0]))
    assert g[0] == 0 and g[3] == 0
    assert np.isclose(g.sum(), 1.0)


def f_methods_sum(x):
    return np.sum(np.sin(x.sum(axis=0))) + x.mean() + np.sum(np.cos(x.max(axis=1)))


def f_methods_more(x):
    return np.sum(x.min(axis=0) ** 2) + x.sum() * x.mean(axis=1).sum() + \
        np.sum(x.sum(0, keepdims=True) * x)


@pytest.mark.parametrize("f", [f_methods_sum, f_methods_more], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(3, 4), (2, 2)])
def test_reduction_methods(f, shape):
    check_grad(f, [rnd(*shape)])


# ---------------------------------------------------------------------- shapes

def f_reshape_method(x):
    return np.sum(np.sin(x.reshape(4, 3)) * np.arange(12).reshape(4, 3))


def f_reshape_tuple(x):
    return np.sum(np.sin(x.reshape((2, -1))) * np.arange(12).reshape(2, 6))


def f_np_reshape(x):
    return np.sum(np.sin(np.reshape(x, (6, 2))) * np.arange(12).reshape(6, 2))


def f_ravel(x):
    return np.sum(np.sin(x.ravel()) * np.arange(12)) + np.sum(x.flatten() ** 2)


def f_T(x):
    return np.sum(np.sin(x.T) * np.arange(12).reshape(4, 3))


def f_np_transpose(x):
    return np.sum(np.sin(np.transpose(x)) * np.arange(12).reshape(4, 3))


@pytest.mark.parametrize("f", [f_reshape_method, f_reshape_tuple, f_np_reshape, f_ravel, f_T,
                               f_np_transpose], ids=lambda f: f.__name__)
def test_shape_ops_2d(f):
    check_grad(f, [rnd(3, 4)])


def f_transpose_axes(x, axes):
    return np.sum(np.sin(np.transpose(x, axes)) * np.arange(24).reshape(
        np.transpose(x, axes).shape))


def f_transpose_method_102(x):
    y = x.transpose(1, 0, 2)
    return np.sum(np.sin(y) * np.arange(24).reshape(3, 2, 4))


def f_T_3d(x):
    return np.sum(np.sin(x.T) * np.arange(24).reshape(4, 3, 2))


@pytest.mark.parametrize("axes", [(1, 0, 2), (2, 0, 1), (1, 2, 0), (0, 2, 1), None], ids=str)
def test_transpose_axes(axes):
    check_grad(f_transpose_axes, [rnd(2, 3, 4), axes])


@pytest.mark.parametrize("f", [f_transpose_method_102, f_T_3d],
                         ids=lambda f: f.__name__)
def test_transpose_methods_3d(f):
    check_grad(f, [rnd(2, 3, 4)])


def f_squeeze_expand(x):
    return np.sum(np.sin(np.expand_dims(np.squeeze(x), 0)) * np.arange(3))


def f_swapaxes(x):
    return np.sum(np.sin(np.swapaxes(x, 0, 2)) * np.arange(24).reshape(4, 3, 2))


def f_broadcast_to(x):
    return np.sum(np.sin(np.broadcast_to(x, (2, 3))) * np.arange(6).reshape(2, 3))


def test_more_shape_ops():
    check_grad(f_squeeze_expand, [rnd(1, 3)])
    check_grad(f_swapaxes, [rnd(2, 3, 4)])
    check_grad(f_broadcast_to, [rnd(3)])


# -------------------------------------------------------------------- indexing

def f_slice(x):
    return np.sum(np.sin(x[1:3]) * 2.0)


def f_col(x):
    return np.sum(np.sin(x[:, 0]) * 2.0)


def f_step_slice(x):
    return np.sum(np.sin(x[::2, 1]) * 2.0)


def f_int_index(x):
    return np.sum(np.sin(x[2]) * 2.0)


def f_fancy_repeated(x):
    return np.sum(np.sin(x[[0, 0, 2]]) * np.arange(1.0, 4.0)[:, None])


def f_negative_index(x):
    return np.sum(x[-1] ** 2) + np.sum(x[:-1] * 3.0)


def f_two_int_index(x):
    return x[1, 2] * x[0, 1] + x[1, 2] * x[3, 0]


def f_several_reads(x):
    return np.sum(x[0] * x[1]) + np.sum(x[1:] ** 2) + np.sum(x[:, 1:2] * x[:, 2:3])


def f_bool_mask(x):
    return np.sum(x[x > 0] ** 2)


def f_none_index(x):
    return np.sum(np.sin(x[None, :]) * np.arange(3.0)) + np.sum(np.sin(x[:, None]) * 2.0)


def f_ellipsis(x):
    return np.sum(np.sin(x[..., 0]) * np.arange(4.0))


def f_fancy_2d(x):
    return np.sum(np.sin(x[np.arange(2), [0, 2]]) * np.arange(1.0, 3.0))


def f_reverse_slice(x):
    return np.sum(x[::-1] * np.arange(12.0).reshape(4, 3))


def f_argmax_index(x):
    return x[np.argmax(x[:, 0]), 0] * 2


def f_variable_index(x):
    i = 1
    return np.sum(x[i:i + 2] ** 2) + np.sum(x[i - 1] * 3)


def f_diag_loop(x):
    t = 0.0
    for i in range(x.shape[1]):
        t = t + np.sum(x[i, :] * x[i, i])
    return t


def f_outer_product_index(x):
    return np.sum(x[:, :, None] * x[:, None, :])


def f_fancy_array_index(x):
    idx = np.array([3, 1, 1, 0])
    return np.sum(np.sin(x[idx]) * np.arange(4.0)[:, None])


@pytest.mark.parametrize("f", [f_slice, f_col, f_step_slice, f_int_index, f_fancy_repeated,
                               f_negative_index, f_two_int_index, f_several_reads,
                               f_bool_mask, f_fancy_array_index, f_none_index, f_ellipsis,
                               f_fancy_2d, f_reverse_slice, f_argmax_index, f_variable_index,
                               f_diag_loop, f_outer_product_index],
                         ids=lambda f: f.__name__)
def test_indexing(f):
    check_grad(f, [away_from_zero(4, 3)])


def test_fancy_repeated_index_accumulates():
    x = np.ones((3, 2))
    g = kt.grad(f_fancy_repeated)(x)
    c = np.cos(1.0) * 2
    np.testing.assert_allclose(g, [[3 * np.cos(1.0)] * 2, [0, 0], [c * 1.5] * 2])


# ------------------------------------------------------------------ assembling

def f_concatenate0(a, b):
    return np.sum(np.sin(np.concatenate([a, b])) * np.arange(5.0)[:, None])


def f_concatenate1(a, b):
    return np.sum(np.sin(np.concatenate((a, b), axis=1)) * np.arange(5.0))


def f_hstack(a, b):
    return np.sum(np.sin(np.hstack([a, b])) * np.arange(5.0))


def f_hstack_1d(a, b):
    return np.sum(np.sin(np.hstack((a[0], b[0]))) * np.arange(5.0))


def f_vstack(a, b):
    return np.sum(np.sin(np.vstack([a.T, b.T])) * np.arange(5.0)[:, None])


def f_vstack_1d(a, b):
    return np.sum(np.sin(np.vstack([a[:, 0], b[:, 0]])) * np.arange(2.0)[:, None])


def f_stack(a, b):
    return np.sum(np.sin(np.stack([a, a * b[:, :2], a])) * np.arange(3.0)[:, None, None])


def f_stack_axis(a, b):
    return np.sum(np.sin(np.stack([a[:, 0], b[:, 1]], axis=1)) * np.arange(2.0))


def f_array_of_scalars(a, b):
    v = np.array([np.sum(a), np.sum(b ** 2), 3.0])
    return np.sum(np.sin(v) * np.arange(1.0, 4.0))


def f_array_of_list_of_lists(a, b):
    m = np.array([[a[0, 0], b[0, 0]], [a[1, 1] * b[1, 1], 1.0]])
    return np.sum(m @ m)


def f_concat_with_inactive(a, b):
    return np.sum(np.sin(np.concatenate([a, np.ones((2, 2)), a])) * np.arange(6.0)[:, None])


@pytest.mark.parametrize("f", [f_concatenate1, f_hstack, f_hstack_1d, f_stack_axis,
                               f_array_of_scalars, f_array_of_list_of_lists],
                         ids=lambda f: f.__name__)
def test_assembly_same_rows(f):
    a, b = rnd(2, 2), rnd(2, 3, seed=1)
    check_grad(f, [a, b], wrt=(0, 1))


@pytest.mark.parametrize("f", [f_concatenate0, f_vstack], ids=lambda f: f.__name__)
def test_assembly_rows(f):
    if f is f_vstack:
        a, b = rnd(2, 2), rnd(2, 3, seed=1)
    else:
        a, b = rnd(2, 2), rnd(3, 2, seed=1)
    check_grad(f, [a, b], wrt=(0, 1))


def test_assembly_more():
    check_grad(f_vstack_1d, [rnd(3, 2), rnd(3, 2, seed=1)], wrt=(0, 1))
    check_grad(f_stack, [rnd(2, 2), rnd(2, 3, seed=1)], wrt=(0, 1))
    check_grad(f_concat_with_inactive, [rnd(2, 2), rnd(2, 2)], wrt=0)


def f_outer(a, b):
    return np.sum(np.sin(np.outer(a, b)) * np.arange(6.0).reshape(3, 2))


def f_trace(a):
    return np.trace(a @ a)


def f_dot_method(a, b):
    return np.sum(np.sin(a.dot(b)))


def f_float_builtin(x):
    return float(np.sum(x ** 2)) * 3.0


def f_builtin_sum_list(x):
    return sum([np.sum(x), np.sum(x ** 2)], 1.0)


def test_misc_primitives():
    check_grad(f_outer, [rnd(3), rnd(2, seed=1)], wrt=(0, 1))
    check_grad(f_trace, [rnd(3, 3)])
    check_grad(f_dot_method, [rnd(3, 3), rnd(3, seed=1)], wrt=(0, 1))
    check_grad(f_float_builtin, [rnd(4)])
    check_grad(f_builtin_sum_list, [rnd(4)])


# ------------------------------------------------ the rest of the rule registry

W23 = np.arange(1.0, 7.0).reshape(2, 3)
POS23 = np.array([[0.7, 1.9, 0.6], [1.2, 0.9, 2.2]])
A23 = np.array([[2.3, -1.7, 0.4], [5.1, 0.2, -3.3]])
B23 = np.array([[1.1, 0.9, 0.7], [1.3, 0.6, 1.9]])
Q22 = np.array([[1.0, 0.3], [0.2, 0.8]])


def n_arccosh(x):
    return np.sum(np.arccosh(x + 1.0))


def n_arcsinh(x):
    return np.sum(np.arcsinh(x) * x)


def n_arctanh(x):
    return np.sum(np.arctanh(x * 0.3))


def n_arctan2(a, b):
    return np.sum(np.arctan2(a, b))


def n_cbrt(x):
    return np.sum(np.cbrt(x))


def n_cumsum(x):
    return np.sum(np.cumsum(x, axis=1) * W23)


def n_cumsum_flat(x):
    return np.sum(np.cumsum(x) * np.arange(6.0))


def n_cumsum_m(x):
    return np.sum(x.cumsum(axis=0) * W23)


def n_deg(x):
    return np.sum(np.sin(np.deg2rad(x)) + np.degrees(x) + np.radians(x) + np.rad2deg(x))


def n_diag(x):
    return np.sum(np.diag(x) * np.arange(1.0, 3.0))


def n_diag_vec(x):
    return np.sum(np.diag(x[0]) * W23[:, :1])


def n_diagonal(x):
    return np.sum(np.diagonal(x) ** 2) + np.sum(x.diagonal() * 2)


def n_fabs(x):
    return np.sum(np.fabs(x) * W23)


def n_flip(x):
    return np.sum(np.flip(x, axis=1) * W23) + np.sum(np.fliplr(x) * W23) + \
        np.sum(np.flipud(x) * W23) + np.sum(np.flip(x) * W23)


def n_fmax(a, b):
    return np.sum(np.fmax(a, b) * W23 + np.fmin(a, b))


def n_hypot(a, b):
    return np.sum(np.hypot(a, b))


def n_inner(a, b):
    return np.inner(a, b)


def n_kron(a, b):
    return np.sum(np.kron(a, b) * np.arange(36.0).reshape(4, 9))


def n_moveaxis(x):
    return np.sum(np.moveaxis(x, 0, -1) * W23.T)


def n_pad(x):
    return np.sum(np.pad(x, 1) * np.arange(20.0).reshape(4, 5))


def n_pad2(x):
    return np.sum(np.pad(x, ((1, 0), (0, 2))) * np.arange(15.0).reshape(3, 5))


def n_prod(x):
    return np.prod(x)


def n_prod_axis(x):
    return np.sum(np.prod(x, axis=0) * np.arange(1.0, 4.0))


def n_prod_m(x):
    return np.sum(x.prod(axis=1))


def n_real(x):
    return np.sum(np.real(x) * W23)


def n_remainder(a, b):
    return np.sum(np.remainder(a, b) * W23)


def n_mod(a, b):
    return np.sum((a % b) * W23)


def n_repeat(x):
    return np.sum(np.repeat(x, 2, axis=1) * np.arange(12.0).reshape(2, 6))


def n_repeat_flat(x):
    return np.sum(np.repeat(x, 2) * np.arange(12.0))


def n_repeat_m(x):
    return np.sum(x.repeat(2, axis=0) * np.arange(12.0).reshape(4, 3))


def n_roll(x):
    return np.sum(np.roll(x, 1, axis=1) * W23) + np.sum(np.roll(x, 2) * W23)


def n_rot90(x):
    return np.sum(np.rot90(x) * W23.T)


def n_sinc(x):
    return np.sum(np.sinc(x) * W23)


def n_std(x):
    return np.std(x) + np.sum(np.std(x, axis=0) * np.arange(1.0, 4.0))


def n_std_m(x):
    return x.std() * 2 + np.sum(x.var(axis=1))


def n_var(x):
    return np.var(x) + np.sum(np.var(x, axis=1, keepdims=True) * W23)


def n_var_ddof(x):
    return np.var(x, ddof=1)


def n_take(x):
    return np.sum(np.take(x, [0, 2, 2], axis=1) * np.arange(6.0).reshape(2, 3))


def n_take_flat(x):
    return np.sum(np.take(x, [5, 0, 5]) * np.arange(3.0))


def n_take_m(x):
    return np.sum(x.take([1, 1], axis=0) * W23)


def n_tile(x):
    return np.sum(np.tile(x, (2, 1)) * np.arange(12.0).reshape(4, 3))


def n_tile2(x):
    return np.sum(np.tile(x, 2) * np.arange(12.0).reshape(2, 6))


def n_tril(x):
    return np.sum(np.tril(x) * W23) + np.sum(np.triu(x, 1) * W23)


def n_vdot(a, b):
    return np.vdot(a, b)


def n_det(a):
    return np.linalg.det(a)


def n_inv(a):
    return np.sum(np.linalg.inv(a) * np.arange(4.0).reshape(2, 2))


def n_norm(x):
    return np.linalg.norm(x)


def n_norm_axis(x):
    return np.sum(np.linalg.norm(x, axis=0) * np.arange(1.0, 4.0))


def n_norm_fro(x):
    return np.linalg.norm(x, 'fro')


def n_norm_ord2vec(x):
    return np.linalg.norm(x[0], 2)


def n_nll(x):
    return kt.nll(x, np.array([0, 2, 1]))


def n_nll_noavg(x):
    return kt.nll(x, np.array([0, 2, 1]), average=False)


def n_nll_axis1(x):
    return kt.nll(x, np.array([0, 2]), axis=1)


def n_atleast(x):
    return np.sum(np.atleast_2d(x[0]) * W23[:1]) + np.sum(np.atleast_1d(np.sum(x)))


def n_asarray(x):
    return np.sum(np.asarray(x) * W23) + np.sum(np.ascontiguousarray(x.T) * W23.T)


def n_real_if_close(x):
    return np.sum(np.real_if_close(x) * W23)


def n_sq_m(x):
    return np.sum(x.squeeze() * W23[0])


def R23(seed):
    return rnd(2, 3, seed=seed)


REGISTRY_UNARY = [
    (n_arccosh, POS23), (n_arcsinh, None), (n_arctanh, None), (n_cbrt, POS23), (n_cumsum, None),
    (n_cumsum_flat, None), (n_cumsum_m, None), (n_deg, None), (n_fabs, None), (n_flip, None),
    (n_moveaxis, None), (n_pad, None), (n_pad2, None), (n_prod, None), (n_prod_axis, None),
    (n_prod_m, None), (n_real, None), (n_repeat, None), (n_repeat_flat, None),
    (n_repeat_m, None), (n_roll, None), (n_rot90, None), (n_sinc, None), (n_std, None),
    (n_std_m, None), (n_var, None), (n_var_ddof, None), (n_take, None), (n_take_flat, None),
    (n_take_m, None), (n_tile, None), (n_tile2, None), (n_tril, None), (n_norm, None),
    (n_norm_axis, None), (n_norm_fro, None), (n_norm_ord2vec, None), (n_atleast, None),
    (n_asarray, None), (n_real_if_close, None), (n_nll_axis1, None),
]


@pytest.mark.parametrize("f,x", REGISTRY_UNARY, ids=lambda v: getattr(v, "__name__", ""))
def test_registry_unary(f, x):
    check_grad(f, [R23(4) if x is None else x])


REGISTRY_BINARY = [(n_arctan2, None, None), (n_fmax, None, None), (n_hypot, None, None),
                   (n_kron, None, None), (n_remainder, A23, B23), (n_mod, A23, B23),
                   (n_vdot, None, None)]


@pytest.mark.parametrize("f,a,b", REGISTRY_BINARY, ids=lambda v: getattr(v, "__name__", ""))
def test_registry_binary(f, a, b):
    check_grad(f, [R23(5) if a is None else a, R23(6) if b is None else b], wrt=(0, 1))


def test_registry_square_and_vector():
    check_grad(n_diag, [rnd(2, 2)])
    check_grad(n_diag_vec, [rnd(2, 2)])
    check_grad(n_diagonal, [rnd(3, 3)])
    check_grad(n_det, [Q22])
    check_grad(n_inv, [Q22])
    check_grad(n_sq_m, [rnd(1, 3)])
    check_grad(n_inner, [rnd(3), rnd(3, seed=1)], wrt=(0, 1))
    check_grad(n_nll, [rnd(3, 3)])
    check_grad(n_nll_noavg, [rnd(3, 3)])


# ----------------------------------------------------------------------- dtypes

def f_float32_mlp(w, x):
    h = np.tanh(w[0] @ x + w[1])
    return np.sum(h * h) / 3


def test_float32_gradient_dtype():
    r = np.random.default_rng(3)
    w = [r.standard_normal((3, 4)).astype(np.float32),
         r.standard_normal((3, 1)).astype(np.float32)]
    x = r.standard_normal((4, 5)).astype(np.float32)
    g = check_grad(f_float32_mlp, [w, x])
    assert all(gi.dtype == np.float32 for gi in g)


def f_float32_reductions(x):
    return np.mean(np.exp(x)) + np.max(x) * 2 + np.sum(np.log(x * x + 1.0))


def test_float32_reductions():
    x = np.array([[0.1, -0.7, 0.4], [0.9, 0.2, -0.3]], dtype=np.float32)
    g = check_grad(f_float32_reductions, [x])
    assert g.dtype == np.float32


def f_astype(x):
    return np.sum(np.sin(x.astype(np.float64)) * 3.0)


def test_astype():
    x = np.array([0.1, 0.5, -0.2], dtype=np.float32)
    g = check_grad(f_astype, [x])
    assert g.dtype == np.float32


# --------------------------------------------------------- knet_st primitives

def f_kt_sigm(x):
    return np.sum(np.sin(kt.sigm(x)) * 2.0)


def f_kt_relu(x):
    return np.sum(np.sin(kt.relu(x)) * 2.0)


def f_kt_logp0(x):
    return np.sum(kt.logp(x, 0) * np.arange(12.0).reshape(3, 4))


def f_kt_logp1(x):
    return np.sum(kt.logp(x, axis=1) * np.arange(12.0).reshape(3, 4))


def f_kt_logsumexp0(x):
    return np.sum(np.sin(kt.logsumexp(x, 0)))


def f_kt_logsumexp_all(x):
    return kt.logsumexp(x) * 2.0


def f_kt_logsumexp_keep(x):
    return np.sum(np.sin(kt.logsumexp(x, axis=1, keepdims=True)) * x)


def f_kt_softmax0(x):
    return np.sum(kt.softmax(x, 0) * np.arange(12.0).reshape(3, 4))


def f_kt_softmax1(x):
    return np.sum(kt.softmax(x, axis=1) * np.arange(12.0).reshape(3, 4))


def f_kt_mat(x):
    return np.sum(np.sin(kt.mat(x)) * np.arange(12.0).reshape(6, 2))


KT_NN = [("sigm", f_kt_sigm), ("relu", f_kt_relu), ("logp", f_kt_logp0), ("logp", f_kt_logp1),
         ("logsumexp", f_kt_logsumexp0), ("logsumexp", f_kt_logsumexp_all),
         ("logsumexp", f_kt_logsumexp_keep), ("softmax", f_kt_softmax0),
         ("softmax", f_kt_softmax1)]


@pytest.mark.parametrize("name,f", KT_NN, ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_knet_primitives(name, f):
    if not hasattr(kt, name):
        pytest.skip(f"kt.{name} does not exist yet")
    check_grad(f, [away_from_zero(3, 4)])


def test_knet_mat():
    if not hasattr(kt, "mat"):
        pytest.skip("kt.mat does not exist yet")
    check_grad(f_kt_mat, [rnd(2, 3, 1, 2)])


# ------------------------------------------- user-declared rules, and the checker

def _cube(x):
    return x * x * x


def _cube_wrong(x):
    return x * x * x


@kt.adjoint(_cube)
def _cube_rule(dy, y, x):
    dx = dy * 3 * x * x


@kt.adjoint(_cube_wrong)
def _cube_wrong_rule(dy, y, x):
    dx = dy * 2 * x * x


def f_cube(x):
    return np.sum(np.sin(_cube(x)))


def f_cube_wrong(x):
    return np.sum(np.sin(_cube_wrong(x)))


def test_user_adjoint_is_used_and_checker_catches_wrong_rules():
    x = rnd(2, 3)
    check_grad(f_cube, [x])
    with pytest.raises(AssertionError, match="finite differences"):
        check_grad(f_cube_wrong, [x])


# ------------------------------------------------------------ convolution, pooling

def f_conv4(w, x):
    return np.sum(np.sin(kt.conv4(w, x)))


def f_conv4_options(w, x):
    return np.sum(np.sin(kt.conv4(w, x, padding=1, stride=2, mode=1)))


def f_pool_max(x):
    return np.sum(np.sin(kt.pool(x)) * 2.0)


def f_pool_avg(x):
    return np.sum(np.sin(kt.pool(x, window=2, mode="avg")) * 2.0)


def f_lenet_ish(w, x):
    h = kt.pool(kt.relu(kt.conv4(w[0], x) + w[1]))
    return np.sum(np.tanh(w[2] @ kt.mat(h)))


def test_conv4():
    if not hasattr(kt, "conv4"):
        pytest.skip("kt.conv4 does not exist")
    w, x = rnd(2, 1, 2, 2), rnd(2, 1, 4, 4, seed=1)
    check_grad(f_conv4, [w, x], wrt=(0, 1))
    check_grad(f_conv4_options, [w, x], wrt=(0, 1))


def test_pool():
    if not hasattr(kt, "pool"):
        pytest.skip("kt.pool does not exist")
    x = rnd(1, 2, 4, 4)
    check_grad(f_pool_max, [x])
    check_grad(f_pool_avg, [x])


def test_small_convnet():
    if not all(hasattr(kt, n) for n in ("conv4", "pool", "relu", "mat")):
        pytest.skip("Knet operators missing")
    r = np.random.default_rng(8)
    w = [r.standard_normal((2, 1, 2, 2)), r.standard_normal((1, 2, 1, 1)) * 0.1,
         r.standard_normal((3, 2 * 2 * 2))]
    x = r.standard_normal((2, 1, 5, 5))
    check_grad(f_lenet_ish, [w, x], wrt=(0, 1))
