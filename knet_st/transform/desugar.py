"""Pass 1b, desugar: two constructs written in terms of the supported subset,
before the fence checks it.

* ``f = lambda v: expr`` becomes ``def f(v): return expr`` (then lifted like
  any nested function);
* ``with cm as v: body`` becomes ``t = cm; v = t.__enter__(); body;
  t.__exit__(None, None, None)``: the context (``np.errstate(...)``) holds
  while the forward code of the body runs.  A ``return``, ``break`` or
  ``continue`` inside it is refused: it would skip ``__exit__``.
"""

import ast

from .trees import rewrite


def named_lambdas(func):
    """``f = lambda v: expr`` inside ``func`` becomes ``def f(v): return expr``
    (then lifted like any nested function).  Other lambdas stay (and are
    refused by the fence)."""

    def one(stmt):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Lambda):
            body = ast.copy_location(ast.Return(stmt.value.body), stmt)
            stmt = ast.copy_location(ast.FunctionDef(
                name=stmt.targets[0].id, args=stmt.value.args, body=[body],
                decorator_list=[], returns=None, type_comment=None, type_params=[]), stmt)
        return [stmt]

    func.body = rewrite(func.body, one)
    return func



def _exits(body, in_loop=False):
    """The statements that would leave a ``with`` body early: any ``return``,
    a ``break`` or ``continue`` not inside a loop of the body."""
    found = []
    for stmt in body:
        if isinstance(stmt, ast.Return) or not in_loop and \
                isinstance(stmt, (ast.Break, ast.Continue)):
            found.append(stmt)
        if isinstance(stmt, ast.FunctionDef):        # its returns are its own
            continue
        inner = in_loop or isinstance(stmt, (ast.For, ast.While))
        for field in ("body", "orelse"):
            found += _exits(getattr(stmt, field, []), inner)
    return found


def with_blocks(func, source):
    """Rewrites the ``with`` statements of ``func`` (see the module doc)."""
    counter = [0]

    def one(stmt):
        if not isinstance(stmt, ast.With):
            return [stmt]
        out = []
        jumps = _exits(stmt.body)
        if jumps:
            raise source.error("cannot differentiate 'return', 'break' or 'continue' "
                               "inside a 'with' block: move it after the block",
                               jumps[0])
        exits = []
        for item in stmt.items:
            counter[0] += 1
            manager = f"_context{counter[0]}"
            enter = ast.Call(func=ast.Attribute(value=ast.Name(manager, ast.Load()),
                                                attr="__enter__", ctx=ast.Load()),
                             args=[], keywords=[])
            out.append(ast.copy_location(
                ast.Assign(targets=[ast.Name(manager, ast.Store())],
                           value=item.context_expr), stmt))
            out.append(ast.copy_location(
                ast.Assign(targets=[item.optional_vars], value=enter)
                if item.optional_vars is not None else ast.Expr(enter), stmt))
            exits.insert(0, ast.copy_location(ast.Expr(ast.Call(
                func=ast.Attribute(value=ast.Name(manager, ast.Load()),
                                   attr="__exit__", ctx=ast.Load()),
                args=[ast.Constant(None)] * 3, keywords=[])), stmt))
        return out + stmt.body + exits

    func.body = rewrite(func.body, one)
    return func
