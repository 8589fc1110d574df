"""The NumPy functions beyond the core list: each gradient against finite differences."""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

R = np.random.default_rng(3)
A = R.standard_normal((3, 4))
P = 0.5 + R.random((3, 4))              # positive, away from zero
S = R.standard_normal((3, 3)) + 3 * np.eye(3)  # well conditioned
V = R.standard_normal(4)
B = R.standard_normal((2, 3))


def f_mod(a):
    return np.sum(np.sin(a % 0.7))


def f_cbrt(a):
    return np.sum(np.cbrt(a) ** 2)


def f_hyperbolic(a):
    return np.sum(np.arcsinh(a) + np.arctanh(a / 3) + np.arccosh(a + 2))


def f_arctan2(a):
    return np.sum(np.arctan2(a, a * a + 1) + np.hypot(a, 2.0))


def f_fmax(a):
    return np.sum(np.fmax(a, 0.1) * np.fmin(a, 0.2) + np.fabs(a))


def f_angles(a):
    return np.sum(np.sin(np.deg2rad(a * 30)) + np.rad2deg(a))


def f_sinc(a):
    return np.sum(np.sinc(a))


def f_prod(a):
    return np.sum(np.prod(a, axis=1)) + np.prod(a[0])


def f_var(a):
    return np.var(a) + np.sum(np.std(a, axis=0)) + np.sum(a.var(axis=1, ddof=1))


def f_cumsum(a):
    return np.sum(np.sin(np.cumsum(a, axis=1))) + np.sum(np.cos(np.cumsum(a)))


def f_diag(a):
    return np.sum(np.diag(a) ** 2) + np.sum(np.diag(a[0], 1) @ np.ones(5)) + \
        np.sum(np.diagonal(a, 1) ** 3)


def f_tri(a):
    return np.sum(np.triu(a, 1) ** 2 + np.tril(a) * 3)


def f_flip(a):
    return np.sum(np.flip(a, 1) * np.arange(12).reshape(3, 4)) + \
        np.sum(np.fliplr(a) * a) + np.sum(np.flipud(a) * np.rot90(np.rot90(a)))


def f_roll(a):
    return np.sum(np.roll(a, 2, axis=1) * np.arange(12).reshape(3, 4))


def f_moveaxis(a):
    return np.sum(np.moveaxis(a[None], 0, 2) * np.arange(12).reshape(3, 4, 1))


def f_repeat(a):
    return np.sum(np.sin(np.repeat(a, 2, axis=0))) + np.sum(np.repeat(a, 3) ** 2)


def f_tile(a):
    return np.sum(np.sin(np.tile(a, (2, 1)))) + np.sum(np.tile(a[0], 3) ** 2)


def f_take(a):
    return np.sum(np.take(a, [0, 2, 2], axis=1) ** 2) + np.sum(np.take(a, [1, 1, 5]) ** 3)


def f_pad(a):
    return np.sum(np.sin(np.pad(a, ((1, 0), (2, 1)))))


def f_inner(v):
    return np.inner(v, v * 2) + np.vdot(v, np.arange(4.0))


def f_kron(a):
    return np.sum(np.sin(np.kron(a[:2, :2], a[1:, 2:])))


def f_norm(a):
    return np.linalg.norm(a) + np.sum(np.linalg.norm(a, axis=1))


def f_inv(s):
    return np.sum(np.linalg.inv(s) * np.arange(9).reshape(3, 3))


def f_det(s):
    return np.linalg.det(s)


def f_methods(a):
    return np.sum(a.prod(axis=0)) + a.std() + np.sum(a.cumsum(axis=0)) + \
        np.sum(a.repeat(2, axis=1) ** 2)


CASES = [
    (f_mod, P), (f_cbrt, P), (f_hyperbolic, 0.3 * A), (f_arctan2, A), (f_fmax, A),
    (f_angles, A), (f_sinc, P), (f_prod, P), (f_var, A), (f_cumsum, A), (f_diag, A),
    (f_tri, A), (f_flip, A), (f_roll, A), (f_moveaxis, A), (f_repeat, A), (f_tile, A),
    (f_take, A), (f_pad, A), (f_inner, V), (f_kron, A), (f_norm, A), (f_inv, S),
    (f_det, S), (f_methods, P),
]


@pytest.mark.parametrize("f, x", CASES, ids=[f.__name__ for f, _ in CASES])
def test_numpy_breadth(f, x):
    check_grad(f, (x.copy(),))


def test_registry_breadth():
    """About a hundred primitives have adjoint rules, as HIPS autograd offers."""
    from knet_st.transform.registry import primitives
    assert len(primitives()) >= 100


def test_function_without_rule_is_named():
    def f(a):
        return np.sum(np.fft.fft(a).real)

    with pytest.raises(kt.TransformError, match="fft"):
        kt.grad(f)(A)
