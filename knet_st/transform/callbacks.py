"""Part of the desugar pass: Python's functions that call a function given to
them, written as code the compiler follows.

* ``sorted(xs, key=k, reverse=r)`` becomes a call of a nested function::

      def sorted1(items1, reverse1):
          items1 = list(items1)
          keys1 = [k(item) for item in items1]
          order1 = sort_order(keys1, reverse1)
          return [items1[i] for i in order1]

  (``keys1 = items1`` without a key): the keys decide the order only, and
  the result is a list of elements of ``xs``, so the gradient flows to the
  elements chosen;
* ``min(xs, key=k)`` and ``max(xs, key=k)`` (or ``max(a, b, key=k)``) the
  same, returning ``items1[extreme_position(keys1, 'max')]``;
* ``functools.reduce(f, xs)`` and ``functools.reduce(f, xs, init)`` a
  nested function with a ``for`` loop ``acc = f(acc, item)``.

``sort_order`` and ``extreme_position`` are runtime helpers without gradient
(Python's own ``sorted``, ``min`` and ``max`` over the positions: the same
comparisons, the same order for equal keys).  The nested function is
defined just before the statement and the call stays where it was, so what
the statement evaluates, and when, is unchanged; the pass lifts it like any
nested function.  A key that is not a name (``key=lambda``: a name by now, or
a function of a module: ``key=np.linalg.norm``) is left as it was (refused).
"""

import ast
import copy

from .facts import set_fact
from .trees import InComprehensions, name, rewrite



def callbacks(func, fresh, builtin_names):
    """Rewrites the calls of ``sorted``, ``min``/``max`` with ``key=`` and
    ``functools.reduce`` in ``func`` (see the module doc); ``builtin_names``
    says which of ``sorted``, ``min``, ``max``, ``reduce`` and
    ``functools.reduce`` mean those functions there."""

    def hoist(stmt):
        if isinstance(stmt, ast.FunctionDef):
            return [stmt]                     # its body is rewritten on its own
        defs = []
        _Calls(fresh, builtin_names, defs).visit(stmt)
        return defs + [stmt]

    func.body = rewrite(func.body, hoist)
    return func


class _Calls(InComprehensions):
    def __init__(self, fresh, builtin_names, defs):
        super().__init__()
        self.fresh, self.builtin_names, self.defs = fresh, builtin_names, defs

    def visit_Lambda(self, node):
        return node               # none left by now; its body would be another scope

    def visit_Call(self, node):
        self.generic_visit(node)
        called = _dotted(node.func)
        if called not in self.builtin_names or \
                any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            return node
        keywords = {k.arg: k.value for k in node.keywords}
        function = keywords.get("key") if called != "reduce" and \
            called != "functools.reduce" else node.args[0] if node.args else None
        if function is not None and not self._followable(function):
            return node
        if called == "sorted" and len(node.args) == 1 and set(keywords) <= {"key", "reverse"}:
            return self._call("sorted", _sorted, node.args + [
                keywords.get("reverse", ast.Constant(False))], function, node)
        if called in ("min", "max") and node.args and set(keywords) == {"key"}:
            items = node.args[0] if len(node.args) == 1 else \
                ast.List(elts=node.args, ctx=ast.Load())
            return self._call(called, _extreme(called), [items], function, node)
        if called in ("reduce", "functools.reduce") and len(node.args) in (2, 3) and \
                not keywords:
            return self._call("reduce", _reduce_from if len(node.args) == 3 else _reduce,
                              node.args[1:], function, node)
        return node

    def _followable(self, function):
        """Whether the function given can be called again inside the nested
        function: a name (not one a comprehension around binds) or a
        module's function (``np.linalg.norm``)."""
        names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
        return _dotted(function) is not None and not any(names & b for b in self.inside)

    def _call(self, kind, template, args, function, node):
        """The nested function ``template`` writes, defined before the
        statement, and the call of it that replaces ``node``."""
        fname = self.fresh(kind)
        self.defs.append(template(fname, function, self.fresh, node))
        return ast.copy_location(ast.Call(func=name(fname), args=args, keywords=[]), node)


