"""Helpers for the adjoints of NumPy's sorting, splitting, differences,
order statistics and NaN-ignoring reductions.

Like :mod:`knet_st.runtime.gradients`, everything here reaches arrays only
through NumPy's dispatch (and ``get_array_module`` for new index arrays), so
it runs unchanged on CuPy arrays.
"""

import numpy as np

from .backend import get_array_module
from .gradients import _expand, cumsum_grad, item, prod_grad, scatter_add, unbroadcast


def _axes(x, axis):
    """``axis`` (None, an int or a tuple) as a tuple of non-negative axes of ``x``."""
    ndim = np.ndim(x)
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


# ---- permutations: sort, partition, gathers ------------------------------------------

def permutation_grad(g, y, x, axis=-1):
    """Adjoint of ``y``, a permutation of ``x`` along ``axis`` (``np.sort``,
    ``np.partition``; ``axis=None`` flattens): each element of ``g`` goes back
    to the element of ``x`` it came from, found by matching ranks (equal
    values are interchangeable)."""
    if axis is None:
        return permutation_grad(g.reshape(-1), y.reshape(-1), x.reshape(-1), 0).reshape(x.shape)
    source = np.argsort(x, axis=axis)           # rank r of x sits at source[r]
    rank_of_y = np.argsort(np.argsort(y, axis=axis), axis=axis)
    from_x = np.take_along_axis(source, rank_of_y, axis=axis)   # y[j] = x[from_x[j]]
    return np.take_along_axis(g, np.argsort(from_x, axis=axis), axis=axis)


def take_along_axis_grad(g, x, indices, axis=-1):
    """Adjoint of ``np.take_along_axis(x, indices, axis)``: ``g`` added back at the
    positions read (repeated positions add up)."""
    out = np.zeros_like(x, order="C")
    if axis is None:
        scatter_add(out.reshape(-1), indices, g)
        return out
    xp = get_array_module(out)
    axis = axis % np.ndim(x)
    shape = np.shape(g)
    index = []
    for d, n in enumerate(shape):
        if d == axis:
            index.append(np.broadcast_to(indices, shape))
        else:
            positions = xp.arange(n) if np.shape(x)[d] == n else xp.zeros(n, dtype=int)
            index.append(positions.reshape((n,) + (1,) * (len(shape) - d - 1)))
    scatter_add(out, tuple(index), g)
    return out


# ---- differences and splits ----------------------------------------------------------

def diff_grad(g, a, n=1, axis=-1, prepend=None, append=None):
    """Adjoint of ``np.diff(a, n, axis, prepend, append)``: ``n`` times the adjoint
    of one difference, ``r[i] = g[i - 1] - g[i]`` (zero outside ``g``)."""
    axis = axis % np.ndim(a)
    for _ in range(n):
        shape = list(np.shape(g))
        shape[axis] = 1
        zero = np.zeros_like(g, shape=tuple(shape))
        g = np.concatenate([zero, g], axis) - np.concatenate([g, zero], axis)
    start = 0 if prepend is None else _length(prepend, a, axis)
    index = [slice(None)] * np.ndim(g)
    index[axis] = slice(start, start + np.shape(a)[axis])
    return g[tuple(index)]


def _length(extra, a, axis):
    return np.shape(extra)[axis] if np.ndim(extra) else 1


def ediff1d_grad(g, a, to_end=None, to_begin=None):
    """Adjoint of ``np.ediff1d(a, to_end, to_begin)``."""
    start = 0 if to_begin is None else np.size(to_begin)
    g = g[start:start + np.size(a) - 1]
    return diff_grad(g, np.ravel(a), 1, 0).reshape(np.shape(a))


def concatenate_grad(g, y, axis):
    """Adjoint of a split into the list ``y`` along ``axis`` (``np.split``,
    ``np.array_split``...): the pieces' adjoints joined, zeros for those that
    got none."""
    pieces = [item(g, i) for i in range(len(y))]
    return np.concatenate([np.zeros_like(p) if d is None else d for d, p in zip(pieces, y)],
                          axis=axis)


def hsplit_axis(a):
    """The axis ``np.hsplit`` splits along (0 for vectors, else 1)."""
    return 0 if np.ndim(a) == 1 else 1


