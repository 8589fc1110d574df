"""Helpers that generated adjoint code calls.

Adjoint values are arrays (or Python floats), ``None`` for "zero, nothing
arrived yet", and two sparse forms:

* a ``dict`` for the adjoint of a list, tuple or dict, mapping an index
  (or key) to that element's adjoint; missing entries are zero;
* an :class:`IndexGrad` for the adjoint of an array read by index, a list
  of ``(index, value)`` pieces, scattered into a dense array only when
  needed (a time loop reading ``x[t]`` never builds a dense zero array per
  step).

Everything here works on any array module that follows the NumPy API.
"""

import numbers
from sys import getrefcount

import numpy as np

SEQUENCES = (list, tuple)
CONTAINERS = (list, tuple, dict)


class IndexGrad:
    """The adjoint of an array that was read by index: ``base`` (dense or None)
    plus ``pieces``, a list of ``(index, gradient)`` to scatter-add into it."""

    __slots__ = ("like", "base", "pieces")

    def __init__(self, like, base=None, pieces=None):
        self.like = like
        self.base = base
        self.pieces = pieces if pieces is not None else []

    def dense(self):
        out = np.zeros_like(self.like) if self.base is None else self.base.copy()
        for index, g in self.pieces:
            if _is_basic_index(index):
                out[index] += g
            else:
                scatter_add(out, index, g)
        return out


def scatter_add(out, index, g):
    """``out[index] += g`` with repeated indices adding up: ``add.at`` of the
    array's own module (``np.add.at`` does not dispatch to CuPy), or
    ``cupyx.scatter_add`` on CuPy versions without ``cupy.add.at``."""
    if isinstance(out, np.ndarray):
        np.add.at(out, index, g)
        return
    from .backend import get_array_module
    add = get_array_module(out).add
    if hasattr(add, "at"):
        add.at(out, index, g)
    else:
        import cupyx
        cupyx.scatter_add(out, index, g)


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (numbers.Integral, slice)) or i is None or i is Ellipsis
               for i in items)


def dense(g):
    """``g`` as a plain array (or float): scatters an :class:`IndexGrad`."""
    return g.dense() if isinstance(g, IndexGrad) else g


def as_container(g):
    """A container adjoint as a dict: a NumPy function applied to a list (say
    ``np.sum([a, b])``) gives its adjoint as one array, one row per element."""
    if g is None or isinstance(g, dict):
        return g
    g = dense(g)
    return {i: g[i] for i in range(len(g))}


