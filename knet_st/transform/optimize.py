"""Pass 7, optimize: tidying the generated functions.

The reverse pass already avoids most waste (adjoints start as "zero" and the
first contribution assigns; statements whose output adjoint is zero are not
written; only values the backward pass reads are saved).  What is left here:

* copy propagation: ``dt3 = dt2`` followed by uses of ``dt3`` becomes uses
  of ``dt2``, when neither name is ever bound again;
* run-time checks hoisted out of loops: a check of a name the loop never
  rebinds runs once, before the loop.
"""

import ast

from .facts import fact
from .trees import rewrite, stored_names


def _binding_counts(fn):
    counts = {a.arg: 1 for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            counts[node.id] = counts.get(node.id, 0) + 1
    return counts


class _Replace(ast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.mapping:
            return ast.copy_location(ast.Name(self.mapping[node.id], ast.Load()), node)
        return node


def propagate_copies(fn):
    """Removes top-level ``a = b`` copies in ``fn`` where ``a`` and ``b`` are each
    bound once, and reads ``b`` wherever ``a`` was read."""
    counts = _binding_counts(fn)
    mapping = {}
    body = []
    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Name) \
                and counts.get(stmt.targets[0].id) == 1 and counts.get(stmt.value.id) == 1:
            source = mapping.get(stmt.value.id, stmt.value.id)
            mapping[stmt.targets[0].id] = source
            continue
        body.append(stmt)
    if mapping:
        fn.body = body
        _Replace(mapping).visit(fn)
    return fn


def hoist_checks(fn):
    """Moves the run-time checks at the top level of a loop's body (run on every
    iteration) before the loop when the loop never rebinds the checked name;
    repeated checks of one name in one loop become one."""

    def one(stmt):
        if not isinstance(stmt, (ast.For, ast.While)):
            return [stmt]
        rebound = stored_names(stmt)
        hoisted, kept, seen = [], [], set()
        for inner in stmt.body:
            checked = _checked(inner)
            if checked is None or checked[1] in rebound:
                kept.append(inner)
            elif checked not in seen:
                seen.add(checked)
                hoisted.append(inner)
        stmt.body = kept or [ast.Pass()]
        return hoisted + [stmt]

    fn.body = rewrite(fn.body, one)
    return fn


def _checked(stmt):
    """``(helper, name)`` of a run-time check statement, else ``None``."""
    if isinstance(stmt, ast.Expr) and fact(stmt, "check", False):
        call = stmt.value
        return (ast.unparse(call.func), ast.unparse(call.args[0]))
    return None
