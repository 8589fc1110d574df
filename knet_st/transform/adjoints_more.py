"""More of NumPy's adjoints: einsum and tensordot, ``np.linalg``, sorting,
splitting, differences, order statistics, NaN-ignoring reductions and the
rest of HIPS autograd's list.  Same conventions as
:mod:`knet_st.transform.adjoints`: one declaration each, read as math.

A function that returns a tuple or a list (``np.linalg.eigh``, ``np.split``)
gets a container adjoint ``dy``: ``item(dy, i)`` is the adjoint of output
``i``, ``None`` for an output nothing used.
"""

import numpy as np

from ..runtime.array_grads import (
    append_grads, as_column, concatenate_grad, cumprod_grad, diff_grad, ediff1d_grad,
    hsplit_axis, join_grad, linspace_grads, median_grad, nancumprod_grad, nancumsum_grad,
    nanmean_grad, nanprod_grad, nansum_grad, nanvar_grad, permutation_grad, quantile_grads,
    rollaxis_destination, take_along_axis_grad)
from ..runtime.gradients import extremum_grad, item, matmul_grad_a, matmul_grad_b, unbroadcast
from ..runtime.linalg_grads import (
    cholesky_grad, diagonal_grad, eigh_grad, eigvalsh_grad, einsum_grad, matrix_norm_grad,
    matrix_power_grad, multi_dot_grads, pinv_grad, qr_grad, slogdet_grad, solve_grads, svd_grad,
    tensordot_subscripts, trace_grad, vecdot_grad, vector_norm_grad)
from .registry import adjoint, nondifferentiable

# ---- contractions --------------------------------------------------------------------

@adjoint(np.einsum)
def einsum(dy, y, subscripts, a, b=None, c=None, d=None, e=None, f=None, optimize=False):
    # Also einsum(a, [0, 1], b, [1, 2], [0, 2]): the arrays are then in
    # subscripts, b, d and f.
    dsubscripts = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 0)
    da = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 1)
    db = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 2)
    dc = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 3)
    dd = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 4)
    de = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 5)
    df = einsum_grad(dy, (subscripts, a, b, c, d, e, f), 6)


@adjoint(np.tensordot, np.linalg.tensordot)
def tensordot(dy, y, a, b, axes=2):
    da = einsum_grad(dy, (tensordot_subscripts(a, b, axes), a, b), 1)
    db = einsum_grad(dy, (tensordot_subscripts(a, b, axes), a, b), 2)


@adjoint(np.linalg.matmul)
def linalg_matmul(dy, y, x1, x2):
    dx1 = matmul_grad_a(dy, x1, x2)
    dx2 = matmul_grad_b(dy, x1, x2)


@adjoint(np.linalg.outer)
def linalg_outer(dy, y, x1, x2):
    dx1 = dy @ x2
    dx2 = x1 @ dy


@adjoint(np.vecdot, np.linalg.vecdot)
def vecdot(dy, y, x1, x2, axis=-1):
    dx1 = vecdot_grad(dy, x2, x1, axis)
    dx2 = vecdot_grad(dy, x1, x2, axis)


@adjoint(np.linalg.multi_dot, containers=['arrays'])
def multi_dot(dy, y, arrays):
    darrays = multi_dot_grads(dy, arrays)


