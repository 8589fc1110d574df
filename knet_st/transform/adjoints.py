"""Every primitive's adjoint, one declaration each, read as math.

``dy`` is the adjoint of the output ``y``; each rule assigns the adjoint of
each differentiable argument.  Rules are templates: the compiler inlines
them (see :mod:`knet_st.transform.registry`), so they must use only
functions that dispatch on the array type (ufuncs, ``np.sum``, methods), and
so work unchanged on CuPy arrays.
"""

import builtins
import operator

import numpy as np

from ..runtime.gradients import (
    array_grad, astype_grad, builtin_sum_grad, clip_grads, cumsum_grad, det_grad, diag_grad,
    element, element_grad, extremum_grad, hstack_axis, inner_grads, inv_grad, item_grad,
    method_axes, matmul_grad_a, snapshot, matmul_grad_b, mean_grad, norm_grad, pad_grad,
    prod_grad, repeat_grad,
    split_grad, sum_grad, take_grad, tile_grad, transpose_grad, unbroadcast, var_grad,
    vstack_grad)
from ..runtime.linalg_grads import dot_grad, kron_grads, trace_grad
from .registry import adjoint, mutating_functions, mutating_methods, nondifferentiable

# ---- arithmetic -------------------------------------------------------------

@adjoint(operator.add, np.add)
def add(dy, y, a, b):
    da = unbroadcast(dy, a)
    db = unbroadcast(dy, b)


@adjoint(operator.sub, np.subtract)
def subtract(dy, y, a, b):
    da = unbroadcast(dy, a)
    db = unbroadcast(-dy, b)


@adjoint(operator.mul, np.multiply)
def multiply(dy, y, a, b):
    da = unbroadcast(dy * b, a)
    db = unbroadcast(dy * a, b)


@adjoint(operator.truediv, np.divide, np.true_divide)
def divide(dy, y, a, b):
    da = unbroadcast(dy / b, a)
    db = unbroadcast(-dy * y / b, b)


@adjoint(operator.pow, np.power)
def power(dy, y, a, b):
    da = unbroadcast(dy * b * a ** (b - 1), a)
    db = unbroadcast(dy * y * np.log(a), b)


@adjoint(operator.neg, np.negative)
def negative(dy, y, a):
    da = -dy


@adjoint(operator.pos, np.positive)
def positive(dy, y, a):
    da = dy


@adjoint(operator.matmul, np.matmul)
def matmul(dy, y, a, b):
    da = matmul_grad_a(dy, a, b)
    db = matmul_grad_b(dy, a, b)


@adjoint(np.dot)
def dot(dy, y, a, b):
    da = dot_grad(dy, a, b, 1)
    db = dot_grad(dy, a, b, 2)


@adjoint(np.square)
def square(dy, y, x):
    dx = dy * x * 2         # not 2 * x: x may be a list (2 * x repeats it)


@adjoint(np.sqrt)
def sqrt(dy, y, x):
    dx = dy / (2 * y)


@adjoint(np.reciprocal)
def reciprocal(dy, y, x):
    dx = -dy * y * y


@adjoint(np.abs, np.absolute, builtins.abs)
def absolute(dy, y, x):
    dx = dy * np.sign(x)


@adjoint(np.maximum, np.fmax)
def maximum(dy, y, a, b):
    da = unbroadcast(dy * (a >= b), a)
    db = unbroadcast(dy * (a < b), b)


@adjoint(np.minimum, np.fmin)
def minimum(dy, y, a, b):
    da = unbroadcast(dy * (a <= b), a)
    db = unbroadcast(dy * (a > b), b)


@adjoint(np.where)
def where(dy, y, condition, a, b):
    da = unbroadcast(np.where(condition, dy, 0), a)
    db = unbroadcast(np.where(condition, 0, dy), b)


@adjoint(np.clip)
def clip(dy, y, a, a_min, a_max):
    da = clip_grads(dy, a, a_min, a_max)[0]
    da_min = unbroadcast(clip_grads(dy, a, a_min, a_max)[1], a_min)
    da_max = unbroadcast(clip_grads(dy, a, a_min, a_max)[2], a_max)


