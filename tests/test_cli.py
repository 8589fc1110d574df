"""The ``knet-st`` command: list, run, grad, bench, and its error messages."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from knet_st import cli, examples

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("KNET_ST_DATA")


def knet_st(*args, cwd=ROOT, env=None):
    """``python -m knet_st ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "knet_st", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env=env if env is not None else os.environ.copy())


# ---------------------------------------------------------------------------
# list, help
# ---------------------------------------------------------------------------

def test_list_one_line_each(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == examples.names()
    for name in ("housing", "mnist", "lenet", "charlm", "softmax", "mlp"):
        assert name in examples.names()


def test_python_m_knet_st_list():
    r = knet_st("list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("housing ")


def test_help_and_no_arguments(capsys):
    assert cli.main(["--help"]) == 0
    assert "run EXAMPLE" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown command" in err


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

def test_unknown_example_is_one_line_and_nonzero():
    r = knet_st("run", "nosuchmodel")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "unknown example 'nosuchmodel'" in lines[0] and "housing" in lines[0]
    assert r.stdout == ""


def test_run_help_lists_options(capsys):
    assert cli.main(["run", "mnist", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: knet-st run mnist")
    for option in ("--epochs", "--batchsize", "--lr", "--seed", "--gpu", "--save",
                   "--load", "--optimizer", "--plot", "--steps", "--model"):
        assert option in out


def test_run_bad_option_is_status_2(capsys):
    assert cli.main(["run", "housing", "--epochs", "many"]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_run_housing_in_a_fresh_process():
    if not DATA:
        pytest.skip("KNET_ST_DATA is not set")
    r = knet_st("run", "housing", "--epochs", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("('epoch', 0, 'loss', ")
    assert lines[3].startswith("('epoch', 3, 'loss', ")
    assert "\r" not in r.stderr           # no progress bar off a terminal


def test_run_alias_passes_the_model(capsys):
    if not DATA:
        pytest.skip("KNET_ST_DATA is not set")
    assert cli.main(["run", "mlp", "--epochs", "1", "--steps", "3",
                     "--ntrain", "500", "--ntest", "100"]) == 0
    out = capsys.readouterr()
    assert "mnist mlp 64" in out.err


def test_run_missing_data_without_network(tmp_path):
    env = dict(os.environ, KNET_ST_DATA=str(tmp_path))
    # an unreachable proxy: the download fails at once, with no real network use
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               no_proxy="", NO_PROXY="")
    r = knet_st("run", "housing", env=env)
    assert r.returncode == 1
    assert r.stderr.startswith("knet_st: downloading") or \
        r.stderr.startswith("knet-st run housing: error")
    assert "knet-st run housing: error: could not download housing.data" in r.stderr
    assert "KNET_ST_DATA" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------------
# grad
# ---------------------------------------------------------------------------

def test_grad_of_the_housing_example_compiles():
    r = knet_st("grad", "examples/housing.py:loss")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    compile(text, "x", "exec")
    assert "def loss_fwd" in text and "def loss_bwd" in text


def test_grad_of_a_module_function(capsys):
    assert cli.main(["grad", "knet_st.examples.charlm:loss"]) == 0
    text = capsys.readouterr().out
    compile(text, "x", "exec")
    assert "def lstm_bwd" in text


def test_grad_wrt(tmp_path, capsys):
    f = tmp_path / "model.py"
    f.write_text(textwrap.dedent("""\
        import numpy as np

        def f(a, b):
            return np.sum(a * np.sin(b))
        """))
    assert cli.main(["grad", f"{f}:f", "--wrt", "1"]) == 0
    one = capsys.readouterr().out
    compile(one, "x", "exec")
    assert "np.cos" in one
    assert cli.main(["grad", f"{f}:f", "--wrt", "0,1"]) == 0
    compile(capsys.readouterr().out, "x", "exec")


def test_grad_refusal_is_one_message(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text(textwrap.dedent("""\
        def loss(w):
            yield w * 2
        """))
    r = knet_st("grad", f"{f}:loss")
    assert r.returncode == 1
    assert r.stderr.startswith(f"knet-st: error: {f}:2: cannot differentiate generators")
    assert "Traceback" not in r.stderr


def test_grad_wrt_out_of_range_is_one_line():
    r = knet_st("grad", "examples/housing.py:loss", "--wrt", "5")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("knet-st: error: --wrt: grad(loss, wrt=5): no parameter at "
                        "position 5; loss(w, x, y) has 3 parameters, at positions "
                        "0 to 2\n")


@pytest.mark.parametrize("spec, message", [
    ("nofile.py:loss", "no such file"),
    ("examples/housing.py:nosuch", "has no function 'nosuch'"),
    ("examples/housing.py", "expected FILE_OR_MODULE:FUNCTION"),
    ("no_such_module_xyz:f", "cannot import module"),
    ("knet_st.examples:EXAMPLES", "not a function"),
])
def test_grad_bad_target(spec, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["grad", spec]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------

def test_bench_delegates(monkeypatch):
    from knet_st import bench
    seen = []
    monkeypatch.setattr(bench, "main", lambda argv=None, prog=None: seen.append((argv, prog)) or 3)
    assert cli.main(["bench", "--quick", "--models", "linreg"]) == 3
    assert seen == [(["--quick", "--models", "linreg"], "knet-st bench")]


def test_bench_help_names_the_command(capsys):
    assert cli.main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: knet-st bench") and "--columns" in out


def test_bench_bad_option_is_a_usage_error(capsys):
    assert cli.main(["bench", "--models", "resnet"]) == 2
    assert "knet-st bench: error: --models" in capsys.readouterr().err


def test_console_script_is_declared():
    from importlib import metadata
    try:
        eps = metadata.entry_points(group="console_scripts")
    except TypeError:                                          # Python < 3.10
        eps = metadata.entry_points().get("console_scripts", [])
    found = [ep for ep in eps if ep.name == "knet-st"]
    if not found:
        pytest.skip("knet_st is not installed with its entry points here")
    assert found[0].value == "knet_st.cli:main"