@adjoint(np.cross, np.linalg.cross)
def cross(dy, y, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    da = unbroadcast(np.cross(b, dy, axisb, axisc, axisa, axis), a)
    db = unbroadcast(np.cross(dy, a, axisc, axisa, axisb, axis), b)


@adjoint(np.linalg.matrix_transpose, np.matrix_transpose)
def matrix_transpose(dy, y, x):
    dx = np.swapaxes(dy, -1, -2)


@adjoint(np.linalg.trace)
def linalg_trace(dy, y, x, offset=0, dtype=None):
    dx = trace_grad(dy, x, offset)


@adjoint(np.linalg.diagonal)
def linalg_diagonal(dy, y, x, offset=0):
    dx = diagonal_grad(dy, x, offset)


# ---- np.linalg -----------------------------------------------------------------------

@adjoint(np.linalg.solve)
def solve(dy, y, a, b):
    grads = solve_grads(dy, y, a, b)              # -(a^-T dy) y^T, a^-T dy
    da = grads[0]
    db = grads[1]


@adjoint(np.linalg.cholesky)
def cholesky(dy, y, a, upper=False):
    da = cholesky_grad(dy, y, upper)


@adjoint(np.linalg.slogdet)
def slogdet(dy, y, a):
    da = slogdet_grad(item(dy, 1), a)


@adjoint(np.linalg.eigh)
def eigh(dy, y, a, UPLO="L"):
    da = eigh_grad(dy, y, a, UPLO)


@adjoint(np.linalg.eigvalsh)
def eigvalsh(dy, y, a, UPLO="L"):
    da = eigvalsh_grad(dy, a, UPLO)


@adjoint(np.linalg.qr)
def qr(dy, y, a, mode="reduced"):
    da = qr_grad(dy, y, a, mode)


@adjoint(np.linalg.svd)
def svd(dy, y, a, full_matrices=True, compute_uv=True, hermitian=False):
    da = svd_grad(dy, y, a, full_matrices, compute_uv, hermitian)


@adjoint(np.linalg.svdvals)
def svdvals(dy, y, x):
    dx = svd_grad(dy, y, x, False, False)


@adjoint(np.linalg.pinv)
def pinv(dy, y, a, rcond=None, hermitian=False, rtol=None):
    da = pinv_grad(dy, y, a, hermitian)


@adjoint(np.linalg.matrix_power)
def matrix_power(dy, y, a, n):
    da = matrix_power_grad(dy, a, n)


@adjoint(np.linalg.vector_norm)
def vector_norm(dy, y, x, axis=None, keepdims=False, ord=2):
    dx = vector_norm_grad(dy, y, x, ord, axis, keepdims)


@adjoint(np.linalg.matrix_norm)
def matrix_norm(dy, y, x, keepdims=False, ord="fro"):
    dx = matrix_norm_grad(dy, y, x, ord, keepdims)


# ---- sorting and gathering -----------------------------------------------------------

@adjoint(np.sort)
def sort(dy, y, a, axis=-1, kind=None, order=None, stable=None):
    da = permutation_grad(dy, y, a, axis)


@adjoint(np.partition)
def partition(dy, y, a, kth, axis=-1, kind="introselect", order=None):
    da = permutation_grad(dy, y, a, axis)


@adjoint(np.take_along_axis)
def take_along_axis(dy, y, arr, indices, axis=-1):
    darr = take_along_axis_grad(dy, arr, indices, axis)


# ---- differences, splits, joins ------------------------------------------------------

@adjoint(np.diff)
def diff(dy, y, a, n=1, axis=-1, prepend=None, append=None):
    da = diff_grad(dy, a, n, axis, prepend, append)


@adjoint(np.ediff1d)
def ediff1d(dy, y, ary, to_end=None, to_begin=None):
    dary = ediff1d_grad(dy, ary, to_end, to_begin)


@adjoint(np.split, np.array_split)
def split(dy, y, ary, indices_or_sections, axis=0):
    dary = concatenate_grad(dy, y, axis)


@adjoint(np.hsplit)
def hsplit(dy, y, ary, indices_or_sections):
    dary = concatenate_grad(dy, y, hsplit_axis(ary))


@adjoint(np.vsplit)
def vsplit(dy, y, ary, indices_or_sections):
    dary = concatenate_grad(dy, y, 0)


@adjoint(np.dsplit)
def dsplit(dy, y, ary, indices_or_sections):
    dary = concatenate_grad(dy, y, 2)


@adjoint(np.column_stack, containers=['tup'])
def column_stack(dy, y, tup):
    dtup = join_grad(dy, tup, 1, as_column)


@adjoint(np.dstack, containers=['tup'])
def dstack(dy, y, tup):
    dtup = join_grad(dy, tup, 2, np.atleast_3d)


@adjoint(np.append)
def append(dy, y, arr, values, axis=None):
    grads = append_grads(dy, arr, values, axis)
    darr = grads[0]
    dvalues = grads[1]


@adjoint(np.atleast_3d)
def atleast_3d(dy, y, a):
    da = dy.reshape(np.shape(a))


@adjoint(np.rollaxis)
def rollaxis(dy, y, a, axis, start=0):
    da = np.moveaxis(dy, rollaxis_destination(a, axis, start), axis)


@adjoint(np.diagflat)
def diagflat(dy, y, v, k=0):
    dv = np.diagonal(dy, k).reshape(np.shape(v))


# ---- products, order statistics, samples ---------------------------------------------

@adjoint(np.cumprod)
def cumprod(dy, y, a, axis=None):
    da = cumprod_grad(dy, y, a, axis)


@adjoint(np.median)
def median(dy, y, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    da = median_grad(dy, a, axis, keepdims)


@adjoint(np.quantile)
def quantile(dy, y, a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False):
    grads = quantile_grads(dy, a, q, axis, keepdims, method)
    da = grads[0]
    dq = unbroadcast(grads[1], q)


@adjoint(np.percentile)
def percentile(dy, y, a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False):
    grads = quantile_grads(dy, a, q, axis, keepdims, method, 100.0)
    da = grads[0]
    dq = unbroadcast(grads[1], q)


@adjoint(np.ptp)
def ptp(dy, y, a, axis=None, out=None, keepdims=False):
    da = extremum_grad(dy, np.max(a, axis=axis, keepdims=keepdims), a, axis, keepdims) - \
        extremum_grad(dy, np.min(a, axis=axis, keepdims=keepdims), a, axis, keepdims)


@adjoint(np.linspace)
def linspace(dy, y, start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    grads = linspace_grads(dy, start, stop, num, endpoint, retstep, axis)
    dstart = grads[0]
    dstop = grads[1]


# ---- NaN-ignoring reductions ---------------------------------------------------------

@adjoint(np.nansum)
def nansum(dy, y, a, axis=None, dtype=None, out=None, keepdims=False):
    da = nansum_grad(dy, a, axis, keepdims)


@adjoint(np.nanmean)
def nanmean(dy, y, a, axis=None, dtype=None, out=None, keepdims=False):
    da = nanmean_grad(dy, a, axis, keepdims)


@adjoint(np.nanmax, np.nanmin)
def nanmax(dy, y, a, axis=None, out=None, keepdims=False):
    da = extremum_grad(dy, y, a, axis, keepdims)


@adjoint(np.nanvar)
def nanvar(dy, y, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    da = nanvar_grad(dy, a, axis, ddof, keepdims)


@adjoint(np.nanstd)
def nanstd(dy, y, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    da = nanvar_grad(dy / (2 * y), a, axis, ddof, keepdims)


@adjoint(np.nanprod)
def nanprod(dy, y, a, axis=None, dtype=None, out=None, keepdims=False):
    da = nanprod_grad(dy, y, a, axis, keepdims)


@adjoint(np.nancumsum)
def nancumsum(dy, y, a, axis=None):
    da = nancumsum_grad(dy, a, axis)


@adjoint(np.nancumprod)
def nancumprod(dy, y, a, axis=None):
    da = nancumprod_grad(dy, y, a, axis)


@adjoint(np.nan_to_num)
def nan_to_num(dy, y, x, copy=True, nan=0.0, posinf=None, neginf=None):
    dx = np.where(np.isfinite(x), dy, 0)


# ---- elementwise ---------------------------------------------------------------------

@adjoint(np.logaddexp2)
def logaddexp2(dy, y, a, b):
    da = unbroadcast(dy * np.exp2(a - y), a)
    db = unbroadcast(dy * np.exp2(b - y), b)


@adjoint(np.fmod)
def fmod(dy, y, a, b):
    da = unbroadcast(dy, a)
    db = unbroadcast(-dy * np.trunc(a / b), b)


@adjoint(np.float_power)
def float_power(dy, y, a, b):
    da = unbroadcast(dy * b * np.float_power(a, b - 1), a)
    db = unbroadcast(dy * y * np.log(a), b)


@adjoint(np.copysign)
def copysign(dy, y, a, b):
    da = unbroadcast(dy * np.sign(a) * np.sign(y), a)     # b: only its sign, no gradient


@adjoint(np.conj, np.conjugate)
def conj(dy, y, x):
    dx = np.conj(dy)


# ---- functions with no gradient ------------------------------------------------------

nondifferentiable(
    np.around, np.fix, np.trunc, np.all, np.any, np.argpartition, np.argwhere, np.nonzero,
    np.flatnonzero, np.count_nonzero, np.searchsorted, np.logical_xor, np.isneginf,
    np.isposinf, np.allclose, np.isclose, np.array_equal, np.array_equiv, np.iscomplexobj,
    np.iscomplex, np.isscalar, np.isreal, np.result_type, np.heaviside, np.signbit,
    np.nanargmax, np.nanargmin, np.digitize,
    np.tril_indices, np.triu_indices, np.diag_indices, np.indices, np.einsum_path,
    np.linalg.matrix_rank, np.unravel_index, np.ravel_multi_index)