@adjoint(builtins.max)
def builtin_max(dy, y, a, b):
    da = dy * (a >= b)
    db = dy * (a < b)


@adjoint(builtins.min)
def builtin_min(dy, y, a, b):
    da = dy * (a <= b)
    db = dy * (a > b)


@adjoint(builtins.float)
def to_float(dy, y, x):
    dx = dy


# ---- exponentials, logarithms, trigonometry ---------------------------------

@adjoint(np.exp)
def exp(dy, y, x):
    dx = dy * y


@adjoint(np.expm1)
def expm1(dy, y, x):
    dx = dy * (y + 1)


@adjoint(np.exp2)
def exp2(dy, y, x):
    dx = dy * y * np.log(2.0)


@adjoint(np.log)
def log(dy, y, x):
    dx = dy / x


@adjoint(np.log1p)
def log1p(dy, y, x):
    dx = dy / (1 + x)


@adjoint(np.log2)
def log2(dy, y, x):
    dx = dy / (x * np.log(2.0))


@adjoint(np.log10)
def log10(dy, y, x):
    dx = dy / (x * np.log(10.0))


@adjoint(np.logaddexp)
def logaddexp(dy, y, a, b):
    da = unbroadcast(dy * np.exp(a - y), a)
    db = unbroadcast(dy * np.exp(b - y), b)


@adjoint(np.sin)
def sin(dy, y, x):
    dx = dy * np.cos(x)


@adjoint(np.cos)
def cos(dy, y, x):
    dx = -dy * np.sin(x)


@adjoint(np.tan)
def tan(dy, y, x):
    dx = dy * (1 + y * y)


@adjoint(np.arcsin)
def arcsin(dy, y, x):
    dx = dy / np.sqrt(1 - x * x)


@adjoint(np.arccos)
def arccos(dy, y, x):
    dx = -dy / np.sqrt(1 - x * x)


@adjoint(np.arctan)
def arctan(dy, y, x):
    dx = dy / (1 + x * x)


@adjoint(np.sinh)
def sinh(dy, y, x):
    dx = dy * np.cosh(x)


@adjoint(np.cosh)
def cosh(dy, y, x):
    dx = dy * np.sinh(x)


@adjoint(np.tanh)
def tanh(dy, y, x):
    dx = dy * (1 - y * y)


# ---- reductions ---------------------------------------------------------------

# A reduction over all axes gives a 0-d result (its shape is known statically).
_WHOLE = {"axis": None, "keepdims": False}


@adjoint(np.sum, scalar_when=_WHOLE)
def sum(dy, y, a, axis=None, keepdims=False):
    da = sum_grad(dy, a, axis, keepdims)


@adjoint(np.mean, scalar_when=_WHOLE)
def mean(dy, y, a, axis=None, keepdims=False):
    da = mean_grad(dy, a, axis, keepdims)


@adjoint(np.max, np.amax, np.min, np.amin, scalar_when=_WHOLE)
def extremum(dy, y, a, axis=None, keepdims=False):
    da = extremum_grad(dy, y, a, axis, keepdims)


@adjoint(builtins.sum, containers=['iterable'])
def builtin_sum(dy, y, iterable, start=0):
    diterable = builtin_sum_grad(dy, iterable)
    dstart = unbroadcast(dy, start)


# ---- shapes -------------------------------------------------------------------

@adjoint(np.reshape, np.ravel)
def reshape(dy, y, a, *shape, **options):
    da = dy.reshape(np.shape(a))


@adjoint(np.squeeze, np.expand_dims, np.atleast_1d, np.atleast_2d)
def squeeze(dy, y, a, axis=None):
    da = dy.reshape(np.shape(a))


@adjoint(np.transpose)
def transpose(dy, y, a, axes=None):
    da = transpose_grad(dy, axes)


