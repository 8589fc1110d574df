"""Pass 1, parse: a function's source to a tree, with its file and line numbers.

gast is used only here (it reads every Python version's syntax the same
way); the tree is converted straight back to the standard :mod:`ast` that
the other passes use.
"""

import ast
import copy
import inspect
import linecache
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
    given = getattr(fn, "__knet_st_tree__", None)
    if given is not None:               # a function defined inside (closures.function_of)
        return copy.deepcopy(given[0]), given[1]
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code else "<unknown>"
    if code is None:
        raise TransformError(f"cannot differentiate {fn!r}: it is not a Python function "
                             "(a gradient of a gradient is not supported yet)", filename)
    if getattr(fn, "__name__", "") == "<lambda>":
        return _lambda_function(code)
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


def _lambda_function(code):
    """A lambda's tree as ``def lambda_(args): return body``: the lambda is
    found in its file (or notebook cell) by the position of its code."""
    filename = code.co_filename
    lines = linecache.getlines(filename)
    if not lines:
        raise TransformError("cannot read the source of a lambda defined outside a file "
                             "or notebook cell: define the function with def in a .py "
                             "file", filename, code.co_firstlineno)
    try:
        module = gast.gast_to_ast(gast.parse("".join(lines)))
    except SyntaxError as exc:
        raise TransformError(f"cannot parse {filename}: {exc}", filename,
                             code.co_firstlineno) from None
    params = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    candidates = []
    for node in ast.walk(module):
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno and \
                [a.arg for a in node.args.posonlyargs + node.args.args +
                 node.args.kwonlyargs] == params:
            body = node.body
            candidates.append((((body.lineno, body.col_offset),
                                (body.end_lineno, body.end_col_offset)), node))
    # the lambda whose body holds the first instruction of the code (the
    # innermost, when lambdas nest)
    node = None
    positions = code.co_positions() if hasattr(code, "co_positions") else ()   # 3.11+
    if not positions and len(candidates) == 1:
        node = candidates[0][1]
    for line, _, col, _ in positions:
        inside = [(span, n) for span, n in candidates
                  if line is not None and col is not None and span[0] <= (line, col) < span[1]]
        if inside:
            node = min(inside, key=lambda c: (c[0][1][0] - c[0][0][0],
                                              c[0][1][1] - c[0][0][1]))[1]
            break
    if node is None:
        raise TransformError("cannot find this lambda in its source: define the function "
                             "with def", filename, code.co_firstlineno)
    ret = ast.copy_location(ast.Return(node.body), node.body)
    func = ast.copy_location(ast.FunctionDef(
        name="lambda_", args=node.args, body=[ret], decorator_list=[], returns=None,
        type_comment=None, type_params=[]), node)
    return func, Source(filename, 1, list(lines))
