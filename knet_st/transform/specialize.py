"""Pass 8, specialize: a gradient's code rewritten for the shapes of one call.

The generic code asks at run time what the compiler could not know:
``unbroadcast(g, shape)`` compares shapes, ``getitem_grad`` inspects its
container, ``matmul_grad_a`` the ranks, and the forward function saves the
shapes the backward one compares.  On the first call with a new argument
signature (:func:`knet_st.runtime.observe.signature`), the gradient runs
:func:`observing` code, whose helper calls record what they saw, site by
site; :func:`specialized` then rewrites each site that saw the same thing
at every execution (in a loop whose shapes change, a site stays generic):

* ``unbroadcast(g, x)`` becomes ``g``, ``g.sum(axis=..., keepdims=True)``
  or ``g.sum(axis=...).reshape(...)``, guarded by a comparison of shapes
  (those that depend on array values may change with the same signature);
* ``matmul_grad_a(g, a, b)`` of matrices becomes ``g @ b.T`` (``_b``:
  ``a.T @ g``), or the same product computed transposed, ``(b @ g.T).T.copy()``
  (row-major, as the plain form), where timing both on the first call's
  matrices found it clearly faster
  (:func:`~knet_st.runtime.observe.faster_product`);
* ``dx = getitem_grad(dx, x, i, dy)`` on a list or tuple becomes a dict
  store, guarded so that any other state takes the helper;

and the shapes no backward function reads any more are no longer saved.
The result is used only for calls with the same signature.
"""

import ast
import copy
import re

import numpy as np

from ..runtime import gradients as rt
from .dead_value import drop_value
from ..runtime.observe import observers, unbroadcast_plan  # noqa: F401

HELPERS = {"unbroadcast": rt.unbroadcast, "getitem_grad": rt.getitem_grad,
           "matmul_grad_a": rt.matmul_grad_a, "matmul_grad_b": rt.matmul_grad_b}
_OBSERVER = "_kt_observe_"
_DICT = "_kt_dict"
_ACCUMULATE = "_kt_accumulate_item"
_HELD = "_kt_g"           # the adjoint a guarded unbroadcast site holds
_NDARRAY = "_kt_ndarray"


class _Sites(ast.NodeTransformer):
    """Numbers the helper calls of a module in one fixed order and rewrites
    each with ``rewrite(helper, site, call)`` (a new node, or the call)."""

    def __init__(self, namespace, rewrite):
        self.keys = {k: h for k, f in namespace.items()
                     for h, obj in HELPERS.items() if f is obj}
        self.rewrite = rewrite
        self.namespace = namespace
        self.count = 0

    def visit_Call(self, node):
        self.generic_visit(node)
        helper = self.keys.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if helper is None and _method_of(node.func, self.namespace) and node.args and \
                not any(isinstance(a, ast.Starred) for a in node.args):
            self.count += 1
            return self.rewrite("method", self.count, node)
        if helper is None or node.keywords or len(node.args) != \
                (2 if helper == "unbroadcast" else 4 if helper == "getitem_grad" else 3):
            return node
        self.count += 1
        return self.rewrite(helper, self.count, node)


# NumPy functions that are a method of their first argument when it is an
# array, the same but for NumPy's dispatch in Python (a microsecond a call)
METHODS = {np.sum: "sum", np.mean: "mean", np.max: "max", np.min: "min", np.amax: "max",
           np.amin: "min", np.prod: "prod", np.transpose: "transpose", np.var: "var",
           np.std: "std", np.argmax: "argmax", np.argmin: "argmin", np.clip: "clip",
           np.squeeze: "squeeze", np.ravel: "ravel", np.cumsum: "cumsum", np.any: "any",
           np.all: "all", np.swapaxes: "swapaxes", np.diagonal: "diagonal"}


def _method_of(func, namespace):
    """The method name of ``func`` (a ``module.function`` node) if it is one of
    :data:`METHODS`, else ``None``."""
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return None
    module = namespace.get(func.value.id)
    if module is None or type(module).__name__ != "module":
        return None
    try:
        return METHODS.get(getattr(module, func.attr, None))
    except TypeError:               # not hashable
        return None