@adjoint(np.swapaxes)
def swapaxes(dy, y, a, axis1, axis2):
    da = np.swapaxes(dy, axis1, axis2)


@adjoint(np.copy, np.ascontiguousarray)
def copy(dy, y, a):
    da = dy


@adjoint(np.broadcast_to)
def broadcast_to(dy, y, array, shape):
    darray = unbroadcast(dy, array)


@adjoint(np.concatenate, containers=['arrays'])
def concatenate(dy, y, arrays, axis=0):
    darrays = split_grad(dy, arrays, axis, False)


@adjoint(np.stack, containers=['arrays'])
def stack(dy, y, arrays, axis=0):
    darrays = split_grad(dy, arrays, axis, True)


@adjoint(np.hstack, containers=['tup'])
def hstack(dy, y, tup):
    dtup = split_grad(dy, tup, hstack_axis(tup), False)


@adjoint(np.vstack, containers=['tup'])
def vstack(dy, y, tup):
    dtup = vstack_grad(dy, tup)


@adjoint(np.array, np.asarray, containers=['object'])
def array(dy, y, object, dtype=None):
    dobject = array_grad(astype_grad(dy, y, y.dtype), object)


@adjoint(np.full)
def full(dy, y, shape, fill_value, dtype=None):
    dfill_value = unbroadcast(dy, fill_value)


@adjoint(np.full_like)
def full_like(dy, y, a, fill_value, dtype=None):
    dfill_value = unbroadcast(dy, fill_value)


@adjoint(np.trace)
def trace(dy, y, a, offset=0, axis1=0, axis2=1):
    da = np.moveaxis(trace_grad(dy, np.moveaxis(a, (axis1, axis2), (-2, -1)), offset),
                     (-2, -1), (axis1, axis2))


@adjoint(np.outer)
def outer(dy, y, a, b):
    da = (dy @ np.ravel(b)).reshape(np.shape(a))
    db = (np.ravel(a) @ dy).reshape(np.shape(b))


# ---- more of NumPy -------------------------------------------------------------

@adjoint(operator.mod, np.mod, np.remainder)
def mod(dy, y, a, b):
    da = unbroadcast(dy, a)
    db = unbroadcast(-dy * np.floor_divide(a, b), b)


@adjoint(np.cbrt)
def cbrt(dy, y, x):
    dx = dy / (3 * y * y)


@adjoint(np.arcsinh)
def arcsinh(dy, y, x):
    dx = dy / np.sqrt(x * x + 1)


@adjoint(np.arccosh)
def arccosh(dy, y, x):
    dx = dy / np.sqrt(x * x - 1)


@adjoint(np.arctanh)
def arctanh(dy, y, x):
    dx = dy / (1 - x * x)


@adjoint(np.arctan2)
def arctan2(dy, y, a, b):
    da = unbroadcast(dy * b / (a * a + b * b), a)
    db = unbroadcast(-dy * a / (a * a + b * b), b)


@adjoint(np.hypot)
def hypot(dy, y, a, b):
    da = unbroadcast(dy * a / y, a)
    db = unbroadcast(dy * b / y, b)


@adjoint(np.fabs)
def fabs(dy, y, x):
    dx = dy * np.sign(x)


@adjoint(np.deg2rad, np.radians)
def deg2rad(dy, y, x):
    dx = dy * (np.pi / 180)


@adjoint(np.rad2deg, np.degrees)
def rad2deg(dy, y, x):
    dx = dy * (180 / np.pi)


@adjoint(np.sinc)
def sinc(dy, y, x):
    dx = dy * np.where(x == 0, 0.0, (np.cos(np.pi * x) - y) / np.where(x == 0, 1.0, x))


@adjoint(np.prod)
def prod(dy, y, a, axis=None, keepdims=False):
    da = prod_grad(dy, y, a, axis, keepdims)


@adjoint(np.var)
def var(dy, y, a, axis=None, ddof=0, keepdims=False):
    da = var_grad(dy, a, axis, ddof, keepdims)


