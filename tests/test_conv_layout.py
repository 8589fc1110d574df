"""conv4 / pool on arrays stored instances-last (CHWN), and the im2col cache.

conv4 and pool return NCHW-shaped views of (C, H, W, N) memory; every
function must give the same numbers for either memory order, and the
filter gradient must never use an im2col matrix kept from a different or
since-changed input.
"""

import gc

import numpy as np
import pytest

import knet_st as kt
from knet_st.runtime import colcache, layout
from knet_st.runtime.conv import conv4, conv4_dw, conv4_dx, conv_out_shape, pool, pool_dx
from knet_st.runtime.nn import mat, mat_dx, relu
from gradcheck import check_grad, numgrad
from test_conv import CONV_CASES, POOL_CASES, direct_conv, direct_pool


def chwn(a):
    """a's values, stored (C, H, W, N)."""
    return layout.nchw_view(np.ascontiguousarray(a.transpose(1, 2, 3, 0)))


@pytest.fixture(autouse=True)
def empty_cache():
    colcache.clear()
    yield
    colcache.clear()


# ------------------------------------------------------------------ layout


def test_conv4_and_pool_return_chwn_and_pool_keeps_nchw():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 8, 8))
    y = conv4(rng.standard_normal((4, 2, 3, 3)), x)
    assert y.shape == (3, 4, 6, 6) and layout.is_chwn(y)
    assert layout.is_chwn(pool(relu(y + 1)))
    assert pool(x).flags.c_contiguous                 # NCHW in, NCHW out
    assert layout.is_chwn(pool_dx(np.ones((3, 4, 3, 3)), None, y))
    assert pool_dx(np.ones((3, 2, 4, 4)), None, x).flags.c_contiguous