def add(a, b):
    """The sum of two adjoints of the same value; either may be ``None`` (zero)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = as_container(a), as_container(b)
        for key, g in b.items():
            a[key] = add(a.get(key), g)
        return a
    if isinstance(a, IndexGrad):
        if isinstance(b, IndexGrad):
            a.pieces.extend(b.pieces)
            a.base = add(a.base, b.base)
            return a
        a, b = b, a
    if isinstance(b, IndexGrad):
        return IndexGrad(b.like, add(b.base, a), list(b.pieces))
    return a + b


def item(g, key):
    """The adjoint of element ``key`` of a container whose adjoint is ``g``."""
    if g is None:
        return None
    if isinstance(g, dict):
        return g.get(key)
    return dense(g)[key]


def seq(gs):
    """A list of adjoints (``None`` for zero) as a container adjoint."""
    return {i: g for i, g in enumerate(gs) if g is not None}


def _key(container, key):
    if isinstance(container, SEQUENCES) and isinstance(key, numbers.Integral) and key < 0:
        return key + len(container)
    return key


def getitem_grad(dx, x, index, dy):
    """Adjoint of ``y = x[index]``: adds ``dy`` into ``dx`` at ``index``.

    ``x`` may be a list, tuple or dict (``dx`` is then a dict) or an array
    (``dx`` becomes an :class:`IndexGrad`)."""
    if dy is None:
        return dx
    if isinstance(dy, IndexGrad):
        dy = dy.dense()
    if isinstance(x, CONTAINERS):
        dx = as_container(dx)
        if isinstance(index, (slice, range)):
            if dx is None:
                dx = {}
            positions = range(*index.indices(len(x))) if isinstance(index, slice) else index
            for key, g in zip(positions, _elements(dy)):
                dx[key] = add(dx.get(key), g)
            return dx
        key = _key(x, index)
        if dx is None:
            return {key: dy}
        dx[key] = add(dx.get(key), dy)
        return dx
    piece = (index, dy)
    if dx is None:
        return IndexGrad(x, None, [piece])
    if isinstance(dx, IndexGrad):
        dx.pieces.append(piece)
        return dx
    return IndexGrad(x, dx, [piece])


def accumulate_item(dx, key, dy):
    """``dx[key] += dy`` for a container adjoint ``dx`` (a dict) that has
    ``key``: in place when ``dx[key]`` is an array that owns its memory and
    that nothing but ``dx`` refers to (an array an earlier accumulation
    made), else into a new array."""
    v = dx[key]
    if type(dy) is IndexGrad:
        dy = dy.dense()
    if type(v) is np.ndarray and type(dy) is np.ndarray and v.base is None and \
            getrefcount(v) <= 3 and v.shape == dy.shape and v.dtype == dy.dtype and \
            v.flags.writeable:
        v += dy             # 3 references: dx's, v's and getrefcount's argument
    else:
        dx[key] = add(v, dy)


def _elements(g):
    if g is None:
        return ()
    n = max(g) + 1 if g else 0
    return [g.get(i) for i in range(n)]


def setitem_grad(dx, x, index, v=None):
    """Adjoint of ``x[index] = v``: returns ``(dx, dv)``, taking the written
    region's adjoint out of ``dx`` (the old contents' adjoint starts again
    from zero there).  ``x`` is a list or dict, or an array (``dv`` is then
    summed to ``v``'s shape, for a value broadcast into the region)."""
    if dx is None:
        return None, None
    if not isinstance(x, CONTAINERS):
        dx = dense(dx).copy()
        part = dx[index].copy()
        dx[index] = 0
        last = _last_writes(index, dx.shape[0] if dx.ndim else 0)
        if last is not None:                   # x[[0, 0]] = v: the last write lands
            part = part * last.reshape(last.shape + (1,) * (part.ndim - 1))
        return dx, (unbroadcast(part, v) if v is not None else None)
    dx = as_container(dx)
    return dx, dx.pop(_key(x, index), None)


def _host(a):
    """An index array on the host (a CuPy array is copied back)."""
    return np.asarray(a) if isinstance(a, (list, np.ndarray)) or not hasattr(a, "get") \
        else a.get()


def _last_writes(index, n):
    """For an integer-array index that repeats positions, a 0/1 mask of the
    writes that land (NumPy keeps the last one); else ``None``.  A tuple index
    whose integer arrays repeat a position is refused."""
    items = index if isinstance(index, tuple) else (index,)
    arrays = [_host(i) for i in items if isinstance(i, list) or
              hasattr(i, "dtype") and getattr(i, "ndim", 0) > 0]
    arrays = [a for a in arrays if a.dtype.kind in "iu"]   # masks select once each
    if not arrays:
        return None
    if len(items) > 1:
        keys = np.stack([a.ravel() for a in np.broadcast_arrays(*arrays)])
        if np.unique(keys, axis=1).shape[1] < keys.shape[1]:
            from ..errors import TransformError
            raise TransformError("cannot differentiate a write through repeated index "
                                 "tuples; write each position once")
        return None
    idx = arrays[0]
    if idx.ndim != 1:
        return None
    idx = idx % n if n else idx
    reversed_first = np.unique(idx[::-1], return_index=True)[1]
    if len(reversed_first) == len(idx):
        return None
    last = np.zeros(len(idx))
    last[len(idx) - 1 - reversed_first] = 1.0
    return last


def append_grad(dx, position):
    """Adjoint of ``x.append(v)`` where ``v`` went to ``position``: ``(dx, dv)``."""
    if dx is None:
        return None, None
    dx = as_container(dx)
    return dx, dx.pop(position, None)


def check_container(x, where):
    """Refuses an in-place write into an array on the differentiated path."""
    if not isinstance(x, (list, dict)):
        from ..errors import TransformError
        raise TransformError(
            f"cannot differentiate an in-place write into a {type(x).__name__}: "
            "build a new array instead (only lists and dicts may be assigned into)",
            *where)


def snapshot(x):
    """The value ``x`` has now, kept for the backward pass: a copy of an array,
    list or dict (the forward pass goes on to change it in place); numbers,
    strings and tuples of them as they are."""
    if hasattr(x, "shape") and hasattr(x, "copy"):
        return x.copy()
    if isinstance(x, (list, dict, tuple)):
        import copy
        return copy.deepcopy(x)
    return x


def check_not_array(x, where):
    """Refuses ``x += v`` on an array whose gradient is taken (it would change
    the array in place); numbers are fine."""
    if getattr(x, "ndim", 0) > 0:
        from ..errors import TransformError
        raise TransformError(
            "cannot differentiate an in-place operator on an array that carries "
            "gradients: write 'x = x + v' instead of 'x += v'", *where)


def star_count_refused(count, name, counts):
    """Refuses a ``*xs`` given to the primitive ``name`` that holds ``count``
    values where its adjoint rule takes one of ``counts`` (the compiler tests
    the count when the code runs: see ``transform.varargs.spread_starred``)."""
    from ..errors import TransformError
    takes = " or ".join(str(c) for c in counts)
    raise TransformError(f"cannot differentiate {name} given {count} value"
                         f"{'s' * (count != 1)} by '*': its "
                         f"gradient is defined for {takes} there; pass the arguments "
                         "one by one")


def unbroadcast(g, x):
    """Sums ``g`` over the axes along which ``x`` was broadcast to ``g``'s shape."""
    if getattr(g, "shape", 0) == getattr(x, "shape", 1) and not isinstance(g, IndexGrad):
        return g                               # the common case: nothing to sum
    if isinstance(g, (dict, IndexGrad)):
        if isinstance(g, IndexGrad):
            g = g.dense()
        else:
            from ..errors import TransformError
            raise TransformError("cannot differentiate '+' or '*' on lists or tuples that "
                                 "carry gradients unless the compiler knows they are "
                                 "sequences: write list(a) + list(b)")
    shape = x.shape if hasattr(x, "shape") else np.shape(x)
    gshape = g.shape if hasattr(g, "shape") else ()
    if gshape == shape:
        return g
    extra = len(gshape) - len(shape)
    if extra < 0 or any(n != 1 and m == 1 for n, m in zip(shape, gshape[extra:])):
        # g was not broadcast up to x (a total's scalar adjoint): spread it first.
        g = np.broadcast_to(g, np.broadcast_shapes(gshape, shape))
        gshape = g.shape
        if gshape == shape:
            return g
        extra = len(gshape) - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and gshape[i + extra] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=False)
    if len(shape) > 0:
        g = g.reshape(shape)
    if not hasattr(x, "shape") and hasattr(g, "shape") and not shape:
        return g[()]
    return g


