"""Forward mode: every primitive's tangent rule, one declaration each, read as math.

A rule is a small function that is parsed, never run.  Its first parameter is
the output ``y``; the next ones mirror the primitive's parameters; the
keyword-only ones (after ``*``) are the tangents of the differentiable
parameters, ``d<param>``.  The body assigns ``dy``, the output's tangent::

    @tangent(np.tanh)
    def tanh(y, x, *, dx):
        dy = dx * (1 - y * y)

The forward transformer (:mod:`.forward`) binds a call's arguments, puts the
tangents of the arguments that carry one in place of ``d<param>`` (a zero for
the others, simplified away: ``da * b + a * db`` with ``db`` zero is
``da * b``), renames and inlines the body.  Rules are linear in the tangents.
Tangents mirror values: a list's tangent is a list of tangents, an adjoint's
(``None``, a dict, an :class:`IndexGrad`) one of the same form, so the runtime
helpers that generated gradient code calls, linear in their adjoint
arguments, are their own tangent rules.
"""

import ast
import builtins
import inspect
import numbers
import operator
import textwrap

import numpy as np

from ..runtime import nn as _nn
from ..runtime.gradients import (
    IndexGrad, add, append_grad, array_grad, as_container, astype_grad, builtin_sum_grad,
    element, element_grad, element_tangent, extremum_grad, split_grad, vstack_grad, dense,
    getitem_grad, item, materialize, matmul_grad_a, matmul_grad_b, mean_grad, present, seq,
    setitem_grad, snapshot, sum_grad, transpose_grad, unbroadcast, zeros_like_tree)
from ..runtime.nn import relu_dx, sigm_dx, softmax_dx, tanh_dx
from .registry import Rule, key_of
from .trees import forget_positions

_TANGENTS = {}


class TangentRule(Rule):
    """One primitive's tangent template, parsed (binds arguments as adjoint rules do)."""

    def __init__(self, fn, template):       # noqa: D107  (Rule.__init__ reads (dy, y, ...))
        self.fn, self.template = fn, template
        self.name = getattr(fn, "__name__", repr(fn))
        func = ast.parse(textwrap.dedent(inspect.getsource(template))).body[0]
        self.body = [forget_positions(stmt) for stmt in func.body]
        args = func.args
        names = [a.arg for a in args.posonlyargs + args.args]
        self.output, self.params = names[0], names[1:]
        self.tangents = {a.arg[1:]: a.arg for a in args.kwonlyargs}
        self.kwonly, self.varargs = [], args.vararg.arg if args.vararg else None
        self.varkw = args.kwarg.arg if args.kwarg else None
        defaults = [None] * (len(names) - len(args.defaults)) + list(args.defaults)
        self.defaults = {n: d for n, d in zip(names, defaults) if d is not None}
        self.globals = template.__globals__
        self.containers = frozenset()


def tangent(*primitives):
    """Declares the tangent rule of one or more primitives (see the module doc)."""
    def register(template):
        for fn in primitives:
            _TANGENTS[key_of(fn)] = TangentRule(fn, template)
        return template
    return register


def tangent_rule(fn):
    """The :class:`TangentRule` of ``fn``, or ``None``."""
    return _TANGENTS.get(key_of(fn))


# ---- runtime helpers of forward mode ---------------------------------------------

def zero_tangent(x):
    """The zero tangent of ``x``, of its structure: ``None`` for ``None`` (a zero
    adjoint), an empty :class:`IndexGrad`, zeros for numbers and arrays."""
    if x is None or isinstance(x, (str, bytes)) or callable(x):
        return None
    if isinstance(x, IndexGrad):
        return IndexGrad(x.like)
    if isinstance(x, dict):
        return {k: zero_tangent(v) for k, v in x.items()}
    if isinstance(x, range):                # a loop's positions (kept by a gradient)
        return [None] * len(x)
    if isinstance(x, (list, tuple)):
        return type(x)([zero_tangent(v) for v in x]) if type(x) in (list, tuple) else \
            tuple(zero_tangent(v) for v in x)
    if isinstance(x, (bool, numbers.Integral)):
        return 0.0
    return zeros_like_tree(x)