@pytest.mark.parametrize("xs,ws,padding,stride", CONV_CASES)
@pytest.mark.parametrize("mode", [0, 1])
def test_conv4_chwn_input_same_numbers(xs, ws, padding, stride, mode):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    dy = rng.standard_normal(conv_out_shape(ws, xs, padding, stride))
    xc, dyc = chwn(x), chwn(dy)
    np.testing.assert_allclose(conv4(w, xc, padding, stride, mode),
                               direct_conv(w, x, padding, stride, mode), rtol=1e-12, atol=1e-12)
    for grad in (conv4_dw, conv4_dx):
        ref = grad(dy, w, x, padding, stride, mode)
        for a, b in [(dyc, xc), (dy, xc), (dyc, x)]:
            colcache.clear()
            np.testing.assert_allclose(grad(a, w, b, padding, stride, mode), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,ws,padding,stride", CONV_CASES[:3])
def test_conv4_chwn_gradients_finite_differences(xs, ws, padding, stride):
    rng = np.random.default_rng(2)
    x, w = chwn(rng.standard_normal(xs)), rng.standard_normal(ws)
    dy = chwn(rng.standard_normal(conv_out_shape(ws, xs, padding, stride)))

    def loss():
        return np.sum(conv4(w, x, padding, stride) * dy)

    np.testing.assert_allclose(conv4_dw(dy, w, x, padding, stride), numgrad(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(conv4_dx(dy, w, x, padding, stride), numgrad(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("xs,window,padding,stride", POOL_CASES)
@pytest.mark.parametrize("mode", ["max", "avg", "avg_nopad"])
def test_pool_chwn_and_mixed_orders(xs, window, padding, stride, mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs)
    y = pool(x, window, padding, stride, mode)
    dy = rng.standard_normal(y.shape)
    dx = pool_dx(dy, y, x, window, padding, stride, mode)
    xc = chwn(x)
    yc = pool(xc, window, padding, stride, mode)
    np.testing.assert_allclose(yc, direct_pool(x, window, padding, stride, mode), rtol=1e-12, atol=1e-12)
    for args in [(chwn(dy), yc, xc), (dy, yc, xc), (dy, y, xc), (chwn(dy), y, x), (dy, None, xc)]:
        np.testing.assert_array_equal(pool_dx(*args, window, padding, stride, mode), dx)


def test_pool_chwn_ties_go_to_first_element():
    x = np.zeros((2, 1, 4, 4))
    x[:, 0, 0, 1] = x[:, 0, 1, 1] = 0.5
    xc = chwn(x)
    y = pool(xc)
    dy = chwn(np.arange(1.0, 9.0).reshape(2, 1, 2, 2))
    np.testing.assert_array_equal(pool_dx(dy, y, xc), pool_dx(np.ascontiguousarray(dy), pool(x), x))


def test_mat_of_chwn_is_a_view_with_the_same_values():
    x = np.random.default_rng(4).standard_normal((3, 2, 4, 5))
    xc = chwn(x)
    m = mat(xc)
    assert np.shares_memory(m, xc)
    np.testing.assert_array_equal(m, mat(x))
    np.testing.assert_array_equal(mat_dx(np.ascontiguousarray(m), xc), x)


def test_lenet_gradient_through_kt_grad():
    rng = np.random.default_rng(5)
    w = [0.3 * rng.standard_normal(s) for s in
         [(3, 2, 3, 3), (1, 3, 1, 1), (4, 3, 2, 2), (1, 4, 1, 1), (5, 16), (5, 1), (3, 5), (3, 1)]]
    x = rng.standard_normal((2, 2, 10, 10))
    labels = np.array([0, 2])

    def loss(w, x, labels):
        a = kt.pool(kt.relu(kt.conv4(w[0], x) + w[1]))
        a = kt.pool(kt.relu(kt.conv4(w[2], a, padding=1) + w[3]))
        return kt.nll(w[6] @ kt.relu(w[4] @ kt.mat(a) + w[5]) + w[7], labels)

    check_grad(loss, [w, x, labels], wrt=(0, 1))


# ------------------------------------------------------------- the cache


def fresh_dw(dy, w, x, *args):
    colcache.clear()
    return conv4_dw(dy, w, x, *args)


@pytest.mark.parametrize("order", [np.ascontiguousarray, chwn])
def test_cache_is_used_and_gives_the_same_gradient(order):
    rng = np.random.default_rng(6)
    x, w = order(rng.standard_normal((3, 2, 7, 7))), rng.standard_normal((4, 2, 3, 3))
    dy = rng.standard_normal((3, 4, 4, 4))
    conv4(w, x, 1, 2)
    assert colcache.size() == 1
    dw = conv4_dw(dy, w, x, 1, 2)
    assert colcache.size() == 0                       # taken
    np.testing.assert_array_equal(dw, fresh_dw(dy, w, x, 1, 2))


@pytest.mark.parametrize("order", [np.ascontiguousarray, chwn])
@pytest.mark.parametrize("ksize", [3, 1])             # 1x1: im2col may be a view of x
def test_cache_misses_after_an_in_place_write(order, ksize):
    rng = np.random.default_rng(7)
    x, w = order(rng.standard_normal((3, 2, 5, 5))), rng.standard_normal((4, 2, ksize, ksize))
    dy = rng.standard_normal(conv_out_shape(w.shape, x.shape))
    conv4(w, x)
    x[1, 0, 2, 2] += 1.0
    x *= 2.0
    dw = conv4_dw(dy, w, x)
    np.testing.assert_array_equal(dw, fresh_dw(dy, w, x))
    np.testing.assert_allclose(dw, numgrad(lambda: np.sum(conv4(w, x) * dy), w), rtol=1e-6, atol=1e-7)


def test_take_compares_bits_not_values():
    x = np.zeros((1, 1, 2, 2))
    colcache.put(x, "geometry", x.copy(), np.ones(3))
    x[0, 0, 1, 1] = -0.0                              # equal to 0.0, other bits
    assert colcache.take(np, x, "geometry") is None
    x = np.full((1, 1, 2, 2), np.nan)
    colcache.put(x, "geometry", x.copy(), np.ones(3))
    assert colcache.take(np, x, "geometry") is not None      # NaN != NaN, but the bits match


def test_cache_misses_for_another_array_view_or_geometry():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    other = rng.standard_normal(x.shape)              # same shape, other values
    dy = rng.standard_normal((2, 3, 4, 4))
    conv4(w, x)
    np.testing.assert_array_equal(conv4_dw(dy, w, other), fresh_dw(dy, w, other))
    conv4(w, x)
    view = x[:]
    np.testing.assert_array_equal(conv4_dw(dy, w, view), fresh_dw(dy, w, view))
    conv4(w, x, padding=1)                            # kept for padding 1, asked for 0
    np.testing.assert_array_equal(conv4_dw(dy, w, x), fresh_dw(dy, w, x))
    conv4(w, x)
    dy2 = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(conv4_dw(dy2, w, x, 0, 2), fresh_dw(dy2, w, x, 0, 2))


def test_cache_is_bounded_and_lets_go_of_dead_inputs():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((2, 3, 1, 1))
    conv4(w, chwn(rng.standard_normal((2, 3, 4, 4))))     # 1x1: im2col is a view, not kept
    assert colcache.size() == 0
    w = rng.standard_normal((2, 3, 3, 3))
    keep = [chwn(rng.standard_normal((2, 3, 4, 4))) for _ in range(colcache.MAX_ENTRIES + 3)]
    for x in keep:
        conv4(w, x)
    assert colcache.size() == colcache.MAX_ENTRIES
    del keep, x
    for _ in range(colcache.MAX_ENTRIES + 3):
        conv4(w, chwn(rng.standard_normal((2, 3, 4, 4))))     # x dies at once
    gc.collect()
    assert colcache.size() == 0
    x = rng.standard_normal((2, 3, 4, 4))
    conv4(w, x)
    assert colcache.size() == 1
    del x
    gc.collect()
    assert colcache.size() == 0
