"""conv4 / pool and their gradients: finite differences, closed forms, GPU."""

import numpy as np
import pytest

from knet_st.runtime.conv import (conv4, conv4_dw, conv4_dx, conv_out_shape, pool,
                                  pool_dx, pool_out_shape)
from gradcheck import numgrad


def direct_conv(w, x, padding, stride, mode):
    """Reference: a plain loop over output pixels (slow, obviously right)."""
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    if mode == 0:
        w = w[:, :, ::-1, ::-1]
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    OH = 1 + (H + 2 * ph - KH) // sh
    OW = 1 + (W + 2 * pw - KW) // sw
    y = np.zeros((N, O, OH, OW))
    for a in range(OH):
        for b in range(OW):
            patch = xp[:, :, a * sh:a * sh + KH, b * sw:b * sw + KW]
            y[:, :, a, b] = np.einsum("nchw,ochw->no", patch, w)
    return y


CONV_CASES = [
    # x shape, w shape, padding, stride
    ((2, 1, 6, 6), (3, 1, 3, 3), 0, 1),
    ((2, 2, 7, 5), (3, 2, 3, 2), 1, 1),
    ((1, 3, 8, 9), (2, 3, 3, 3), 0, 2),
    ((2, 2, 7, 8), (2, 2, 4, 3), 2, 3),
    ((3, 2, 6, 7), (4, 2, 2, 3), (1, 0), (2, 1)),
    ((1, 1, 5, 5), (1, 1, 5, 5), 0, 1),       # filter covers the image
]


@pytest.mark.parametrize("xs,ws,padding,stride", CONV_CASES)
@pytest.mark.parametrize("mode", [0, 1])
def test_conv4_forward_matches_direct_loop(xs, ws, padding, stride, mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    y = conv4(w, x, padding=padding, stride=stride, mode=mode)
    ref = direct_conv(w, x, padding, stride, mode)
    assert y.shape == ref.shape == conv_out_shape(ws, xs, padding, stride)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,ws,padding,stride", CONV_CASES)
@pytest.mark.parametrize("mode", [0, 1])
def test_conv4_gradients_finite_differences(xs, ws, padding, stride, mode):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    dy = rng.standard_normal(conv_out_shape(ws, xs, padding, stride))

    def loss():
        return np.sum(conv4(w, x, padding, stride, mode) * dy)

    dw = conv4_dw(dy, w, x, padding, stride, mode)
    dx = conv4_dx(dy, w, x, padding, stride, mode)
    assert dw.shape == w.shape and dx.shape == x.shape
    np.testing.assert_allclose(dw, numgrad(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, numgrad(loss, x), rtol=1e-6, atol=1e-7)


def test_conv4_mode0_is_flipped_mode1():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_allclose(conv4(w, x), conv4(w[:, :, ::-1, ::-1], x, mode=1),
                               rtol=1e-12, atol=1e-12)
    # a non-symmetric filter gives different answers in the two modes
    assert not np.allclose(conv4(w, x, mode=0), conv4(w, x, mode=1))


def test_conv4_identity_filter_and_dtype():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 1
    y = conv4(w, x, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)
    dx = conv4_dx(np.ones_like(y), w, x, padding=1)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, np.ones_like(x))


def test_conv4_tutorial_shapes_float32():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 1, 28, 28)).astype(np.float32)
    w1 = (0.1 * rng.standard_normal((20, 1, 5, 5))).astype(np.float32)
    y1 = conv4(w1, x)
    assert y1.shape == (100, 20, 24, 24) and y1.dtype == np.float32
    p1 = pool(y1)
    assert p1.shape == (100, 20, 12, 12)
    w2 = (0.1 * rng.standard_normal((50, 20, 5, 5))).astype(np.float32)
    y2 = conv4(w2, p1)
    assert y2.shape == (100, 50, 8, 8)
    # spot check against the float64 direct loop on two instances
    ref = direct_conv(w2.astype(np.float64), p1[:2].astype(np.float64), 0, 1, 0)
    np.testing.assert_allclose(y2[:2], ref, rtol=1e-4, atol=1e-4)
    dw = conv4_dw(np.ones_like(y2), w2, p1)
    assert dw.shape == w2.shape and dw.dtype == np.float32


def test_conv4_errors():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match="channels"):
        conv4(np.zeros((1, 3, 3, 3)), x)
    with pytest.raises(ValueError, match="larger"):
        conv4(np.zeros((1, 2, 7, 7)), x)
    with pytest.raises(ValueError, match="mode"):
        conv4(np.zeros((1, 2, 3, 3)), x, mode=2)
    with pytest.raises(ValueError, match="4-D"):
        conv4(np.zeros((2, 3, 3)), x)
    with pytest.raises(ValueError, match="dy"):
        conv4_dx(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 3, 3)), x)


# ------------------------------------------------------------------ pool

POOL_CASES = [
    # x shape, window, padding, stride
    ((2, 2, 6, 6), 2, 0, None),        # exact tiling (fast path)
    ((2, 1, 7, 5), 2, 0, None),        # leftover row/column
    ((1, 2, 7, 7), 3, 1, 2),           # overlapping + padding
    ((2, 1, 6, 7), 3, 0, 1),           # overlapping
    ((1, 2, 8, 6), (2, 3), (1, 0), (3, 2)),
    ((1, 1, 9, 9), 2, 0, 3),           # stride > window
]


