"""Tests for knet_st.init: shapes, dtypes, fans, distributions, seeding."""

import math
import types

import numpy as np
import pytest

from knet_st import init
from knet_st.init import (xavier, gaussian, uniform, zeros, ones, seed, fans,
                          get_rng)


def test_shape_forms_and_default_dtype():
    for f in (xavier, gaussian, uniform, zeros, ones):
        a = f(10, 784)
        b = f((10, 784))
        c = f([10, 784])
        assert a.shape == b.shape == c.shape == (10, 784)
        assert a.dtype == np.float32
    assert xavier(np.int64(3), 4).shape == (3, 4)


def test_dtype_option():
    assert xavier(3, 4, dtype=np.float64).dtype == np.float64
    assert gaussian(3, dtype="float16").dtype == np.float16
    assert zeros(2, dtype=np.int64).dtype == np.int64
    with pytest.raises(TypeError):
        xavier(3, 4, dtype=np.int32)


def test_bad_shapes():
    with pytest.raises(ValueError):
        zeros(-1, 3)
    with pytest.raises(TypeError):
        xavier(2.5, 3)
    with pytest.raises(ValueError):
        xavier()


def test_fans_follow_knet():
    assert fans((7,)) == (7, 1)
    assert fans((10, 784)) == (784, 10)           # (out, in)
    # NCHW conv filter (out_ch, in_ch, kh, kw): Knet's (kw,kh,in,out) mirror
    assert fans((20, 3, 5, 5)) == (75, 20)
    assert fans((50, 20, 5, 5)) == (500, 50)


@pytest.mark.parametrize("shape", [(10, 784), (20, 3, 5, 5), (3000,)])
def test_xavier_bound_and_spread(shape):
    fanin, fanout = fans(shape)
    s = math.sqrt(6.0 / (fanin + fanout))
    w = xavier(*shape, rng=0)
    assert np.all(np.abs(w) <= s * (1 + 1e-6))
    # uniform on [-s, s]: the extremes come close to the bound, mean ~ 0
    assert np.abs(w).max() > 0.95 * s
    n = w.size
    assert abs(float(w.mean())) < 4 * s / math.sqrt(3 * n)
    # variance of U(-s, s) is s^2/3
    assert float(w.var()) == pytest.approx(s * s / 3, rel=4 * math.sqrt(0.8 / n))


def test_xavier_gain():
    a = xavier(30, 40, rng=1)
    b = xavier(30, 40, gain=2.0, rng=1)
    np.testing.assert_allclose(b, 2 * a, rtol=1e-6)


def test_gaussian_moments():
    w = gaussian(200, 200, std=0.5, mean=2.0, rng=3)
    assert float(w.mean()) == pytest.approx(2.0, abs=0.01)
    assert float(w.std()) == pytest.approx(0.5, rel=0.02)
    assert float(gaussian(1000, rng=4).std()) == pytest.approx(0.01, rel=0.1)


def test_uniform_range():
    w = uniform(100, 100, low=-0.5, high=0.25, rng=5)
    assert w.min() >= -0.5 and w.max() < 0.25
    assert w.min() < -0.49 and w.max() > 0.24
    with pytest.raises(ValueError):
        uniform(3, low=1.0, high=0.0)


def test_zeros_ones():
    assert not zeros(3, 2).any()
    assert (ones(3, 2) == 1).all()


def test_seed_and_rng_reproducible():
    seed(123)
    a = xavier(5, 6)
    b = gaussian(4)
    seed(123)
    np.testing.assert_array_equal(xavier(5, 6), a)
    np.testing.assert_array_equal(gaussian(4), b)
    # an int rng or a Generator
    np.testing.assert_array_equal(xavier(5, 6, rng=9), xavier(5, 6, rng=9))
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(uniform(5, rng=g1), uniform(5, rng=g2))
    assert not np.array_equal(xavier(5, 6, rng=9), xavier(5, 6, rng=10))
    with pytest.raises(TypeError):
        get_rng("seed")


def test_same_values_whatever_the_dtype():
    a = xavier(4, 5, rng=2, dtype=np.float64)
    b = xavier(4, 5, rng=2, dtype=np.float32)
    np.testing.assert_allclose(b, a, rtol=1e-6)


def test_xp_argument_dispatches_to_array_module():
    calls = []

    def asarray(a):
        calls.append(a)
        return ("converted", a.shape, a.dtype)

    def zeros_(shape, dtype):
        return ("zeros", shape, dtype)

    def ones_(shape, dtype):
        return ("ones", shape, dtype)

    fake = types.SimpleNamespace(asarray=asarray, zeros=zeros_, ones=ones_)
    assert xavier(2, 3, xp=fake) == ("converted", (2, 3), np.float32)
    assert gaussian(2, xp=fake)[0] == "converted"
    assert uniform(2, xp=fake)[0] == "converted"
    assert zeros(2, 3, xp=fake) == ("zeros", (2, 3), np.float32)
    assert ones(4, xp=fake) == ("ones", (4,), np.float32)
    assert len(calls) == 3


def test_public_names_documented():
    for name in init.__all__ + ["fans", "get_rng"]:
        doc = getattr(init, name).__doc__
        assert doc and "Example" in doc, name
