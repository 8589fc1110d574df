"""Shape specialization (knet_st/transform/specialize.py): code rewritten for
the shapes of the first call with an argument signature, used only for
calls with that signature.

Each test runs the specialized code (a second call with a signature, in
the default mode) and compares it with the generic code and with float64
central differences."""

import copy

import numpy as np
import pytest

import knet_st as kt
from knet_st.examples.housing import loss as linreg_loss
from knet_st import api
from knet_st.runtime.observe import signature

from gradcheck import compare, leaves, numeric_grad

rng = np.random.default_rng(0)


def rnd(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(autouse=True)
def default_mode(monkeypatch):
    monkeypatch.setattr(api, "_MODE", "on")


def generic(f, args, wrt=0):
    """The gradient from the generic code."""
    mode = api._MODE
    api._MODE = "off"
    try:
        return kt.grad(f, wrt=wrt)(*copy.deepcopy(args))
    finally:
        api._MODE = mode


def check(g, f, args, wrt=0, rtol=1e-5, atol=1e-7):
    """Calls ``g`` twice (observed, then specialized); checks the second result
    against the generic code and, for float64 arguments, finite differences."""
    first = g(*copy.deepcopy(args))
    second = g(*copy.deepcopy(args))
    expected = generic(f, args, wrt)
    for (_, a), (_, b), (_, c) in zip(leaves(first), leaves(second), leaves(expected)):
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(b, c, rtol=1e-6, atol=1e-12)
        assert np.shape(b) == np.shape(c) and type(b) is type(c)
        assert getattr(b, "dtype", None) == getattr(c, "dtype", None)
    if all(getattr(leaf, "dtype", np.float64) == np.float64 for _, leaf in leaves(args)):
        compare(second, list(args), numeric_grad(f, list(args), wrt), wrt, rtol, atol)
    return second


def mlp_loss(w, x):
    for i in range(0, len(w) - 2, 2):
        x = np.tanh(w[i] @ x + w[i + 1])
    return np.sum((w[-2] @ x + w[-1]) ** 2)


def test_linreg_specialized_source_has_no_runtime_shape_checks():
    g = kt.grad(linreg_loss)
    args = [[rnd(1, 5), rnd(1, 1)], rnd(5, 7), rnd(1, 7)]
    assert "unbroadcast" in kt.source(g)
    check(g, linreg_loss, args)
    text = kt.source(g)
    assert text.startswith("# specialized")
    compile(text, "<specialized>", "exec")
    # unbroadcast only as the fallback of a guard comparing shapes
    assert text.count("unbroadcast(") == text.count("unbroadcast(_kt_g, ")
    assert "getitem_grad(dw, w, 1, dw1)" in text          # only as the fallback
    assert ".sum(axis=(1,), keepdims=True)" in text


def test_other_shapes_dtypes_and_lengths_recompile():
    g = kt.grad(mlp_loss)
    cases = [[[rnd(4, 3), rnd(4, 1), rnd(2, 4), rnd(2, 1)], rnd(3, 5)],
             [[rnd(4, 3), rnd(4, 1), rnd(2, 4), rnd(2, 1)], rnd(3, 1)],     # batch of 1
             [[rnd(4, 3), rnd(4), rnd(2, 4), rnd(2)], rnd(3)],              # vectors
             [[rnd(4, 3), rnd(4, 1), rnd(6, 4), rnd(6, 1), rnd(2, 6), rnd(2, 1)],
              rnd(3, 5)],                                                   # another layer
             [[rnd(4, 3, dtype=np.float32), rnd(4, 1, dtype=np.float32),
               rnd(2, 4, dtype=np.float32), rnd(2, 1, dtype=np.float32)],
              rnd(3, 5, dtype=np.float32)]]
    for args in cases + cases:                      # back and forth between signatures
        check(g, mlp_loss, args, rtol=1e-4)
    assert len(g.compiled().variants) == len(cases)


def test_a_call_with_new_shapes_does_not_reuse_specialized_code():
    g = kt.grad(linreg_loss)
    w = [rnd(1, 5), rnd(1, 1)]
    for _ in range(2):
        g(w, rnd(5, 7), rnd(1, 7))
    # w[1] of shape (1, 7): no longer broadcast, summed over no axis
    args = [[rnd(1, 5), rnd(1, 7)], rnd(5, 7), rnd(1, 7)]
    result = g(*copy.deepcopy(args))
    expected = generic(linreg_loss, args)
    assert result[1].shape == (1, 7)
    np.testing.assert_allclose(result[1], expected[1])


def broadcasts(a, b, c, s):
    return np.sum(np.tanh(a + b) * c) + np.sum(a * s) + s * np.sum(c)


@pytest.mark.parametrize("shapes", [
    ((3, 1), (1, 4), (3, 4)),          # both directions at once
    ((3, 4), (4,), (2, 3, 4)),         # leading axes added
    ((4, 1), (2, 4, 5), (5,)),         # leading and inner axes
    ((), (3,), (1,)),                  # 0-d arrays
    ((1,), (), (1, 1))])
def test_broadcasting_in_both_directions(shapes):
    a, b, c = (rnd(*s) for s in shapes)
    for wrt in (0, 1, 2, 3, (0, 1, 2, 3)):
        args = [a, b, c, 0.7]
        check(kt.grad(broadcasts, wrt=wrt), broadcasts, args, wrt=wrt)


def scalars(x, y):
    return x * y + x ** 2 + np.sin(y) * 3.0


def test_python_numbers_and_numpy_scalars():
    for args in ([1.5, 2.0], [np.float64(1.5), 2.0], [np.array(1.5), np.array(2.0)]):
        check(kt.grad(scalars, wrt=(0, 1)), scalars, args, wrt=(0, 1))


def growing(w, h):
    """A recurrence whose shape changes at every step."""
    total = 0.0
    for i in range(len(w)):
        h = np.tanh(w[i] @ h) + w[i][:, :1]
        total = total + np.sum(h * h)
    return total


def test_loops_whose_shapes_change_between_iterations():
    w = [rnd(3, 2), rnd(5, 3), rnd(2, 5), rnd(4, 2)]
    check(kt.grad(growing), growing, [w, rnd(2, 6)])
    check(kt.grad(growing), growing, [w[:2], rnd(2, 1)])


def branchy(w, x):
    """Data-dependent control flow: which elements of w get gradients, and in
    which order, depends on the values of x."""
    total = 0.0
    for i in range(len(x)):
        if x[i] > 0:
            total = total + np.sum(w[1] * x[i])
        else:
            total = total + np.sum(w[0] * x[i] + w[1])
    return total


def test_data_dependent_branches_take_the_guarded_fallback():
    g = kt.grad(branchy)
    w = [rnd(3), rnd(3)]
    for x in (np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([-1.0, 2.0]),
              np.array([-1.0, -2.0]), np.array([2.0, -1.0])):
        np.testing.assert_allclose(np.array(g(w, x)), np.array(generic(branchy, [w, x])))


class Model:
    def __init__(self, w):
        self.w = w


def on_object(m, x):
    return np.sum(m.w @ x + 1.0)


def test_arguments_it_cannot_see_into_run_the_generic_code():
    assert signature([Model(rnd(2, 2)), rnd(2)]) is None
    g = kt.grad(lambda_free, wrt=1)
    for n in (2, 3, 2):
        m, x = Model(rnd(n, n)), rnd(n)
        for _ in range(2):
            np.testing.assert_allclose(g(m, x), generic(lambda_free, [m, x], 1))
    assert not g.compiled().variants


def lambda_free(m, x):
    return np.sum(np.tanh(m.w @ x))


def test_signatures_beyond_the_limit_run_the_generic_code(monkeypatch):
    monkeypatch.setattr(api, "_VARIANTS", 2)
    g = kt.grad(linreg_loss)
    for n in (3, 4, 5, 6, 3):
        args = [[rnd(1, 5), rnd(1, 1)], rnd(5, n), rnd(1, n)]
        check(g, linreg_loss, args)
    assert len(g.compiled().variants) == 2


def int_sized(w, n):
    return np.sum(w[:n] ** 2) + np.sum(w[n:]) * n


def test_int_arguments_are_part_of_the_signature():
    g = kt.grad(int_sized)
    w = rnd(6)
    for n in (1, 4, 1, 5):
        check(g, int_sized, [w, n])
    assert len(g.compiled().variants) == 3


def test_signature_keys():
    a = np.zeros((2, 3), np.float32)
    assert signature([a]) == signature([np.ones((2, 3), np.float32)])
    assert signature([a]) != signature([a.astype(np.float64)])
    assert signature([[a, a]]) != signature([[a]])
    assert signature([(a,)]) != signature([[a]])
    assert signature([{"w": a}]) != signature([{"v": a}])
    assert signature([1.0]) == signature([2.0]) != signature([2])
    assert signature([3]) != signature([4])


def reductions(x, xs):
    return (np.sum(x) + np.mean(x, axis=0).sum() + np.max(x, 1, keepdims=True).sum()
            + np.sum(np.transpose(x) ** 2) + np.sum(xs) + np.prod(np.clip(x, -0.5, 0.5)))


def test_numpy_functions_of_arrays_become_methods():
    g = kt.grad(reductions)
    check(g, reductions, [rnd(3, 4), [1.0, 2.0]])
    text = kt.source(g)
    assert "np.sum(xs)" in text           # a list: NumPy's function stays
    # methods where x is an array (NumPy's function where it is not)
    assert "x.sum() if type(x) is _kt_ndarray else np.sum(x)" in text
    assert "x.max(1, keepdims=True)" in text and "x.transpose()" in text


def recurrent(w, xs, h):
    """Weight gradients accumulate over the steps (in place after the first)."""
    total = 0.0
    for t in range(len(xs)):
        h = np.tanh(w[0] @ h + w[1] @ xs[t] + w[2])
        total = total + np.sum(h * w[3]) + np.sum(w[2] * xs[t][:2])
    return total


def test_accumulation_over_a_loop_leaves_the_arguments_alone():
    w = [rnd(2, 2), rnd(2, 3), rnd(2, 1), rnd(2, 1)]
    xs = [rnd(3, 1) for _ in range(4)]
    args = [w, xs, rnd(2, 1)]
    before = copy.deepcopy(args)
    g = kt.grad(recurrent)
    check(g, recurrent, args)
    for _ in range(2):
        result = g(*args)              # the arguments themselves, not copies
        for (_, a), (_, b) in zip(leaves(args), leaves(before)):
            np.testing.assert_array_equal(a, b)
    assert "_kt_accumulate_item(dw, 0, dw0)" in kt.source(g)
    for r, e in zip(result, generic(recurrent, before)):
        np.testing.assert_allclose(r, e)


def aliased(w, x):
    """The first contribution to dw[0] is also another value's adjoint."""
    y = w[0] + w[0] * 2.0
    z = np.sum(y * x) + np.sum(w[0] * x)
    return z + np.sum(w[1] + w[0])


def test_accumulation_never_writes_into_a_shared_adjoint():
    args = [[rnd(3), rnd(3)], rnd(3)]
    check(kt.grad(aliased), aliased, args)
    check(kt.grad(aliased, wrt=(0, 1)), aliased, args, wrt=(0, 1))


def test_in_place_accumulation_only_into_arrays_nothing_else_refers_to():
    from knet_st.runtime.gradients import accumulate_item
    mine = np.ones(3)
    d = {0: mine}
    accumulate_item(d, 0, np.ones(3))         # mine is still referred to here
    assert d[0] is not mine and (mine == 1).all()
    d = {0: np.ones(3)}
    first = id(d[0])
    accumulate_item(d, 0, np.ones(3))
    assert id(d[0]) == first and (d[0] == 2).all()
    base = np.ones(6)
    d = {0: base[:3]}                         # a view: writing would change base
    accumulate_item(d, 0, np.ones(3))
    assert (base == 1).all() and (d[0] == 2).all()
    d = {0: np.ones(3, np.float32)}
    accumulate_item(d, 0, np.ones(3))         # would round to float32
    assert d[0].dtype == np.float64
    d = {0: np.ones((1, 3))}
    accumulate_item(d, 0, np.ones((2, 3)))    # would not fit
    assert d[0].shape == (2, 3)


def classifier(w, x, labels):
    scores = w[0] @ x + w[1]
    return kt.nll(scores, labels) + 0.5 * np.sum(w[0] ** 2)


def side_effects(w, log):
    y = np.sum(np.tanh(w) ** 2)
    log.append(len(log))
    z = y * 2.0
    return z


def test_grad_does_not_compute_the_value_value_and_grad_does():
    w, x, labels = [rnd(3, 4), rnd(3, 1)], rnd(4, 5), np.array([0, 2, 1, 1, 0])
    g = kt.grad(classifier)
    check(g, classifier, [w, x, labels])
    text = kt.source(g)
    # the value is not returned; nll itself stays while a guarded site reads
    # its shape (shapes that depend on array values are checked at run time)
    assert "_kt_no_value" in text
    assert "_kt_check_nll(scores, labels)" in text or "kt.nll(scores, labels)" in text
    vg = kt.value_and_grad(classifier)
    for _ in range(3):
        value, grads = vg(w, x, labels)
        assert np.isclose(value, classifier(w, x, labels))
        for a, b in zip(grads, generic(classifier, [w, x, labels])):
            np.testing.assert_allclose(a, b)
    assert "kt.nll(" in kt.source(vg)
    with pytest.raises(ValueError, match="0-based"):
        g(w, x, labels - 1)                    # the labels are still checked
    log = []
    g = kt.grad(side_effects)
    for _ in range(3):
        g(rnd(2), log)
    assert log == [0, 1, 2]


def masked_scale(x, b, mask):
    c = b * 2.0                      # an inner value of b's shape
    y = x[mask]                      # as long as the mask has True values
    return np.sum(np.tanh(y * c) * y)


def test_shapes_that_depend_on_values_take_the_guarded_fallback():
    # the signature is the same for every mask; the number of selected
    # values is not, and a site that saw shape (1,) must not keep assuming it
    g = kt.grad(masked_scale, wrt=1)
    x, b = rnd(6), rnd(1)
    for m in ([1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1], [1] * 6):
        mask = np.array(m, dtype=bool)
        check(g, masked_scale, [x, b, mask], wrt=1)
    assert "_kt_g" in kt.source(g)              # the guard is there


def mse(w, x, y, keep):
    d = (y - w @ x) ** 2
    total = np.sum(d, keepdims=True) if keep else np.sum(d)
    return (total / y.shape[1]).sum() * 1.0 + np.mean(d) * np.max(d)


def test_a_full_reduction_feeding_only_the_value_is_not_computed():
    # np.sum(d) is 0-d whatever d's shape (its rule declares scalar_when), so
    # the backward needs nothing of it: the forward of a grad skips it
    args = [rnd(2, 3), rnd(3, 5), rnd(2, 5)]
    g = kt.grad(linreg_like)
    check(g, linreg_like, args)
    text = kt.source(g).split("def linreg_like_bwd")[0]
    assert "SCALAR_SHAPE" in text and "** 2" not in text and ".sum()" not in text
    # with keepdims=True (not 0-d) or an axis, the shape is kept from the value
    for keep in (True, False):
        check(kt.grad(mse), mse, args + [keep])
    text = kt.source(kt.grad(mse))
    assert "np.sum(d, keepdims=True)" in text or "d.sum(keepdims=True)" in text


def linreg_like(w, x, y):
    return np.sum((y - w @ x) ** 2) / y.shape[1]


def two_layers(w, x):
    h = np.tanh(w[0] @ x)
    return np.sum((w[1] @ h) ** 2)


@pytest.mark.parametrize("form", ["plain", "swapped"])
def test_matrix_product_adjoints_in_either_form(monkeypatch, form):
    # the first call times g @ b.T against (b @ g.T).T (and a.T @ g against
    # (g.T @ a).T) where the product is large, and the code keeps the faster
    from knet_st.runtime import observe
    monkeypatch.setattr(observe, "faster_product", lambda *args: form)
    monkeypatch.setattr(api, "_cache", type(api._cache)())   # compile afresh
    args = [[rnd(6, 5), rnd(3, 6)], rnd(5, 4)]
    g = kt.grad(two_layers)
    check(g, two_layers, args)
    text = kt.source(g)
    if form == "swapped":
        assert ".T).T.copy()" in text
        assert "matmul_grad" not in text.split("# specialized")[1]
    check(kt.grad(two_layers, wrt=1), two_layers, args, wrt=1)
    # row-major like the weights, so that the caller's w -= lr * dw stays fast
    assert all(d.flags.c_contiguous for d in g(*args))


def test_faster_product_times_only_large_float_matrices():
    from knet_st.runtime.observe import faster_product
    small, big = rnd(3, 4), rnd(200, 300)
    assert faster_product(lambda: small @ small.T, None, small, small) == "plain"
    ints = np.ones((600, 600), int)
    assert faster_product(lambda: ints @ ints.T, None, ints, ints) == "plain"
    other = rnd(400, 300)
    assert faster_product(lambda: big @ other.T, lambda: (other @ big.T).T,
                          big, other) in ("plain", "swapped")
