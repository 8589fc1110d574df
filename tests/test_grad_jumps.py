"""Early exits in the middle of loop bodies: the statements after a
``continue``/``break``/``return`` must be skipped, in the value and in the gradient."""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

X = np.random.default_rng(0).standard_normal((6, 5))


def skip_even_rows(x):
    n = x.shape[0]
    acc = 0
    for i in range(n):
        if i % 2 == 0:
            continue
        acc += np.sum(x[i] * i)
    return acc


def stop_at_large_row(x):
    acc = 0.0
    for row in x:
        s = np.sum(row ** 2)
        if s > 4.0:
            break
        acc = acc + s
    return acc


def first_positive_row(x):
    for i in range(x.shape[0]):
        r = np.sum(np.sin(x[i]))
        if r > 0:
            return r * 2
        x = x * 1.5
    return np.sum(x)


def nested_continue_break(x):
    total = 0.0
    for i in range(3):
        for j in range(4):
            if j == i:
                continue
            if j > 2:
                break
            total = total + np.sum(x[i] * x[j])
        total = total * 0.9
    return total


@pytest.mark.parametrize("f", [skip_even_rows, stop_at_large_row, first_positive_row,
                               nested_continue_break])
def test_early_exits(f):
    check_grad(f, (X.copy(),))
    assert np.isclose(kt.value_and_grad(f)(X.copy())[0], f(X.copy()))


def test_early_return_both_ways():
    for scale in (1.0, -1.0):
        check_grad(first_positive_row, (scale * np.abs(X),))