def direct_pool(x, window, padding, stride, mode):
    kh, kw = (window, window) if np.isscalar(window) else window
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    if stride is None:
        sh, sw = kh, kw
    else:
        sh, sw = (stride, stride) if np.isscalar(stride) else stride
    N, C, H, W = x.shape
    OH = 1 + (H + 2 * ph - kh) // sh
    OW = 1 + (W + 2 * pw - kw) // sw
    y = np.zeros((N, C, OH, OW))
    for a in range(OH):
        for b in range(OW):
            r0, c0 = a * sh - ph, b * sw - pw
            r = slice(max(r0, 0), min(r0 + kh, H))
            c = slice(max(c0, 0), min(c0 + kw, W))
            patch = x[:, :, r, c]
            if mode == "max":
                y[:, :, a, b] = patch.max(axis=(2, 3))
            elif mode == "avg":
                y[:, :, a, b] = patch.sum(axis=(2, 3)) / (kh * kw)
            else:
                y[:, :, a, b] = patch.mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("xs,window,padding,stride", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_nopad"])
def test_pool_forward_and_gradient(xs, window, padding, stride, mode):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs)
    y = pool(x, window, padding, stride, mode)
    assert y.shape == pool_out_shape(xs, window, padding, stride)
    np.testing.assert_allclose(y, direct_pool(x, window, padding, stride, mode),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = pool_dx(dy, y, x, window, padding, stride, mode)
    assert dx.shape == x.shape
    g = numgrad(lambda: np.sum(pool(x, window, padding, stride, mode) * dy), x)
    np.testing.assert_allclose(dx, g, rtol=1e-6, atol=1e-7)
    # y=None recomputes the forward
    np.testing.assert_allclose(pool_dx(dy, None, x, window, padding, stride, mode), dx)


def test_pool_knet_integer_modes():
    x = np.random.default_rng(6).standard_normal((1, 2, 4, 4))
    for k, name in [(0, "max"), (1, "avg"), (2, "avg_nopad")]:
        np.testing.assert_array_equal(pool(x, mode=k), pool(x, mode=name))
    with pytest.raises(ValueError, match="mode"):
        pool(x, mode="median")


@pytest.mark.parametrize("stride", [None, 1])
def test_pool_max_ties_go_to_first_element(stride):
    # relu outputs: windows full of zeros; the gradient must go to one
    # element per window (the first in row-major order), not to all ties.
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 3, 3] = 1.0
    x[0, 0, 0, 1] = 0.5
    x[0, 0, 1, 1] = 0.5
    y = pool(x, 2, 0, stride)
    dy = np.arange(1, y.size + 1, dtype=float).reshape(y.shape)
    dx = pool_dx(dy, y, x, 2, 0, stride)
    # every window sends all of its gradient to exactly one element
    np.testing.assert_allclose(dx.sum(), dy.sum())
    if stride is None:
        expected = np.zeros((4, 4))
        expected[0, 1] = 1    # window (0,0): 0.5 at (0,1) and (1,1): first wins
        expected[0, 2] = 2    # window (0,1): all zeros: first element
        expected[2, 0] = 3    # window (1,0): all zeros
        expected[3, 3] = 4    # window (1,1): the 1.0
        np.testing.assert_array_equal(dx[0, 0], expected)


def test_pool_float32_and_tutorial_shape():
    x = np.random.default_rng(7).standard_normal((10, 20, 24, 24)).astype(np.float32)
    y = pool(x)
    assert y.shape == (10, 20, 12, 12) and y.dtype == np.float32
    dx = pool_dx(np.ones_like(y), y, x)
    assert dx.dtype == np.float32
    # each window passes exactly one unit of gradient
    np.testing.assert_array_equal(dx.reshape(10, 20, 12, 2, 12, 2).sum(axis=(3, 5)),
                                  np.ones_like(y))


def test_pool_avg_padding_counting():
    x = np.ones((1, 1, 2, 2))
    # window 2, padding 1, stride 2: each window covers one real element
    np.testing.assert_allclose(pool(x, 2, 1, 2, "avg"), np.full((1, 1, 2, 2), 0.25))
    np.testing.assert_allclose(pool(x, 2, 1, 2, "avg_nopad"), np.ones((1, 1, 2, 2)))


# ------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("xs,ws,padding,stride", CONV_CASES)
@pytest.mark.parametrize("mode", [0, 1])
def test_conv4_gpu_matches_cpu(xs, ws, padding, stride, mode, cp):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    dy = rng.standard_normal(conv_out_shape(ws, xs, padding, stride))
    xg, wg, dyg = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    yg = conv4(wg, xg, padding, stride, mode)
    assert isinstance(yg, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(yg), conv4(w, x, padding, stride, mode), rtol=1e-10)
    np.testing.assert_allclose(cp.asnumpy(conv4_dw(dyg, wg, xg, padding, stride, mode)),
                               conv4_dw(dy, w, x, padding, stride, mode), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(conv4_dx(dyg, wg, xg, padding, stride, mode)),
                               conv4_dx(dy, w, x, padding, stride, mode), rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("xs,window,padding,stride", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_nopad"])
def test_pool_gpu_matches_cpu(xs, window, padding, stride, mode, cp):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(xs)
    x[..., :2, :2] = 0          # some ties
    y = pool(x, window, padding, stride, mode)
    dy = rng.standard_normal(y.shape)
    xg, dyg = cp.asarray(x), cp.asarray(dy)
    yg = pool(xg, window, padding, stride, mode)
    np.testing.assert_allclose(cp.asnumpy(yg), y, rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(pool_dx(dyg, yg, xg, window, padding, stride, mode)),
                               pool_dx(dy, y, x, window, padding, stride, mode), rtol=1e-12)