def _expand(g, x, axis, keepdims):
    if axis is None or keepdims:
        return g
    axes = axis if isinstance(axis, tuple) else (axis,)
    ndim = np.ndim(x)
    for a in sorted(a % ndim for a in axes):
        g = np.expand_dims(g, a)
    return g


def _arr(x):
    """A list or tuple argument of a NumPy function, as the array NumPy made of it."""
    return np.asarray(x) if isinstance(x, SEQUENCES) else x


def sum_grad(g, x, axis=None, keepdims=False):
    """Adjoint of ``np.sum(x, axis, keepdims)``: ``g`` spread back over ``x``."""
    x = _arr(x)
    if not hasattr(x, "shape"):
        return g
    out = np.empty_like(x, dtype=np.result_type(x, g) if hasattr(g, "dtype") else x.dtype)
    out[...] = _expand(g, x, axis, keepdims)
    return out


def _count(x, axis):
    """How many elements of ``x`` each reduction over ``axis`` combines."""
    if axis is None:
        return np.size(x)
    return np.prod([np.shape(x)[a] for a in (axis if isinstance(axis, tuple) else (axis,))])


def mean_grad(g, x, axis=None, keepdims=False):
    """Adjoint of ``np.mean(x, axis, keepdims)``."""
    count = _count(x, axis)
    return sum_grad(g / count, x, axis, keepdims)


