"""Tests for knet_st.optim: update rules, in-place updates, nesting."""

import tracemalloc

import numpy as np
import pytest

from knet_st import optim
from knet_st.optim import (SGD, Momentum, Nesterov, Adagrad, Adadelta,
                           Rmsprop, Adam, optimizers, update)


def _grads(n=3, shape=(2, 3), seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(shape) for _ in range(n)]


def _w0(shape=(2, 3), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def _run(opt, w, grads):
    for g in grads:
        update(w, g, opt)
    return w


# --- each rule against its published formula, computed by hand -----------

def test_sgd_formula():
    w, gs = _w0(), _grads()
    ref = w.copy()
    for g in gs:
        ref = ref - 0.1 * g
    np.testing.assert_allclose(_run(SGD(0.1), w, gs), ref, rtol=1e-12)


def test_momentum_formula():
    w, gs = _w0(), _grads()
    ref, v = w.copy(), np.zeros_like(w)
    for g in gs:
        v = 0.8 * v + 0.05 * g
        ref = ref - v
    np.testing.assert_allclose(_run(Momentum(0.05, gamma=0.8), w, gs), ref,
                               rtol=1e-12)


def test_nesterov_formula():
    # Bengio et al. 2012 eq. 7, as in Knet:
    # v_t = gamma v_{t-1} - lr g;  w_t = w_{t-1} - gamma v_{t-1} + (1+gamma) v_t
    w, gs = _w0(), _grads()
    ref, v = w.copy(), np.zeros_like(w)
    for g in gs:
        v_new = 0.9 * v - 0.05 * g
        ref = ref - 0.9 * v + 1.9 * v_new
        v = v_new
    np.testing.assert_allclose(_run(Nesterov(0.05, gamma=0.9), w, gs), ref,
                               rtol=1e-12)


def test_nesterov_first_step_differs_from_momentum():
    w1, w2 = np.zeros(2), np.zeros(2)
    g = np.ones(2)
    update(w1, g, Nesterov(0.1, gamma=0.9))
    update(w2, g, Momentum(0.1, gamma=0.9))
    np.testing.assert_allclose(w1, -0.19)   # (1 + gamma) * lr * g
    np.testing.assert_allclose(w2, -0.1)


def test_adagrad_formula():
    w, gs = _w0(), _grads()
    ref, G = w.copy(), np.zeros_like(w)
    for g in gs:
        G = G + g ** 2
        ref = ref - 0.1 * g / np.sqrt(G + 1e-6)
    np.testing.assert_allclose(_run(Adagrad(0.1, eps=1e-6), w, gs), ref,
                               rtol=1e-12)


def test_adadelta_formula():
    w, gs = _w0(), _grads()
    ref, G, d = w.copy(), np.zeros_like(w), np.zeros_like(w)
    rho, eps, lr = 0.95, 1e-4, 0.5
    for g in gs:
        G = rho * G + (1 - rho) * g ** 2
        upd = g * np.sqrt(d + eps) / np.sqrt(G + eps)
        ref = ref - lr * upd
        d = rho * d + (1 - rho) * upd ** 2
    got = _run(Adadelta(lr, rho=rho, eps=eps), w, gs)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_rmsprop_formula():
    w, gs = _w0(), _grads()
    ref, G = w.copy(), np.zeros_like(w)
    for g in gs:
        G = 0.9 * G + 0.1 * g ** 2
        ref = ref - 0.01 * g / np.sqrt(G + 1e-6)
    np.testing.assert_allclose(_run(Rmsprop(0.01, rho=0.9, eps=1e-6), w, gs),
                               ref, rtol=1e-12)


def test_adam_formula():
    w, gs = _w0(), _grads()
    ref, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    b1, b2, eps, lr = 0.8, 0.99, 1e-8, 0.01
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        ref = ref - lr * mhat / (np.sqrt(vhat) + eps)
    opt = Adam(lr, beta1=b1, beta2=b2, eps=eps)
    np.testing.assert_allclose(_run(opt, w, gs), ref, rtol=1e-12)
    assert opt.t == 3


def test_adam_first_step_is_lr_times_sign():
    w = np.zeros(3)
    update(w, np.array([2.0, -0.5, 1e-3]), Adam(lr=0.01))
    np.testing.assert_allclose(w, [-0.01, 0.01, -0.01], rtol=1e-4)


def test_defaults_follow_knet():
    assert SGD().lr == 0.001
    assert Momentum().gamma == 0.9 and Nesterov().gamma == 0.9
    a = Adagrad()
    assert (a.lr, a.eps) == (0.1, 1e-6)
    d = Adadelta()
    assert (d.lr, d.rho, d.eps) == (1.0, 0.9, 1e-6)
    r = Rmsprop()
    assert (r.lr, r.rho, r.eps) == (0.001, 0.9, 1e-6)
    m = Adam()
    assert (m.lr, m.beta1, m.beta2, m.eps) == (0.001, 0.9, 0.999, 1e-8)


# --- every optimizer decreases a least-squares loss ----------------------

def _regression(seed=3):
    r = np.random.default_rng(seed)
    x = r.standard_normal((5, 64))
    wt = r.standard_normal((1, 5))
    y = wt @ x + 0.7 + 0.01 * r.standard_normal((1, 64))
    return x, y


def _loss_and_grad(w, x, y):
    err = w[0] @ x + w[1] - y
    n = y.shape[1]
    return (float(np.sum(err ** 2) / n),
            [2.0 / n * err @ x.T, 2.0 / n * np.sum(err, axis=1, keepdims=True)])


@pytest.mark.parametrize("optim_cls,kw,factor", [
    (SGD, dict(lr=0.1), 0.01),
    (Momentum, dict(lr=0.05), 0.01),
    (Nesterov, dict(lr=0.05), 0.01),
    (Adagrad, dict(lr=0.5), 0.01),
    (Adadelta, dict(lr=1.0), 0.2),
    (Rmsprop, dict(lr=0.01), 0.01),
    (Adam, dict(lr=0.05), 0.01),
])
def test_decreases_least_squares_loss(optim_cls, kw, factor):
    x, y = _regression()
    w = [np.zeros((1, 5), np.float32), np.zeros((1, 1), np.float32)]
    opts = optimizers(w, optim_cls, **kw)
    loss0, _ = _loss_and_grad(w, x, y)
    for _ in range(300):
        _, dw = _loss_and_grad(w, x, y)
        update(w, dw, opts)
    loss1, _ = _loss_and_grad(w, x, y)
    assert np.isfinite(loss1)
    assert loss1 < factor * loss0, (loss0, loss1)
    assert w[0].dtype == np.float32 and w[1].dtype == np.float32


# --- in place ---------------------------------------------------------------

ALL = [SGD, Momentum, Nesterov, Adagrad, Adadelta, Rmsprop, Adam]


@pytest.mark.parametrize("optim_cls", ALL)
def test_in_place(optim_cls):
    w = [np.ones((4, 3), np.float32), {"b": np.ones((4, 1), np.float32)}]
    ids = (id(w[0]), id(w[1]["b"]))
    ptrs = (w[0].ctypes.data, w[1]["b"].ctypes.data)
    before = [w[0].copy(), w[1]["b"].copy()]
    opts = optimizers(w, optim_cls, lr=0.1, gclip=1.0, weight_decay=0.01)
    g = [np.full((4, 3), 0.5, np.float32), {"b": np.full((4, 1), 2.0)}]
    g_copy = [g[0].copy(), g[1]["b"].copy()]
    for _ in range(3):
        out = update(w, g, opts)
    assert out is w
    assert (id(w[0]), id(w[1]["b"])) == ids
    assert (w[0].ctypes.data, w[1]["b"].ctypes.data) == ptrs
    assert not np.array_equal(w[0], before[0])
    assert not np.array_equal(w[1]["b"], before[1])
    # the caller's gradients are untouched
    np.testing.assert_array_equal(g[0], g_copy[0])
    np.testing.assert_array_equal(g[1]["b"], g_copy[1])


@pytest.mark.parametrize("optim_cls", ALL)
def test_steady_state_allocates_no_parameter_arrays(optim_cls):
    n = 50_000                               # 400 kB per float64 array
    w = np.ones(n)
    g = np.full(n, 0.25)
    opt = optim_cls(lr=0.01, gclip=1.0, weight_decay=0.1)
    update(w, g, opt)                        # first step builds the state
    state = {k: id(v) for k, v in vars(opt).items() if hasattr(v, "shape")}
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(5):
            update(w, g, opt)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * w.nbytes, peak
    assert {k: id(v) for k, v in vars(opt).items()
            if hasattr(v, "shape")} == state


def test_non_contiguous_parameter_view_updated_in_place():
    big = np.ones((4, 6))
    view = big[:, ::2]
    update(view, np.ones_like(view), SGD(0.5))
    np.testing.assert_array_equal(big[:, ::2], 0.5)
    np.testing.assert_array_equal(big[:, 1::2], 1.0)


# --- clipping and weight decay -----------------------------------------------

def test_gclip_scales_to_norm():
    w = np.zeros(2)
    g = np.array([3.0, 4.0])                  # norm 5
    update(w, g, SGD(1.0, gclip=1.0))
    np.testing.assert_allclose(w, [-0.6, -0.8])
    np.testing.assert_array_equal(g, [3.0, 4.0])   # not modified
    w = np.zeros(2)
    update(w, g, SGD(1.0, gclip=10.0))        # below the threshold
    np.testing.assert_allclose(w, [-3.0, -4.0])


def test_gclip_with_momentum_state_uses_clipped_gradient():
    w = np.zeros(2)
    opt = Momentum(1.0, gamma=0.5, gclip=1.0)
    update(w, np.array([3.0, 4.0]), opt)
    update(w, np.array([0.0, 10.0]), opt)
    v1 = np.array([0.6, 0.8])
    v2 = 0.5 * v1 + np.array([0.0, 1.0])
    np.testing.assert_allclose(w, -(v1 + v2))


def test_update_global_gclip_over_model():
    w = [np.zeros(1), np.zeros(1)]
    opts = optimizers(w, SGD, lr=1.0)
    update(w, [np.array([3.0]), np.array([4.0])], opts, gclip=1.0)
    np.testing.assert_allclose([w[0][0], w[1][0]], [-0.6, -0.8])


def test_weight_decay():
    w = np.array([2.0, -4.0])
    update(w, np.array([1.0, 0.0]), SGD(0.1, weight_decay=0.5))
    # g_eff = g + 0.5 w = [2, -2]
    np.testing.assert_allclose(w, [1.8, -3.8])
    # pure decay with zero gradient shrinks weights geometrically
    w = np.array([1.0])
    opt = SGD(0.1, weight_decay=1.0)
    for _ in range(3):
        update(w, np.zeros(1), opt)
    np.testing.assert_allclose(w, [0.9 ** 3])


def test_weight_decay_in_adam_is_added_to_gradient():
    w1, w2 = np.array([1.0, 2.0]), np.array([1.0, 2.0])
    g = np.array([0.3, -0.1])
    o1, o2 = Adam(0.01, weight_decay=0.2), Adam(0.01)
    for _ in range(2):
        g2 = g + 0.2 * w2                      # what the decay should add
        update(w1, g, o1)
        update(w2, g2, o2)
    np.testing.assert_allclose(w1, w2, rtol=1e-12)


def test_invalid_hyperparameters():
    with pytest.raises(ValueError):
        SGD(-1)
    with pytest.raises(ValueError):
        Adam(0.1, gclip=-1)
    with pytest.raises(ValueError):
        Momentum(0.1, weight_decay=-0.1)


# --- nesting, floats, errors ---------------------------------------------------

def test_optimizers_nesting():
    w = {"layers": [(np.ones((2, 2)), np.zeros((2, 1))), 0.5],
         "embed": np.ones(3, np.float32),
         "vocab": np.arange(4),                 # integer: not trained
         "name": "mlp"}
    o = optimizers(w, Adam, lr=0.1)
    assert isinstance(o, dict) and set(o) == set(w)
    assert isinstance(o["layers"], list) and isinstance(o["layers"][0], tuple)
    assert isinstance(o["layers"][0][0], Adam)
    assert o["layers"][0][0] is not o["layers"][0][1]
    assert isinstance(o["layers"][1], Adam)
    assert o["vocab"] is None and o["name"] is None
    assert o["embed"].lr == 0.1


def test_update_nested_with_float_leaves():
    w = {"a": [np.ones(2), 1.0], "b": (np.ones(2), np.zeros(1)),
         "n": np.arange(3)}
    o = optimizers(w, SGD, lr=0.5)
    a0 = w["a"][0]
    g = {"a": [np.ones(2), 2.0], "b": (np.ones(2), None)}   # "n" missing
    update(w, g, o)
    assert w["a"][0] is a0
    np.testing.assert_allclose(w["a"][0], 0.5)
    assert w["a"][1] == 0.0 and isinstance(w["a"][1], float)
    np.testing.assert_allclose(w["b"][0], 0.5)
    np.testing.assert_allclose(w["b"][1], 0.0)        # None gradient: skipped
    np.testing.assert_array_equal(w["n"], [0, 1, 2])


def test_float_state_persists_across_steps():
    w = [1.0]
    o = optimizers(w, Momentum, lr=1.0, gamma=0.5)
    update(w, [1.0], o)
    update(w, [1.0], o)
    assert w[0] == pytest.approx(1.0 - 1.0 - 1.5)


def test_single_float_parameter_returns_new_value():
    opt = SGD(0.25)
    assert update(2.0, 4.0, opt) == 1.0
    f = update(np.float32(2.0), np.float32(4.0), SGD(0.25))
    assert isinstance(f, np.float32) and f == 1.0


def test_float_inside_tuple_is_an_error_before_any_change():
    w = (np.ones(2), 1.0)
    o = optimizers(w, SGD, lr=0.1)
    with pytest.raises(TypeError, match="tuple"):
        update(w, (np.ones(2), 1.0), o)
    np.testing.assert_array_equal(w[0], 1.0)


def test_shape_and_structure_errors():
    with pytest.raises(ValueError, match="shape"):
        update(np.ones(3), np.ones(4), SGD(0.1))
    opt = SGD(0.1)
    update(np.ones(3), np.ones(3), opt)
    with pytest.raises(ValueError, match="one optimizer per parameter"):
        update(np.ones(4), np.ones(4), opt)
    with pytest.raises(ValueError, match="lengths"):
        update([np.ones(1)], [np.ones(1), np.ones(1)], [SGD(), SGD()])
    with pytest.raises(TypeError):
        update(np.arange(3), np.ones(3), SGD(0.1))
    with pytest.raises(KeyError):
        update({"a": np.ones(1)}, {"b": np.ones(1)}, {"a": SGD()})


def test_reset_clears_state():
    opt = Adam(0.1)
    w = np.zeros(2)
    update(w, np.ones(2), opt)
    opt.reset()
    assert opt.t == 0
    w2 = np.zeros(2)
    update(w2, np.ones(2), opt)
    np.testing.assert_allclose(w2, w)


def test_public_names_documented():
    for name in optim.__all__:
        obj = getattr(optim, name)
        assert obj.__doc__ and "Example" in obj.__doc__, name
