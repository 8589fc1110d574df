"""``np.sum`` of an element-wise result whose operands broadcast: the total's
scalar adjoint must come back to each operand with the right multiplicity
(once a wrong gradient: np.sum(a + b) with a (3,1), b (1,4) gave 1, not 4)."""

import numpy as np
import pytest

from gradcheck import check_grad

R = np.random.default_rng(7)
SHAPES = [((3, 1), (1, 4)), ((3, 4), (4,)), ((3, 4), (3, 4)), ((2, 3, 4), (3, 1)), ((), (3,))]


def total_add(a, b):
    return np.sum(a + b)


def total_sub(a, b):
    return np.sum(a - b)


def total_mul(a, b):
    return np.sum(a * b)


def total_div(a, b):
    return np.sum(a / b)


def total_pow(a, b):
    return np.sum(a ** b)


def total_with_constant(a, b):
    return np.sum(a + 1.5) + (a - 2.0).sum() + np.sum(3.0 * b) + np.sum(b ** 2)


def total_method(a, b):
    return (a * b).sum() + (a + b).sum()


@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{a}-{b}" for a, b in SHAPES])
@pytest.mark.parametrize("f", [total_add, total_sub, total_mul, total_div, total_pow,
                               total_with_constant, total_method])
@pytest.mark.parametrize("wrt", [0, 1])
def test_total_of_broadcast(f, shapes, wrt):
    a = 0.5 + R.random(shapes[0])
    b = 0.5 + R.random(shapes[1])
    check_grad(f, (np.asarray(a, float), np.asarray(b, float)), wrt=wrt)
