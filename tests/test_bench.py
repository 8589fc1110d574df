"""Tests of the benchmark harness (knet_st.bench).

* The NumPy column's hand-derived gradients against central finite
  differences in float64, on tiny sizes.
* Its internal layouts (NHWC LeNet, batch-major CharLM) against naive
  references written on the canonical weights, so every column trains the
  same model.
* ``python -m knet_st.bench --quick`` with the NumPy column and whichever peers are
  installed: each finishes and its loss falls, and all start from the same
  loss.  Peers that are missing or broken are skipped columns, not failures.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from knet_st.bench import difftable
from knet_st.bench import models_numpy as M
from knet_st.bench.problems import step_size


def randn(rng, *shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def check_gradients(loss, grads, w, *args, seed=0, eps=1e-6, directions=3):
    """Compare grads(w, *args) with central differences of loss along random directions, per parameter."""
    rng = np.random.default_rng(seed)
    g = grads([a.copy() for a in w], *args)
    assert [x.shape for x in g] == [a.shape for a in w]
    for k in range(len(w)):
        for _ in range(directions):
            v = rng.standard_normal(w[k].shape)
            plus = [a.copy() for a in w]
            minus = [a.copy() for a in w]
            plus[k] += eps * v
            minus[k] -= eps * v
            numeric = (loss(plus, *args) - loss(minus, *args)) / (2 * eps)
            np.testing.assert_allclose(np.sum(g[k] * v), numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"parameter {k}")


# --------------------------------------------------------------------------- hand gradients


def test_linreg_gradient():
    rng = np.random.default_rng(1)
    w = [randn(rng, 1, 3), randn(rng, 1, 1)]
    check_gradients(M.linreg_loss, M.linreg_grads, w, randn(rng, 3, 7), randn(rng, 1, 7))


@pytest.mark.parametrize("hidden", [[], [3], [4, 3]], ids=["softmax", "mlp", "mlp2"])
def test_mlp_gradient(hidden):
    rng = np.random.default_rng(2)
    sizes = [5] + hidden + [4]
    w = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        w += [randn(rng, fan_out, fan_in), randn(rng, fan_out, 1)]
    check_gradients(M.mlp_loss, M.mlp_grads, w, randn(rng, 5, 6), rng.integers(0, 4, 6))


def tiny_lenet(rng):
    """Canonical (OIHW) LeNet weights for 2x2x14x14 inputs: 3x3 convolutions, 3 and 4 channels."""
    return [randn(rng, 3, 2, 3, 3), randn(rng, 1, 3, 1, 1, scale=0.1),
            randn(rng, 4, 3, 3, 3), randn(rng, 1, 4, 1, 1, scale=0.1),
            randn(rng, 5, 16), randn(rng, 5, 1), randn(rng, 3, 5), randn(rng, 3, 1)]


def test_lenet_gradient():
    rng = np.random.default_rng(3)
    w = M.lenet_weights(tiny_lenet(rng))
    check_gradients(M.lenet_loss, M.lenet_grads, w, randn(rng, 2, 14, 14, 2), rng.integers(0, 3, 2))


def test_pool_gradient_goes_to_the_first_of_equal_maxima():
    x = np.array([[1.0, 1.0], [0.5, 1.0]]).reshape(1, 2, 2, 1)
    y = M.pool_forward(x)
    dx = M.pool_backward(x, y, np.ones_like(y))
    np.testing.assert_array_equal(dx.reshape(2, 2), [[1, 0], [0, 0]])


def tiny_charlm(rng, V=5, E=3, H=4):
    """Canonical CharLM weights: W (4H, E+H), b (4H, 1), Wemb (E, V), Wpred (V, H), bpred (V, 1)."""
    return [randn(rng, 4 * H, E + H, scale=0.5), randn(rng, 4 * H, 1, scale=0.5),
            randn(rng, E, V), randn(rng, V, H), randn(rng, V, 1)]


def test_charlm_gradient():
    rng = np.random.default_rng(4)
    w = M.charlm_weights(tiny_charlm(rng))
    check_gradients(M.charlm_loss, M.charlm_grads, w, rng.integers(0, 5, (4, 2)))


def test_difftable_hand_gradient():
    rng = np.random.default_rng(5)
    w = [randn(rng, 4, 6), randn(rng, 4, 1), randn(rng, 3, 4), randn(rng, 3, 1)]

    def loss(w, x, y):
        a = None
        for _, op in difftable.OPS:
            a = op(w, x, y, a)
        return float(a)

    check_gradients(loss, difftable.hand_grad, w, randn(rng, 6, 5), randn(rng, 3, 5))


def test_step_size_clips_the_gradient_norm():
    small, large = [np.array([1.2, 1.6])], [np.array([6.0, 8.0])]     # norms 2 and 10
    assert step_size(small, 1.0, 5.0) == 1.0
    assert step_size(large, 1.0, 5.0) == pytest.approx(0.5)
    assert step_size(large, 0.1, 0.0) == 0.1                          # gclip 0: no clipping


# --------------------------------------------------------------------------- layouts


def relu(x):
    return np.maximum(x, 0)


def sigm(x):
    return 1 / (1 + np.exp(-x))


def conv_ref(w, x):
    """Naive valid cross-correlation, NCHW x and OIHW w."""
    k = w.shape[2]
    ho, wo = x.shape[2] - k + 1, x.shape[3] - k + 1
    return sum(np.einsum("nchw,oc->nohw", x[:, :, i:i + ho, j:j + wo], w[:, :, i, j])
               for i in range(k) for j in range(k))


def pool_ref(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def test_lenet_layout_matches_canonical():
    rng = np.random.default_rng(6)
    w = tiny_lenet(rng)
    x = randn(rng, 2, 2, 14, 14)
    labels = rng.integers(0, 3, 2)
    a = pool_ref(relu(conv_ref(w[0], x) + w[1]))
    a = pool_ref(relu(conv_ref(w[2], a) + w[3]))
    scores = w[6] @ relu(w[4] @ a.reshape(len(a), -1).T + w[5]) + w[7]
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert M.lenet_loss(M.lenet_weights(w), nhwc, labels) == pytest.approx(M.nll(scores, labels), rel=1e-12)


def test_charlm_layout_matches_tutorial():
    rng = np.random.default_rng(7)
    W, b, emb, wp, bp = w = tiny_charlm(rng)
    ids = rng.integers(0, 5, (5, 3))
    H = W.shape[0] // 4
    h = c = np.zeros((H, ids.shape[1]))
    total = 0.0
    for t in range(len(ids) - 1):        # the tutorial's lstm: gates forget, input, output, change
        gates = W @ np.concatenate([emb[:, ids[t]], h]) + b
        forget, ingate, outgate = sigm(gates[:H]), sigm(gates[H:2 * H]), sigm(gates[2 * H:3 * H])
        c = c * forget + ingate * np.tanh(gates[3 * H:])
        h = outgate * np.tanh(c)
        total += M.nll(wp @ h + bp, ids[t + 1])
    assert M.charlm_loss(M.charlm_weights(w), ids) == pytest.approx(total / (len(ids) - 1), rel=1e-12)


# --------------------------------------------------------------------------- the quick run


def installed(name):
    return importlib.util.find_spec(name) is not None


def test_bad_selection_is_a_usage_error():
    from knet_st.bench import main
    with pytest.raises(SystemExit) as exit:
        main(["--models", "resnet"])
    assert exit.value.code == 2


def test_results_go_to_the_current_folder_by_default():
    from knet_st.bench.harness import parse_args
    out = parse_args([]).out
    assert not os.path.isabs(out) and out.startswith("bench-results")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if not os.environ.get("KNET_ST_DATA"):
        pytest.skip("set KNET_ST_DATA to the folder with the MNIST, housing and Hiawatha files")
    columns = ["knet_st", "numpy"] + [c for c in ("autograd", "torch", "jax") if installed(c)]
    out = tmp_path_factory.mktemp("bench") / "table.md"
    import knet_st
    root = os.path.dirname(os.path.dirname(os.path.abspath(knet_st.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "knet_st.bench", "--quick", "--columns", ",".join(columns),
                           "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out.with_suffix(".json")) as f:
        return json.load(f), out.read_text(), columns


@pytest.mark.parametrize("column", ["numpy", "knet_st"])
def test_quick_run_own_columns_complete(quick_run, column):
    """NumPy by hand and knet_st itself must run every model (never a skipped column)."""
    report, table, _ = quick_run
    rows = [r for r in report["results"] if r["column"] == column]
    assert [r["model"] for r in rows] == ["linreg", "softmax", "mlp", "lenet", "charlm"]
    assert all(r["status"] == "ok" for r in rows), rows
    assert "## Cost of differentiation" in table
    from knet_st.bench.harness import cpu_model
    assert f"## Seconds to train on {cpu_model()}, " in table


def test_quick_run_every_column_learns(quick_run):
    report, _, columns = quick_run
    ok = [r for r in report["results"] if r["status"] == "ok"]
    assert {r["column"] for r in report["results"]} == set(columns)
    for r in ok:
        assert r["loss_after"] < r["loss_before"], r
    for model in {r["model"] for r in ok}:     # same model, same initial weights
        before = [r["loss_before"] for r in ok if r["model"] == model]
        assert max(before) == pytest.approx(min(before), rel=1e-4), (model, before)


def test_quick_run_installed_peers_finish(quick_run):
    """An installed peer runs every model, unless the library itself fails to import."""
    report, _, _ = quick_run
    for r in report["results"]:
        if r["column"] in ("autograd", "torch", "jax") and r["status"] != "ok":
            assert r["status"] == "skipped" and r["reason"].startswith(("ImportError", "ModuleNotFoundError")), r