def join_grad(g, xs, axis, promote):
    """Adjoint of joining ``xs`` along ``axis`` after each went through ``promote``
    (``np.column_stack``, ``np.dstack``): a container adjoint, one slice of
    ``g`` per element."""
    ends = np.cumsum([np.shape(promote(x))[axis] for x in xs])
    parts = np.split(g, ends[:-1], axis=axis)
    return {i: part.reshape(np.shape(x)) for i, (part, x) in enumerate(zip(parts, xs))}


def as_column(x):
    """What ``np.column_stack`` makes of one of its arguments."""
    return np.reshape(x, (-1, 1)) if np.ndim(x) < 2 else x


def append_grads(g, arr, values, axis=None):
    """Adjoints ``(darr, dvalues)`` of ``np.append(arr, values, axis)``."""
    if axis is None:
        g = g.reshape(-1)
        n = np.size(arr)
        return g[:n].reshape(np.shape(arr)), g[n:].reshape(np.shape(values))
    n = np.shape(arr)[axis]
    first, rest = np.split(g, [n], axis=axis)
    return first, unbroadcast(rest, values)


def rollaxis_destination(a, axis, start=0):
    """Where ``np.rollaxis(a, axis, start)`` moved ``axis`` to."""
    ndim = np.ndim(a)
    axis = axis % ndim
    start = start + ndim if start < 0 else start
    return start - 1 if start > axis else start


# ---- products ------------------------------------------------------------------------

def cumprod_grad(g, y, x, axis=None):
    """Adjoint of ``y = np.cumprod(x, axis)``: ``dx[i] = sum_{j >= i} g[j] y[j] / x[i]``,
    and without division where ``x`` has zeros (each partial product formed
    explicitly)."""
    if axis is None:
        return cumprod_grad(g.reshape(-1), y.reshape(-1), x.reshape(-1), 0).reshape(np.shape(x))
    if bool(np.all(x != 0)):
        return cumsum_grad(g * y, x, axis) / x
    g, y, x = (np.moveaxis(v, axis, -1) for v in (g, y, x))
    n = x.shape[-1]
    parts = []
    for i in range(n):
        before = y[..., i - 1:i] if i else np.ones_like(x[..., :1])
        after = np.cumprod(np.concatenate([np.ones_like(x[..., :1]), x[..., i + 1:]], -1), -1)
        parts.append(np.sum(g[..., i:] * before * after, axis=-1, keepdims=True))
    return np.moveaxis(np.concatenate(parts, -1), -1, axis)


# ---- order statistics ----------------------------------------------------------------

def quantile_grads(g, a, q, axis=None, keepdims=False, method="linear", scale=1.0):
    """Adjoints ``(da, dq)`` of ``np.quantile(a, q / scale, axis, keepdims=keepdims)``
    with linear interpolation (``np.percentile`` has ``scale`` 100,
    ``np.median`` is ``q = 0.5``): the two order statistics each quantile
    interpolates share its adjoint."""
    if method != "linear":
        from ..errors import TransformError
        raise TransformError(f"no gradient is defined for np.quantile or np.percentile "
                             f"with method={method!r}: use method='linear' (the default)")
    axes = _axes(a, axis)
    ndim = np.ndim(a)
    kept = [d for d in range(ndim) if d not in axes]
    moved = np.moveaxis(a, axes, tuple(range(ndim - len(axes), ndim)))
    batch = tuple(np.shape(a)[d] for d in kept)
    flat = moved.reshape(batch + (-1,))
    n = flat.shape[-1]
    xp = get_array_module(flat)
    q = xp.asarray(q, dtype=flat.dtype) / scale
    qshape = q.shape
    g = np.reshape(g, qshape + batch)
    order = np.argsort(flat, axis=-1)
    position = q * (n - 1)
    low = xp.floor(position)
    frac = (position - low).reshape(qshape + (1,) * len(batch) + (1,))
    low = low.astype(int).reshape(frac.shape)
    high = xp.minimum(low + 1, n - 1)
    ranks = xp.arange(n)
    weights = (ranks == low) * (1 - frac) + (ranks == high) * frac
    gs = np.sum(weights * g[..., None], axis=tuple(range(len(qshape))))
    ga = np.take_along_axis(gs, np.argsort(order, axis=-1), axis=-1)
    da = np.moveaxis(ga.reshape(moved.shape), tuple(range(ndim - len(axes), ndim)), axes)
    s = np.take_along_axis(flat, order, axis=-1)
    s = np.broadcast_to(s, qshape + s.shape)
    step = np.take_along_axis(s, np.broadcast_to(high, qshape + batch + (1,)), -1) - \
        np.take_along_axis(s, np.broadcast_to(low, qshape + batch + (1,)), -1)
    dq = np.sum(g * step[..., 0], axis=tuple(range(len(qshape), len(qshape) + len(batch))))
    return da, dq * ((n - 1) / scale)


