"""Errors that point at the user's code: bad ``wrt``, a refused construct
(the traceback ends at the user's line), a function whose source cannot be
read, and functions from IPython or Jupyter cells."""

import linecache
import subprocess
import sys
import textwrap
import traceback

import numpy as np
import pytest

import knet_st as kt


def loss(w, x, y):
    return np.sum((w @ x - y) ** 2)


@pytest.mark.parametrize("wrt, error, message", [
    (1.5, TypeError, "wrt must be a parameter position (an int such as 0) or a "
                     "tuple of them, not float 1.5"),
    ("w", TypeError, "not names; 'w' is at position 0: wrt=0"),
    ("z", TypeError, "loss(w, x, y) has 3 parameters, at positions 0 to 2"),
    (3, ValueError, "no parameter at position 3; loss(w, x, y) has 3 parameters"),
    (-1, ValueError, "no parameter at position -1"),
    ((0, 5), ValueError, "no parameter at position 5"),
    ((), ValueError, "no parameter to differentiate"),
    ((1, 1), ValueError, "position 1 is given twice"),
    (True, TypeError, "not bool True"),
])
def test_bad_wrt_says_which_positions_exist(wrt, error, message):
    with pytest.raises(error) as e:
        kt.grad(loss, wrt=wrt)
    assert message in str(e.value)
    assert str(e.value).startswith(f"grad(loss, wrt={wrt!r}): ")


def test_good_wrt_forms():
    w, x, y = np.ones((1, 2)), np.ones((2, 3)), np.zeros((1, 3))
    assert kt.grad(loss, wrt=np.int64(0))(w, x, y).shape == (1, 2)
    dw, dx = kt.grad(loss, wrt=[0, 1])(w, x, y)
    assert dw.shape == (1, 2) and dx.shape == (2, 3)


def helper_with_yield(w):
    yield w * 2.0


def loss_with_yield(w):
    return np.sum(helper_with_yield(w))


def test_refusal_traceback_ends_at_the_users_line():
    with pytest.raises(kt.TransformError) as e:
        kt.grad(loss_with_yield)(np.ones(3))
    frames = traceback.extract_tb(e.value.__traceback__)
    last = frames[-1]
    assert last.filename == __file__ and last.name == "helper_with_yield"
    assert last.lineno == helper_with_yield.__code__.co_firstlineno + 1
    assert last.line == "yield w * 2.0"
    assert not any("transform" in f.filename.replace("\\", "/").split("knet_st/")[-1]
                   for f in frames if "knet_st" in f.filename)
    assert len([f for f in frames if "knet_st" in f.filename]) <= 2
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_refusal_traceback_printed_by_python(tmp_path):
    mod = tmp_path / "model.py"
    mod.write_text(textwrap.dedent("""\
        import numpy as np
        import knet_st as kt

        def loss(w):
            yield np.sum(w)

        kt.grad(loss)(np.ones(2))
        """))
    r = subprocess.run([sys.executable, str(mod)], capture_output=True, text=True,
                       timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 1
    # the frame, its line, then the message (which repeats the line)
    assert lines[-4:-2] == [f'  File "{mod}", line 5, in loss', "    yield np.sum(w)"]
    assert lines[-2].startswith(f"knet_st.errors.TransformError: {mod}:5: ")
    assert lines[-1] == "    yield np.sum(w)"
    assert "transform" not in r.stderr.replace("knet_st.errors", "")
    assert "^" not in "".join(lines[-4:])          # nothing underlined


def test_source_that_cannot_be_read_is_one_clear_message():
    namespace = {"np": np}
    exec(compile("def f(w):\n    return np.sum(w * w)\n", "<string>", "exec"), namespace)
    with pytest.raises(kt.TransformError) as e:
        kt.grad(namespace["f"])(np.ones(2))
    text = str(e.value)
    assert "cannot read the source of f: it was defined in a string" in text
    assert "define it in a .py file" in text


def test_python_dash_c_message():
    code = ("import numpy as np, knet_st as kt\n"
            "def f(w): return np.sum(w * w)\n"
            "kt.grad(f)(np.ones(2))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith(
        "knet_st.errors.TransformError: <string>:2: cannot read the source of f")


@pytest.mark.parametrize("filename", ["<ipython-input-7-0123456789ab>",
                                      "/tmp/ipykernel_4242/1234567890.py"])
def test_functions_of_ipython_and_jupyter_cells(filename):
    """IPython keeps each cell's text in linecache under such a name (with no
    modification time, so that it is never checked against a file)."""
    cell = "import numpy as np\n\ndef f(w):\n    return np.sum(np.sin(w))\n"
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    try:
        namespace = {}
        exec(compile(cell, filename, "exec"), namespace)
        w = np.array([0.1, 0.2])
        np.testing.assert_allclose(kt.grad(namespace["f"])(w), np.cos(w))
    finally:
        linecache.cache.pop(filename, None)