@adjoint(np.std)
def std(dy, y, a, axis=None, ddof=0, keepdims=False):
    da = var_grad(dy / (2 * y), a, axis, ddof, keepdims)


@adjoint(np.cumsum)
def cumsum(dy, y, a, axis=None):
    da = cumsum_grad(dy, a, axis)


@adjoint(np.diag)
def diag(dy, y, v, k=0):
    dv = diag_grad(dy, v, k)


@adjoint(np.diagonal)
def diagonal(dy, y, a, offset=0):
    da = diag_grad(dy, a, offset)


@adjoint(np.triu)
def triu(dy, y, m, k=0):
    dm = np.triu(dy, k)


@adjoint(np.tril)
def tril(dy, y, m, k=0):
    dm = np.tril(dy, k)


@adjoint(np.flip)
def flip(dy, y, m, axis=None):
    dm = np.flip(dy, axis)


@adjoint(np.fliplr)
def fliplr(dy, y, m):
    dm = np.fliplr(dy)


@adjoint(np.flipud)
def flipud(dy, y, m):
    dm = np.flipud(dy)


@adjoint(np.roll)
def roll(dy, y, a, shift, axis=None):
    da = np.roll(dy, -shift, axis)


@adjoint(np.rot90)
def rot90(dy, y, m, k=1, axes=(0, 1)):
    dm = np.rot90(dy, -k, axes)


@adjoint(np.moveaxis)
def moveaxis(dy, y, a, source, destination):
    da = np.moveaxis(dy, destination, source)


@adjoint(np.repeat)
def repeat(dy, y, a, repeats, axis=None):
    da = repeat_grad(dy, a, repeats, axis)


@adjoint(np.tile)
def tile(dy, y, A, reps):
    dA = tile_grad(dy, A, reps)


@adjoint(np.take)
def take(dy, y, a, indices, axis=None):
    da = take_grad(dy, a, indices, axis)


@adjoint(np.pad)
def pad(dy, y, array, pad_width, mode="constant", **options):
    darray = pad_grad(dy, array, pad_width, mode, options)


@adjoint(np.inner)
def inner(dy, y, a, b):
    da = inner_grads(dy, a, b)[0]
    db = inner_grads(dy, a, b)[1]


@adjoint(np.vdot, scalar_when={})
def vdot(dy, y, a, b):
    da = dy * b
    db = dy * a


@adjoint(np.kron)
def kron(dy, y, a, b):
    da = kron_grads(dy, a, b)[0]
    db = kron_grads(dy, a, b)[1]


@adjoint(np.linalg.norm, scalar_when=_WHOLE)
def norm(dy, y, x, ord=None, axis=None, keepdims=False):
    dx = norm_grad(dy, y, x, ord, axis, keepdims)


@adjoint(np.linalg.inv)
def inv(dy, y, a):
    da = inv_grad(dy, y)


@adjoint(np.linalg.det)
def det(dy, y, a):
    da = det_grad(dy, y, a)


@adjoint(np.real, np.real_if_close)
def real(dy, y, val):
    dval = dy


@adjoint(element, containers=['xs'])
def element_rule(dy, y, xs, k):
    dxs = element_grad(xs, k, dy)


@adjoint(snapshot)
def snapshot_rule(dy, y, x):
    dx = dy


def item_method(a, *args):
    """``a.item()``, as a function."""
    return a.item(*args)


@adjoint(item_method)
def item_rule(dy, y, a, *args):
    da = item_grad(dy, a, args)


# ---- functions with no gradient ----------------------------------------------

nondifferentiable(
    len, range, print, isinstance, int, bool, round, type, enumerate, zip,
    np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.sign, np.floor,
    np.ceil, np.round, np.rint, np.zeros_like, np.ones_like, np.empty_like,
    np.isnan, np.isinf, np.isfinite, np.equal, np.not_equal, np.less,
    np.less_equal, np.greater, np.greater_equal, np.logical_and, np.logical_or,
    np.logical_not, np.arange, np.zeros, np.ones, np.eye, np.empty,
    operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
    operator.not_, operator.floordiv, np.floor_divide)