def observing(module, record):
    """``module`` (a :class:`~.compiler.Module`) with each helper call site
    ``helper(args)`` turned into ``_kt_observe_helper(site, args)``, which
    records into ``record`` (a :class:`~knet_st.runtime.observe.Record`)."""
    def rewrite(helper, site, call):
        args = [ast.Constant(site)] + ([call.func] if helper == "method" else []) + call.args
        return ast.copy_location(ast.Call(ast.Name(_OBSERVER + helper, ast.Load()),
                                          args, call.keywords), call)

    functions = _rewritten(module, rewrite)
    namespace = dict(module.namespace)
    namespace.update({_OBSERVER + k: f for k, f in observers(record).items()})
    return module._replace(functions=functions, namespace=namespace)


def specialized(module, record, value=True):
    """``module`` with every helper call site that ``record`` saw do the same
    thing at each execution rewritten for it, and the saved shapes no
    backward function reads any more removed; without ``value``, the
    top-level forward function does not compute the function's value
    (:mod:`.dead_value`)."""
    def rewrite(helper, site, call):
        seen = record.every(site)
        if not seen or None in seen:
            return call
        if helper == "unbroadcast":
            new = _unbroadcast(call, seen)
            return call if new is None else ast.copy_location(new, call)
        if helper != "getitem_grad":
            if len(seen) != 1:
                return call
            seen = next(iter(seen))
        if helper in ("matmul_grad_a", "matmul_grad_b"):
            new = _REWRITES[helper](call, seen, module.namespace,
                                    record.choices.get(site, "plain"))
        else:
            new = _REWRITES[helper](call, seen, module.namespace)
        return call if new is None else ast.copy_location(new, call)

    functions = _rewritten(module, rewrite)
    for function, _ in functions:
        _Stores().visit(function)
        ast.fix_missing_locations(function)
    byname = {f.name: f for f, _ in functions}
    for fwd, bwd in module.pairs:
        if fwd in byname and bwd in byname:
            _drop_unread_saves(byname[fwd], byname[bwd])
    namespace = dict(module.namespace)
    if not value:
        namespace.update(drop_value(functions, namespace, module.forward))
    namespace[_DICT] = dict
    namespace[_NDARRAY] = np.ndarray
    namespace[_ACCUMULATE] = rt.accumulate_item
    return module._replace(functions=functions, namespace=namespace)


def _rewritten(module, rewrite):
    functions = [(copy.deepcopy(f), origin) for f, origin in module.functions]
    sites = _Sites(module.namespace, rewrite)
    for function, _ in functions:
        sites.visit(function)
    for function, _ in functions:
        ast.fix_missing_locations(function)
    return functions


# --------------------------------------------------------------------------- rewrites


def _shape_of(node):
    """``getattr(node, 'shape', ())``: an array's or a Shape's shape, ``()``
    for a number."""
    return ast.Call(ast.Name("getattr", ast.Load()),
                    [node, ast.Constant("shape"), _const(())], [])


def _unbroadcast(call, seen):
    """``g``, or ``g`` summed as the plan every execution of the site saw (see
    :func:`~knet_st.runtime.observe.unbroadcast_plan`), guarded: shapes that
    depend on the values of arrays (a boolean mask, ``np.nonzero``) may differ
    between calls with the same signature, and then the helper runs::

        (_kt_g if (_kt_g := g).shape == x.shape else unbroadcast(_kt_g, x))
    """
    g, x = call.args
    plans = {plan for plan, _, _ in seen}
    if len(plans) != 1 or not isinstance(x, (ast.Name, ast.Constant)):
        return None
    plan = plans.pop()
    held = ast.Name(_HELD, ast.Load())
    first = _shape_of(ast.NamedExpr(ast.Name(_HELD, ast.Store()), g))
    if plan == "same" and {(gs, xs) for _, gs, xs in seen} <= {((), ()), (None, ())}:
        # a scalar's adjoint (the loss's, a reduction's): ``g`` while it is one
        test = ast.Compare(first, [ast.Eq()], [_const(())])
        fast = held
    elif plan == "same":            # right whatever the shapes, if they are equal
        test = ast.Compare(first, [ast.Eq()], [_shape_of(x)])
        fast = held
    else:                           # right for the shapes seen
        shapes = {(gs, xs) for _, gs, xs in seen}
        if len(shapes) != 1:
            return None
        gs, xs = shapes.pop()
        test = ast.BoolOp(ast.And(), [ast.Compare(first, [ast.Eq()], [_const(gs)]),
                                      ast.Compare(_shape_of(x), [ast.Eq()], [_const(xs)])])
        axes, keepdims, shape = plan
        fast = _method(held, "sum", [], axis=_const(axes),
                       **({"keepdims": ast.Constant(True)} if keepdims else {}))
        if shape is not None:
            fast = _method(fast, "reshape", [_const(shape)])
    return ast.IfExp(test, fast, ast.Call(call.func, [held, x], []))