def array_tangent(da, a):
    """The tangent of ``np.array(a)``: a list's (or tuple's) tangents as one
    array, zeros for elements without one."""
    if not isinstance(da, (list, tuple)):
        return da
    parts = [np.zeros_like(np.asarray(x), dtype=np.result_type(np.asarray(x), 0.0))
             if d is None else np.asarray(array_tangent(d, x)) for d, x in zip(da, a)]
    return np.array(parts, dtype=np.result_type(np.asarray(a), 0.0)) if parts else \
        np.zeros_like(np.asarray(a, dtype=float))


def fit(t, y):
    """The tangent ``t`` spread to ``y``'s shape (``x + b``: a scalar ``x``'s tangent
    moves every element)."""
    shape = np.shape(y)
    if np.shape(t) == shape:
        return t
    return np.broadcast_to(t, shape).copy()


# Functions whose result never carries a tangent in forward mode (beyond the
# registry's nondifferentiable ones): the shape-only helpers of gradient code.
from ..runtime.gradients import (  # noqa: E402
    check_container, check_not_array, hstack_axis, method_axes, positions, seqkey, seqlen,
    shape_of)
CONSTANT = {shape_of, zeros_like_tree, seqlen, seqkey, positions, hstack_axis, method_axes,
            check_container, check_not_array, np.shape, np.ndim, np.size, np.zeros_like,
            np.ones_like, builtins.len, builtins.slice, builtins.isinstance, builtins.range}


# ---- arithmetic -------------------------------------------------------------------

@tangent(operator.add, np.add)
def add_(y, a, b, *, da, db):
    dy = fit(da + db, y)


@tangent(operator.sub, np.subtract)
def subtract(y, a, b, *, da, db):
    dy = fit(da - db, y)


@tangent(operator.mul, np.multiply)
def multiply(y, a, b, *, da, db):
    dy = da * b + a * db


@tangent(operator.truediv, np.divide, np.true_divide)
def divide(y, a, b, *, da, db):
    dy = da / b - db * y / b


@tangent(operator.pow, np.power)
def power(y, a, b, *, da, db):
    dy = da * b * a ** (b - 1) + db * y * np.log(a)


