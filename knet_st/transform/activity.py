"""Pass 5, activity: which variables may carry a gradient.

A variable is active when its value may depend on an active parameter.  The
analysis is flow-insensitive (a fixed point over all statements), which is
conservative: a variable active anywhere is active everywhere.  Containers
that receive an active value (``s[i] = h``, ``hs.append(h)``) become active,
and so do containers a called user function may mutate.
"""

import ast

from .facts import fact
from .adjoints import NONDIFFERENTIABLE_ATTRIBUTES, NONDIFFERENTIABLE_METHODS
from .effects import STORING_METHODS, out_arguments
from .trees import statements as walk_statements

INACTIVE_OPS = (ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift)


def names_in(node):
    """The names read or written anywhere in ``node``."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def value_active(value, active):
    """Whether the one-operation expression ``value`` may carry a gradient."""
    if isinstance(value, ast.Name):
        return value.id in active
    if isinstance(value, (ast.Constant, ast.Compare, ast.JoinedStr)):
        return False
    if isinstance(value, ast.BinOp):
        if isinstance(value.op, INACTIVE_OPS):
            return False
        return bool(names_in(value) & active)
    if isinstance(value, ast.UnaryOp):
        if isinstance(value.op, (ast.Not, ast.Invert)):
            return False
        return bool(names_in(value) & active)
    if isinstance(value, ast.Subscript):
        return isinstance(value.value, ast.Name) and value.value.id in active
    if isinstance(value, ast.Attribute):
        return value.attr not in NONDIFFERENTIABLE_ATTRIBUTES and \
            bool(names_in(value.value) & active)
    if isinstance(value, ast.Call):
        target = fact(value, "target")
        if target.kind in ("nondiff", "opaque", "dynamic"):
            return False
        if target.kind == "method" and target.name in NONDIFFERENTIABLE_METHODS:
            return False
        return bool(set().union(*(names_in(a) for a in call_operands(value))) & active)
    if isinstance(value, (ast.Tuple, ast.List, ast.Dict)):
        return bool(names_in(value) & active)
    return bool(names_in(value) & active)


def call_operands(call):
    """The value operands of a call: the receiver of a method, arguments, keywords."""
    operands = list(call.args) + [k.value for k in call.keywords]
    if isinstance(call.func, ast.Attribute) and fact(call, "target").kind == "method":
        operands.insert(0, call.func.value)
    return operands


def analyze(body, params, stored_args):
    """The set of active variable names in a normalized ``body``.

    ``params`` are the active parameters; ``stored_args(call)`` names the
    arguments of a user-function call that the callee may store values into
    (they may carry gradients afterwards).
    """
    active = set(params)
    statements = list(walk_statements(body))
    changed = True
    while changed:
        changed = False

        def mark(name):
            nonlocal changed
            if name not in active:
                active.add(name)
                changed = True

        for stmt in statements:
            if isinstance(stmt, ast.Assign):
                target = stmt.targets[0]
                if isinstance(target, ast.Name):
                    if value_active(stmt.value, active):
                        mark(target.id)
                        if isinstance(stmt.value, ast.Call):
                            for out in out_arguments(stmt.value):
                                if isinstance(out, ast.Name):
                                    mark(out.id)
                    call = stmt.value
                    if isinstance(call, ast.Call) and \
                            fact(call, "target").kind in ("user", "local") \
                            and value_active(call, active):
                        for name in stored_args(call):
                            mark(name)
                elif isinstance(target, ast.Subscript):
                    if names_in(stmt.value) & active:
                        mark(target.value.id)
            elif isinstance(stmt, ast.AugAssign):
                if names_in(stmt.value) & active:
                    mark(stmt.target.id)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr in STORING_METHODS \
                        and isinstance(func.value, ast.Name) \
                        and fact(call, "target").kind == "method":
                    if any(names_in(a) & active for a in call.args):
                        mark(func.value.id)
            elif isinstance(stmt, ast.For):
                if isinstance(stmt.iter, ast.Name) and stmt.iter.id in active:
                    mark(stmt.target.id)
    return active
