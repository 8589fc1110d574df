"""The tutorial's examples, run for a few steps on the real data.

The data come from $KNET_ST_DATA (CI points it at shared/data); without it
these tests are skipped.  Each run is small (a few hundred images, a few
thousand characters), so the whole file takes a few seconds.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import knet_st as kt
from knet_st import examples
from knet_st.examples import _common, charlm, housing, lenet, mnist

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("KNET_ST_DATA")

MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def need(*files):
    if not DATA:
        pytest.skip("KNET_ST_DATA is not set; point it at a folder with the "
                    "tutorial's data files (shared/data in CI)")
    for f in files:
        if not os.path.isfile(os.path.join(DATA, f)):
            pytest.skip(f"{f} is not in KNET_ST_DATA={DATA}")


def tuples(text):
    """The ('epoch', ...) lines printed on stdout, as tuples."""
    import ast
    return [ast.literal_eval(line) for line in text.splitlines()
            if line.startswith("('epoch'")]


def decreasing_on_average(losses, k=3):
    return np.mean(losses[-k:]) < np.mean(losses[:k])


# ---------------------------------------------------------------------------
# housing
# ---------------------------------------------------------------------------

def test_housing_reproduces_the_tutorial(capsys):
    need("housing.data")
    out = housing.main([])
    history = out["history"]
    assert [h[1] for h in history] == list(range(11))
    loss = [h[3] for h in history]
    # tutorial: 366.0 after the first step, 29.6 after the tenth
    assert 250 < loss[1] < 500
    assert 20 < loss[10] < 40
    assert all(b < a for a, b in zip(loss, loss[1:]))
    printed = tuples(capsys.readouterr().out)
    assert printed == history
    assert isinstance(out["w"][1], float)       # the tutorial's scalar bias


def test_housing_test_split_and_optimizer(capsys):
    need("housing.data")
    out = housing.main(["--test", "0.2", "--optimizer", "adam", "--lr", "0.5",
                        "--epochs", "5", "--batchsize", "50"])
    h = out["history"]
    assert h[0][2] == "trn" and h[0][4] == "tst"
    assert h[-1][3] < h[0][3] and h[-1][5] < h[0][5]


def test_housing_save_and_load(tmp_path, capsys):
    need("housing.data")
    path = tmp_path / "housing.npz"
    out = housing.main(["--epochs", "3", "--save", str(path)])
    again = housing.main(["--load", str(path)])           # 0 epochs with --load
    assert len(again["history"]) == 1
    assert again["history"][0][3] == pytest.approx(out["history"][-1][3], rel=1e-5)


# ---------------------------------------------------------------------------
# mnist: softmax and mlp
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["softmax", "mlp"])
def test_mnist_learns(model, capsys):
    need(*MNIST_FILES)
    out = mnist.main(["--model", model, "--epochs", "2", "--ntrain", "3000",
                      "--ntest", "500"])
    h = out["history"]
    assert [x[1] for x in h] == [0, 1, 2]
    assert h[0][5] < 0.3                      # chance before training
    assert h[-1][3] > 0.8 and h[-1][5] > 0.75
    assert len(out["losses"]) == 2 * 30
    assert decreasing_on_average(out["losses"])
    assert len(out["w"]) == (2 if model == "softmax" else 4)


def test_mnist_deeper_mlp_steps_and_shuffle(capsys):
    need(*MNIST_FILES)
    out = mnist.main(["--model", "mlp", "--hidden", "32", "16", "--epochs", "1",
                      "--steps", "7", "--ntrain", "2000", "--ntest", "200",
                      "--shuffle", "--optimizer", "momentum"])
    assert [a.shape for a in out["w"]] == [(32, 784), (32, 1), (16, 32), (16, 1),
                                           (10, 16), (10, 1)]
    assert len(out["losses"]) == 7


def test_mnist_save_load_keeps_the_model(tmp_path, capsys):
    need(*MNIST_FILES)
    path = tmp_path / "mlp.npz"
    out = mnist.main(["--model", "mlp", "--epochs", "1", "--ntrain", "1000",
                      "--ntest", "300", "--save", str(path)])
    again = mnist.main(["--load", str(path), "--ntrain", "1000", "--ntest", "300"])
    assert again["history"] == [("epoch", 0) + out["history"][-1][2:6]]
    with pytest.raises(SystemExit) as e:
        mnist.main(["--load", str(path), "--model", "softmax"])
    assert e.value.code == 1
    assert "holds a mlp model" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# lenet
# ---------------------------------------------------------------------------

def test_lenet_learns(capsys):
    need(*MNIST_FILES)
    out = lenet.main(["--epochs", "1", "--steps", "12", "--batchsize", "50",
                      "--ntrain", "600", "--ntest", "200"])
    h = out["history"]
    assert len(out["losses"]) == 12
    assert decreasing_on_average(out["losses"])
    assert h[-1][5] > h[0][5]
    assert [a.shape for a in out["w"]] == [
        (20, 1, 5, 5), (1, 20, 1, 1), (50, 20, 5, 5), (1, 50, 1, 1),
        (500, 800), (500, 1), (10, 500), (10, 1)]


# ---------------------------------------------------------------------------
# charlm
# ---------------------------------------------------------------------------

SMALL_LM = ["--ntrain", "6000", "--batchsize", "16", "--seqlength", "20",
            "--hidden", "48", "--embed", "24"]


def test_charlm_loss_falls_every_epoch(capsys):
    need("hiawatha.txt")
    out = charlm.main(SMALL_LM + ["--epochs", "3"])
    h = out["history"]
    assert h[0][:3] == ("epoch", 0, "dev")
    trn = [x[3] for x in h[1:]]
    dev = [x[5] for x in h[1:]]
    assert all(b < a for a, b in zip(trn, trn[1:])), trn
    assert dev[-1] < h[0][3]
    assert trn[0] < np.log(len(out["chars"])) + 0.5


def test_charlm_two_layers_save_load_generate(tmp_path, capsys):
    need("hiawatha.txt")
    path = tmp_path / "lm.npz"
    charlm.main(SMALL_LM + ["--hidden", "32", "24", "--epochs", "1", "--steps", "5",
                            "--save", str(path)])
    capsys.readouterr()
    out = charlm.main(["--load", str(path), "--generate", "40"])
    printed = capsys.readouterr().out
    assert len(out["generated"]) == 40
    assert out["generated"] in printed
    assert set(out["generated"]) <= set(out["chars"])
    assert out["history"] == []           # no training, no data needed


def test_charlm_gradient_matches_finite_differences():
    """The LSTM with its state list mutated in place, two layers, float64."""
    kt.seed(3)
    w = [a.astype(np.float64) for a in charlm.init_weights(6, [5, 4], 3, 0.3)]
    s = [a.astype(np.float64) + 0.1 for a in charlm.init_state([5, 4], 2)]
    seq = np.random.default_rng(0).integers(0, 6, size=(7, 2))
    r = range(1, 5)
    copies = lambda: [a.copy() for a in s]  # noqa: E731
    s1 = copies()
    value, dw = charlm.lossgradient(w, s1, seq, r)
    s2 = copies()
    assert value == pytest.approx(charlm.loss(w, s2, seq, r))
    for a, b in zip(s1, s2):            # the state list was updated in place
        np.testing.assert_allclose(a, b)
    rng = np.random.default_rng(1)
    for k in range(len(w)):
        d = rng.normal(size=w[k].shape)
        wp = [a.copy() for a in w]
        wm = [a.copy() for a in w]
        wp[k] += 1e-6 * d
        wm[k] -= 1e-6 * d
        fd = (charlm.loss(wp, copies(), seq, r) - charlm.loss(wm, copies(), seq, r)) / 2e-6
        assert np.sum(dw[k] * d) == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_charlm_minibatch_layout():
    seq = charlm.minibatch("abcdefghij", "abcdefghij", 2)
    # two streams, "abcde" and "fghij", read in parallel
    assert seq.shape == (5, 2)
    assert seq[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert seq[:, 1].tolist() == [5, 6, 7, 8, 9]


# ---------------------------------------------------------------------------
# the common options
# ---------------------------------------------------------------------------

def test_missing_data_is_one_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KNET_ST_DATA", str(tmp_path))

    def offline(urls, dest, sha256, **kw):
        raise kt.datasets.DatasetError(f"could not download {Path(dest).name}: "
                                       f"no network")
    monkeypatch.setattr(kt.datasets, "download", offline)
    with pytest.raises(SystemExit) as e:
        housing.main([], prog="housing")
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("housing: error: could not download housing.data")
    assert "Traceback" not in err


def test_gpu_without_a_gpu_is_a_clear_message(capsys):
    if kt.gpu():
        pytest.skip("a GPU is usable here")
    with pytest.raises(SystemExit) as e:
        housing.main(["--gpu"], prog="housing")
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("housing: error: --gpu: no usable GPU")
    assert len(err.strip().splitlines()) == 1


def test_plot_without_matplotlib_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import fails
    with pytest.raises(SystemExit) as e:
        housing.main(["--plot", "out.png"], prog="housing")
    assert e.value.code == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_plot_writes_a_file(tmp_path, capsys):
    need("housing.data")
    pytest.importorskip("matplotlib")
    path = tmp_path / "housing.png"
    housing.main(["--epochs", "2", "--plot", str(path)])
    assert path.stat().st_size > 1000


def test_bad_option_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        mnist.main(["--batchsize", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        mnist.main(["--optimizer", "nope"])
    assert e.value.code == 2


def test_lr_default_follows_the_optimizer(tmp_path):
    p = mnist.build_parser("mnist")
    args = _common.finish(p.parse_args(["--optimizer", "adam"]))
    assert args.lr == 0.001
    args = _common.finish(p.parse_args([]))
    assert args.lr == 0.5 and args.epochs == 10
    (tmp_path / "x.npz").write_bytes(b"")
    args = _common.finish(p.parse_args(["--load", str(tmp_path / "x.npz")]))
    assert args.epochs == 0


def test_report_prints_the_tutorial_line(capsys):
    t = _common.report("epoch", np.int64(1), "trn", np.float32(0.90049), "tst", 0.90481)
    assert t == ("epoch", 1, "trn", 0.9005, "tst", 0.9048)
    assert capsys.readouterr().out == "('epoch', 1, 'trn', 0.9005, 'tst', 0.9048)\n"


def test_progress_bar_is_quiet_off_a_terminal(capsys):
    assert not _common.progress_enabled("auto")       # pytest captures stdout
    bar = _common.Progress(3, "epoch 1", False)
    for v in (3.0, 2.0, 1.0):
        bar.update(np.float32(v))
    bar.close()
    assert bar.losses == [3.0, 2.0, 1.0]
    assert capsys.readouterr() == ("", "")


def test_progress_bar_shows_loss_and_speed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)           # the built-in bar
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = _common.Progress(2, "epoch 1", True)
    bar.update(0.5)
    bar.update(0.25)
    bar.close()
    err = capsys.readouterr().err
    assert "epoch 1 2/2" in err and "loss" in err and "batch/s" in err


# ---------------------------------------------------------------------------
# the files in examples/
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["housing", "mnist", "lenet", "charlm"])
def test_source_tree_examples_are_thin_wrappers(name):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)          # does not run main
    package = examples.module(name)
    assert module.main is package.main
    assert module.loss is package.loss and module.predict is package.predict


def test_every_listed_example_has_a_main():
    for name in examples.names():
        assert callable(examples.module(name).main)


def _not_differentiable(w, x, y):
    class Model:
        pass
    return housing.loss(w, x, y)


def test_model_that_cannot_be_differentiated_is_one_message(monkeypatch, capsys):
    need("housing.data")
    monkeypatch.setattr(housing, "lossgradient", kt.value_and_grad(_not_differentiable))
    with pytest.raises(SystemExit) as e:
        housing.main(["--epochs", "1"], prog="housing")
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("housing: error: ") and "cannot differentiate class definitions" in err
    assert "test_examples.py" in err and "Traceback" not in err


def test_gpu_flag_moves_the_model_and_the_data(monkeypatch, capsys):
    """The plumbing of --gpu, with a stand-in for kt.to_gpu."""
    need("housing.data")
    moved = []

    def to_gpu(x):
        moved.append(x)
        return x
    monkeypatch.setattr(kt, "gpu", lambda: True)
    monkeypatch.setattr(kt, "to_gpu", to_gpu)
    out = housing.main(["--gpu", "--epochs", "1"])
    assert len(moved) == 1
    w, x, y = moved[0][:3]
    assert w is out["w"] and x.shape == (13, 506) and y.shape == (1, 506)