# Methods of arrays, as the functions whose rules they share.
METHODS = {
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
    "reshape": np.reshape, "ravel": np.ravel, "flatten": np.ravel,
    "squeeze": np.squeeze, "dot": np.dot, "clip": np.clip, "copy": np.copy,
    "swapaxes": np.swapaxes, "prod": np.prod, "var": np.var, "std": np.std,
    "cumsum": np.cumsum, "repeat": np.repeat, "take": np.take, "diagonal": np.diagonal,
}
# Methods that change their receiver (lists, dicts, sets, arrays).
mutating_methods("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
                 "update", "setdefault", "popitem", "add", "discard", "__delitem__",
                 "fill", "put", "itemset", "resize", "partition", "setfield", "byteswap")
# Functions that change an argument in place: the argument's position.
mutating_functions({np.copyto: 0, np.put: 0, np.place: 0, np.putmask: 0,
                    np.fill_diagonal: 0, np.random.shuffle: 0, np.put_along_axis: 0})
NONDIFFERENTIABLE_METHODS = {"argmax", "argmin", "argsort", "nonzero", "any", "all",
                             "keys", "count", "index"}
NONDIFFERENTIABLE_ATTRIBUTES = {"shape", "dtype", "ndim", "size", "itemsize", "nbytes",
                                "device"}


def transpose_method(a, *axes):
    """``a.transpose(*axes)``, as a function."""
    return np.transpose(a, method_axes(axes))


@adjoint(transpose_method)
def transpose_method_rule(dy, y, a, *axes):
    da = transpose_grad(dy, method_axes(axes))


def astype(a, dtype, **options):
    """``a.astype(dtype)``, as a function."""
    return a.astype(dtype, **options)


@adjoint(astype)
def astype_rule(dy, y, a, dtype, **options):
    da = astype_grad(dy, a, dtype)


METHODS.update({"transpose": transpose_method, "astype": astype, "item": item_method})


# ---- Knet's operators ------------------------------------------------------------

from ..runtime import conv as _conv, nn as _nn  # noqa: E402
from ..runtime.conv import conv4_dw, conv4_dx, pool_dx  # noqa: E402
from ..runtime.nn import (  # noqa: E402
    logp_dx, logsumexp_dx, mat_dx, nll_dscores, relu_dx, sigm_dx, softmax_dx)


@adjoint(_nn.sigm)
def sigm(dy, y, x):
    dx = sigm_dx(dy, y)


@adjoint(_nn.relu)
def relu(dy, y, x):
    dx = relu_dx(dy, y)


@adjoint(_nn.logp)
def logp(dy, y, x, axis=0):
    dx = logp_dx(dy, y, axis)


@adjoint(_nn.logsumexp)
def logsumexp(dy, y, x, axis=None, keepdims=False):
    dx = logsumexp_dx(dy, y, x, axis, keepdims)


@adjoint(_nn.softmax)
def softmax(dy, y, x, axis=0):
    dx = softmax_dx(dy, y, axis)


@adjoint(_nn.mat)
def mat(dy, y, x):
    dx = mat_dx(dy, x)


@adjoint(_nn.nll, scalar_when={})
def nll(dy, y, scores, labels, axis=0, average=True):
    dscores = nll_dscores(dy, scores, labels, axis, average)


@adjoint(_conv.conv4)
def conv4(dy, y, w, x, padding=0, stride=1, mode=0):
    dw = conv4_dw(dy, w, x, padding, stride, mode)
    dx = conv4_dx(dy, w, x, padding, stride, mode)


@adjoint(_conv.pool)
def pool(dy, y, x, window=2, padding=0, stride=None, mode="max"):
    dx = pool_dx(dy, y, x, window, padding, stride, mode)


nondifferentiable(_nn.dropout_mask, _nn.accuracy, _nn.is_training)

from . import adjoints_more  # noqa: E402,F401  (einsum, np.linalg, sorting, splits...)
