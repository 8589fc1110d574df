"""nn primitives: forward values, gradients vs finite differences, dropout, GPU."""

import threading

import numpy as np
import pytest

from knet_st.runtime import nn
from gradcheck import numgrad


RNG = np.random.default_rng(0)


# ----------------------------------------------------------- activations

def test_sigm_values_stable_and_gradient():
    x = np.array([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # no overflow
        y = nn.sigm(x)
    np.testing.assert_allclose(y, [0.0, np.exp(-40.0) / (1 + np.exp(-40.0)),
                                   1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1.0)), 1.0, 1.0],
                               rtol=1e-14, atol=0)
    assert y[1] > 0                          # no cancellation to 0 for large negative x
    assert nn.sigm(np.zeros(3, np.float32)).dtype == np.float32
    x = RNG.standard_normal((3, 4))
    dy = RNG.standard_normal((3, 4))
    g = numgrad(lambda: np.sum(nn.sigm(x) * dy), x)
    np.testing.assert_allclose(nn.sigm_dx(dy, nn.sigm(x)), g, rtol=1e-6, atol=1e-9)


def test_relu_and_gradient():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(nn.relu(x), [[0.0, 0.0, 3.0]])
    assert nn.relu(x.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(nn.relu_dx(np.array([[5.0, 5.0, 5.0]]), nn.relu(x)),
                                  [[0.0, 0.0, 5.0]])
    x = RNG.standard_normal((4, 5)) + 0.05   # away from the kink
    x[np.abs(x) < 1e-3] = 0.5
    dy = RNG.standard_normal((4, 5))
    g = numgrad(lambda: np.sum(nn.relu(x) * dy), x)
    np.testing.assert_allclose(nn.relu_dx(dy, nn.relu(x)), g, rtol=1e-6, atol=1e-9)


def test_tanh_dx():
    x = RNG.standard_normal((3, 3))
    dy = RNG.standard_normal((3, 3))
    g = numgrad(lambda: np.sum(np.tanh(x) * dy), x)
    np.testing.assert_allclose(nn.tanh_dx(dy, np.tanh(x)), g, rtol=1e-6, atol=1e-9)


# -------------------------------------------------------- logsumexp etc.

@pytest.mark.parametrize("shape,axis", [((5,), None), ((4, 3), 0), ((4, 3), 1),
                                        ((2, 3, 4), -1), ((2, 3, 4), (0, 2)), ((3, 4), None)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_value_and_gradient(shape, axis, keepdims):
    x = RNG.standard_normal(shape)
    y = nn.logsumexp(x, axis, keepdims)
    ref = np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(y, ref, rtol=1e-13)
    dy = RNG.standard_normal(np.shape(ref))
    g = numgrad(lambda: np.sum(nn.logsumexp(x, axis, keepdims) * dy), x)
    np.testing.assert_allclose(nn.logsumexp_dx(dy, y, x, axis, keepdims), g, rtol=1e-6, atol=1e-9)


def test_logsumexp_extremes():
    np.testing.assert_allclose(nn.logsumexp(np.array([1000.0, 1000.0])), 1000 + np.log(2))
    np.testing.assert_allclose(nn.logsumexp(np.array([-1000.0, -1000.0])), -1000 + np.log(2))
    assert nn.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf
    assert nn.logsumexp(np.array([np.inf, 0.0])) == np.inf
    x = np.array([[1e4, 0.0], [0.0, -np.inf]])
    np.testing.assert_allclose(nn.logsumexp(x, axis=1), [1e4, 0.0])


@pytest.mark.parametrize("shape,axis", [((5, 3), 0), ((5, 3), 1), ((2, 3, 4), 1)])
def test_logp_softmax_values_and_gradients(shape, axis):
    x = RNG.standard_normal(shape) * 3
    lp = nn.logp(x, axis)
    np.testing.assert_allclose(np.exp(lp).sum(axis=axis), 1.0, rtol=1e-13)
    np.testing.assert_allclose(np.exp(lp), nn.softmax(x, axis), rtol=1e-12)
    dy = RNG.standard_normal(shape)
    g = numgrad(lambda: np.sum(nn.logp(x, axis) * dy), x)
    np.testing.assert_allclose(nn.logp_dx(dy, lp, axis), g, rtol=1e-6, atol=1e-9)
    sm = nn.softmax(x, axis)
    g = numgrad(lambda: np.sum(nn.softmax(x, axis) * dy), x)
    np.testing.assert_allclose(nn.softmax_dx(dy, sm, axis), g, rtol=1e-6, atol=1e-9)


def test_logp_default_axis_is_classes_first():
    x = RNG.standard_normal((10, 7))
    np.testing.assert_allclose(np.exp(nn.logp(x)).sum(axis=0), np.ones(7))
    huge = np.array([[1e5], [0.0]])
    np.testing.assert_allclose(nn.logp(huge), [[0.0], [-1e5]])
    assert nn.logp(x.astype(np.float32)).dtype == np.float32


# ------------------------------------------------------------------- mat

def test_mat_layout_and_gradient():
    x = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    y = nn.mat(x)
    assert y.shape == (12, 2)
    np.testing.assert_array_equal(y[:, 1], x[1].ravel())      # a column is an instance
    assert np.shares_memory(y, x)
    dy = RNG.standard_normal(y.shape)
    dx = nn.mat_dx(dy, x)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(nn.mat(dx), dy)


# ------------------------------------------------------ nll and accuracy

@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("shape,axis", [((5, 4), 0), ((4, 5), 1), ((3, 2, 4), 1)])
def test_nll_value_and_gradient(shape, axis, average):
    scores = RNG.standard_normal(shape) * 2
    lshape = tuple(n for k, n in enumerate(shape) if k != axis)
    labels = RNG.integers(0, shape[axis], size=lshape)
    v = nn.nll(scores, labels, axis, average)
    # reference by explicit indexing
    lp = scores - np.log(np.exp(scores).sum(axis=axis, keepdims=True))
    lpm = np.moveaxis(lp, axis, -1).reshape(-1, shape[axis])
    ref = -lpm[np.arange(lpm.shape[0]), labels.ravel()].sum()
    if average:
        ref /= labels.size
    np.testing.assert_allclose(v, ref, rtol=1e-13)
    g = numgrad(lambda: 1.7 * nn.nll(scores, labels, axis, average), scores)
    np.testing.assert_allclose(nn.nll_dscores(1.7, scores, labels, axis, average), g,
                               rtol=1e-6, atol=1e-9)


def test_nll_tutorial_layout_float32_and_labels():
    scores = RNG.standard_normal((10, 100)).astype(np.float32)
    labels = RNG.integers(0, 10, 100)
    v = nn.nll(scores, labels)
    assert np.asarray(v).dtype == np.float32 and np.ndim(v) == 0
    assert nn.nll_dscores(np.float32(1), scores, labels).dtype == np.float32
    # labels as a (1, N) row or float array of integers are accepted
    np.testing.assert_allclose(nn.nll(scores, labels.reshape(1, -1)), v)
    np.testing.assert_allclose(nn.nll(scores, labels.astype(np.float64)), v)
    # uniform scores: loss log(10)
    np.testing.assert_allclose(nn.nll(np.zeros((10, 3)), [0, 5, 9]), np.log(10))
    with pytest.raises(ValueError, match="0-based"):
        nn.nll(scores, labels + 1)             # Knet's 1-based labels: 10 is out of range
    with pytest.raises(ValueError, match="0-based"):
        nn.nll(scores, labels - 1 - labels.min())
    with pytest.raises(ValueError, match="do not match"):
        nn.nll(scores, labels[:50])


def test_accuracy():
    scores = np.array([[0.9, 0.1, 0.3],
                       [0.1, 0.8, 0.6]])          # predictions: 0, 1, 1
    assert nn.accuracy(scores, [0, 1, 0]) == pytest.approx(2 / 3)
    assert nn.accuracy(scores.T, [0, 1, 1], axis=1) == 1.0
    assert isinstance(nn.accuracy(scores, np.array([1, 0, 0])), float)
    assert nn.accuracy(scores, np.array([1, 0, 0])) == 0.0


# --------------------------------------------------------------- dropout

def test_dropout_off_by_default_and_training_switch():
    x = np.ones((50, 40), np.float32)
    assert not nn.is_training()
    np.testing.assert_array_equal(nn.dropout(x, 0.5), x)
    with nn.training():
        assert nn.is_training()
        y = nn.dropout(x, 0.5)
        with nn.training(False):
            assert not nn.is_training()
            np.testing.assert_array_equal(nn.dropout(x, 0.5), x)
        assert nn.is_training()
    assert not nn.is_training()
    assert y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    old = nn.set_training(True)
    try:
        assert old is False and nn.is_training()
    finally:
        nn.set_training(old)

    @nn.training()
    def inside():
        return nn.is_training()

    assert inside() and not nn.is_training()


def test_training_mode_is_per_thread():
    seen = []
    with nn.training():
        t = threading.Thread(target=lambda: seen.append(nn.is_training()))
        t.start()
        t.join()
    assert seen == [False]


def test_dropout_gradient_is_exact_with_kept_mask():
    x = RNG.standard_normal((6, 7))
    mask = nn.dropout_mask(x, 0.3, training=True, rng=1)
    np.testing.assert_array_equal(mask, nn.dropout_mask(x, 0.3, training=True, rng=1))
    y = nn.dropout(x, 0.3, training=True, rng=1)
    np.testing.assert_allclose(y, x * mask)
    # the gradient of x * mask w.r.t. x is dy * mask (mask held fixed)
    dy = RNG.standard_normal(x.shape)
    g = numgrad(lambda: np.sum(nn.dropout(x, 0.3, training=True, rng=1) * dy), x)
    np.testing.assert_allclose(g, dy * mask, rtol=1e-6, atol=1e-9)


def test_dropout_statistics_and_seed():
    import knet_st.init as kinit
    x = np.ones(200000)
    kinit.seed(5)
    a = nn.dropout(x, 0.25, training=True)
    kinit.seed(5)
    b = nn.dropout(x, 0.25, training=True)
    np.testing.assert_array_equal(a, b)                  # kt.seed controls dropout
    assert abs(a.mean() - 1.0) < 0.01                    # expectation preserved
    assert abs((a == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(nn.dropout(x, 0.0, training=True), x)
    with pytest.raises(ValueError):
        nn.dropout(x, 1.0, training=True)


# ------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_nn_gpu_matches_cpu(cp):
    scores = RNG.standard_normal((10, 64))
    labels = RNG.integers(0, 10, 64)
    sg, lg = cp.asarray(scores), cp.asarray(labels)
    np.testing.assert_allclose(float(nn.nll(sg, lg)), nn.nll(scores, labels), rtol=1e-12)
    np.testing.assert_allclose(float(nn.nll(sg, labels)), nn.nll(scores, labels), rtol=1e-12)
    np.testing.assert_allclose(cp.asnumpy(nn.nll_dscores(1.0, sg, lg)),
                               nn.nll_dscores(1.0, scores, labels), rtol=1e-12)
    assert nn.accuracy(sg, lg) == nn.accuracy(scores, labels)
    for f in (nn.sigm, nn.relu, nn.logp, nn.softmax, nn.mat):
        np.testing.assert_allclose(cp.asnumpy(f(sg)), f(scores), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cp.asnumpy(nn.logsumexp(sg, 0)), nn.logsumexp(scores, 0), rtol=1e-12)
    y = nn.logp(scores)
    dy = RNG.standard_normal(y.shape)
    np.testing.assert_allclose(cp.asnumpy(nn.logp_dx(cp.asarray(dy), cp.asarray(y))),
                               nn.logp_dx(dy, y), rtol=1e-12)


@pytest.mark.gpu
def test_dropout_gpu(cp):
    x = cp.ones((1000, 100), dtype=cp.float32)
    with nn.training():
        y = nn.dropout(x, 0.5)
    assert isinstance(y, cp.ndarray) and y.dtype == cp.float32
    frac = float((y == 0).mean())
    assert 0.45 < frac < 0.55
    assert set(cp.asnumpy(cp.unique(y)).tolist()) <= {0.0, 2.0}
    # a host generator gives the same mask on both devices
    a = nn.dropout_mask(x, 0.3, training=True, rng=3)
    b = nn.dropout_mask(cp.asnumpy(x), 0.3, training=True, rng=3)
    np.testing.assert_array_equal(cp.asnumpy(a), b)
