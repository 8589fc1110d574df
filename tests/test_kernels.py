"""Fused kernels: NumPy references vs finite differences / closed forms; CuPy vs references."""

import numpy as np
import pytest

from knet_st.runtime import kernels as K
from knet_st.runtime.kernels import fused
from gradcheck import numgrad


RNG = np.random.default_rng(11)


def test_fused_dispatch_on_numpy_returns_reference_results():
    x = RNG.standard_normal((3, 4))
    for name in K.kernel_names():
        f = fused(name)
        assert f is fused(name)                 # cached
        assert f.reference.__name__ == name + "_ref"
    np.testing.assert_array_equal(fused("sigm")(x), K.sigm_ref(x))
    with pytest.raises(ValueError, match="unknown fused kernel"):
        fused("nope")


def test_sigm_closed_form_and_extremes():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(K.sigm_ref(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(K.sigm_ref(np.array([-800.0, 800.0])), [0.0, 1.0])
    x32 = x.astype(np.float32)
    assert K.sigm_ref(x32).dtype == np.float32


@pytest.mark.parametrize("name,fwd", [("sigm_dx", K.sigm_ref), ("tanh_dx", np.tanh),
                                      ("relu_dx", lambda x: np.maximum(x, 0))])
def test_activation_gradients_finite_differences(name, fwd):
    x = RNG.standard_normal((4, 5))
    x[np.abs(x) < 1e-2] = 0.3                  # relu: away from the kink
    dy = RNG.standard_normal((4, 5))
    g = numgrad(lambda: np.sum(fwd(x) * dy), x)
    np.testing.assert_allclose(fused(name)(dy, fwd(x)), g, rtol=1e-6, atol=1e-9)


def test_relu_dx_dtype():
    dy = np.ones(3, np.float32)
    assert fused("relu_dx")(dy, np.array([0, 1, 2], np.float32)).dtype == np.float32


def _lstm_naive(gates, c_prev):
    H = c_prev.shape[0]
    s = lambda a: 1 / (1 + np.exp(-a))
    i, f, o = s(gates[:H]), s(gates[H:2 * H]), s(gates[2 * H:3 * H])
    g = np.tanh(gates[3 * H:])
    c = f * c_prev + i * g
    return o * np.tanh(c), c


def test_lstm_forward_closed_form():
    H, B = 3, 4
    gates = RNG.standard_normal((4 * H, B))
    c_prev = RNG.standard_normal((H, B))
    h, c = K.lstm_ref(gates, c_prev)
    hn, cn = _lstm_naive(gates, c_prev)
    np.testing.assert_allclose(h, hn, rtol=1e-14)
    np.testing.assert_allclose(c, cn, rtol=1e-14)
    # saturated gates: i=f=o=1, g=1 -> c = c_prev + 1
    big = np.full((4 * H, B), 50.0)
    h, c = K.lstm_ref(big, c_prev)
    np.testing.assert_allclose(c, c_prev + 1)
    np.testing.assert_allclose(h, np.tanh(c_prev + 1))
    with pytest.raises(ValueError, match="4H"):
        K.lstm_ref(np.zeros((5, 2)), np.zeros((1, 2)))


@pytest.mark.parametrize("use_dh,use_dc", [(True, True), (True, False), (False, True)])
def test_lstm_backward_finite_differences(use_dh, use_dc):
    H, B = 2, 3
    gates = RNG.standard_normal((4 * H, B))
    c_prev = RNG.standard_normal((H, B))
    dh = RNG.standard_normal((H, B)) if use_dh else None
    dc = RNG.standard_normal((H, B)) if use_dc else None

    def loss():
        h, c = K.lstm_ref(gates, c_prev)
        v = 0.0
        if dh is not None:
            v += np.sum(h * dh)
        if dc is not None:
            v += np.sum(c * dc)
        return v

    h, c = K.lstm_ref(gates, c_prev)
    dgates, dc_prev = fused("lstm_dx")(dh, dc, gates, c_prev, c)
    assert dgates.shape == gates.shape and dc_prev.shape == c_prev.shape
    np.testing.assert_allclose(dgates, numgrad(loss, gates), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dc_prev, numgrad(loss, c_prev), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("shape,axis", [((7,), 0), ((5, 6), 0), ((5, 6), 1), ((2, 3, 4), 1),
                                        ((2, 3, 4), -1), ((3, 4), None), ((2, 3, 4), (0, 2))])
def test_logsumexp_logp_references(shape, axis):
    x = RNG.standard_normal(shape) * 5
    ref = np.log(np.sum(np.exp(x), axis=axis))
    np.testing.assert_allclose(K.logsumexp_ref(x, axis), ref, rtol=1e-13)
    np.testing.assert_allclose(K.logsumexp_ref(x, axis, keepdims=True),
                               np.log(np.sum(np.exp(x), axis=axis, keepdims=True)), rtol=1e-13)
    if axis is not None and not isinstance(axis, tuple):
        lp = K.logp_ref(x, axis)
        np.testing.assert_allclose(lp, x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True)),
                                   rtol=1e-12, atol=1e-12)
        dy = RNG.standard_normal(shape)
        g = numgrad(lambda: np.sum(K.logp_ref(x, axis) * dy), x)
        # logp's gradient, the closed form used by nn.logp_dx
        np.testing.assert_allclose(dy - np.exp(lp) * dy.sum(axis=axis, keepdims=True), g,
                                   rtol=1e-6, atol=1e-8)


def test_logsumexp_reference_no_overflow():
    x = np.array([[1000.0, -1000.0], [1000.0, -1000.0]])
    np.testing.assert_allclose(K.logsumexp_ref(x, 0), [1000 + np.log(2), -1000 + np.log(2)])
    assert K.logsumexp_ref(np.full((3,), -np.inf)) == -np.inf


# ------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_elementwise_kernels_gpu(dtype, rtol, cp):
    x = (RNG.standard_normal((33, 17)) * 4).astype(dtype)
    x[0, :3] = [-200, 0, 200]
    dy = RNG.standard_normal((33, 17)).astype(dtype)
    xg, dyg = cp.asarray(x), cp.asarray(dy)
    out = fused("sigm")(xg)
    assert isinstance(out, cp.ndarray) and out.dtype == dtype
    np.testing.assert_allclose(cp.asnumpy(out), K.sigm_ref(x), rtol=rtol, atol=1e-30)
    y = K.sigm_ref(x)
    for name, yy in (("sigm_dx", y), ("tanh_dx", np.tanh(x)), ("relu_dx", np.maximum(x, 0))):
        got = fused(name)(dyg, cp.asarray(yy))
        np.testing.assert_allclose(cp.asnumpy(got), fused(name).reference(dy, yy),
                                   rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_lstm_kernels_gpu(dtype, rtol, cp):
    H, B = 7, 5
    gates = RNG.standard_normal((4 * H, B)).astype(dtype)
    c_prev = RNG.standard_normal((H, B)).astype(dtype)
    dh = RNG.standard_normal((H, B)).astype(dtype)
    dc = RNG.standard_normal((H, B)).astype(dtype)
    h, c = K.lstm_ref(gates, c_prev)
    hg, cg = fused("lstm")(cp.asarray(gates), cp.asarray(c_prev))
    np.testing.assert_allclose(cp.asnumpy(hg), h, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(cg), c, rtol=rtol, atol=1e-6)
    for a, b in ((dh, dc), (dh, None), (None, dc)):
        ref = K.lstm_dx_ref(a, b, gates, c_prev, c)
        got = fused("lstm_dx")(None if a is None else cp.asarray(a),
                               None if b is None else cp.asarray(b),
                               cp.asarray(gates), cp.asarray(c_prev), cp.asarray(c))
        for r, g in zip(ref, got):
            np.testing.assert_allclose(cp.asnumpy(g), r, rtol=rtol, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("shape,axis", [((10, 300), 0), ((300, 10), 1), ((4, 5, 6), 1),
                                        ((7,), 0), ((3, 4), None)])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_logsumexp_logp_kernels_gpu(shape, axis, dtype, rtol, cp):
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    xg = cp.asarray(x)
    for keepdims in (False, True):
        got = fused("logsumexp")(xg, axis, keepdims)
        np.testing.assert_allclose(cp.asnumpy(got), K.logsumexp_ref(x, axis, keepdims),
                                   rtol=rtol, atol=1e-5)
    if axis is not None:
        np.testing.assert_allclose(cp.asnumpy(fused("logp")(xg, axis)), K.logp_ref(x, axis),
                                   rtol=rtol, atol=1e-5)
    # extremes
    e = cp.asarray(np.array([[1000.0, -np.inf], [1000.0, -np.inf]], dtype))
    np.testing.assert_allclose(cp.asnumpy(fused("logsumexp")(e, 0)),
                               [1000 + np.log(2), -np.inf], rtol=1e-6)
