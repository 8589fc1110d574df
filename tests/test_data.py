"""Tests for knet_st.data.minibatch."""

import numpy as np
import pytest

from knet_st import data
from knet_st.data import minibatch, MiniBatch
from knet_st.init import seed


def _xy(n=10, d=3):
    x = np.arange(d * n, dtype=np.float32).reshape(d, n)   # features x inst
    y = np.arange(n) * 10
    return x, y


def test_default_last_axis_views_and_drop_partial():
    x, y = _xy()
    d = minibatch(x, y, 4)
    assert isinstance(d, MiniBatch)
    assert len(d) == 2
    batches = list(d)
    assert len(batches) == 2
    (x0, y0), (x1, y1) = batches
    assert x0.shape == (3, 4) and y0.shape == (4,)
    np.testing.assert_array_equal(x0, x[:, 0:4])
    np.testing.assert_array_equal(x1, x[:, 4:8])
    np.testing.assert_array_equal(y1, [40, 50, 60, 70])
    # views, not copies
    assert np.shares_memory(x0, x) and np.shares_memory(y0, y)
    assert x0.base is not None


def test_partial_keeps_last_batch():
    x, y = _xy()
    d = minibatch(x, y, 4, partial=True)
    assert len(d) == 3
    last = list(d)[-1]
    assert last[0].shape == (3, 2)
    np.testing.assert_array_equal(last[1], [80, 90])


def test_exact_multiple_and_small_data():
    x, y = _xy(n=8)
    assert len(minibatch(x, y, 4)) == 2
    assert len(minibatch(x, y, 4, partial=True)) == 2
    assert len(minibatch(x, y, 20)) == 0 and list(minibatch(x, y, 20)) == []
    assert len(minibatch(x, y, 20, partial=True)) == 1


def test_y_2d_sliced_on_its_last_axis():
    x, _ = _xy()
    y = np.eye(10)[:, ::-1]              # 10 classes x 10 instances
    xb, yb = next(iter(minibatch(x, y, 5)))
    assert yb.shape == (10, 5)
    np.testing.assert_array_equal(yb, y[:, :5])


def test_nchw_axis0():
    x = np.arange(6 * 1 * 2 * 2, dtype=np.float32).reshape(6, 1, 2, 2)
    y = np.arange(6)
    batches = list(minibatch(x, y, 4, axis=0, partial=True))
    assert [b[0].shape for b in batches] == [(4, 1, 2, 2), (2, 1, 2, 2)]
    np.testing.assert_array_equal(batches[1][0], x[4:])
    np.testing.assert_array_equal(batches[1][1], [4, 5])
    assert np.shares_memory(batches[0][0], x)


def test_y_none_yields_x_only():
    x, _ = _xy()
    out = list(minibatch(x, None, 5))
    assert len(out) == 2 and all(isinstance(b, np.ndarray) for b in out)
    np.testing.assert_array_equal(out[1], x[:, 5:])


def test_shuffle_covers_every_instance_once_and_pairs_match():
    x, y = _xy(n=12)
    d = minibatch(x, y, 4, shuffle=True, rng=0)
    xs, ys = zip(*d)
    xcat = np.concatenate(xs, axis=1)
    ycat = np.concatenate(ys)
    assert sorted(ycat.tolist()) == sorted(y.tolist())
    # each x column still belongs with its label: column i has x[0,i] == i
    np.testing.assert_array_equal(xcat[0] * 10, ycat)
    assert not np.array_equal(ycat, y)     # really shuffled


def test_new_permutation_each_epoch_and_dropped_tail_varies():
    x, y = _xy(n=100)
    d = minibatch(x, y, 30, shuffle=True, rng=1)
    e1 = np.concatenate([b[1] for b in d])
    e2 = np.concatenate([b[1] for b in d])
    assert e1.shape == e2.shape == (90,)
    assert not np.array_equal(e1, e2)


def test_shuffle_reproducible_with_seed():
    x, y = _xy(n=20)
    seed(5)
    a = [b[1].copy() for b in minibatch(x, y, 5, shuffle=True)]
    seed(5)
    b = [b[1].copy() for b in minibatch(x, y, 5, shuffle=True)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    c = [t[1] for t in minibatch(x, y, 5, shuffle=True, rng=g1)]
    e = [t[1] for t in minibatch(x, y, 5, shuffle=True, rng=g2)]
    for u, v in zip(c, e):
        np.testing.assert_array_equal(u, v)


def test_xtype_ytype_applied_per_batch():
    x, y = _xy()
    d = minibatch(x, y, 5, xtype=lambda a: a.astype(np.float64),
                  ytype=lambda a: a.tolist())
    xb, yb = next(iter(d))
    assert xb.dtype == np.float64 and yb == [0, 10, 20, 30, 40]


def test_errors():
    x, y = _xy()
    with pytest.raises(ValueError, match="instances"):
        minibatch(x, y[:9], 2)
    with pytest.raises(ValueError):
        minibatch(x, y, 0)
    with pytest.raises(ValueError):
        minibatch(x, y, 2, axis=2)
    with pytest.raises(TypeError):
        minibatch(3.0, y, 2)
    with pytest.raises(ValueError):
        minibatch(x, y, 2.5)


def test_docstrings():
    for f in (minibatch, MiniBatch):
        assert f.__doc__ and "Example" in f.__doc__
    assert data.__doc__