@tangent(operator.mod, np.mod)
def mod(y, a, b, *, da, db):
    dy = fit(da - db * (a // b), y)


@tangent(operator.neg, np.negative)
def negative(y, a, *, da):
    dy = -da


@tangent(operator.pos, builtins.float, np.copy)
def identity(y, a, *, da):
    dy = da


@tangent(np.asarray, np.array)
def array_(y, a, *, da):
    dy = array_tangent(da, a)


@tangent(operator.matmul, np.matmul, np.dot)
def matmul(y, a, b, *, da, db):
    dy = da @ b + a @ db


@tangent(np.maximum, builtins.max)
def maximum(y, a, b, *, da, db):
    dy = np.where(a >= b, da, db)


@tangent(np.minimum, builtins.min)
def minimum(y, a, b, *, da, db):
    dy = np.where(a <= b, da, db)


@tangent(np.where)
def where(y, condition, a, b, *, da, db):
    dy = np.where(condition, da, db)


@tangent(np.abs, np.absolute, builtins.abs)
def absolute(y, x, *, dx):
    dy = dx * np.sign(x)


@tangent(np.square)
def square(y, x, *, dx):
    dy = 2 * x * dx


@tangent(np.sqrt)
def sqrt(y, x, *, dx):
    dy = dx / (2 * y)


# ---- exponentials, logarithms, trigonometry ------------------------------------------

@tangent(np.exp)
def exp(y, x, *, dx):
    dy = dx * y


@tangent(np.expm1)
def expm1(y, x, *, dx):
    dy = dx * (y + 1)


@tangent(np.log)
def log(y, x, *, dx):
    dy = dx / x


@tangent(np.log1p)
def log1p(y, x, *, dx):
    dy = dx / (1 + x)


@tangent(np.sin)
def sin(y, x, *, dx):
    dy = dx * np.cos(x)


@tangent(np.cos)
def cos(y, x, *, dx):
    dy = -dx * np.sin(x)


@tangent(np.tanh)
def tanh(y, x, *, dx):
    dy = dx * (1 - y * y)


@tangent(_nn.sigm)
def sigm(y, x, *, dx):
    dy = dx * y * (1 - y)


@tangent(_nn.relu)
def relu(y, x, *, dx):
    dy = dx * (x > 0)


@tangent(_nn.softmax)
def softmax(y, x, axis=0, *, dx):
    dy = softmax_dx(dx, y, axis)


@tangent(_nn.logsumexp)
def logsumexp(y, x, axis=None, keepdims=False, *, dx):
    dy = np.sum(dx * _nn.softmax(x, axis), axis=axis, keepdims=keepdims)


@tangent(_nn.nll)
def nll(y, scores, labels, axis=0, average=True, *, dscores):
    dy = np.sum(_nn.nll_dscores(1.0, scores, labels, axis, average) * dscores)


# ---- reductions and shapes (linear) -----------------------------------------------

@tangent(np.sum)
def sum_(y, a, axis=None, keepdims=False, *, da):
    dy = np.sum(da, axis=axis, keepdims=keepdims)


@tangent(np.mean)
def mean(y, a, axis=None, keepdims=False, *, da):
    dy = np.mean(da, axis=axis, keepdims=keepdims)


@tangent(np.max, np.amax, np.min, np.amin)
def extremum(y, a, axis=None, keepdims=False, *, da):
    dy = np.sum(da * extremum_weights(y, a, axis, keepdims), axis=axis, keepdims=keepdims)


def extremum_weights(y, a, axis, keepdims):
    """Each element's share of ``np.max``'s tangent (ties share equally)."""
    ye = y if keepdims or axis is None else np.expand_dims(y, axis)
    mask = np.asarray(a) == ye
    return mask / mask.sum(axis=axis, keepdims=True)


@tangent(np.reshape)
def reshape(y, a, *shape, da):
    dy = np.reshape(da, np.shape(y))


@tangent(np.ravel)
def ravel(y, a, *, da):
    dy = np.ravel(da)


@tangent(np.transpose)
def transpose(y, a, axes=None, *, da):
    dy = np.transpose(da, axes)


@tangent(np.concatenate)
def concatenate(y, arrays, axis=0, *, darrays):
    dy = np.concatenate(darrays, axis)


@tangent(np.stack)
def stack(y, arrays, axis=0, *, darrays):
    dy = np.stack(darrays, axis)


@tangent(builtins.sum)
def builtin_sum(y, iterable, *, diterable):
    dy = builtins.sum(diterable)


# ---- the runtime helpers of generated gradient code (forward-over-reverse) -------------

@tangent(unbroadcast)
def unbroadcast_(r, g, x, *, dg):
    dr = unbroadcast(dg, x)


@tangent(sum_grad)
def sum_grad_(r, g, x, axis=None, keepdims=False, *, dg):
    dr = sum_grad(dg, x, axis, keepdims)


@tangent(mean_grad)
def mean_grad_(r, g, x, axis=None, keepdims=False, *, dg):
    dr = mean_grad(dg, x, axis, keepdims)


@tangent(matmul_grad_a)
def matmul_grad_a_(r, g, a, b, *, dg, db):
    dr = matmul_grad_a(dg, a, b) + matmul_grad_a(g, a, db)


@tangent(matmul_grad_b)
def matmul_grad_b_(r, g, a, b, *, dg, da):
    dr = matmul_grad_b(dg, a, b) + matmul_grad_b(g, da, b)


@tangent(transpose_grad)
def transpose_grad_(r, g, axes=None, *, dg):
    dr = transpose_grad(dg, axes)


@tangent(sigm_dx)
def sigm_dx_(r, g, y, *, dg, dy):
    dr = sigm_dx(dg, y) + g * dy * (1 - 2 * y)


@tangent(tanh_dx)
def tanh_dx_(r, g, y, *, dg, dy):
    dr = tanh_dx(dg, y) - 2 * g * y * dy


@tangent(relu_dx)
def relu_dx_(r, g, y, *, dg):
    dr = relu_dx(dg, y)


@tangent(softmax_dx)
def softmax_dx_(r, g, y, axis=0, *, dg, dy):
    dr = softmax_dx(dg, y, axis) + dy * (g - np.sum(g * y, axis=axis, keepdims=True)) - \
        y * np.sum(g * dy, axis=axis, keepdims=True)


@tangent(_nn.nll_dscores)
def nll_dscores(r, g, scores, labels, axis=0, average=True, *, dg, dscores):
    dr = _nn.nll_dscores(dg, scores, labels, axis, average) + \
        softmax_dx(dscores, _nn.softmax(scores, axis), axis) * nll_scale(g, labels, average)


def nll_scale(g, labels, average):
    """What ``nll_dscores`` multiplies the softmax by."""
    return g / max(np.size(labels), 1) if average else g


# Linear in their adjoint arguments (the others give only structure): each is its own rule.
@tangent(getitem_grad)
def getitem_grad_(r, g, x, index, v, *, dg, dv):
    dr = getitem_grad(dg, x, index, dv)


@tangent(astype_grad)
def astype_grad_(r, g, x, dtype, *, dg):
    dr = astype_grad(dg, x, dtype)


@tangent(builtin_sum_grad)
def builtin_sum_grad_(r, g, xs, *, dg):
    dr = builtin_sum_grad(dg, xs)


@tangent(element)
def element_(r, xs, k, *, dxs):
    dr = element_tangent(dxs, xs, k)


@tangent(element_grad)
def element_grad_(r, xs, k, g, *, dg):
    dr = element_grad(xs, k, dg)


@tangent(setitem_grad)
def setitem_grad_(r, g, x, index, v=None, *, dg):
    dr = setitem_grad(dg, x, index, v)


@tangent(append_grad)
def append_grad_(r, g, position, *, dg):
    dr = append_grad(dg, position)


@tangent(add)
def add_grads(r, a, b, *, da, db):
    dr = add(da, db)


@tangent(split_grad)
def split_grad_(r, g, xs, axis, stacked, *, dg):
    dr = split_grad(dg, xs, axis, stacked)


@tangent(vstack_grad)
def vstack_grad_(r, g, xs, *, dg):
    dr = vstack_grad(dg, xs)


@tangent(array_grad)
def array_grad_(r, g, xs, *, dg):
    dr = array_grad(dg, xs)


@tangent(extremum_grad)
def extremum_grad_(r, g, y, x, axis=None, keepdims=False, *, dg):
    dr = extremum_grad(dg, y, x, axis, keepdims)


@tangent(item)
def item_(r, g, key, *, dg):
    dr = item(dg, key)


@tangent(seq)
def seq_(r, gs, *, dgs):
    dr = seq(dgs)


@tangent(dense)
def dense_(r, g, *, dg):
    dr = dense(dg)


@tangent(as_container)
def as_container_(r, g, *, dg):
    dr = as_container(dg)


@tangent(present)
def present_(r, g, x, *, dg):
    dr = present(dg, x)


@tangent(materialize)
def materialize_(r, g, x, *, dg):
    dr = materialize(dg, x)


@tangent(snapshot)
def snapshot_(r, x, *, dx):
    dr = snapshot(dx)
