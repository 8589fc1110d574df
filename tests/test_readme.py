"""The README's Python examples run as written."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def run_block(code, tmp_path, namespace):
    """Runs README code from a file of its own (kt.grad reads function source)."""
    path = tmp_path / "readme_block.py"
    path.write_text(code)
    exec(compile(code, str(path), "exec"), namespace)


@pytest.mark.skipif(not os.environ.get("KNET_ST_DATA"), reason="KNET_ST_DATA is not set")
def test_first_steps(capsys, tmp_path):
    run_block(blocks()[0], tmp_path, {})
    losses = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert len(losses) == 10 and losses[-1] < 60 < losses[0]


def test_generated_source_shown_is_current():
    """The source printed in the README is what the compiler writes today."""
    import knet_st as kt

    def predict(w, x):
        return w[0] @ x + w[1]

    def loss(w, x, y):
        return np.sum((y - predict(w, x)) ** 2) / y.shape[1]

    import ast
    shown = blocks()[1]
    # Compared as trees: Python 3.10's unparse writes tuple targets in parentheses.
    assert ast.dump(ast.parse(kt.source(kt.grad(loss)))) == ast.dump(ast.parse(shown))


def test_training_utilities(tmp_path):
    import knet_st as kt
    code = blocks()[2]
    rng = np.random.default_rng(0)
    xtrn = rng.random((784, 300), dtype=np.float32)
    ytrn = rng.integers(0, 10, 300)

    def loss(w, x, y):
        h = kt.relu(w[0] @ x + w[1])
        return kt.nll(w[2] @ h + w[3], y)

    namespace = {"kt": kt, "xtrn": xtrn, "ytrn": ytrn, "lossgradient": kt.grad(loss)}
    cwd = os.getcwd()
    try:
        os.chdir(Path(__file__).resolve().parent.parent / "tests")
        run_block(code, tmp_path, namespace)
    finally:
        if Path("model.npz").exists():
            os.remove("model.npz")
        os.chdir(cwd)
    assert len(namespace["w"]) == 4


def test_adding_a_primitive(tmp_path):
    import knet_st as kt
    run_block(blocks()[3], tmp_path, {})
    x = np.array([0.3, -1.2])
    np.testing.assert_allclose(kt.grad(lambda_free_sinh)(x), np.cosh(x))


def lambda_free_sinh(x):
    return np.sum(np.sinh(x))


def test_derivatives_of_derivatives(tmp_path):
    run_block(blocks()[4], tmp_path, {})
