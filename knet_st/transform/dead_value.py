"""Pass 8b, dead value: a gradient nobody asked the value of does not compute it.

``kt.grad(loss)(w, x, y)`` returns the gradient only, yet the forward
function computes the loss to the end (in a classifier, a log-sum-exp the
backward then recomputes as a softmax).  For a ``grad`` (not a
``value_and_grad``), the specialized top-level forward function returns
:data:`NO_VALUE` instead, and its top-level statements that only fed the
value, and that are pure (arithmetic, NumPy functions, array methods that
do not write, knet_st's pure operators), go.  A removed call that checks
its arguments (``nll``'s labels) leaves its check in its place.
"""

import ast
import types

import numpy as np

from .registry import mutated_argument, rule_for

from ..runtime import nn
from ..runtime.backend import get_array_module

NO_VALUE = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
_NAME = "_kt_no_value"
_CHECK = "_kt_check_"


def nll_check(scores, labels, axis=0, average=True):
    """The errors ``nll(scores, labels, axis, average)`` raises for its labels."""
    fast = nn._fast_nll_case(scores, labels, axis)
    if fast is None:
        nn._labels(get_array_module(scores, labels), labels, scores, int(axis) % scores.ndim)
    elif fast[1] and (labels.min() < 0 or labels.max() >= scores.shape[axis % 2]):
        nn._labels(np, labels, scores, axis % 2)


# Pure knet_st operators, and those whose only effect is an error (its check).
PURE = {nn.relu: None, nn.sigm: None, nn.softmax: None, nn.logp: None, nn.logsumexp: None,
        nn.mat: None, nn.nll: nll_check}
METHODS = {"sum", "mean", "max", "min", "prod", "reshape", "transpose", "ravel", "astype",
           "copy", "dot", "std", "var", "clip", "squeeze", "argmax", "argmin", "any", "all",
           "cumsum", "swapaxes", "diagonal", "conj"}
BUILTINS = {len, abs, float, int, min, max, sum, range, tuple, list}


def drop_value(functions, namespace, name):
    """Makes the function called ``name`` among ``functions`` (``(tree,
    origin)`` pairs, changed in place) return :data:`NO_VALUE` and removes
    its top-level statements that then compute nothing used; returns the
    names to add to ``namespace``."""
    fn = next((f for f, _ in functions if f.name == name), None)
    if fn is None or not fn.body or not isinstance(fn.body[-1], ast.Return):
        return {}
    ret = fn.body[-1].value
    if not (isinstance(ret, ast.Tuple) and len(ret.elts) == 2):
        return {}
    ret.elts[0] = ast.Name(_NAME, ast.Load())
    added = {_NAME: NO_VALUE}
    live = _reads(ret)
    body = []
    for stmt in reversed(fn.body[:-1]):
        if isinstance(stmt, ast.Assign) and _dead(stmt, live):
            check = _pure(stmt.value, namespace)
            if check is not None:
                if check is not True:      # the call's check stays
                    key = _CHECK + check.__name__.replace("_check", "")
                    added[key] = check
                    stmt = ast.copy_location(ast.Expr(ast.Call(
                        ast.Name(key, ast.Load()), stmt.value.args, stmt.value.keywords)), stmt)
                else:
                    continue
        live |= _reads(stmt)
        body.append(stmt)
    fn.body = body[::-1] + fn.body[-1:]
    for stmt in fn.body:
        ast.fix_missing_locations(stmt)
    return added


def _dead(stmt, live):
    """Whether ``stmt`` binds only names (no element, no attribute), none live."""
    nodes = [n for t in stmt.targets for n in ast.walk(t)]
    return all(isinstance(n, (ast.Name, ast.Tuple, ast.Store)) for n in nodes) and \
        not {n.id for n in nodes if isinstance(n, ast.Name)} & live


def _reads(node):
    """The names ``node`` reads (an augmented assignment reads its target)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and
            not isinstance(n.ctx, ast.Store)} | \
        {n.id for a in ast.walk(node) if isinstance(a, ast.AugAssign)
         for n in ast.walk(a.target) if isinstance(n, ast.Name)}


def _pure(expr, namespace):
    """``True`` if computing ``expr`` has no effect; the check function to keep
    when its one call has only that of a check; else ``None``."""
    check = True
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            found = _pure_call(node, namespace)
            if found is None or (found is not True and node is not expr):
                return None
            check = found
        elif isinstance(node, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                               ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp,
                               ast.SetComp, ast.Starred)):
            return None
    return check


_WRITERS = {"copyto", "put", "place", "putmask", "fill_diagonal", "put_along_axis"}


def _pure_call(call, namespace):
    if any(k.arg in ("out", None) for k in call.keywords) or \
            any(isinstance(a, ast.Starred) for a in call.args):
        return None
    func = call.func
    if isinstance(func, ast.Name) and func.id in ("type", "getattr") and \
            func.id not in namespace:
        return True                            # the guards specialize writes
    if isinstance(func, ast.Name):
        obj = namespace.get(func.id)
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
            isinstance(namespace.get(func.value.id), types.ModuleType):
        obj = getattr(namespace[func.value.id], func.attr, None)
    elif isinstance(func, ast.Attribute) and func.attr in METHODS:
        return True                            # a method that does not write
    else:
        return None
    if isinstance(obj, np.ufunc):
        return True if len(call.args) <= obj.nin else None
    if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith("numpy") \
            and "random" not in obj.__module__ and obj.__name__ not in _WRITERS:
        return True
    try:
        if obj in BUILTINS:
            return True
        if obj in PURE:
            return PURE[obj] or True
        if rule_for(obj) is not None and mutated_argument(obj) is None:
            return True            # a primitive with an adjoint is a function of its inputs
    except TypeError:
        pass
    return None
