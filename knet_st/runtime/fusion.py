"""Fused element-wise kernels made by the compiler's fusion pass.

The pass (:mod:`knet_st.transform.fusion`) turns a chain of element-wise
statements of a generated function into one :class:`Kernel`: a small
expression graph (``nodes``), the names it reads (``inputs``) and the names
it writes (``outputs``).  The generated code asks :func:`fused` first::

    _f = fused(k_3fa2c1d0e9, t4, t5)
    if _f is not None:
        (x,) = _f                     # one CuPy kernel launch
    else:
        t3 = t4 + t5                  # the original statements
        x = kt.relu(t3)

:func:`fused` answers ``None`` (run the original statements) unless its array
arguments are CuPy arrays, so NumPy code runs exactly as before.  With the
environment variable ``KNET_ST_FUSE=reference`` it also answers on NumPy
arrays, with :meth:`Kernel.reference` (the graph evaluated by NumPy), so the
CPU test suite runs the fused code paths; ``KNET_ST_FUSE=off`` turns fusion
off on every backend.  By default (``auto``) the compiler writes fused code
only where CuPy has a device: on a machine without one the generated code
is what it was without the pass.

A graph node is ``(op, args)``: ``("in", i)`` is input ``i``, ``("const",
v)`` a Python number, any other ``op`` a key of :data:`OPS` applied to the
nodes at positions ``args``.  The C source of a kernel is made per
*signature* (the dtype of each array input, the type of each scalar), with
the NumPy result dtype of every node (:meth:`Kernel.dtypes`), and compiled
once per signature (``cupy.ElementwiseKernel``, named from a hash of the
graph and the signature).
"""

import hashlib
import operator
import os
import sys

import numpy as np

from .kernels import relu_dx_ref, sigm_dx_ref, sigm_ref, tanh_dx_ref

__all__ = ["Kernel", "OPS", "kernel", "kernels", "fused", "mode", "set_mode", "ShapeStub"]


def _relu_ref(x):
    return np.maximum(x, 0)


# op: (NumPy function, C template over the argument variables {0} {1} {2} and
# the result type {R}, how each argument is cast: "R" the result type, "C"
# the arguments' common type, "own" its own type, "bool").
_MAX = "(({0} > {1} || {0} != {0}) ? {0} : {1})"      # NaN-propagating, as NumPy
_MIN = "(({0} < {1} || {0} != {0}) ? {0} : {1})"
OPS = {
    "add": (np.add, "({0} + {1})", "RR"),
    "sub": (np.subtract, "({0} - {1})", "RR"),
    "mul": (np.multiply, "({0} * {1})", "RR"),
    "div": (np.true_divide, "({0} / {1})", "RR"),
    "pow": (np.power, "pow({0}, {1})", "RR"),
    "neg": (np.negative, "(-{0})", "R"),
    "pos": (np.positive, "(+{0})", "R"),
    "lt": (np.less, "({0} < {1})", "CC"),
    "le": (np.less_equal, "({0} <= {1})", "CC"),
    "gt": (np.greater, "({0} > {1})", "CC"),
    "ge": (np.greater_equal, "({0} >= {1})", "CC"),
    "eq": (np.equal, "({0} == {1})", "CC"),
    "ne": (np.not_equal, "({0} != {1})", "CC"),
    "exp": (np.exp, "exp({0})", "R"),
    "log": (np.log, "log({0})", "R"),
    "tanh": (np.tanh, "tanh({0})", "R"),
    "sin": (np.sin, "sin({0})", "R"),
    "cos": (np.cos, "cos({0})", "R"),
    "sqrt": (np.sqrt, "sqrt({0})", "R"),
    "abs": (np.abs, "fabs({0})", "R"),
    "maximum": (np.maximum, _MAX, "RR"),
    "minimum": (np.minimum, _MIN, "RR"),
    "where": (np.where, "({0} ? {1} : {2})", ("bool", "R", "R")),
    "sigm": (sigm_ref, "({0} >= {R}(0) ? {R}(1) / ({R}(1) + exp(-{0}))"
                       " : exp({0}) / ({R}(1) + exp({0})))", "R"),
    "relu": (_relu_ref, "(({0} > {R}(0) || {0} != {0}) ? {0} : {R}(0))", "R"),
    "relu_dx": (relu_dx_ref, "({0} * {R}({1} > 0))", ("R", "own")),
    "sigm_dx": (sigm_dx_ref, "({0} * {1} * ({R}(1) - {1}))", "RR"),
    "tanh_dx": (tanh_dx_ref, "({0} * ({R}(1) - {1} * {1}))", "RR"),
}

# Operators on two Python numbers give a Python number (weak for NumPy), not a
# NumPy scalar: as the generated statements do.
_PYTHON = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
           "div": operator.truediv, "pow": operator.pow, "neg": operator.neg,
           "pos": operator.pos, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
           "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
           np.dtype(np.int32): "int", np.dtype(np.int64): "long long",
           np.dtype(np.bool_): "bool"}