def extremum_grad(g, y, x, axis=None, keepdims=False):
    """Adjoint of ``np.max``/``np.min``: ``g`` goes to the elements equal to the
    extremum, shared equally between ties."""
    x = _arr(x)
    y = _expand(y, x, axis, keepdims)
    mask = (x == y)
    count = mask.sum(axis=axis, keepdims=True)
    return mask * (_expand(g, x, axis, keepdims) / count)


def transpose_grad(g, axes=None):
    """Adjoint of ``np.transpose(x, axes)``."""
    if axes is None:
        return np.transpose(g)
    return np.transpose(g, np.argsort(axes))


def _matrices(g, a, b):
    """``g``, ``a`` and ``b`` with 1-D operands promoted as ``np.matmul`` does
    (a vector on the left is a row, on the right a column); ``g`` of two
    vectors may be a Python number."""
    g = np.asarray(g)
    if b.ndim == 1:
        b = b[:, None]
        g = g[..., None]
    if a.ndim == 1:
        a = a[None, :]
        g = g[..., None, :]
    return g, a, b


def matmul_grad_a(g, a, b):
    """Adjoint of ``a @ b`` with respect to ``a``, for every pair of ranks
    ``np.matmul`` accepts (batch axes broadcast and summed back)."""
    if a.ndim == 2 and b.ndim == 2:
        return g @ b.T
    g2, a2, b2 = _matrices(g, a, b)
    return unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2).reshape(a.shape)


def matmul_grad_b(g, a, b):
    """Adjoint of ``a @ b`` with respect to ``b`` (see :func:`matmul_grad_a`)."""
    if a.ndim == 2 and b.ndim == 2:
        return a.T @ g
    g2, a2, b2 = _matrices(g, a, b)
    return unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2).reshape(b.shape)


def split_grad(g, xs, axis, stacked):
    """Adjoint of ``np.concatenate(xs, axis)`` (or ``np.stack`` when ``stacked``):
    a container adjoint with one slice of ``g`` per element of ``xs``; an
    array's adjoint when ``xs`` is an array (its rows were joined)."""
    if not isinstance(xs, CONTAINERS):
        axis = axis % np.ndim(g)
        if stacked:
            return np.moveaxis(g, axis, 0)
        return np.stack(np.split(g, len(xs), axis=axis))
    if stacked:
        return {i: np.take(g, i, axis=axis) for i in range(len(xs))}
    ends = np.cumsum([np.shape(np.atleast_1d(x))[axis] for x in xs])
    parts = np.split(g, ends[:-1], axis=axis)
    return {i: part.reshape(np.shape(x)) for i, (part, x) in enumerate(zip(parts, xs))}


def hstack_axis(xs):
    """The axis ``np.hstack`` joins ``xs`` along (0 for vectors and scalars, else 1)."""
    return 0 if np.ndim(xs[0]) <= 1 else 1


def vstack_grad(g, xs):
    """Adjoint of ``np.vstack(xs)``: a container adjoint, one block of rows per element."""
    ends = np.cumsum([np.shape(np.atleast_2d(x))[0] for x in xs])
    parts = np.split(g, ends[:-1], axis=0)
    return {i: part.reshape(np.shape(x)) for i, (part, x) in enumerate(zip(parts, xs))}


def array_grad(g, xs):
    """Adjoint of ``np.array(xs)`` for a (nested) list of differentiable values."""
    if not isinstance(xs, CONTAINERS):
        return g
    return {i: array_grad(g[i], x) for i, x in enumerate(xs)}


def zeros_like_tree(x):
    """Zero gradients with the structure of ``x``."""
    if isinstance(x, dict):
        return {k: zeros_like_tree(v) for k, v in x.items()}
    if isinstance(x, SEQUENCES):
        return type(x)(zeros_like_tree(v) for v in x)
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return np.zeros_like(x)
    if isinstance(x, numbers.Number):
        return type(x)(0) if not isinstance(x, bool) else 0.0
    return None


