"""kt.grad on CuPy arrays: the same gradients as on NumPy (needs a GPU)."""

import numpy as np
import pytest

import knet_st as kt
from test_dispatch import CASES, leaves

R = np.random.default_rng(1)


def lenet(w, x, labels):
    x = kt.pool(kt.relu(kt.conv4(w[0], x) + w[1]))
    x = kt.pool(kt.relu(kt.conv4(w[2], x) + w[3]))
    return kt.nll(w[4] @ kt.mat(x) + w[5], labels)


def embedded_lstm(w, state, ids):
    total = 0.0
    for t in range(len(ids) - 1):
        x = w[2][:, ids[t]]
        gates = w[0] @ np.concatenate([x, state[0]]) + w[1]
        h = state[0].shape[0]
        cell = state[1] * kt.sigm(gates[:h]) + kt.sigm(gates[h:2 * h]) * np.tanh(gates[3 * h:])
        state[0], state[1] = kt.sigm(gates[2 * h:3 * h]) * np.tanh(cell), cell
        total = total + kt.nll(w[3] @ state[0], ids[t + 1])
    return total


GPU_CASES = CASES + [
    (lenet, [[0.3 * R.standard_normal((3, 1, 3, 3)), R.standard_normal((1, 3, 1, 1)),
              0.3 * R.standard_normal((4, 3, 3, 3)), R.standard_normal((1, 4, 1, 1)),
              0.3 * R.standard_normal((5, 4)), R.standard_normal((5, 1))],
             R.standard_normal((6, 1, 10, 10)), R.integers(0, 5, 6)]),
    (embedded_lstm, [[0.4 * R.standard_normal((12, 6)), R.standard_normal((12, 1)),
                      R.standard_normal((3, 7)), R.standard_normal((7, 3))],
                     [np.zeros((3, 2)), np.zeros((3, 2))], R.integers(0, 7, (4, 2))]),
]


@pytest.mark.gpu
@pytest.mark.parametrize("f, args", GPU_CASES, ids=[f.__name__ for f, _ in GPU_CASES])
def test_gradient_on_the_gpu(cp, f, args):
    import copy
    expected = kt.grad(f)(*copy.deepcopy(args))
    got = kt.grad(f)(*kt.to_gpu(copy.deepcopy(args)))
    for g, e in zip(leaves(got), leaves(expected)):
        assert isinstance(g, cp.ndarray), type(g)
        np.testing.assert_allclose(cp.asnumpy(g), e, rtol=1e-7, atol=1e-9)


@pytest.mark.gpu
def test_steady_training_allocates_nothing_new(cp):
    """With Knet's memory pool, steps after the first reuse freed blocks."""
    f, args = CASES[1]                                   # the MLP
    w, x, labels = kt.to_gpu([[a.astype(np.float32) for a in args[0]],
                              args[1].astype(np.float32), args[2]])
    g = kt.grad(f)
    def train(steps):
        for _ in range(steps):
            for wi, di in zip(w, g(w, x, labels)):
                wi -= 0.1 * di
        cp.cuda.Device().synchronize()
        return kt.pool_stats()

    kt.set_pool("knet")
    try:
        before = train(3)
        after = train(10)
    finally:
        kt.set_pool("cupy")
    new = {k: after[k] - before[k] for k in after if isinstance(after[k], int)}
    print("pool stats over 10 steps:", new)
    assert new["allocs"] == 0 and new["reuses"] > 0, new