def median_grad(g, a, axis=None, keepdims=False):
    """Adjoint of ``np.median(a, axis, keepdims=keepdims)``."""
    return quantile_grads(g, a, 0.5, axis, keepdims)[0]


# ---- linspace ------------------------------------------------------------------------

def linspace_grads(g, start, stop, num=50, endpoint=True, retstep=False, axis=0):
    """Adjoints ``(dstart, dstop)`` of ``np.linspace(start, stop, num, endpoint,
    retstep, axis=axis)``: sample ``i`` is ``start (1 - t) + stop t`` with
    ``t = i / (num - 1)`` (``i / num`` without the end point)."""
    gstep = None
    if retstep:
        g, gstep = item(g, 0), item(g, 1)
    div = (num - 1) if endpoint else num
    xp = get_array_module(g, start, stop)
    t = xp.arange(num, dtype=float) / div if div > 0 else xp.zeros(num)
    ndim = max(np.ndim(start), np.ndim(stop)) + 1
    axis = axis % ndim
    t = t.reshape((num,) + (1,) * (ndim - 1 - axis))
    if g is None:
        g = xp.zeros(1)
        t = 0 * t
    dstart = np.sum(g * (1 - t), axis=axis)
    dstop = np.sum(g * t, axis=axis)
    if gstep is not None and div > 0:
        dstart, dstop = dstart - gstep / div, dstop + gstep / div
    return unbroadcast(dstart, start), unbroadcast(dstop, stop)


# ---- NaN-ignoring reductions ---------------------------------------------------------

def nansum_grad(g, a, axis=None, keepdims=False):
    """Adjoint of ``np.nansum(a, axis, keepdims=keepdims)``: zero at the NaNs."""
    return ~np.isnan(a) * _expand(g, a, axis, keepdims)


def nanmean_grad(g, a, axis=None, keepdims=False):
    """Adjoint of ``np.nanmean(a, axis, keepdims=keepdims)``."""
    present = ~np.isnan(a)
    count = np.sum(present, axis=axis, keepdims=True)
    return present * (_expand(g, a, axis, keepdims) / count)


def nanvar_grad(g, a, axis=None, ddof=0, keepdims=False):
    """Adjoint of ``np.nanvar(a, axis, ddof=ddof, keepdims=keepdims)``."""
    present = ~np.isnan(a)
    count = np.sum(present, axis=axis, keepdims=True)
    centered = np.where(present, a - np.nanmean(a, axis=axis, keepdims=True), 0)
    return 2 * centered * _expand(g, a, axis, keepdims) / (count - ddof)


def nanprod_grad(g, y, a, axis=None, keepdims=False):
    """Adjoint of ``np.nanprod(a, axis, keepdims=keepdims)``: NaNs count as ones."""
    present = ~np.isnan(a)
    return present * prod_grad(g, y, np.where(present, a, 1), axis, keepdims)


def nancumsum_grad(g, a, axis=None):
    """Adjoint of ``np.nancumsum(a, axis)``."""
    return ~np.isnan(a) * cumsum_grad(g, a, axis)


def nancumprod_grad(g, y, a, axis=None):
    """Adjoint of ``np.nancumprod(a, axis)``."""
    present = ~np.isnan(a)
    return present * cumprod_grad(g, y, np.where(present, a, 1), axis)