class Shape(tuple):
    """An array's shape, kept by a forward function instead of the array when
    the backward reads only the shape (``unbroadcast``'s second argument)."""

    __slots__ = ()
    shape = property(lambda self: self)


SCALAR_SHAPE = Shape(())     # what shape_of gives for any 0-d result (a full reduction's)


def shape_of(x):
    """What the backward needs of ``x`` to unbroadcast to it: its :class:`Shape`
    (an array), or ``x`` itself (a number)."""
    return Shape(x.shape) if hasattr(x, "shape") and hasattr(x, "dtype") else x


def present(g, x):
    """An adjoint that is never ``None``: ``g``, or zeros shaped like ``x``."""
    return zeros_like_tree(x) if g is None else g


def _writeable(a):
    """NumPy's read-only views (``broadcast_to``) say so; CuPy arrays have no such flag."""
    return getattr(getattr(a, "flags", None), "writeable", True)


def materialize(g, x):
    """The adjoint ``g`` as a gradient with the structure, shapes and dtypes of ``x``.

    Sparse container adjoints become lists/tuples/dicts, zeros fill what no
    contribution reached, broadcast views become writable arrays of ``x``'s dtype.
    """
    kind = type(x)
    if kind is np.ndarray and type(g) is np.ndarray and g.dtype == x.dtype and \
            g.shape == x.shape and g.flags.writeable:
        return g                                   # the common case, first
    if g is None:
        return zeros_like_tree(x)
    if (kind is list or kind is tuple) and type(g) is dict:
        out = []
        for i, v in enumerate(x):                  # arrays of the right kind, first
            e = g.get(i)
            out.append(e if type(v) is np.ndarray and type(e) is np.ndarray and
                       e.dtype == v.dtype and e.shape == v.shape and e.flags.writeable
                       else materialize(e, v))
        return out if kind is list else tuple(out)
    if kind is list or kind is tuple:
        get = as_container(g).get
        return kind([materialize(get(i), v) for i, v in enumerate(x)])
    if isinstance(x, dict):
        return {k: materialize(g.get(k), v) for k, v in x.items()}
    if isinstance(x, SEQUENCES):
        g = as_container(g)
        return type(x)(materialize(g.get(i), v) for i, v in enumerate(x))
    g = dense(g)
    if type(g) is type(x) and hasattr(x, "dtype") and g.dtype == x.dtype and \
            g.shape == x.shape and _writeable(g):
        return g
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        if np.shape(g) != x.shape:
            g = unbroadcast(g, x) if np.ndim(g) >= x.ndim else np.broadcast_to(g, x.shape)
        xp_array = type(x)
        if type(g) is not xp_array or g.dtype != x.dtype or not _writeable(g):
            g = np.array(g, dtype=x.dtype) if xp_array is np.ndarray else \
                g.astype(x.dtype, copy=True)
        return g
    if isinstance(x, numbers.Number):
        return float(g) if not isinstance(x, complex) else complex(g)
    return g


def seqlen(x):
    """``len(x)`` for a loop over ``x`` by index; refuses what is not a sequence
    (iterating a dict or a set by index would change the program's meaning)."""
    if isinstance(x, (dict, set, frozenset)) or not hasattr(x, "__getitem__"):
        raise TypeError(f"knet_st: cannot loop over a {type(x).__name__} by index here; "
                        "loop over a list, tuple, range or array")
    return len(x)


def seqkey(x, index):
    """The position(s) that ``x[index]`` reads, for a list that may grow later:
    a negative index or a slice is fixed against the length it has now."""
    if isinstance(x, SEQUENCES):
        if isinstance(index, numbers.Integral) and index < 0:
            return index + len(x)
        if isinstance(index, slice):
            return range(*index.indices(len(x)))
    return index


