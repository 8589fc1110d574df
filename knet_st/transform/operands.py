"""Part of the prepare pass: ``+`` and ``*`` whose operands may be lists.

``a + b`` is a concatenation when both operands are lists (or tuples) and an
addition otherwise; ``a * b`` a repetition when one is a list and the other
an int.  :func:`~.prepare.lower_sequences` already made the operations on
values known to be sequences (displays, ``list(...)``) calls of
``seq_concat`` and ``seq_repeat``.  Here every other ``+`` and ``*`` with a
gradient is looked at once more: where an operand is certainly no list or
tuple (:func:`operand_kinds`: an array or a float, a number, a string) it
stays the arithmetic it is; where neither operand is known (two parameters,
two elements of a list) it becomes a call of ``plus`` or ``times``, whose
forward is the operator itself and whose adjoint asks the output, when it
runs, whether it is a list or tuple (then it splits or folds the sequence's
adjoint) or not (then it is the adjoint of the arithmetic).
"""

import ast

import numpy as np

from .facts import fact, set_fact
from .resolve import Target
from .trees import statements

# ARRAY: never a list, tuple or Python int (an array, a float); NUMBER: never
# a list or tuple (maybe an int, a bool, a string); UNKNOWN: maybe a sequence.
ARRAY, NUMBER, UNKNOWN = 0, 1, 2
# SEQUENCE: a list or tuple given to the differentiated function (UNKNOWN to
# the operators here, which treat it as any value that may be a sequence).
SEQUENCE = 3

# The primitives of NumPy and knet_st whose result is always an array (or a
# NumPy scalar): all but these, which give lists or tuples.
_SEQUENCE_FUNCTIONS = frozenset(id(f) for f in (
    np.split, np.array_split, np.hsplit, np.vsplit, np.dsplit, np.atleast_1d, np.atleast_2d,
    np.atleast_3d, np.linalg.eigh, np.linalg.qr, np.linalg.slogdet, np.linalg.svd,
    np.linalg.eig, np.meshgrid, np.broadcast_arrays, np.nonzero, np.where, np.divmod,
    np.modf, np.frexp, np.unique, np.gradient, np.histogram))
_ARRAY_MODULES = ("knet_st.runtime.nn", "knet_st.runtime.conv")
_ARRAY_METHODS = frozenset({
    "sum", "mean", "prod", "max", "min", "dot", "reshape", "transpose", "ravel", "flatten",
    "squeeze", "astype", "cumsum", "clip", "std", "var"})
_ARRAY_ATTRIBUTES = frozenset({"T"})
_NUMBER_ATTRIBUTES = frozenset({"ndim", "size", "dtype", "real", "imag"})
_NUMBER_BUILTINS = frozenset({"len", "int", "float", "abs", "round", "bool", "str"})


def operand_kinds(func, params=None):
    """For each name of ``func`` assigned only by ``name = value``: ARRAY,
    NUMBER or UNKNOWN (see the constants), the least kinds every binding
    agrees with.  ``params`` gives the kinds of parameters known from the
    call (the differentiated function's); other parameters, loop variables
    (except those of a ``range``) and names bound any other way are UNKNOWN."""
    bindings, other = {}, set()
    params = {p: UNKNOWN if k == SEQUENCE else k for p, k in (params or {}).items()}
    for a in ast.walk(func.args):
        if isinstance(a, ast.arg):
            if params.get(a.arg, UNKNOWN) == UNKNOWN:
                other.add(a.arg)
            else:                              # a parameter's value as a binding
                bindings[a.arg] = [ast.Constant(0.0 if params[a.arg] == ARRAY else 0)]
    for stmt in statements(func.body):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name):
            bindings.setdefault(stmt.targets[0].id, []).append(stmt.value)
        elif isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name) and \
                _is_range(stmt.iter):
            bindings.setdefault(stmt.target.id, []).append(ast.Constant(0))
        else:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                [stmt.target] if isinstance(stmt, (ast.For, ast.AugAssign)) else []
            other |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    kinds = {n: ARRAY for n in bindings if n not in other}
    changed = True
    while changed:                  # from the most specific kind up: a fixpoint
        changed = False
        for name in kinds:
            kind = max(value_kind(v, kinds) for v in bindings[name])
            if kind != kinds[name]:
                kinds[name], changed = kind, True
    return kinds