def _dotted(node):
    """``a.b.c`` of a name or attribute chain, else ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _runtime(helper, *args):
    """A call of a runtime helper (marked so that no user name shadows it)."""
    return set_fact(ast.Call(func=name(helper), args=list(args), keywords=[]),
                    "runtime", helper)


def _function(fname, params, body, like):
    node = ast.FunctionDef(name=fname, args=ast.arguments(
        posonlyargs=[], args=[ast.arg(p) for p in params], vararg=None, kwonlyargs=[],
        kw_defaults=[], kwarg=None, defaults=[]), body=body, decorator_list=[],
        returns=None, type_comment=None, type_params=[])
    for stmt in ast.walk(node):
        ast.copy_location(stmt, like)
    return ast.fix_missing_locations(node)


def _keys(items, keys, key, fresh):
    """``items = list(items)`` and ``keys = [key(v) for v in items]``."""
    item = fresh("item")
    value = ast.ListComp(
        elt=ast.Call(func=copy.deepcopy(key), args=[name(item)], keywords=[]),
        generators=[ast.comprehension(target=name(item, True), iter=name(items), ifs=[],
                                      is_async=0)]) if key is not None else name(items)
    return [ast.Assign(targets=[name(items, True)],
                       value=ast.Call(func=name("list"), args=[name(items)], keywords=[])),
            ast.Assign(targets=[name(keys, True)], value=value)]


def _sorted(fname, key, fresh, like):
    items, keys, order, reverse, i = (fresh(p) for p in ("items", "keys", "order",
                                                         "reverse", "position"))
    body = _keys(items, keys, key, fresh) + [
        ast.Assign(targets=[name(order, True)],
                   value=_runtime("sort_order", name(keys), name(reverse))),
        ast.Return(ast.ListComp(
            elt=ast.Subscript(value=name(items), slice=name(i), ctx=ast.Load()),
            generators=[ast.comprehension(target=name(i, True), iter=name(order), ifs=[],
                                          is_async=0)]))]
    return _function(fname, [items, reverse], body, like)


def _extreme(which):
    def template(fname, key, fresh, like):
        items, keys = fresh("items"), fresh("keys")
        body = _keys(items, keys, key, fresh) + [ast.Return(ast.Subscript(
            value=name(items), slice=_runtime("extreme_position", name(keys),
                                              ast.Constant(which)), ctx=ast.Load()))]
        return _function(fname, [items], body, like)
    return template


def _reduce_from(fname, function, fresh, like):
    items, acc, item = fresh("items"), fresh("acc"), fresh("item")
    body = [ast.For(target=name(item, True), iter=name(items), body=[ast.Assign(
        targets=[name(acc, True)], value=ast.Call(func=copy.deepcopy(function), args=[
            name(acc), name(item)], keywords=[]))], orelse=[]),
        ast.Return(name(acc))]
    return _function(fname, [items, acc], body, like)


def _reduce(fname, function, fresh, like):
    items, acc, i = fresh("items"), fresh("acc"), fresh("position")
    element = ast.Subscript(value=name(items), slice=name(i), ctx=ast.Load())
    body = [ast.Assign(targets=[name(items, True)],
                       value=ast.Call(func=name("list"), args=[name(items)], keywords=[])),
            ast.Assign(targets=[name(acc, True)], value=ast.Subscript(
                value=name(items), slice=ast.Constant(0), ctx=ast.Load())),
            ast.For(target=name(i, True), iter=ast.Call(func=name("range"), args=[
                ast.Constant(1), ast.Call(func=name("len"), args=[name(items)], keywords=[])],
                keywords=[]), body=[ast.Assign(targets=[name(acc, True)], value=ast.Call(
                    func=copy.deepcopy(function), args=[name(acc), element], keywords=[]))],
                orelse=[]),
            ast.Return(name(acc))]
    return _function(fname, [items], body, like)
