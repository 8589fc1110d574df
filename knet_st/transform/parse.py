"""Pass 1, parse: a function's source to a tree, with its file and line numbers.

gast is used only here (it reads every Python version's syntax the same
way); the tree is converted straight back to the standard :mod:`ast` that
the other passes use.
"""

import ast
import inspect
import textwrap
from dataclasses import dataclass, field

import gast

from ..errors import TransformError


@dataclass
class Source:
    """Where a function's code came from, to point errors at the user's line."""

    filename: str
    first_line: int
    lines: list = field(repr=False)

    def line(self, lineno):
        """The text of file line ``lineno``, stripped ('' if unknown)."""
        index = lineno - self.first_line
        if 0 <= index < len(self.lines):
            return self.lines[index].strip()
        return ""

    def error(self, message, node=None):
        """A :class:`TransformError` pointing at ``node``'s line."""
        lineno = getattr(node, "lineno", None)
        if lineno is None:
            return TransformError(message, self.filename, None, None)
        return TransformError(message, self.filename, lineno, self.line(lineno))


def parse_function(fn):
    """Parses ``fn``'s source into an :class:`ast.FunctionDef` whose line numbers
    are those of its file.

    Returns ``(tree, source)``.  Raises :class:`TransformError` when the source
    cannot be found (a lambda, a builtin, code typed at an interactive prompt).
    """
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code else "<unknown>"
    if code is None:
        raise TransformError(f"cannot differentiate {fn!r}: it is not a Python function "
                             "(a gradient of a gradient is not supported yet)", filename)
    if getattr(fn, "__name__", "") == "<lambda>":
        raise TransformError("cannot differentiate a lambda: define it with def",
                             filename, code.co_firstlineno if code else None)
    try:
        # The code object, not the function: inspect would follow ``__wrapped__``
        # (functools.wraps) to the inner function and drop what the wrapper does.
        lines, first_line = inspect.getsourcelines(code)
    except (OSError, TypeError) as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        if filename.startswith("<"):            # not a file: a prompt, a string
            where = {"<stdin>": "at the interactive prompt",
                     "<string>": "in a string (python -c, exec)"}.get(
                         filename, f"in {filename}")
            reason = (f"cannot read the source of {name}: it was defined {where}, "
                      f"whose text Python does not keep; kt.grad reads the "
                      f"function's source, so define it in a .py file and import "
                      f"it (IPython and Jupyter cells work too)")
        else:
            reason = f"cannot read the source of {name}: {exc}"
        raise TransformError(reason, filename,
                             code.co_firstlineno if code else None) from None
    text = textwrap.dedent("".join(lines))
    tree = gast.gast_to_ast(gast.parse(text))
    func = tree.body[0]
    if not isinstance(func, ast.FunctionDef):
        raise TransformError(f"{fn!r} is not a plain function", filename, first_line)
    ast.increment_lineno(tree, first_line - 1)
    func.decorator_list = []
    return func, Source(filename, first_line, list(lines))
