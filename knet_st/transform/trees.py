"""Tree builders and walkers shared by the passes (one of each)."""

import ast

from .facts import set_fact

BODIES = ("body", "orelse", "finalbody")     # the statement lists a statement holds


def name(id, store=False):
    """``ast.Name`` of ``id``, loaded (or stored)."""
    return ast.Name(id, ast.Store() if store else ast.Load())


def bound_name(key):
    """A Name of the generated module's namespace (not a user's global): the
    compiler binds it to its object itself (see ``facts.BOUND``)."""
    node = name(key)
    set_fact(node, "bound", True)
    return node


def assign(target, value, like=None):
    """``target = value``; ``target`` a name or a target node; the line of
    ``like`` when given."""
    if isinstance(target, str):
        target = name(target, True)
    node = ast.Assign(targets=[target], value=value)
    if like is not None:
        ast.copy_location(node, like)
    return node


def call(func, *args):
    """``func(*args)`` for a function node ``func``."""
    return ast.Call(func=func, args=list(args), keywords=[])


def none():
    """The constant ``None``."""
    return ast.Constant(None)


class Marker(ast.Expr):
    """A placeholder resolved by the assemble pass: push ``var`` before it
    is overwritten (``kind='push'``) or pop it back (``kind='restore'``)."""

    _fields = ("value",)

    def __init__(self, kind, var, origin=None):
        super().__init__(value=ast.Constant(None))
        self.kind = kind
        self.var = var
        self.origin = origin


def rewrite(stmts, fn):
    """A body rewritten statement by statement, nested bodies first:
    ``fn(stmt)`` gives the statements that replace ``stmt``."""
    out = []
    for stmt in stmts:
        for field in BODIES:
            if hasattr(stmt, field):
                setattr(stmt, field, rewrite(getattr(stmt, field), fn))
        out += fn(stmt)
    return out


def statements(body):
    """Every statement of ``body``, nested bodies included, in order."""
    for stmt in body:
        yield stmt
        for field in BODIES:
            yield from statements(getattr(stmt, field, []))


def stored_names(node):
    """The names bound in ``node``."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}


_POSITIONS = ("lineno", "col_offset", "end_lineno", "end_col_offset")


def relocate(node, like):
    """Gives every node under ``node`` that has no position the position of
    ``like`` (a user's statement), so that errors in generated code point at
    the user's line."""
    if getattr(like, "lineno", None) is None:
        return node
    for child in ast.walk(node):
        if "lineno" in child._attributes and getattr(child, "lineno", None) is None:
            for attr in _POSITIONS:
                setattr(child, attr, getattr(like, attr, None))
    return node


def forget_positions(node):
    """Removes the positions of every node under ``node`` (a template's)."""
    for child in ast.walk(node):
        for attr in _POSITIONS:
            if attr in child._attributes:
                setattr(child, attr, None)
    return node


class InComprehensions(ast.NodeTransformer):
    """A transformer that knows, at each node, the names the comprehensions
    around it bind (``inside``: one set per comprehension, innermost last)."""

    COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def __init__(self):
        self.inside = []

    def generic_visit(self, node):
        if isinstance(node, self.COMPREHENSIONS):
            self.inside.append({n.id for g in node.generators for n in ast.walk(g.target)
                                if isinstance(n, ast.Name)})
            super().generic_visit(node)
            self.inside.pop()
            return node
        return super().generic_visit(node)
