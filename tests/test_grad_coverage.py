"""Python constructs beyond the first round's subset (issue 11), each against
float64 central differences: writes into arrays, ``x[i] += v``, and more."""

import numpy as np
import pytest

from gradcheck import check_grad

R = np.random.default_rng(7)


def rnd(*shape):
    return R.standard_normal(shape)


# ---------------------------------------------------------- writes into arrays

def rnn_rows(W, x):
    T = x.shape[0]
    h = np.zeros((T + 1, 3))
    for t in range(T):
        h[t + 1] = np.tanh(W @ h[t] + x[t])
    return np.sum(h ** 2)


def fill_loop(w):
    out = np.zeros(4)
    for i in range(4):
        out[i] = np.sin(w[i]) * w[0]
    return np.sum(out * out)


def column_then_read_then_write(w):
    out = np.ones((3, 2))
    out[:, 0] = w * 2.0
    y = out * w[:, None]          # read before the next write
    out[1, 1] = 5.0
    return np.sum(y) + np.sum(out ** 2)


def copy_then_add(w, v):
    h = w.copy()
    h[0] += v
    return np.sum(h ** 2)


def broadcast_into_slice(w):
    out = np.zeros(3)
    out[1:] = w[0]
    return np.sum(out * w)


def overwrite_twice(w):
    out = np.zeros(3)
    out[0] = w[0] * 3.0
    s = np.sum(out * w)
    out[0] = w[1]                 # the first value's adjoint ends here
    return s + np.sum(out ** 3)


def fancy_index_write(w):
    out = np.zeros(5)
    idx = np.array([4, 0, 2])
    out[idx] = w * w
    return np.sum(np.cos(out))


def elements_of_a_list(w):
    s = [w * 1.0, w * 2.0]
    s[1] += w                      # a list element: replaced
    return np.sum(s[0] * s[1])


@pytest.mark.parametrize("f, args, wrt", [
    (rnn_rows, (rnd(3, 3) * 0.5, rnd(4, 3)), (0, 1)),
    (fill_loop, (rnd(4),), 0),
    (column_then_read_then_write, (rnd(3),), 0),
    (copy_then_add, (rnd(3), 0.7), (0, 1)),
    (broadcast_into_slice, (rnd(3),), 0),
    (overwrite_twice, (rnd(3),), 0),
    (fancy_index_write, (rnd(3),), 0),
    (elements_of_a_list, (rnd(3),), 0),
], ids=lambda v: getattr(v, "__name__", ""))
def test_writes_into_arrays(f, args, wrt):
    check_grad(f, args, wrt=wrt)