def prod_grad(g, y, x, axis=None, keepdims=False):
    """Adjoint of ``np.prod(x, axis, keepdims)``: each element's gradient is the
    product of the others (exact zeros included: no division)."""
    ndim = np.ndim(x)
    axes = tuple(range(ndim)) if axis is None else \
        tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    last = tuple(range(ndim - len(axes), ndim))
    moved = np.moveaxis(x, axes, last)
    flat = moved.reshape(moved.shape[:ndim - len(axes)] + (-1,))
    ones = np.ones_like(flat[..., :1])
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], -1), -1)
    right = np.flip(np.cumprod(np.concatenate([ones, np.flip(flat[..., 1:], -1)], -1), -1), -1)
    others = np.moveaxis((left * right).reshape(moved.shape), last, axes)
    return _expand(g, x, axis, keepdims) * others


def var_grad(g, x, axis=None, ddof=0, keepdims=False):
    """Adjoint of ``np.var(x, axis, ddof=ddof, keepdims)``."""
    count = _count(x, axis)
    centered = x - np.mean(x, axis=axis, keepdims=True)
    return 2 * centered * _expand(g, x, axis, keepdims) / (count - ddof)


def cumsum_grad(g, x, axis=None):
    """Adjoint of ``np.cumsum(x, axis)``: a cumulative sum from the end."""
    if axis is None:
        return np.flip(np.cumsum(np.flip(g.ravel()))).reshape(np.shape(x))
    return np.flip(np.cumsum(np.flip(g, axis), axis), axis)


def diag_grad(g, v, k=0):
    """Adjoint of ``np.diag(v, k)`` (building or extracting a diagonal)."""
    if np.ndim(v) == 1:
        return np.diagonal(g, k).copy()
    out = np.zeros_like(v)
    rows, cols = np.shape(v)
    i = np.arange(max(0, -k), min(rows, cols - k))
    out[i, i + k] = g
    return out


def repeat_grad(g, x, repeats, axis=None):
    """Adjoint of ``np.repeat(x, repeats, axis)`` for an integer ``repeats``."""
    if axis is None:
        return g.reshape(-1, repeats).sum(axis=1).reshape(np.shape(x))
    axis = axis % np.ndim(x)
    shape = list(np.shape(x))
    g = g.reshape(shape[:axis] + [shape[axis], repeats] + shape[axis + 1:])
    return g.sum(axis=axis + 1)


def tile_grad(g, x, reps):
    """Adjoint of ``np.tile(x, reps)``."""
    reps = (reps,) if np.isscalar(reps) else tuple(reps)
    shape = np.shape(x)
    ndim = max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + tuple(shape)
    reps = (1,) * (ndim - len(reps)) + reps
    split = []
    for r, n in zip(reps, shape):
        split += [r, n]
    g = g.reshape(split).sum(axis=tuple(range(0, 2 * ndim, 2)))
    return g.reshape(np.shape(x))


def take_grad(g, x, indices, axis=None):
    """Adjoint of ``np.take(x, indices, axis)``."""
    out = np.zeros_like(x, order="C")     # a C-order buffer: reshape(-1) is a view
    if axis is None:
        scatter_add(out.reshape(-1), indices, g)
        return out
    index = [slice(None)] * np.ndim(x)
    index[axis] = indices
    scatter_add(out, tuple(index), g)
    return out


_PAD_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad_grad(g, x, pad_width, mode="constant", options=None):
    """Adjoint of ``np.pad(x, pad_width, mode)``.  Constant padding: the interior
    of ``g``.  Modes that copy elements (edge, reflect, symmetric, wrap): each
    element of ``g`` added back to the element it copies, found by padding
    the array of element numbers the same way."""
    if mode == "constant":
        widths = np.broadcast_to(np.asarray(pad_width), (np.ndim(x), 2))
        index = tuple(slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, np.shape(x)))
        return g[index]
    if mode not in _PAD_MODES or (options or {}).get("reflect_type", "even") != "even":
        from ..errors import TransformError
        raise TransformError(f"no gradient is defined for np.pad with mode={mode!r}"
                             f"{' and ' + repr(options) if options else ''}")
    numbers = np.pad(np.arange(np.size(x)).reshape(np.shape(x)), pad_width, mode=mode)
    out = np.zeros_like(x, order="C")
    if not isinstance(out, np.ndarray):
        from .backend import get_array_module
        numbers = get_array_module(out).asarray(numbers)
    scatter_add(out.reshape(-1), numbers.reshape(-1), g.reshape(-1))
    return out