_FLOAT_ONLY = {"div", "pow", "exp", "log", "tanh", "sin", "cos", "sqrt", "abs", "sigm",
               "sigm_dx", "tanh_dx", "relu_dx"}


class ShapeStub:
    """What a fused kernel gives for a value the rest of the function only
    asks the shape of (``shape_of(t)``): its shape and dtype, no data."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = shape
        self.dtype = dtype


class Kernel:
    """One fused chain: ``nodes`` (see the module doc), ``inputs`` (names),
    ``outputs`` (``(name, node, kind)``, kind ``"array"`` or ``"shape"``)
    and ``text`` (the statements it stands for, to show)."""

    def __init__(self, nodes, inputs, outputs, text=""):
        self.nodes = tuple(nodes)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.text = text
        key = repr((self.nodes, len(self.inputs), [(n, k) for _, n, k in self.outputs]))
        self.id = "k_" + hashlib.sha1(key.encode()).hexdigest()[:10]
        self._leaves = [self._leaves_of(n) for n in range(len(self.nodes))]
        self._dtypes = {}
        self._cupy = {}

    def __repr__(self):
        return "<fused kernel %s: %s>" % (self.id, self.text)

    def _leaves_of(self, n):
        op, args = self.nodes[n]
        if op == "in":
            return frozenset([args])
        if op == "const":
            return frozenset()
        return frozenset().union(*(self._leaves_of(a) for a in args))

    # -------------------------------------------------------------- NumPy
    def evaluate(self, args, upto=None):
        """The value of every node on ``args`` (NumPy semantics, any array module
        that NumPy's functions accept)."""
        values = []
        with np.errstate(all="ignore"):
            for op, a in self.nodes[:upto]:
                if op == "in":
                    values.append(args[a])
                elif op == "const":
                    values.append(a)
                else:
                    vs = [values[i] for i in a]
                    if op in _PYTHON and all(isinstance(v, (int, float, bool)) for v in vs):
                        values.append(_PYTHON[op](*vs))    # Python numbers stay Python's
                    else:
                        values.append(OPS[op][0](*vs))
        return values

    def reference(self, *args):
        """The outputs on ``args`` computed by NumPy, one node at a time
        (:class:`ShapeStub` for the shape-only outputs)."""
        values = self.evaluate(args)
        out = []
        for _, n, kind in self.outputs:
            v = values[n]
            out.append(ShapeStub(np.shape(v), np.asarray(v).dtype) if kind == "shape" else v)
        return tuple(out)

    # ---------------------------------------------------------- signatures
    @staticmethod
    def signature(args):
        """The types a kernel is compiled for: each argument's dtype (arrays,
        NumPy scalars) or Python type (numbers)."""
        return tuple(a.dtype.str if hasattr(a, "dtype") else type(a).__name__ for a in args)

    def dtypes(self, sig):
        """The NumPy result dtype of every node for the argument types ``sig``
        (Python numbers stay weak, as NumPy treats them)."""
        got = self._dtypes.get(sig)
        if got is None:
            dummies = [np.ones(1, np.dtype(s)) if s not in ("int", "float", "bool")
                       else {"int": 1, "float": 1.0, "bool": True}[s] for s in sig]
            got = self._dtypes[sig] = tuple(
                np.asarray(v).dtype if not isinstance(v, (int, float, bool)) else type(v)
                for v in self.evaluate(dummies))
        return got

    def source(self, sig):
        """``(in_params, out_params, operation, name)`` of the CuPy
        ``ElementwiseKernel`` for the argument types ``sig``, or ``None`` when
        a type is one the kernel is not made for (the caller runs unfused)."""
        types = self.dtypes(sig)
        ctype = {}
        for n, t in enumerate(types):
            if isinstance(t, type):           # a Python number: double or long long
                t = np.dtype(np.float64 if t is float else np.int64 if t is int else np.bool_)
            if t not in _CTYPES:
                return None
            ctype[n] = _CTYPES[t]
        params, lines = [], []
        for n, (op, a) in enumerate(self.nodes):
            R = ctype[n]
            if op == "in":
                params.append("%s in%d" % (np.dtype(_param_dtype(sig[a])).name, a))
                lines.append("const %s v%d = in%d;" % (R, n, a))
                continue
            if op == "const":
                lines.append("const %s v%d = %r;" % (R, n, a if not isinstance(a, bool) else int(a)))
                continue
            _, template, casts = OPS[op]
            if op in _FLOAT_ONLY and R not in ("float", "double"):
                return None
            if op in ("add", "sub", "mul", "neg", "pos", "maximum", "minimum") and R == "bool":
                return None
            common = _common(types[i] for i in a)
            if common is None:
                return None
            cast = []
            for i, how in zip(a, casts):
                to = {"R": R, "C": _CTYPES[common], "own": ctype[i], "bool": "bool"}[how]
                cast.append("v%d" % i if to == ctype[i] else "((%s)v%d)" % (to, i))
            lines.append("const %s v%d = %s;" % (R, n, template.format(*cast, R=R)))
        outs = []
        for k, (_, n, kind) in enumerate(self.outputs):
            if kind == "array":
                outs.append("%s out%d" % (_dtype_of(types[n]).name, k))
                lines.append("out%d = v%d;" % (k, n))
        name = "knet_%s_%s" % (self.id, hashlib.sha1(repr(sig).encode()).hexdigest()[:6])
        return ", ".join(params), ", ".join(outs), "\n".join(lines), name

    # ----------------------------------------------------------- launching
    def shapes_fit(self, args):
        """Whether every array output has the shape of all the inputs broadcast
        together (what an element-wise kernel writes)."""
        shapes = [np.shape(a) for a in args]
        try:
            full = np.broadcast_shapes(*shapes)
            for _, n, kind in self.outputs:
                if kind == "array" and np.broadcast_shapes(
                        (), *(shapes[i] for i in self._leaves[n])) != full:
                    return False
        except ValueError:
            return False
        return True

    def stubs(self, args, sig):
        """The shape-only outputs' :class:`ShapeStub` values, by position."""
        types = self.dtypes(sig)
        return {k: ShapeStub(np.broadcast_shapes((), *(np.shape(args[i]) for i in self._leaves[n])),
                             _dtype_of(types[n]))
                for k, (_, n, kind) in enumerate(self.outputs) if kind == "shape"}

    def run_cupy(self, args):
        """The outputs computed by one CuPy kernel launch, or ``None`` when this
        signature or these shapes are not fused."""
        if not self.shapes_fit(args):
            return None
        sig = self.signature(args)
        k = self._cupy.get(sig, False)
        if k is False:
            src = self.source(sig)
            if src is None:
                k = None
            else:
                import cupy
                k = cupy.ElementwiseKernel(*src)
            self._cupy[sig] = k
        if k is None:
            return None
        got = k(*args)
        got = got if isinstance(got, tuple) else (got,)
        stubs = self.stubs(args, sig)
        it = iter(got)
        return tuple(stubs[j] if j in stubs else next(it) for j in range(len(self.outputs)))


_KERNELS = {}


def kernel(nodes, inputs, outputs, text=""):
    """The :class:`Kernel` of this graph, made once per process: kernels that
    differ only in their names share one object, and so its compiled code."""
    k = Kernel(nodes, inputs, outputs, text)
    return _KERNELS.setdefault(k.id, k)


def kernels():
    """Every kernel made so far, by id."""
    return dict(_KERNELS)


def _param_dtype(s):
    return {"int": np.int64, "float": np.float64, "bool": np.bool_}.get(s, s)


def _dtype_of(t):
    return np.dtype(_param_dtype(t.__name__)) if isinstance(t, type) else np.dtype(t)


def _common(types):
    try:
        return np.result_type(*(t if not isinstance(t, type) else t(1) for t in types))
    except TypeError:
        return None


# ------------------------------------------------------------------- dispatch

_MODES = ("auto", "on", "off", "reference")
_mode = os.environ.get("KNET_ST_FUSE", "auto")
if _mode not in _MODES:
    raise ValueError("KNET_ST_FUSE=%r: expected one of %s" % (_mode, ", ".join(_MODES)))


def mode():
    """The fusion mode: ``"auto"`` (the default: ``"on"`` where CuPy has a
    device, else no fused code is generated at all, so the CPU's code and
    ``kt.source`` stay as they were), ``"on"`` (CuPy arrays fused),
    ``"off"``, or ``"reference"`` (NumPy arrays too, by
    :meth:`Kernel.reference`)."""
    return _mode


def generating():
    """Whether the compiler writes fused kernels into the code it generates
    now: in modes ``on`` and ``reference``, and in ``auto`` where CuPy has a
    usable device."""
    if _mode == "auto":
        from .backend import gpu
        return gpu()
    return _mode in ("on", "reference")


def set_mode(value):
    """Sets the fusion mode (see :func:`mode`); returns the previous one."""
    global _mode
    if value not in _MODES:
        raise ValueError("fusion mode %r: expected one of %s" % (value, ", ".join(_MODES)))
    old, _mode = _mode, value
    return old


_NUMBERS = (int, float, bool, np.generic)


def fused(kernel, *args):
    """The outputs of ``kernel`` on ``args`` as a tuple, or ``None``: the
    caller then runs the statements the kernel stands for.  Fused when every
    argument is a CuPy array or a number and one at least is an array (NumPy
    arrays too in ``"reference"`` mode)."""
    cp = sys.modules.get("cupy")
    if cp is None and _mode != "reference" or _mode == "off":
        return None
    array = cp.ndarray if cp is not None else None
    seen = False
    for a in args:
        if array is not None and isinstance(a, array):
            seen = "cupy"
        elif _mode == "reference" and type(a) is np.ndarray:
            seen = seen or "numpy"
        elif not isinstance(a, _NUMBERS):
            return None
    if seen == "cupy":
        if any(type(a) is np.ndarray for a in args):
            return None
        return kernel.run_cupy(args)
    if seen == "numpy":
        return kernel.reference(*args) if kernel.shapes_fit(args) else None
    return None