def value_kind(value, kinds):
    """The kind of a normalized expression, ``kinds`` those of the names."""
    if isinstance(value, ast.Constant):
        return ARRAY if isinstance(value.value, (float, complex)) else NUMBER
    if isinstance(value, ast.Name):
        return kinds.get(value.id, UNKNOWN)
    if isinstance(value, ast.BinOp):
        left, right = value_kind(value.left, kinds), value_kind(value.right, kinds)
        if isinstance(value.op, (ast.Div, ast.MatMult)) or ARRAY in (left, right):
            return ARRAY
        if isinstance(value.op, ast.Add):
            return NUMBER if NUMBER in (left, right) else UNKNOWN
        if isinstance(value.op, ast.Mult):
            return NUMBER if left == right == NUMBER else UNKNOWN
        return NUMBER                      # -, **, //, %: no list comes out
    if isinstance(value, ast.UnaryOp):
        return min(value_kind(value.operand, kinds), NUMBER)
    if isinstance(value, ast.Compare):
        return NUMBER
    if isinstance(value, ast.Attribute):
        return ARRAY if value.attr in _ARRAY_ATTRIBUTES else \
            NUMBER if value.attr in _NUMBER_ATTRIBUTES else UNKNOWN
    if isinstance(value, ast.Call):
        return _call_kind(value)
    return UNKNOWN


def _call_kind(call):
    target = fact(call, "target", None)
    if target is None:
        return UNKNOWN
    if target.kind == "primitive":
        obj = target.obj
        module = getattr(obj, "__module__", None) or ""
        if isinstance(obj, np.ufunc) and obj.nout == 1 or id(obj) not in \
                _SEQUENCE_FUNCTIONS and module.split(".")[0] == "numpy" or \
                module in _ARRAY_MODULES:
            return ARRAY
    if target.kind == "method" and target.name in _ARRAY_METHODS:
        return ARRAY
    name = fact(call, "runtime", None) or (target.name if target.kind == "nondiff" else None)
    return NUMBER if name in _NUMBER_BUILTINS else UNKNOWN


def _is_range(node):
    return isinstance(node, ast.Call) and (fact(node, "runtime", None) == "range" or
                                           isinstance(node.func, ast.Name) and
                                           node.func.id == "range")


def argument_kind(value):
    """The kind of a value given to the differentiated function."""
    kind = type(value)
    if kind in (list, tuple):
        return SEQUENCE
    if kind in (int, bool, str):
        return NUMBER
    if kind in (float, complex) or isinstance(value, (np.ndarray, np.generic)) or \
            hasattr(value, "__array_namespace__") or hasattr(value, "__cuda_array_interface__"):
        return ARRAY
    return UNKNOWN


def lower_ambiguous(ctx, func, active, params=None):
    """``t = a + b`` and ``t = a * b`` with a gradient, where no operand is
    known to be no list or tuple, become ``t = plus(a, b)`` and ``t =
    times(a, b)`` (see the module doc); ``params``: the kinds of the
    parameters known from the call."""
    from ..runtime import sequences

    kinds = None
    for stmt in statements(func.body):
        value = getattr(stmt, "value", None)
        if not isinstance(stmt, ast.Assign) or not isinstance(value, ast.BinOp) or \
                not isinstance(value.op, (ast.Add, ast.Mult)) or \
                not any(isinstance(n, ast.Name) and n.id in active
                        for n in (value.left, value.right)):
            continue
        if kinds is None:
            kinds = operand_kinds(func, params)
        left, right = value_kind(value.left, kinds), value_kind(value.right, kinds)
        if isinstance(value.op, ast.Add) and UNKNOWN == left == right:
            helper = "plus"
        elif isinstance(value.op, ast.Mult) and ARRAY not in (left, right) and \
                UNKNOWN in (left, right):
            helper = "times"
        else:
            continue
        obj = getattr(sequences, helper)
        stmt.value = set_fact(ast.Call(func=ctx.helper(helper, obj),
                                       args=[value.left, value.right], keywords=[]),
                              "target", Target("primitive", obj, helper))