def item_grad(g, a, args):
    """Adjoint of ``a.item(*args)``: ``g`` at the one element read."""
    out = np.zeros_like(a, dtype=np.result_type(a, g), order="C")
    if not args:
        out.reshape(-1)[0] = g
    elif len(args) == 1 and not isinstance(args[0], tuple):
        out.reshape(-1)[args[0]] = g
    else:
        out[tuple(args[0]) if len(args) == 1 else tuple(args)] = g
    return out


def norm_grad(g, y, x, ord=None, axis=None, keepdims=False):
    """Adjoint of ``np.linalg.norm(x, ord, axis)``, every ``ord`` and ``axis``
    (see :func:`knet_st.runtime.linalg_grads.norm_grad`)."""
    from .linalg_grads import norm_grad
    if isinstance(x, (list, tuple)):                # as NumPy takes it
        x = np.asarray(x)
    return norm_grad(g, y, x, ord, axis, keepdims)


def positions(xs):
    """What a loop over ``xs`` reads by: indices of a sequence, keys of a dict."""
    if isinstance(xs, dict):
        return list(xs)
    return range(seqlen(xs))


def element(xs, k):
    """The loop variable of ``for x in xs`` at position ``k`` (a dict gives its key)."""
    if isinstance(xs, dict):
        return k
    return xs[k]


def element_tangent(dxs, xs, k):
    """Tangent of :func:`element`: the tangent of the element at ``k`` (a
    dict's key has none)."""
    if isinstance(xs, dict) or dxs is None:
        return None
    return dxs[k]


def element_grad(xs, k, g):
    """Adjoint of :func:`element` into the container adjoint of ``xs``."""
    if isinstance(xs, dict) or g is None:
        return None
    return getitem_grad(None, xs, k, g)


def inv_grad(g, y):
    """Adjoint of ``np.linalg.inv(a)``: ``-y^T g y^T``."""
    yt = np.swapaxes(y, -1, -2)
    return -(yt @ g @ yt)


def det_grad(g, y, a):
    """Adjoint of ``np.linalg.det(a)``: ``g y inv(a)^T``."""
    return (g * y)[..., None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)


def astype_grad(g, x, dtype):
    """Adjoint of ``x.astype(dtype)``: zero through a cast to integers or booleans."""
    if np.dtype(dtype).kind not in "fc":
        return np.zeros_like(x)
    return g.astype(x.dtype, copy=False)


def clip_grads(g, a, a_min, a_max):
    """Adjoints ``(da, da_min, da_max)`` of ``np.clip(a, a_min, a_max)``; a bound may be None."""
    below = (a < a_min) if a_min is not None else np.zeros(np.shape(a), bool)
    above = (a > a_max) if a_max is not None else np.zeros(np.shape(a), bool)
    inside = ~(below | above)
    return g * inside, g * below, g * above


def builtin_sum_grad(g, xs):
    """Adjoint of the builtin ``sum(xs)``: each element gets ``g``."""
    if hasattr(xs, "shape"):
        return np.broadcast_to(g, xs.shape) * np.ones_like(xs)
    return {i: g for i in range(len(xs))}


def inner_grads(g, a, b):
    """Adjoints ``(da, db)`` of ``np.inner(a, b)`` for 1-D and 2-D operands."""
    if np.ndim(a) <= 1 and np.ndim(b) <= 1:
        return g * b, g * a
    if np.ndim(a) == 2 and np.ndim(b) == 2:
        return g @ b, g.T @ a
    if np.ndim(a) == 2:
        return np.multiply.outer(g, b), a.T @ g
    return g @ b, np.multiply.outer(g, a)


def method_axes(axes):
    """``x.transpose(1, 0)`` and ``x.transpose((1, 0))`` alike."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        return tuple(axes[0])
    return axes or None
