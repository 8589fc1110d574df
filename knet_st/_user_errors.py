"""Errors at the user's line: a bad ``wrt``, a compiler refusal raised from
a frame at the offending line, a note on errors raised in generated code."""

import inspect
import linecache

import numpy as np

from .errors import TransformError


def _note_generated(exc, lines):
    """Adds to an error raised in generated code a note naming the generated
    function and the statements it ran for the user's line (the traceback
    itself already shows the user's file and line)."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in lines and lines[code.co_name][0] == code.co_filename:
            last = (code.co_name, code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if last is None:
        return
    name, filename, line = last
    if isinstance(exc, TransformError):
        if exc.lineno is None:          # a run-time refusal: at the user's line
            exc.__init__(exc.reason, filename, line,
                         linecache.getline(filename, line).strip())
        return
    if not hasattr(exc, "add_note"):
        return
    generated = lines[name][1].get(line, [])
    text = "".join(f"\n    {s}" for s in generated)
    exc.add_note(f"knet_st: raised in {name}, the code knet_st generated for "
                 f"{filename}, line {line}{', which reads:' if text else ''}{text}\n"
                 f"(print(kt.source(g)) shows all the generated code)")


def check_wrt(fn, signature, wrt):
    """``wrt`` as a tuple of parameter positions of ``fn``; a ``TypeError``
    (not a position) or ``ValueError`` (no such parameter) that says which
    positions there are otherwise."""
    params = [p for p in signature.parameters.values()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    names = [p.name for p in params]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in signature.parameters.values())
    name = getattr(fn, "__name__", "the function")
    about = (f"{name}({', '.join(names)}) has {len(names)} parameter"
             f"{'s' * (len(names) != 1)}"
             + (f", at positions 0 to {len(names) - 1}" if len(names) > 1 else ""))
    items = list(wrt) if isinstance(wrt, (tuple, list)) else [wrt]
    if not items:
        raise ValueError(f"grad({name}, wrt={wrt!r}): no parameter to differentiate; "
                         f"{about}")
    out = []
    for i in items:
        if isinstance(i, str):
            hint = (f"; {i!r} is at position {names.index(i)}: wrt={names.index(i)}"
                    if i in names else f"; {about}")
            raise TypeError(f"grad({name}, wrt={wrt!r}): wrt takes parameter positions "
                            f"(0, 1, ... or a tuple of them), not names{hint}")
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"grad({name}, wrt={wrt!r}): wrt must be a parameter "
                            f"position (an int such as 0) or a tuple of them, not "
                            f"{type(i).__name__} {i!r}")
        if not 0 <= i < len(names) and not (i >= 0 and varargs):
            raise ValueError(f"grad({name}, wrt={wrt!r}): no parameter at position "
                             f"{i}; {about}")
        if int(i) in out:
            raise ValueError(f"grad({name}, wrt={wrt!r}): position {i} is given twice")
        out.append(int(i))
    return tuple(out)


def _raise_at_user_line(error, fn):
    """``(code, namespace)`` whose ``exec`` raises ``error`` (a
    :class:`TransformError` from the compiler) from a frame at the user's
    offending line, in the function that holds it: the traceback then ends
    there instead of in the compiler's own frames."""
    error.__cause__ = None
    error.__suppress_context__ = True
    error = error.with_traceback(None)
    filename, lineno = error.filename, error.lineno
    if not filename or not lineno or lineno < 1:
        return "raise error", {"error": error}
    name = _function_at(fn, filename, lineno) or "<module>"
    # a raise with the user's line's indentation, spanning two lines, so
    # that the traceback underlines nothing in the user's line
    text = linecache.getline(filename, lineno)
    indent = text[:len(text) - len(text.lstrip())] if lineno > 1 else ""
    head = "\n" * (lineno - 2) + "if 1:\n" if indent else "\n" * (lineno - 1)
    code = compile(head + indent + "raise \\\n error", filename, "exec")
    return code.replace(co_name=name), {"error": error}


def _function_at(fn, filename, lineno):
    """The name of the innermost function of ``filename`` whose code spans
    line ``lineno``, among ``fn`` and the functions of its module."""
    candidates = [fn] + [v for v in getattr(fn, "__globals__", {}).values()
                         if inspect.isfunction(v)]
    best = None
    stack = [f.__code__ for f in candidates if hasattr(f, "__code__")]
    seen = set()
    while stack:
        code = stack.pop()
        if id(code) in seen or code.co_filename != filename:
            continue
        seen.add(id(code))
        lines = [line for _, _, line in code.co_lines() if line is not None]
        if lines and min(min(lines), code.co_firstlineno) <= lineno <= max(lines):
            span = max(lines) - code.co_firstlineno
            if best is None or span < best[0]:
                best = (span, code.co_name)
        stack += [c for c in code.co_consts if inspect.iscode(c)]
    return best[1] if best else None
