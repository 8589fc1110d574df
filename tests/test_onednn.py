"""conv4 on oneDNN (the optional extra) against the NumPy path, the reference.

The comparisons skip where oneDNN's library is not installed (CI installs
only ``.[test]``); the fallback tests run everywhere.
"""

import numpy as np
import pytest

import knet_st as kt
from knet_st.runtime import conv, layout, onednn
from gradcheck import check_grad

needs_onednn = pytest.mark.skipif(
    not onednn.available(),
    reason="oneDNN is not installed (pip install knet_st[onednn]): %s" % onednn._state["error"])



@pytest.fixture(autouse=True)
def _onednn_on(monkeypatch):
    """Every test starts with oneDNN allowed, whatever the environment says."""
    monkeypatch.setenv("KNET_ST_ONEDNN", "on")


CASES = [
    # x shape, w shape, padding, stride
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 2),
    ((5, 1, 12, 12), (6, 1, 5, 5), 0, 1),       # LeNet's first layer, smaller
    ((3, 8, 9, 9), (16, 8, 3, 3), 1, 1),        # >= 8 channels: dx on oneDNN too
    ((2, 16, 8, 11), (8, 16, 3, 2), (2, 0), (1, 3)),
    ((1, 10, 8, 8), (12, 10, 3, 3), 0, 2),      # batch 1; stride drops the last row
    ((2, 9, 5, 5), (3, 9, 5, 5), 0, 1),         # filter covers the image
    ((2, 9, 6, 6), (3, 9, 1, 1), 0, 1),         # 1x1 filter
]


