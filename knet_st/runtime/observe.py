"""What a gradient call shows about its arguments and its helper calls.

Shape specialization (:mod:`knet_st.transform.specialize`) runs a gradient's
generic code once, with the runtime helpers it may rewrite replaced by the
recording versions here, and rewrites each call site whose record is the
same at every execution.  The rewritten code is used only for calls whose
arguments have the same :func:`signature`: their types, shapes and dtypes,
container structure and the values of ints, bools and strings (which may
size arrays or choose branches).
"""

import time
import types

import numpy as np

from . import gradients as rt

_SCALARS = (int, bool, str, type(None))
_PLAIN = (float, complex)
_ARRAY = np.ndarray
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, np.ufunc)


def signature(args):
    """A hashable key of what shape specialization relies on in ``args``, or
    ``None`` when an argument holds something it cannot see into (an object
    whose attributes may hold arrays of any shape, an array of another module)."""
    try:
        return tuple([(a.shape, a.dtype) if type(a) is _ARRAY else _key(a) for a in args])
    except _Unknown:
        return None


class _Unknown(Exception):
    pass


def _key(a):
    kind = type(a)
    if kind is np.ndarray:
        return (a.shape, a.dtype)
    if kind is list or kind is tuple:
        return (kind, tuple([(v.shape, v.dtype) if type(v) is _ARRAY else _key(v) for v in a]))
    if kind in _SCALARS:
        return (kind, a)
    if kind in _PLAIN:
        return kind
    if kind is dict:
        return (dict, tuple([(k, _key(v)) for k, v in a.items()]))
    if isinstance(a, np.generic):
        return (kind,)
    if kind in _FUNCTIONS:
        return (kind, id(a))
    raise _Unknown


class Record:
    """Per call site (a number), the set of what each execution of it saw."""

    def __init__(self):
        self.sites = {}
        self.choices = {}      # site -> the faster form of a matrix product's adjoint

    def add(self, site, seen):
        """Notes that call site ``site`` saw ``seen`` (hashable)."""
        self.sites.setdefault(site, set()).add(seen)

    def single(self, site):
        """What site ``site`` saw if every execution saw the same, else ``None``."""
        seen = self.sites.get(site)
        return next(iter(seen)) if seen is not None and len(seen) == 1 else None

    def every(self, site):
        """Everything site ``site`` saw (empty when it never ran)."""
        return self.sites.get(site, set())


def _shape(x):
    """``("array", shape)`` for an array, ``("number", ())`` for a Python number,
    ``("other", None)`` for anything else (an IndexGrad, a container adjoint)."""
    kind = type(x)
    if kind is np.ndarray or kind is rt.Shape or isinstance(x, np.generic):
        return ("array", tuple(x.shape))
    if kind in (float, int, bool, complex):
        return ("number", ())
    return ("other", None)


def observers(record):
    """Recording versions of the helpers :mod:`~knet_st.transform.specialize`
    rewrites, keyed by the helper's name; each takes the site number first
    and returns what the helper returns."""

    def unbroadcast(site, g, x):
        gshape, xshape = _shape(g), _shape(x)
        plan = unbroadcast_plan(gshape, xshape)
        record.add(site, None if plan is None else
                   (plan, gshape[1] if gshape[0] == "array" else None, xshape[1]))
        return rt.unbroadcast(g, x)

    def getitem_grad(site, dx, x, index, dy):
        known = type(index) is int and type(x) in (list, tuple) and dy is not None and \
            not isinstance(dy, rt.IndexGrad)
        if not known or not (dx is None or type(dx) is dict):
            record.add(site, None)
        else:
            key = rt._key(x, index)
            record.add(site, ("none" if dx is None else "absent" if key not in dx
                              else "present", index >= 0, len(x)))
        return rt.getitem_grad(dx, x, index, dy)

    def matmul_grad_a(site, g, a, b):
        record.add(site, (np.ndim(a), np.ndim(b), type(g) is np.ndarray))
        if site not in record.choices:
            record.choices[site] = faster_product(lambda: g @ b.T,
                                                  lambda: (b @ g.T).T.copy(), g, b)
        return rt.matmul_grad_a(g, a, b)

    def matmul_grad_b(site, g, a, b):
        record.add(site, (np.ndim(a), np.ndim(b), type(g) is np.ndarray))
        if site not in record.choices:
            record.choices[site] = faster_product(lambda: a.T @ g,
                                                  lambda: (g.T @ a).T.copy(), a, g)
        return rt.matmul_grad_b(g, a, b)

    def method(site, function, x, *args, **kwargs):
        record.add(site, type(x) is np.ndarray)
        return function(x, *args, **kwargs)

    return {"method": method, "unbroadcast": unbroadcast, "getitem_grad": getitem_grad,
            "matmul_grad_a": matmul_grad_a, "matmul_grad_b": matmul_grad_b}


# Products smaller than this many multiply-adds are not worth timing.
_TIMED_WORK = 1 << 18


def faster_product(plain, swapped, left, right):
    """``"swapped"`` if ``swapped()`` (the same product computed transposed
    and copied to row-major order, ``(b @ g.T).T.copy()`` for ``g @ b.T``) is
    clearly faster than ``plain()`` on these matrices, else ``"plain"``.
    BLAS's speed for a transposed operand depends on the shapes (on OpenBLAS,
    ``g @ x.T`` for a 10 x 100 ``g`` and a 784 x 100 ``x`` takes 1.4 times as
    long as ``(x @ g.T).T.copy()``).  The copy is part of the form: a
    column-major gradient would make the caller's update (``w -= lr * dw``
    on a row-major ``w``) several times slower.  Each form is timed three
    times, alternating, and the best times are compared."""
    if not (type(left) is _ARRAY and type(right) is _ARRAY and left.ndim == 2 and
            right.ndim == 2 and left.dtype.kind == "f" and right.dtype == left.dtype and
            left.size * right.shape[0] >= _TIMED_WORK):
        return "plain"
    best = {plain: float("inf"), swapped: float("inf")}
    for _ in range(3):
        for form in best:
            start = time.perf_counter()
            form()
            best[form] = min(best[form], time.perf_counter() - start)
    return "swapped" if best[swapped] < 0.85 * best[plain] else "plain"


def unbroadcast_plan(g, x):
    """What ``unbroadcast(g, x)`` does for these shapes, in a form the same for
    every execution that does the same: ``"same"`` (returns ``g``), a sum
    ``(axes, keepdims, shape to reshape to or None)``, or ``None`` (anything
    else: a spread, an index or container adjoint)."""
    (gkind, gshape), (xkind, xshape) = g, x
    if "other" in (gkind, xkind):
        return None
    if gshape == xshape:
        return "same"
    if gkind != "array" or xkind != "array":
        return None
    extra = len(gshape) - len(xshape)
    if extra < 0 or any(n != 1 and m == 1 for n, m in zip(xshape, gshape[extra:])):
        return None
    inner = tuple(i + extra for i, n in enumerate(xshape) if n == 1 and gshape[i + extra] != 1)
    axes = tuple(range(extra)) + inner
    if extra == 0:
        return (axes, True, None)
    return (axes, False, xshape if inner else None)
