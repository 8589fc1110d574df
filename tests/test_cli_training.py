"""The training command line: values checked before training, resuming,
the epoch lines, --steps, --threads, --shuffle, a diverging run, the .[gpu]
extras."""

import ast
import configparser
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knet_st import _threads
from knet_st.examples import _common, housing, lenet, mnist

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("KNET_ST_DATA")
SMALL = ["--ntrain", "600", "--ntest", "200"]


def knet_st(*args, cwd=ROOT):
    """``python -m knet_st ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "knet_st", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def need_data(*files):
    if not DATA:
        pytest.skip("KNET_ST_DATA is not set")
    for f in files:
        if not os.path.isfile(os.path.join(DATA, f)):
            pytest.skip(f"{f} is not in KNET_ST_DATA")


def tuples(text):
    return [ast.literal_eval(line) for line in text.splitlines()
            if line.startswith("('epoch'")]


# ---------------------------------------------------------------------------
# bad values: one line, no traceback, before any training
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, status, message", [
    (["housing", "--plot", "out.xyz"], 1,
     "knet-st run housing: error: --plot out.xyz: unknown image format .xyz"),
    (["housing", "--plot", "curves"], 1, "unknown image format (no extension)"),
    (["housing", "--save", "/missing/dir/m.npz"], 1,
     "knet-st run housing: error: --save /missing/dir/m.npz: no such folder: "
     "/missing/dir"),
    (["housing", "--save", "."], 1, "--save .: is a folder, not a file"),
    (["lenet", "--resume", "/missing/m.npz"], 1,
     "knet-st run lenet: error: --resume /missing/m.npz: no such file"),
    (["mnist", "--load", "a.npz", "--resume", "b.npz"], 1,
     "--load and --resume exclude each other"),
    (["mlp", "--model", "softmax"], 2,
     "knet-st run mlp: error: --model softmax contradicts knet-st run mlp, which "
     "is --model mlp"),
    (["charlm", "--gclip", "-1"], 2, "argument --gclip: must be 0 or more, got -1"),
    (["housing", "--threads", "0"], 2, "argument --threads: must be at least 1"),
])
def test_bad_values_are_one_line_before_training(args, status, message):
    r = knet_st("run", *args)
    assert r.returncode == status
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""                      # nothing trained, nothing reported
    if status == 1 or "contradicts" in message:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_plot_formats_are_those_of_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib.backend_bases import FigureCanvasBase
    assert set(_common.PLOT_FORMATS) == set(FigureCanvasBase.get_supported_filetypes())
    assert matplotlib


# ---------------------------------------------------------------------------
# a diverging run
# ---------------------------------------------------------------------------

def test_a_diverging_run_stops_with_one_line():
    need_data("housing.data")
    r = knet_st("run", "housing", "--lr", "5", "--epochs", "100")
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert err[0].startswith("knet-st run housing: error: loss is inf ")
    assert err[0].endswith(": try a smaller --lr")
    assert "RuntimeWarning" not in r.stderr
    assert all(np.isfinite(h[3]) for h in tuples(r.stdout))


def test_progress_names_the_epoch_and_step_of_a_nan():
    bar = _common.Progress(10, "epoch 3", enabled=False, epoch=3)
    for value in (np.float32(2.0), 1.5) + (np.float64(1.0),) * 9:
        bar.update(value)
    with pytest.raises(_common.Diverged) as e:
        bar.update(np.float32("nan"))
    assert str(e.value) == "loss is nan at epoch 3, step 12: try a smaller --lr"


class _DeviceScalar:
    """A loss that stays on a device until float() is called (as CuPy's)."""

    def __init__(self, v):
        self.v = v

    def __float__(self):
        return self.v


def test_device_losses_are_checked_when_read():
    bar = _common.Progress(3, "epoch 1", enabled=False, epoch=1)
    bar.update(_DeviceScalar(1.0))
    bar.update(_DeviceScalar(float("inf")))          # no wait for the device here
    with pytest.raises(_common.Diverged, match="loss is inf at epoch 1, step 2"):
        bar.losses


# ---------------------------------------------------------------------------
# epoch lines, --steps, --shuffle, --threads
# ---------------------------------------------------------------------------

def test_epoch_lines_show_training_loss_and_time(capsys):
    need_data("housing.data")
    out = housing.main(["--epochs", "2"])
    h = out["history"]
    assert h[0] == ("epoch", 0, "loss", h[0][3])
    for line in h[1:]:
        assert line[2::2] == ("loss", "trnloss", "time")
        assert line[7] >= 0
    # one full-batch step an epoch: its loss is that of the weights before it
    assert h[1][5] == h[0][3] and h[2][5] == h[1][3]
    assert out["losses"] == pytest.approx([h[0][3], h[1][3]], rel=1e-4)
    assert tuples(capsys.readouterr().out) == h


def test_housing_prints_the_readme_figures(capsys):
    need_data("housing.data")
    h = housing.main([])["history"]
    readme = (ROOT / "README.md").read_text()
    assert f"{h[0][3]:.1f}" == "591.3" and "591.3" in readme
    assert f"{h[1][3]:.1f}" == "367.3" and "367.3" in readme
    assert f"{h[10][3]:.2f}" == "29.71" and "29.71" in readme


def test_steps_bound_evaluation_too():
    class Args:
        steps, progress = 3, "off"
    assert list(_common.evaluating(list(range(10)), Args, "tst")) == [0, 1, 2]
    Args.steps = None
    assert len(list(_common.evaluating(list(range(10)), Args, "tst"))) == 10


def test_steps_bound_lenet_evaluation(monkeypatch, capsys):
    need_data("t10k-images-idx3-ubyte.gz")
    seen = []
    real = _common.accuracy

    def counting(predict, w, data):
        batches = list(data)
        seen.append(sum(len(y) for _, y in batches))
        return real(predict, w, batches)
    monkeypatch.setattr(_common, "accuracy", counting)
    lenet.main(["--steps", "2", "--epochs", "1"])
    assert seen == [2 * 500] * 4               # trn and tst, before and after


def test_shuffle_defaults_and_help(capsys):
    assert mnist.build_parser().parse_args([]).shuffle is True
    assert lenet.build_parser().parse_args([]).shuffle is True
    assert mnist.build_parser().parse_args(["--no-shuffle"]).shuffle is False
    assert housing.build_parser().parse_args([]).shuffle is False
    with pytest.raises(SystemExit):
        mnist.main(["--help"], prog="mnist")
    text = " ".join(capsys.readouterr().out.split())
    assert "--shuffle, --no-shuffle" in text
    assert "(default on; --no-shuffle for the tutorial's fixed order" in text


def test_threads_sets_the_blas_threads(capsys):
    before = _threads.blas_threads()
    if before is None:
        pytest.skip("no OpenBLAS, MKL or BLIS found in this process")
    try:
        args = _common.finish(housing.build_parser().parse_args(["--threads", "1"]))
        assert args.threads == 1 and _threads.blas_threads() == 1
    finally:
        _threads.set_blas_threads(before)
    assert _threads.blas_threads() == before


# ---------------------------------------------------------------------------
# --resume
# ---------------------------------------------------------------------------

def test_resume_continues_bit_identically(tmp_path, capsys):
    """Two epochs in one run, or one, saved, and one more with --resume: the
    same weights, to the bit (Adam's moments, the shuffling order)."""
    need_data("train-images-idx3-ubyte.gz")
    common = ["--model", "mlp", "--optimizer", "adam", *SMALL, "--batchsize", "50"]
    whole = mnist.main([*common, "--epochs", "2", "--save", str(tmp_path / "a.npz")])
    first = mnist.main([*common, "--epochs", "1", "--save", str(tmp_path / "b.npz")])
    assert first["history"][1] == whole["history"][1][:6] + first["history"][1][6:]
    again = mnist.main(["--resume", str(tmp_path / "b.npz"), *SMALL, "--batchsize", "50",
                        "--epochs", "2", "--save", str(tmp_path / "b.npz")])
    for a, b in zip(whole["w"], again["w"]):
        assert a.tobytes() == b.tobytes()
    assert again["history"][0] == first["history"][1][:6]      # no training yet
    assert again["history"][1][:-1] == whole["history"][2][:-1]  # all but the time
    assert "resuming" in capsys.readouterr().err
    mode = stat.S_IMODE(os.stat(tmp_path / "a.npz").st_mode)
    assert mode == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_resume_refusals(tmp_path, capsys):
    need_data("housing.data")
    path = str(tmp_path / "h.npz")
    housing.main(["--epochs", "2", "--optimizer", "momentum", "--save", path])
    capsys.readouterr()
    for argv, message in [
        (["--resume", path, "--lr", "0.3"],
         "--resume continues with the saved optimizer, momentum with lr 0.001, "
         "not --lr 0.3"),
        (["--resume", path, "--optimizer", "adam"], "not --optimizer adam"),
        (["--resume", path, "--epochs", "2"],
         "it was saved after epoch 2, and --epochs 2 leaves nothing to train"),
    ]:
        with pytest.raises(SystemExit) as e:
            housing.main(argv, prog="housing")
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    housing.main(["--load", path, "--save", str(tmp_path / "w.npz")])
    with pytest.raises(SystemExit):
        housing.main(["--resume", str(tmp_path / "w.npz")], prog="housing")
    assert "holds a model but no training state" in capsys.readouterr().err
    out = housing.main(["--resume", path, "--epochs", "3"])
    assert [h[1] for h in out["history"]] == [2, 3]


# ---------------------------------------------------------------------------
# packaging
# ---------------------------------------------------------------------------

def test_gpu_extras_install_prebuilt_cupy_wheels():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert extras["gpu"].split() == ["cupy-cuda12x>=13"]
    assert extras["gpu-cuda13"].split() == ["cupy-cuda13x>=13.6"]
    from knet_st.runtime import backend
    assert "knet_st[gpu]" in backend._NO_GPU_MESSAGE
    assert "knet_st[gpu-cuda13]" in backend._NO_GPU_MESSAGE