def _data(xs, ws, padding, stride, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    dy = rng.standard_normal(conv.conv_out_shape(ws, xs, padding, stride)).astype(np.float32)
    return x, w, dy


def _all(x, w, dy, padding, stride, mode):
    return (conv.conv4(w, x, padding, stride, mode),
            conv.conv4_dw(dy, w, x, padding, stride, mode),
            conv.conv4_dx(dy, w, x, padding, stride, mode))


def _close(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


@needs_onednn
@pytest.mark.parametrize("xs,ws,padding,stride", CASES)
@pytest.mark.parametrize("mode", [0, 1])
def test_matches_numpy_path(xs, ws, padding, stride, mode, monkeypatch):
    x, w, dy = _data(xs, ws, padding, stride)
    got = _all(x, w, dy, padding, stride, mode)
    monkeypatch.setenv("KNET_ST_ONEDNN", "off")
    want = _all(x, w, dy, padding, stride, mode)
    for g, r in zip(got, want):
        assert g.shape == r.shape and g.dtype == r.dtype == np.float32
        _close(g, r)
    assert layout.has_order(got[0], "nhwc")         # oneDNN wrote it
    assert layout.has_order(want[0], "chwn")        # the NumPy path's order


@needs_onednn
@pytest.mark.parametrize("order", ["nchw", "chwn", "nhwc", "strided", "flipped"])
def test_inputs_in_any_memory_order(order, monkeypatch):
    xs, ws, padding, stride = (3, 8, 7, 9), (5, 8, 3, 3), 1, 1
    x, w, dy = _data(xs, ws, padding, stride, seed=3)

    def lay(a):
        if order == "strided":          # a view with gaps: every other element
            big = np.zeros(a.shape[:3] + (2 * a.shape[3],), np.float32)
            big[..., ::2] = a
            return big[..., ::2]
        if order == "flipped":          # negative strides: copied before oneDNN
            return np.ascontiguousarray(a[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]
        out = layout.empty(np, a.shape, a.dtype, order)
        out[...] = a
        return out

    got = _all(lay(x), lay(w) if order in ("strided", "flipped") else w, lay(dy),
               padding, stride, 0)
    monkeypatch.setenv("KNET_ST_ONEDNN", "off")
    for g, r in zip(got, _all(x, w, dy, padding, stride, 0)):
        _close(g, r)


@needs_onednn
def test_float32_gradients_of_a_model_match_numpy_path(monkeypatch):
    """kt.grad of a small conv model: oneDNN's float32 gradients against the
    NumPy path's float32 gradients."""
    rng = np.random.default_rng(4)
    w = [(0.3 * rng.standard_normal((8, 2, 3, 3))).astype(np.float32),
         np.zeros((1, 8, 1, 1), np.float32),
         (0.2 * rng.standard_normal((6, 8, 3, 3))).astype(np.float32),
         (0.1 * rng.standard_normal((3, 6 * 2 * 2))).astype(np.float32)]
    x = rng.standard_normal((4, 2, 10, 10)).astype(np.float32)
    got = kt.grad(_loss)(w, x)
    monkeypatch.setenv("KNET_ST_ONEDNN", "off")
    want = kt.grad(_loss)(w, x)
    for g, r in zip(got, want):
        assert g.dtype == np.float32
        _close(g, r)


def _loss(w, x):
    h = kt.pool(kt.relu(kt.conv4(w[0], x, padding=1) + w[1]))
    h = kt.pool(kt.relu(kt.conv4(w[2], h, padding=1, mode=1)))
    return np.sum(np.tanh(w[3] @ kt.mat(h)))


def test_float64_gradient_central_differences():
    """float64 takes the NumPy path; its gradient agrees with central differences."""
    rng = np.random.default_rng(5)
    w = [0.3 * rng.standard_normal((8, 2, 3, 3)), np.zeros((1, 8, 1, 1)),
         0.2 * rng.standard_normal((6, 8, 3, 3)), 0.1 * rng.standard_normal((3, 24))]
    x = rng.standard_normal((4, 2, 10, 10))
    assert not onednn.enabled(w[0], x)
    check_grad(_loss, (w, x))


def test_off_takes_the_numpy_path(monkeypatch):
    monkeypatch.setenv("KNET_ST_ONEDNN", "off")
    x, w, dy = _data((2, 8, 6, 6), (3, 8, 3, 3), 0, 1)
    assert not onednn.enabled(w, x)
    y, dw, dx = _all(x, w, dy, 0, 1, 0)
    assert layout.is_chwn(y) and layout.is_chwn(dx)      # the NumPy path's results


def test_what_is_enabled(monkeypatch):
    f32 = np.zeros((1, 1, 3, 3), np.float32)
    assert not onednn.enabled(f32, f32.astype(np.float64))
    assert not onednn.enabled(f32[:0])
    assert not onednn.enabled([[1.0]])
    assert onednn.enabled(f32) == onednn.available()
    monkeypatch.setenv("KNET_ST_ONEDNN", "sometimes")
    with pytest.raises(ValueError, match="KNET_ST_ONEDNN"):
        onednn.enabled(f32)


@needs_onednn
def test_bad_shapes_are_refused_before_oneDNN():
    x, w, dy = _data((2, 3, 7, 6), (4, 3, 3, 3), 0, 1)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        onednn.conv_fwd(w, x, (2, 4, 9, 9), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        onednn.conv_bwd_weights(dy, x[:, :2], w.shape, (0, 0, 1, 1))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        onednn.conv_bwd_data(dy, w, (2, 3, 7, 6), (0, 0, 0, 1))
    with pytest.raises(TypeError, match="float32"):
        onednn.conv_fwd(w.astype(np.float64), x, dy.shape, (0, 0, 1, 1))
    with pytest.raises(ValueError):                 # conv4 checks before dispatching
        conv.conv4_dw(dy[:, :2], w, x)


@needs_onednn
def test_plans_are_cached_and_cleared():
    x, w, dy = _data((2, 3, 7, 6), (4, 3, 3, 3), 0, 1)
    onednn.clear()
    conv.conv4(w, x)
    conv.conv4(w, x)
    assert len(onednn._plans) == 1
    onednn.clear()
    assert len(onednn._plans) == 0
    _close(conv.conv4(w, x, mode=1), onednn.conv_fwd(w, x, dy.shape, (0, 0, 1, 1)))


@needs_onednn
def test_a_case_oneDNN_refuses_takes_the_numpy_path(monkeypatch):
    def refuse(*args):
        raise onednn.OneDNNError("oneDNN convolution forward failed with status 3")

    x, w, dy = _data((2, 3, 7, 6), (4, 3, 3, 3), 0, 1)
    want = _all(x, w, dy, 0, 1, 0)
    onednn.clear()
    monkeypatch.setattr(onednn, "_new_plan", refuse)
    got = _all(x, w, dy, 0, 1, 0)
    assert layout.is_chwn(got[0])                   # the NumPy path's result
    assert list(onednn._plans.values()) == [None, None]     # remembered (dx: 3 channels)
    for g, r in zip(got, want):
        _close(g, r)
    onednn.clear()


POOL_CASES = [
    # x shape, window, padding, stride
    ((6, 20, 12, 12), 2, 0, None),              # LeNet's
    ((3, 4, 7, 9), 3, 1, 2),                    # overlapping, padded, rows dropped
    ((2, 3, 6, 6), 2, 0, 1),
    ((1, 5, 5, 4), (2, 3), (1, 0), (1, 2)),
]


@needs_onednn
@pytest.mark.parametrize("xs,window,padding,stride", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_nopad"])
def test_pool_on_nhwc_matches_numpy_path(xs, window, padding, stride, mode, monkeypatch):
    rng = np.random.default_rng(6)
    x = layout.empty(np, xs, np.float32, "nhwc")
    x[...] = np.maximum(rng.standard_normal(xs), 0)       # relu's zeros: ties in windows
    x[:, :, :2] = 0
    y = conv.pool(x, window, padding, stride, mode)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.pool_dx(dy, y, x, window, padding, stride, mode)
    assert layout.has_order(y, "nhwc") and layout.has_order(dx, "nhwc")
    monkeypatch.setenv("KNET_ST_ONEDNN", "off")
    y0 = conv.pool(x, window, padding, stride, mode)
    np.testing.assert_array_equal(y, y0) if mode == "max" else _close(y, y0)
    _close(dx, conv.pool_dx(dy, y0, x, window, padding, stride, mode))   # ties: same element
    assert dx.dtype == y.dtype == np.float32


@needs_onednn
def test_pool_of_other_orders_stays_on_numpy():
    x = np.random.default_rng(7).standard_normal((4, 3, 6, 6)).astype(np.float32)
    y = conv.pool(x)
    assert layout.has_order(y, "nchw") and not layout.has_order(y, "nhwc")


@needs_onednn
def test_pool_bad_shapes_are_refused():
    x = layout.empty(np, (2, 3, 6, 6), np.float32, "nhwc")
    x[...] = 1
    with pytest.raises(ValueError, match="inconsistent shapes"):
        onednn.pool_dx(np.ones((2, 3, 4, 4), np.float32), x, (2, 2, 0, 0, 2, 2, "max"))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        onednn.pool(x, (2, 2, 0, 0, 2, 2, "median"))
