"""Pass 1b, desugar: constructs written in terms of the supported subset,
before the fence checks it.

* ``f = lambda v: expr`` becomes ``def f(v): return expr``, and a lambda
  written inline (``helper(lambda v: v * 2, x)``) a ``def`` just before its
  statement (then lifted like any nested function);
* ``with cm as v: body`` becomes ``t = cm; v = t.__enter__(); body;
  t.__exit__(None, None, None)``: the context (``np.errstate(...)``) holds
  while the forward code of the body runs;
* ``try`` with ``except``: see :mod:`.handlers`; ``match``: :mod:`.patterns`;
* ``try: body finally: final`` becomes ``body; final``.  Where the body of a
  ``with`` or ``try`` may leave early (``return``, ``break``), the two parts
  stay in an ``ast.Try`` with no handlers that the jumps pass flattens,
  running ``final`` whatever the body did;
* ``map(f, xs)`` becomes ``[f(x) for x in xs]``;
* ``sorted(xs, key=f)``, ``min``/``max(xs, key=f)`` and
  ``functools.reduce(f, xs)`` become calls of nested functions with loops
  (:mod:`.callbacks`);
* ``del x`` is dropped (the name is not read again), ``del x[k]`` becomes
  ``x.__delitem__(k)``;
* a loop's ``else`` becomes ``if not broke: ...`` with a flag set by each
  ``break`` of that loop.
"""

import ast

from .callbacks import callbacks
from .handlers import try_except
from .patterns import match_statements
from .trees import InComprehensions, assign, name, rewrite



def desugar(func, source, builtin_names=frozenset()):
    """All the rewrites of this module, in order, on ``func`` (in place).
    ``builtin_names`` are the names that mean Python's builtins there (not
    rebound by the user): ``map`` is rewritten only where it is the builtin."""
    bound = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)} | {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    fresh = _fresh_names(func)
    if "map" in builtin_names and "map" not in bound:
        maps(func, fresh)
    lambdas(func, source, fresh)
    callbacks(func, fresh, frozenset(builtin_names) - bound)
    if hasattr(ast, "Match"):
        match_statements(func, source, fresh)
    deletions(func)
    loop_else(func, fresh)
    try_except(func, source, fresh)
    try_finally(func, source)
    with_blocks(func, source, fresh)
    return func


def _fresh_names(func):
    """``fresh(prefix)``: ``prefix1``, ``prefix2``... names ``func`` does not use."""
    taken = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | {
        n.name for n in ast.walk(func) if isinstance(n, ast.FunctionDef)}
    counts = {}

    def fresh(prefix):
        while True:
            counts[prefix] = counts.get(prefix, 0) + 1
            candidate = f"{prefix}{counts[prefix]}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    return fresh


def _def(name_, args, body, like):
    return ast.copy_location(ast.FunctionDef(
        name=name_, args=args, body=body, decorator_list=[], returns=None,
        type_comment=None, type_params=[]), like)


def lambdas(func, source, fresh):
    """Every lambda inside ``func`` becomes a nested ``def`` (see the module
    doc); ``fresh(prefix)`` gives new names (as in every rewrite here)."""

    def hoist(stmt):
        defs = []

        class Hoist(InComprehensions):
            def visit_FunctionDef(self, node):
                return node                       # its own statements are rewritten apart

            def visit_Lambda(self, node):
                self.generic_visit(node)
                reads = {n.id for n in ast.walk(node.body) if isinstance(n, ast.Name)}
                reads -= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
                if any(reads & bound for bound in self.inside):
                    raise source.error("cannot differentiate a lambda that reads the "
                                       "variable of the comprehension around it: write "
                                       "the loop out", node)
                fname = fresh("lambda")
                body = [ast.copy_location(ast.Return(node.body), node)]
                defs.append(_def(fname, node.args, body, stmt))
                return ast.copy_location(name(fname), node)

        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Lambda):
            body = [ast.copy_location(ast.Return(stmt.value.body), stmt)]
            new = _def(stmt.targets[0].id, stmt.value.args, body, stmt)
            new.body = rewrite(new.body, hoist)
            return [new]
        if isinstance(stmt, ast.FunctionDef):
            return [stmt]
        stmt = Hoist().visit(stmt)
        for d in defs:
            d.body = rewrite(d.body, hoist)
        return defs + [stmt]

    func.body = rewrite(func.body, hoist)
    return func


