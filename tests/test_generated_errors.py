"""An error raised while generated code runs points at the user's code: the
traceback names the user's file, line and source, and a note lists the
generated statements of that line."""

import sys
import textwrap
import traceback

import numpy as np
import pytest

import knet_st as kt

MODULE = textwrap.dedent("""
    import numpy as np


    def predict(w, x):
        h = np.tanh(w[0] @ x)
        return w[1] @ h


    def loss(w, x):
        return np.sum(predict(w, x) ** 2)


    def odd(w, x):
        y = w[0] @ x
        return np.sum(np.sqrt(y) * x[0, 0])
""")


@pytest.fixture
def mod(tmp_path, monkeypatch):
    path = tmp_path / "usermod.py"
    path.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("usermod", None)
    import usermod
    return usermod, str(path)


def test_forward_error_names_the_users_line(mod):
    usermod, path = mod
    w = [np.ones((3, 4)), np.ones((2, 5))]          # w[1] @ h does not fit
    with pytest.raises(ValueError) as info:
        kt.grad(usermod.loss)(w, np.ones((4, 2)))
    text = "".join(traceback.format_exception(info.value))
    assert f'File "{path}", line 7, in predict_fwd' in text
    assert "return w[1] @ h" in text
    note = "\n".join(getattr(info.value, "__notes__", []))
    if sys.version_info >= (3, 11):
        assert "predict_fwd" in note and "line 7" in note and "@ h" in note


def test_backward_error_names_the_users_line(mod):
    usermod, path = mod
    g = kt.grad(usermod.loss)
    fwd, bwd = g.compiled()[:2]
    w = [np.ones((3, 4)), np.ones((2, 3))]
    out, saved = fwd(w, np.ones((4, 2)))
    with pytest.raises(Exception) as info:
        bwd(saved, np.ones((7, 7, 7)))                # an adjoint of the wrong shape
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.filename == path and f.name.endswith("_bwd") for f in frames)


def test_generated_source_is_still_shown(mod):
    usermod, _ = mod
    source = kt.source(kt.grad(usermod.loss))
    assert "def predict_fwd(w, x):" in source and "def loss_bwd(saved, dout):" in source
