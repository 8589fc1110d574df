"""How names are bound and read in a normalized function: facts the reverse
pass reads (computed right before it, on the tree it transforms)."""

import ast
from dataclasses import dataclass

from .facts import fact
from .trees import statements


@dataclass
class Bindings:
    """``sites``: how often each name is bound (a binding in a loop counts
    twice); ``uses``: how often each name is read; ``single_defs``: the value
    of each name bound once; ``containers``: names changed by ``x[i] = v``,
    ``x.append(v)`` or ``del x[k]``; ``may_grow``: lists whose length may
    change while the function runs (appended to or deleted from here, or
    passed to a user function), whose negative or computed indices are
    fixed in the forward pass."""
    sites: dict
    uses: dict
    single_defs: dict
    containers: set
    may_grow: set


def assignment_sites(body, params):
    """How often each name is (re)bound; a binding inside a loop counts twice."""
    sites = {p: 1 for p in params}

    def walk(stmts, in_loop):
        for stmt in stmts:
            weight = 2 if in_loop else 1
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                sites[stmt.targets[0].id] = sites.get(stmt.targets[0].id, 0) + weight
            if isinstance(stmt, ast.AugAssign):
                sites[stmt.target.id] = sites.get(stmt.target.id, 0) + weight
            if isinstance(stmt, ast.For):
                sites[stmt.target.id] = sites.get(stmt.target.id, 0) + 2
            loop = in_loop or isinstance(stmt, (ast.For, ast.While))
            walk(getattr(stmt, "body", []), loop)
            walk(getattr(stmt, "orelse", []), loop)

    walk(body, False)
    return sites


def bindings_of(func, params):
    """The :class:`Bindings` of the normalized function ``func``."""
    sites = assignment_sites(func.body, params)
    uses = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            uses[node.id] = uses.get(node.id, 0) + 1
    single_defs = {s.targets[0].id: s.value for s in statements(func.body)
                   if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
                   and sites.get(s.targets[0].id) == 1}
    appended = {n.func.value.id for n in ast.walk(func) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in ("append", "__delitem__")       # the length changes
                and isinstance(n.func.value, ast.Name)}
    passed = {a.id for n in ast.walk(func) if isinstance(n, ast.Call)
              and fact(n, "target", None) is not None
              and fact(n, "target").kind in ("user", "local")
              for a in list(n.args) + [k.value for k in n.keywords]
              if isinstance(a, ast.Name)}
    stored = {n.value.id for n in ast.walk(func) if isinstance(n, ast.Subscript)
              and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)}
    return Bindings(sites, uses, single_defs, appended | stored, appended | passed)
