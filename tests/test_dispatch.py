"""Gradients computed on a stand-in for GPU arrays (see duckarray.py): the
generated code and the adjoint rules must reach arrays only through NumPy's
dispatch protocols, so that they run unchanged on CuPy.  Each gradient must
come back as the stand-in type and equal the NumPy gradient."""

import numpy as np
import pytest

import knet_st as kt
from duckarray import Duck

R = np.random.default_rng(0)


def lin(w, x, y):
    return np.sum((y - (w[0] @ x + w[1])) ** 2) / y.shape[1]


def mlp(w, x, labels):
    for i in range(0, len(w) - 2, 2):
        x = kt.relu(w[i] @ x + w[i + 1])
    return kt.nll(w[-2] @ x + w[-1], labels)


def softmax_regression(w, x, ygold):
    ypred = w[0] @ x + w[1]
    ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=0, keepdims=True))
    return -np.sum(ygold * ynorm) / ygold.shape[1]


def lstm_loss(w, xs):
    h = xs[0] * 0
    c = h
    total = 0.0
    for x in xs:
        g = w[0] @ np.concatenate([x, h]) + w[1]
        n = h.shape[0]
        i, f, o = kt.sigm(g[:n]), kt.sigm(g[n:2 * n]), kt.sigm(g[2 * n:3 * n])
        c = c * f + i * np.tanh(g[3 * n:])
        h = o * np.tanh(c)
        total = total + np.sum(kt.logp(h, 0) * x)
    return -total


def shapes(w, x):
    a = np.transpose(w[0].reshape(2, 3, 2), (1, 0, 2)).sum(axis=2)
    b = np.stack([x[0], x[1]], axis=1) @ np.maximum(a, 0.1).T
    c = np.where(b > 0, b, b * 0.1) + np.clip(x[:, :2], -0.5, 0.5) @ np.ones_like(x[:2])
    return np.mean(c ** 2) + np.max(w[0], axis=1).sum() + np.var(x) + \
        np.sum(np.cumsum(x, axis=0) * kt.softmax(x, 0))


def reductions(w, x):
    return np.sum(kt.logsumexp(w[0] @ x, 0)) + np.sum(np.abs(x) ** 1.5) + \
        np.sum(np.sqrt(np.exp(x) + 1.0)) + np.sum(np.log1p(x ** 2)) + \
        np.sum(np.hstack([x, x * 2])[:, :3] * np.vstack([x, x])[:3])


CASES = [
    (lin, [[R.standard_normal((1, 3)), R.standard_normal((1, 1))],
           R.standard_normal((3, 5)), R.standard_normal((1, 5))]),
    (mlp, [[R.standard_normal((4, 3)), R.standard_normal((4, 1)),
            R.standard_normal((2, 4)), R.standard_normal((2, 1))],
           R.standard_normal((3, 5)), R.integers(0, 2, 5)]),
    (softmax_regression, [[R.standard_normal((2, 3)), R.standard_normal((2, 1))],
                          R.standard_normal((3, 5)), np.eye(2)[:, R.integers(0, 2, 5)]]),
    (lstm_loss, [[0.5 * R.standard_normal((8, 4)), R.standard_normal((8, 1))],
                 [R.standard_normal((2, 3)) for _ in range(3)]]),
    (shapes, [[R.standard_normal((3, 4))], R.standard_normal((3, 3))]),
    (reductions, [[R.standard_normal((2, 3))], R.standard_normal((3, 3))]),
]


def duck(x):
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return Duck(x)
    if isinstance(x, list):
        return [duck(v) for v in x]
    return x


def leaves(tree):
    if isinstance(tree, (list, tuple)):
        for v in tree:
            yield from leaves(v)
    else:
        yield tree


@pytest.mark.parametrize("f, args", CASES, ids=[f.__name__ for f, _ in CASES])
def test_gradient_on_a_dispatching_array_type(f, args):
    expected = kt.grad(f)(*args)
    got = kt.grad(f)(*duck(args))
    for g, e in zip(leaves(got), leaves(expected)):
        assert isinstance(g, Duck), type(g)
        np.testing.assert_allclose(g.a, e, rtol=1e-10, atol=1e-12)


def test_the_stand_in_refuses_conversion():
    with pytest.raises(TypeError):
        np.asarray(Duck(np.ones(2)))
