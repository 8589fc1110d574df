"""Forward mode (kt.jvp) and second order (kt.hvp, kt.hessian, kt.grad(kt.grad(f))),
checked against finite differences and analytic values (issue 12)."""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad
from knet_st.examples import charlm

R = np.random.default_rng(12)

EPS = 1e-6


def fd(f, x, t):
    """The central difference of ``f`` along ``t`` (floats or lists of arrays)."""
    if isinstance(x, list):
        plus = f([a + EPS * b for a, b in zip(x, t)])
        minus = f([a - EPS * b for a, b in zip(x, t)])
        if isinstance(plus, list):
            return [(p - m) / (2 * EPS) for p, m in zip(plus, minus)]
        return (plus - minus) / (2 * EPS)
    return (f(x + EPS * t) - f(x - EPS * t)) / (2 * EPS)


# ------------------------------------------------------------------ forward mode

def helper(a, b):
    return a * np.sin(b)


def loops_branches(x, n):
    s = 0.0
    ys = []
    for i in range(n):
        if x > 0:
            s = s + helper(x, x) * i
        else:
            s = s - x * x
        ys.append(s)
    while s > 10:
        s = s / 2
    return s + ys[0] * ys[-1]


def power(x, n):
    if n == 0:
        return 1.0
    return x * power(x, n - 1)


def lists(x):
    parts = [np.tanh(x), x ** 2]
    d = {"a": parts[0], "b": np.exp(x)}
    total = 0.0
    for p in parts:
        total = total + p
    return total * d["b"] + d["a"]


def vector(x):
    h = np.maximum(0, x) @ np.ones((3, 2)) + 1.0
    return [np.sum(h ** 2), h / 2]


@pytest.mark.parametrize("x", [0.7, -0.4])
def test_jvp_scalar_functions(x):
    for f, args in [(loops_branches, (3,)), (power, (4,)), (lists, ())]:
        value, t = kt.jvp(f)(x, *args, 1.0)
        assert value == pytest.approx(f(x, *args))
        assert t == pytest.approx(fd(lambda z: f(z, *args), x, 1.0), rel=1e-6, abs=1e-8)
    assert kt.jvp(power)(1.5, 3, 1.0)[1] == pytest.approx(3 * 1.5 ** 2)


def test_jvp_arrays_and_structures():
    r = np.random.default_rng(0)
    x, t = r.standard_normal(3), r.standard_normal(3)
    value, tan = kt.jvp(vector)(x, t)
    expect = fd(lambda z: vector(z)[0], x, t), fd(lambda z: vector(z)[1], x, t)
    assert value[0] == pytest.approx(vector(x)[0])
    assert tan[0] == pytest.approx(expect[0], rel=1e-6)
    np.testing.assert_allclose(tan[1], expect[1], rtol=1e-6)


def test_jvp_source_is_readable():
    text = kt.source(kt.jvp(loops_branches))
    assert "def loops_branches_jvp(x, n, tan_x):" in text
    assert "def helper_jvp(a, b, tan_a, tan_b):" in text
    assert "tan_ys.append(tan_s)" in text
    assert "tan_t1 = tan_a * t2 + a * tan_t2" in text


def test_jvp_refuses_what_has_no_rule():
    def uses_sort(x):
        return np.sort(x)[0]
    with pytest.raises(kt.TransformError, match="no tangent rule"):
        kt.jvp(uses_sort)(np.ones(3), np.ones(3))


# ------------------------------------------------------------------- second order

def predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = np.maximum(0, w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def mlp_loss(w, x, y):
    return np.mean((predict(w, x) - y) ** 2)


def test_hvp_mlp_on_a_list_of_weights():
    r = np.random.default_rng(1)
    w = [r.standard_normal((5, 3)), r.standard_normal((5, 1)), r.standard_normal((2, 5)),
         r.standard_normal((2, 1))]
    x, y = r.standard_normal((3, 4)), r.standard_normal((2, 4))
    v = [r.standard_normal(a.shape) for a in w]
    hv = kt.hvp(mlp_loss)(w, x, y, v)
    expect = fd(lambda z: kt.grad(mlp_loss)(z, x, y), w, v)
    assert [h.shape for h in hv] == [a.shape for a in w]
    for h, e in zip(hv, expect):
        np.testing.assert_allclose(h, e, rtol=1e-5, atol=1e-7)
    text = kt.source(kt.hvp(mlp_loss))
    assert "def predict_bwd_jvp(" in text and "tan_stack.pop()" in text


def test_hvp_lstm_loss():
    r = np.random.default_rng(2)
    w = [np.asarray(a, dtype=np.float64) for a in charlm.init_weights(5, [4], 3, 0.3)]
    s0 = [np.asarray(a, dtype=np.float64) for a in charlm.init_state([4], 2)]
    seq = [r.integers(0, 5, size=2) for _ in range(4)]
    v = [r.standard_normal(a.shape) for a in w]
    hv = kt.hvp(charlm.loss)(w, [a.copy() for a in s0], seq, range(3), v)
    expect = fd(lambda z: kt.grad(charlm.loss)(z, [a.copy() for a in s0], seq, range(3)),
                w, v)
    for h, e in zip(hv, expect):
        np.testing.assert_allclose(h, e, rtol=1e-4, atol=1e-8)


def wiggle(x):
    s = x
    for i in range(3):
        if s > 0:
            s = np.sin(s) * x
        else:
            s = s * s
    return s + power(x, 3)


def test_grad_of_grad():
    d2 = kt.grad(kt.grad(wiggle))
    for x in (0.4, 1.3):
        assert d2(x) == pytest.approx(fd(kt.grad(wiggle), x, 1.0), rel=1e-6)
    assert kt.grad(kt.grad(np_free))(2.0) == pytest.approx(6 * 2.0 + 2)
    assert "def wiggle_bwd_jvp(" in kt.source(d2)


def np_free(x):
    return x ** 3 + x * x


def quadratic(x, a):
    return np.sum(a @ x * x) + np.sum(np.tanh(x) ** 2)


def test_hessian_analytic():
    a = np.arange(9.0).reshape(3, 3) / 10
    x = np.array([0.1, -0.3, 0.5])
    h = kt.hessian(quadratic)(x, a)
    t = np.tanh(x)
    expect = a + a.T + np.diag(2 * (1 - t ** 2) ** 2 - 4 * t ** 2 * (1 - t ** 2))
    assert h.shape == (3, 3)
    np.testing.assert_allclose(h, expect, atol=1e-12)
    assert kt.hessian(np_free)(2.0) == pytest.approx(14.0)


def two(x, y):
    return x * y


def inner_grad(x):
    return x * kt.grad(two, wrt=1)(x, 1.0)


def test_unsupported_higher_order_is_refused():
    with pytest.raises(kt.TransformError, match="not supported yet"):
        kt.value_and_grad(kt.grad(np_free))
    with pytest.raises(TypeError, match="real scalar"):
        kt.grad(kt.grad(np_free))(np.ones(2))


# ---- gradients inside differentiated functions (forward over reverse) ---------

def plus(x, y):
    return x + y


def perturbation_confusion(x):
    return x * kt.grad(plus, wrt=1)(x, 2.0)        # d/dx [x * d/dy (x + y)] = 1


def test_perturbation_confusion():
    assert kt.grad(perturbation_confusion)(1.5) == pytest.approx(1.0)
    assert kt.grad(inner_grad)(1.0) == pytest.approx(2.0)   # d/dx [x * x] = 2


def small_loss(w, x):
    return np.sum(np.tanh(w @ x) ** 2)


def gradient_penalty(w, x):                        # double backprop (WGAN-GP)
    g = kt.grad(small_loss, wrt=1)(w, x)
    return np.sum(g ** 2)


def inner_fit(w, x, y):
    return np.sum((np.tanh(w[0] @ x) - y) ** 2)


def maml(w, x, y, x2, y2):                         # one inner step, differentiated through
    g = kt.grad(inner_fit)(w, x, y)
    wi = [a - 0.1 * b for a, b in zip(w, g)]
    return inner_fit(wi, x2, y2)


def sin_layer(w, x):
    return np.sum(np.sin(w[0] @ x))


def value_and_gradient_inside(w, x):
    v, g = kt.value_and_grad(sin_layer)(w, x)
    return v + np.sum(g[0] ** 2)


@pytest.mark.parametrize("f, args, wrt", [
    (gradient_penalty, (R.standard_normal((2, 3)), R.standard_normal(3)), (0, 1)),
    (maml, ([R.standard_normal((2, 3))], R.standard_normal(3), R.standard_normal(2),
            R.standard_normal(3), R.standard_normal(2)), 0),
    (value_and_gradient_inside, ([R.standard_normal((2, 3))], R.standard_normal(3)), 0),
], ids=lambda v: getattr(v, "__name__", ""))
def test_gradients_inside_losses(f, args, wrt):
    check_grad(f, args, wrt=wrt, rtol=1e-4, atol=1e-6)


def two_arguments(x, w):
    return np.sin(x * np.sum(w)) * x ** 2


def test_second_derivatives_of_several_arguments():
    w = R.standard_normal(3)
    x, h = 0.7, 1e-5
    d2 = kt.grad(kt.grad(two_arguments))(x, w)             # d2f/dx2
    g = kt.grad(two_arguments)
    assert d2 == pytest.approx((g(x + h, w) - g(x - h, w)) / (2 * h), rel=1e-6)
    mixed = kt.grad(kt.grad(two_arguments), wrt=1)(x, w)    # d/dw (df/dx)
    num = np.array([(g(x, w + h * e) - g(x, w - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(mixed, num, rtol=1e-6, atol=1e-9)


def dense_layer(W, x, act=np.tanh):
    return act(W @ x)


def net_with_default(W, x):
    return np.sum(dense_layer(W, x))


def net_with_function(W, x):
    return np.sum(dense_layer(W, x, np.sin))


@pytest.mark.parametrize("f", [net_with_default, net_with_function],
                         ids=lambda f: f.__name__)
def test_forward_mode_with_functions_in_parameters(f):
    W, x, V = R.standard_normal((3, 3)), R.standard_normal(3), R.standard_normal((3, 3))
    h = 1e-6
    _, t = kt.jvp(f)(W, x, V)
    assert t == pytest.approx((f(W + h * V, x) - f(W - h * V, x)) / (2 * h), rel=1e-6)
    g = kt.grad(f)
    np.testing.assert_allclose(kt.hvp(f)(W, x, V),
                               (g(W + h * V, x) - g(W - h * V, x)) / (2 * h), atol=1e-7)


def gradients_of_two_arguments_inside(w, x):
    gw, gx = kt.grad(small_loss, wrt=(0, 1))(w, x)
    return np.sum(gw ** 2) + np.sum(gx * x)


def test_gradient_of_two_arguments_inside_a_loss():
    check_grad(gradients_of_two_arguments_inside,
               (R.standard_normal((2, 3)), R.standard_normal(3)), wrt=(0, 1),
               rtol=1e-4, atol=1e-6)


def loop_over_list(w, xs):
    s = 0.0
    for x in xs:
        s = s + np.sum(np.sin(x * w))
    return s


def builtin_sum_over_list(w, xs):
    return np.sum(sum(x * w for x in xs) ** 2)


def _hvp_by_differences(fn, args, wrt, v, eps=1e-6):
    def at(sign):
        moved = list(args)
        x = args[wrt]
        moved[wrt] = [a + sign * eps * u for a, u in zip(x, v)] if isinstance(x, list) \
            else x + sign * eps * v
        return kt.grad(fn, wrt=wrt)(*moved)
    plus, minus = at(1), at(-1)
    if isinstance(plus, list):
        return [(a - b) / (2 * eps) for a, b in zip(plus, minus)]
    return (plus - minus) / (2 * eps)


@pytest.mark.parametrize("fn", [loop_over_list, builtin_sum_over_list])
@pytest.mark.parametrize("wrt", [0, 1])
def test_hvp_through_loops_over_a_list_and_builtin_sum(fn, wrt):
    # forward mode had no tangent rule for the gradient's element() (a loop
    # over a list) nor builtin_sum_grad: refused naming the generated code
    rng = np.random.default_rng(21)
    w, xs = rng.standard_normal(3), [rng.standard_normal(3) for _ in range(2)]
    v = [rng.standard_normal(3) for _ in range(2)] if wrt == 1 else rng.standard_normal(3)
    hv = kt.hvp(fn, wrt=wrt)(w, xs, v)
    expected = _hvp_by_differences(fn, (w, xs), wrt, v)
    for a, b in zip(hv if wrt == 1 else [hv], expected if wrt == 1 else [expected]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def square_of_a_list(w, x):
    hs = [w, x]
    t = hs[0] + np.square(hs)
    return np.sum(t) + np.sum(2 * np.array([w]) * x)


def mean_of_a_list(w, x):
    hs = [w, x * w]
    return np.sum(np.mean(hs, axis=0) ** 2) + np.sum(np.tanh(np.asarray(hs)))


@pytest.mark.parametrize("fn", [square_of_a_list, mean_of_a_list])
def test_hvp_through_numpy_functions_of_lists(fn):
    # np.array(hs)'s tangent was the list of tangents itself: 2 * (that list)
    # repeated it (a broadcast error); astype_grad had no tangent rule
    rng = np.random.default_rng(22)
    w, x, v = (rng.standard_normal(3) for _ in range(3))
    expected = _hvp_by_differences(fn, (w, x), 0, v)
    np.testing.assert_allclose(kt.hvp(fn)(w, x, v), expected, rtol=1e-5, atol=1e-8)