def maps(func, fresh):
    """``map(f, xs, ys)`` as ``[f(a, b) for a, b in zip(xs, ys)]`` (a list where
    Python gives an iterator: every use the compiler accepts reads it once)."""

    class Maps(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            if not (isinstance(node.func, ast.Name) and node.func.id == "map" and
                    len(node.args) >= 2 and not node.keywords and
                    not any(isinstance(a, ast.Starred) for a in node.args)):
                return node
            items = [fresh("item") for _ in node.args[1:]]
            if len(items) == 1:
                target, source_ = name(items[0], True), node.args[1]
            else:
                target = ast.Tuple(elts=[name(i, True) for i in items], ctx=ast.Store())
                source_ = ast.Call(func=name("zip"), args=node.args[1:], keywords=[])
            element = ast.Call(func=node.args[0], args=[name(i) for i in items], keywords=[])
            return ast.copy_location(ast.ListComp(elt=element, generators=[ast.comprehension(
                target=target, iter=source_, ifs=[], is_async=0)]), node)

    Maps().visit(func)
    return func


def _index_value(index):
    """A subscript's index as an expression (``a:b`` as ``slice(a, b, None)``)."""
    if isinstance(index, ast.Slice):
        return ast.Call(func=name("slice"), args=[
            part if part is not None else ast.Constant(None)
            for part in (index.lower, index.upper, index.step)], keywords=[])
    if isinstance(index, ast.Tuple):
        return ast.Tuple(elts=[_index_value(e) for e in index.elts], ctx=ast.Load())
    return index


def deletions(func):
    """``del x`` dropped, ``del x[k]`` as ``x.__delitem__(k)``; ``del x.a`` is
    left to the fence."""

    def one(stmt):
        if not isinstance(stmt, ast.Delete):
            return [stmt]
        out = []
        for target in stmt.targets:
            if isinstance(target, ast.Subscript):
                method = ast.Attribute(value=target.value, attr="__delitem__",
                                       ctx=ast.Load())
                out.append(ast.copy_location(ast.Expr(ast.Call(
                    func=method, args=[_index_value(target.slice)], keywords=[])), stmt))
            elif isinstance(target, (ast.Tuple, ast.List)):
                out += one(ast.copy_location(ast.Delete(targets=target.elts), stmt))
            elif not isinstance(target, ast.Name):
                out.append(ast.copy_location(ast.Delete(targets=[target]), stmt))
        return out

    func.body = rewrite(func.body, one)
    return func


def loop_else(func, fresh):
    """``for ...: ... else: tail`` as a flagged loop then ``if not broke: tail``."""

    def one(stmt):
        if not isinstance(stmt, (ast.For, ast.While)) or not stmt.orelse:
            return [stmt]
        tail, stmt.orelse = stmt.orelse, []
        breaks = [s for s in _exits(stmt.body) if isinstance(s, ast.Break)]   # its own
        if not breaks:
            return [stmt] + tail
        flag = fresh("broke")
        marked = {id(b) for b in breaks}

        def mark(s):
            if id(s) in marked:
                return [assign(flag, ast.Constant(True), s), s]
            return [s]

        stmt.body = _rewrite_loop_body(stmt.body, mark)
        test = ast.UnaryOp(op=ast.Not(), operand=name(flag))
        return [assign(flag, ast.Constant(False), stmt), stmt,
                ast.copy_location(ast.If(test=test, body=tail, orelse=[]), stmt)]

    func.body = rewrite(func.body, one)
    return func


def _rewrite_loop_body(body, fn):
    """``rewrite`` that does not enter nested loops or functions."""
    out = []
    for stmt in body:
        if not isinstance(stmt, (ast.For, ast.While, ast.FunctionDef)):
            for field in ("body", "orelse", "finalbody"):
                if hasattr(stmt, field):
                    setattr(stmt, field, _rewrite_loop_body(getattr(stmt, field), fn))
        out += fn(stmt)
    return out


def _exits(body, in_loop=False):
    """The statements that would leave a block early: any ``return``, a
    ``break`` or ``continue`` not inside a loop of the block."""
    found = []
    for stmt in body:
        if isinstance(stmt, ast.Return) or not in_loop and \
                isinstance(stmt, (ast.Break, ast.Continue)):
            found.append(stmt)
        if isinstance(stmt, ast.FunctionDef):        # its returns are its own
            continue
        inner = in_loop or isinstance(stmt, (ast.For, ast.While))
        for field in ("body", "orelse", "finalbody"):
            found += _exits(getattr(stmt, field, []), inner)
    return found


def _body_then_final(body, final, like, source):
    """``body`` followed by ``final``, which runs however ``body`` ends: kept as
    an ``ast.Try`` for the jumps pass when ``body`` may leave early."""
    jumps = _exits(final)
    if jumps:
        raise source.error("cannot differentiate 'return', 'break' or 'continue' "
                           "inside a 'finally' block", jumps[0])
    if not _exits(body):
        return body + final
    return [ast.copy_location(ast.Try(body=body, handlers=[], orelse=[],
                                      finalbody=final), like)]


def try_finally(func, source):
    """``try: body finally: final`` without handlers, as ``body; final``."""

    def one(stmt):
        if isinstance(stmt, ast.Try) and not stmt.handlers and not stmt.orelse:
            return _body_then_final(stmt.body, stmt.finalbody, stmt, source)
        return [stmt]

    func.body = rewrite(func.body, one)
    return func


def with_blocks(func, source, fresh):
    """Rewrites the ``with`` statements of ``func`` (see the module doc)."""

    def one(stmt):
        if not isinstance(stmt, ast.With):
            return [stmt]
        out = []
        exits = []
        for item in stmt.items:
            manager = fresh("_context")
            enter = ast.Call(func=ast.Attribute(value=name(manager), attr="__enter__",
                                                ctx=ast.Load()), args=[], keywords=[])
            out.append(assign(manager, item.context_expr, stmt))
            out.append(ast.copy_location(
                ast.Assign(targets=[item.optional_vars], value=enter)
                if item.optional_vars is not None else ast.Expr(enter), stmt))
            exits.insert(0, ast.copy_location(ast.Expr(ast.Call(
                func=ast.Attribute(value=name(manager), attr="__exit__", ctx=ast.Load()),
                args=[ast.Constant(None)] * 3, keywords=[])), stmt))
        return out + _body_then_final(stmt.body, exits, stmt, source)

    func.body = rewrite(func.body, one)
    return func