def _matmul(which):
    def rewrite(call, seen, namespace, choice="plain"):
        adim, bdim, _ = seen
        if (adim, bdim) != (2, 2):
            return None
        g, a, b = call.args
        if which == "a":            # g @ b.T, or (b @ g.T).T
            left, right = (g, _transposed(b)) if choice == "plain" else (b, _transposed(g))
        else:                       # a.T @ g, or (g.T @ a).T
            left, right = (_transposed(a), g) if choice == "plain" else (_transposed(g), a)
        product = ast.BinOp(left, ast.MatMult(), right)
        return product if choice == "plain" else _method(_transposed(product), "copy", [])
    return rewrite


def _transposed(node):
    return ast.Attribute(node, "T", ast.Load())


def _getitem(call, seen, namespace):
    """A chain of guarded dict operations for ``dx = getitem_grad(dx, x, i,
    dy)``, one per state of ``dx`` seen: attached to the call for
    :class:`_Stores` to put in the statement's place."""
    dx, x, index, dy = call.args
    if len({(n, length) for _, n, length in seen}) != 1 or not all(
            isinstance(a, ast.Name) for a in (dx, x, dy)) or not _pure(index):
        return None
    _, nonnegative, length = next(iter(seen))
    if nonnegative:
        key = index
    elif isinstance(index, ast.Constant) and type(index.value) is int:
        key = ast.Constant(index.value + length)
    else:
        return None
    call._kt_store = ({state for state, _, _ in seen}, key)
    return call


def _pure(node):
    return all(isinstance(n, (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator,
                              ast.unaryop, ast.Load)) for n in ast.walk(node))


def _as_method(call, seen, namespace):
    """``np.sum(x, ...)`` as ``x.sum(...)`` when ``x`` was an array, and is
    (``type(x) is ndarray``; the function otherwise)."""
    x = call.args[0]
    if seen is not True or not isinstance(x, ast.Name):
        return None
    method = ast.Call(ast.Attribute(x, _method_of(call.func, namespace), ast.Load()),
                      call.args[1:], call.keywords)
    test = ast.Compare(ast.Call(ast.Name("type", ast.Load()), [x], []), [ast.Is()],
                       [ast.Name(_NDARRAY, ast.Load())])
    return ast.IfExp(test, method, call)


_REWRITES = {"method": _as_method, "matmul_grad_a": _matmul("a"),
             "matmul_grad_b": _matmul("b"), "getitem_grad": _getitem}


class _Stores(ast.NodeTransformer):
    """Puts the guarded dict stores of :func:`_getitem` in place of their
    ``dx = getitem_grad(...)`` statements."""

    def visit_Assign(self, node):
        call = node.value
        store = getattr(call, "_kt_store", None)
        if store is None or len(node.targets) != 1 or not isinstance(
                node.targets[0], ast.Name) or node.targets[0].id != call.args[0].id:
            return node
        states, key = store
        dx = call.args[0].id
        dy = call.args[3]
        is_dict = ast.Compare(ast.Attribute(_load(dx), "__class__", ast.Load()),
                              [ast.Is()], [_load(_DICT)])
        chain = [node]                        # the helper, for any other state
        if "present" in states:               # accumulate_item(dx, k, dy)
            test = ast.BoolOp(ast.And(), [copy.deepcopy(is_dict), ast.Compare(
                copy.deepcopy(key), [ast.In()], [_load(dx)])])
            chain = [ast.If(test, [ast.Expr(ast.Call(_load(_ACCUMULATE), [
                _load(dx), copy.deepcopy(key), copy.deepcopy(dy)], []))], chain)]
        if "absent" in states:                # dx[k] = dy
            test = ast.BoolOp(ast.And(), [copy.deepcopy(is_dict), ast.Compare(
                copy.deepcopy(key), [ast.NotIn()], [_load(dx)])])
            chain = [ast.If(test, [ast.Assign([ast.Subscript(
                _load(dx), copy.deepcopy(key), ast.Store())], copy.deepcopy(dy))], chain)]
        if "none" in states:                  # dx = {k: dy}
            test = ast.Compare(_load(dx), [ast.Is()], [ast.Constant(None)])
            make = ast.Assign([_store(dx)], ast.Dict([copy.deepcopy(key)], [copy.deepcopy(dy)]))
            if chain == [node]:
                return ast.copy_location(ast.Assign([_store(dx)], ast.IfExp(
                    test, make.value, call)), node)
            chain = [ast.If(test, [make], chain)]
        return [ast.copy_location(s, node) for s in chain]


def _load(name):
    return ast.Name(name, ast.Load())


def _store(name):
    return ast.Name(name, ast.Store())


def _const(value):
    return ast.Constant(value)


def _method(obj, name, args, **keywords):
    return ast.Call(ast.Attribute(obj, name, ast.Load()), args,
                    [ast.keyword(k, v) for k, v in keywords.items()])


# --------------------------------------------------------------------------- saves


def _drop_unread_saves(fwd, bwd):
    """Removes from a forward/backward pair the saved values (names and
    ``shape_of(name)``) that the backward function no longer reads, and the
    stack pushes and pops of shapes it no longer reads."""
    reads = {n.id for n in ast.walk(bwd) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Load)}
    saved_name = bwd.args.args[0].arg
    unpack = bwd.body[0] if bwd.body else None
    returns = [n for n in ast.walk(fwd) if isinstance(n, ast.Return)]
    if isinstance(unpack, ast.Assign) and isinstance(unpack.targets[0], ast.Tuple) and \
            isinstance(unpack.value, ast.Name) and unpack.value.id == saved_name and \
            len(returns) == 1 and isinstance(returns[0].value, ast.Tuple) and \
            len(returns[0].value.elts) == 2 and isinstance(returns[0].value.elts[1], ast.Tuple):
        targets = unpack.targets[0].elts
        values = returns[0].value.elts[1].elts
        if len(targets) == len(values):
            keep = [i for i, (t, v) in enumerate(zip(targets, values))
                    if not isinstance(t, ast.Name) or t.id in reads or not _plain(v)]
            if len(keep) < len(targets):
                unpack.targets[0].elts = [targets[i] for i in keep]
                returns[0].value.elts[1].elts = [values[i] for i in keep]
    _drop_unread_stack_shapes(fwd, bwd, reads)


def _plain(node):
    """A saved value that costs nothing to drop: a name, or ``shape_of(name)``."""
    return isinstance(node, ast.Name) or (
        isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords
        and isinstance(node.args[0], ast.Name) and isinstance(node.func, ast.Name)
        and node.func.id.startswith("shape_of"))


def _drop_unread_stack_shapes(fwd, bwd, reads):
    pushes = {}         # name -> the statements that push shape_of(name)
    for stmt in _statements(fwd):
        value = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                value.func.attr == "append" and len(value.args) == 1 and \
                _plain(value.args[0]) and isinstance(value.args[0], ast.Call):
            pushes.setdefault(value.args[0].args[0].id, []).append(stmt)
    pops = {}           # name -> the statements that pop into it
    for stmt in _statements(bwd):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func,
                                                                ast.Attribute) \
                and stmt.value.func.attr == "pop" and not stmt.value.args:
            pops.setdefault(stmt.targets[0].id, []).append(stmt)
    dead = set()
    for var, pushed in pushes.items():
        names = [n for n in pops if re.fullmatch(re.escape(var) + r"_shape\d*", n)]
        if len(names) == 1 and names[0] not in reads and \
                len(pops[names[0]]) == len(pushed):
            dead |= {id(s) for s in pushed + pops[names[0]]}
    if dead:
        for function in (fwd, bwd):
            _remove(function, dead)


def _statements(function):
    return [n for n in ast.walk(function) if isinstance(n, ast.stmt)]


def _remove(node, dead):
    for field in ("body", "orelse"):
        stmts = getattr(node, field, None)
        if isinstance(stmts, list):
            kept = [s for s in stmts if id(s) not in dead]
            for s in kept:
                _remove(s, dead)
            if len(kept) != len(stmts):
                setattr(node, field, kept or ([ast.Pass()] if field == "body" else []))
