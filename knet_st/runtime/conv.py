"""Convolution and pooling for 4-D arrays, with explicit gradient functions.

Layout
------
Data arrays are NCHW: ``(N, C, H, W)`` = (instances, channels, height,
width).  Filters are ``(Cout, Cin, KH, KW)``.  This is the row-major image of
Knet's column-major layout: Knet stores data as ``W x H x C x N`` and filters
as ``KW x KH x Cin x Cout``, and reading the same memory in row-major order
reverses the axes.  So the tutorial's shapes map one to one, reversed::

    Knet (Julia)              knet_st (Python)
    x: 28x28x1x100            x: (100, 1, 28, 28)
    w: 5x5x1x20               w: (20, 1, 5, 5)
    conv4(w, x): 24x24x20x100 conv4(w, x): (100, 20, 24, 24)
    pool(y): 12x12x20x100     pool(y): (100, 20, 12, 12)

Tuple-valued ``padding``/``stride``/``window`` arguments are in this
module's (H, W) order (Knet's tuples are (W, H)); the tutorial uses scalars.

Convolution mode
----------------
Knet's ``conv4`` (like cuDNN) takes ``mode=0`` for *convolution* (the filter
is flipped along both spatial axes) and ``mode=1`` for *cross-correlation*
(what most Python frameworks call "conv").  ``mode=0`` is Knet's default and
is this module's default too, so a model ported from Knet computes the same
numbers.  For learned filters the two modes are equally expressive (the
learned filter is simply stored flipped).

Implementation
--------------
NumPy/CuPy code, no Python loops over pixels or instances.  The input is
read as a channels-first, instances-last ``(C, H, W, N)`` buffer (padded),
so that every window row is a long contiguous run; ``im2col`` is a single
``as_strided`` copy to a ``(C*KH*KW, OH*OW*N)`` matrix, and the forward pass
and each gradient is ONE matrix product.  ``col2im`` (for the input
gradient) loops over the KH*KW kernel offsets, each a strided add.

The results are NCHW-shaped views of ``(C, H, W, N)`` memory (see
:mod:`knet_st.runtime.layout`), which is what the matrix products write and
im2col reads: an input stored that way needs no copy before im2col, and
``pool`` keeps its input's order, so LeNet's layers copy no transposes.  The
forward pass leaves its im2col matrix in :mod:`knet_st.runtime.colcache`,
where ``conv4_dw`` takes it back if the input array is unchanged.

oneDNN
------
With the optional extra ``knet_st[onednn]`` installed, float32 NumPy arrays
go to oneDNN instead (:mod:`knet_st.runtime.onednn`, the library PyTorch
uses on the CPU): the forward pass, the filter gradient, and the input
gradient where the input has at least ``ONEDNN_DX_MIN_CHANNELS`` channels
(below that the NumPy path is faster); and ``pool`` / ``pool_dx`` on float32
arrays stored channels-last (NHWC), which is how oneDNN's results are stored
(instead of CHWN).  Max pooling's gradient picks the same element of a tied
window in both paths (the first in row-major order).  ``KNET_ST_ONEDNN=on``
turns it on (off by default: see :mod:`.onednn`); float64, CuPy and any case oneDNN refuses take the NumPy path,
which is the reference the tests compare oneDNN with.

On CuPy arrays the same im2col code runs on the GPU (CuPy provides
``cupy.lib.stride_tricks.as_strided``).  That path is simple and correct by
construction but is NOT tested on this project's CI machines (no GPU); it is
exercised by ``tests/gpu/check.sh``.  A cuDNN path could replace it later.

Gradients
---------
For ``y = conv4(w, x, ...)`` and an upstream gradient ``dy``::

    dw = conv4_dw(dy, w, x, padding, stride, mode)
    dx = conv4_dx(dy, w, x, padding, stride, mode)

For ``y = pool(x, ...)``::

    dx = pool_dx(dy, y, x, window, padding, stride, mode)
"""

import numpy as np

from . import colcache, layout, onednn
from .backend import get_array_module

__all__ = ["conv4", "conv4_dw", "conv4_dx", "pool", "pool_dx", "conv_out_shape",
           "pool_out_shape"]


# ----------------------------------------------------------------- helpers

def _pair(v, name):
    """An int or a 2-sequence -> (h, w) ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError("%s must be an int or an (h, w) pair, got %r" % (name, v))
        a, b = int(v[0]), int(v[1])
    else:
        a = b = int(v)
    return a, b


def _as_strided(xp, a, shape, strides):
    if xp is np:
        return np.lib.stride_tricks.as_strided(a, shape, strides, writeable=False)
    return xp.lib.stride_tricks.as_strided(a, shape, strides)


def _check_mode(mode):
    if mode not in (0, 1):
        raise ValueError("conv4 mode must be 0 (convolution, Knet's default) or "
                         "1 (cross-correlation), got %r" % (mode,))


def _conv_geometry(wshape, xshape, padding, stride):
    if len(xshape) != 4 or len(wshape) != 4:
        raise ValueError("conv4 needs 4-D arrays: x (N, C, H, W) and w (Cout, Cin, KH, KW); "
                         "got x%s and w%s" % (tuple(xshape), tuple(wshape)))
    O, Cw, KH, KW = wshape
    N, C, H, W = xshape
    if C != Cw:
        raise ValueError("conv4: x has %d channels (axis 1) but w expects %d (axis 1); "
                         "x%s, w%s" % (C, Cw, tuple(xshape), tuple(wshape)))
    ph, pw = _pair(padding, "padding")
    sh, sw = _pair(stride, "stride")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError("conv4: stride must be >= 1 and padding >= 0")
    OH = 1 + (H + 2 * ph - KH) // sh
    OW = 1 + (W + 2 * pw - KW) // sw
    if OH < 1 or OW < 1:
        raise ValueError("conv4: filter %dx%d larger than padded input %dx%d"
                         % (KH, KW, H + 2 * ph, W + 2 * pw))
    return O, C, KH, KW, N, H, W, ph, pw, sh, sw, OH, OW


def conv_out_shape(wshape, xshape, padding=0, stride=1):
    """Shape of ``conv4(w, x, padding, stride)`` from the shapes alone.

    ``OH = 1 + (H + 2*padding - KH) // stride`` (likewise for W), as in Knet.

    Example::

        conv_out_shape((20, 1, 5, 5), (100, 1, 28, 28))   # (100, 20, 24, 24)
    """
    O, C, KH, KW, N, H, W, ph, pw, sh, sw, OH, OW = _conv_geometry(
        tuple(wshape), tuple(xshape), padding, stride)
    return (N, O, OH, OW)


def _nchw_to_chwn(xp, x):
    """(N, C, H, W) -> contiguous (C, H, W, N).

    On NumPy the transpose is copied 32 instances at a time, which is up to 2x
    faster than one strided copy for the shapes met here (cache-friendlier)."""
    N = x.shape[0]
    a2 = xp.ascontiguousarray(x).reshape(N, -1)
    if xp is not np or a2.size < 65536:
        out = xp.ascontiguousarray(a2.T)
    else:
        out = np.empty(a2.shape[::-1], dtype=a2.dtype)
        for s in range(0, N, 32):
            out[:, s:s + 32] = a2[s:s + 32].T
    return out.reshape(x.shape[1:] + (N,))


def _padded_chwn(xp, x, ph, pw):
    """x (N, C, H, W) -> zero-padded contiguous (C, H+2ph, W+2pw, N).

    A view of ``x`` when ``x`` is stored CHWN and there is no padding."""
    if ph == 0 and pw == 0:
        if layout.is_chwn(x):
            return x.transpose(1, 2, 3, 0)
        return _nchw_to_chwn(xp, x)
    N, C, H, W = x.shape
    out = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=x.dtype)
    if layout.is_chwn(x):
        out[:, ph:ph + H, pw:pw + W, :] = x.transpose(1, 2, 3, 0)
    else:
        out[:, ph:ph + H, pw:pw + W, :] = _nchw_to_chwn(xp, x)
    return out


def _chwn_of(xp, a):
    """a (N, C, H, W) -> contiguous (C, H, W, N): a view when ``a`` is stored CHWN."""
    return _padded_chwn(xp, a, 0, 0)


def _im2col(xp, xT, KH, KW, OH, OW, sh, sw):
    """xT (C, Hp, Wp, N) contiguous -> cols (C*KH*KW, OH*OW*N).

    cols[(c, i, j), (oh, ow, n)] = xT[c, oh*sh + i, ow*sw + j, n]."""
    C, Hp, Wp, N = xT.shape
    sC, sH, sW, sN = xT.strides
    v = _as_strided(xp, xT, (C, KH, KW, OH, OW, N),
                    (sC, sH, sW, sH * sh, sW * sw, sN))
    return xp.ascontiguousarray(v).reshape(C * KH * KW, OH * OW * N)


# oneDNN's input gradient is several times slower than the NumPy path for
# inputs with very few channels (4x on LeNet's 1-channel images), as fast or
# faster from about 8 channels on (measured: 16, 20, 32)
ONEDNN_DX_MIN_CHANNELS = 8


def _kernel(w, mode):
    """The filter as used by cross-correlation: flipped for mode 0."""
    _check_mode(mode)
    return w[:, :, ::-1, ::-1] if mode == 0 else w


# ---------------------------------------------------------------- conv4

def conv4(w, x, padding=0, stride=1, mode=0):
    """2-D convolution of a batch of images, Knet's ``conv4``.

    Args:
        w: filters, shape ``(Cout, Cin, KH, KW)``.
        x: images, shape ``(N, Cin, H, W)`` (NCHW).
        padding: zeros added on both sides of H and W (int or (ph, pw)).
        stride: step between windows (int or (sh, sw)).
        mode: 0 = convolution, the filter flipped (Knet/cuDNN default);
            1 = cross-correlation (PyTorch's ``conv2d``).

    Returns:
        ``y`` of shape ``(N, Cout, OH, OW)`` with
        ``OH = 1 + (H + 2*padding - KH) // stride`` (likewise OW), dtype
        ``result_type(w, x)``.  Gradients: :func:`conv4_dw`, :func:`conv4_dx`.

    Example::

        x = np.random.rand(100, 1, 28, 28).astype(np.float32)
        w = 0.1 * np.random.randn(20, 1, 5, 5).astype(np.float32)
        y = conv4(w, x)             # (100, 20, 24, 24)
    """
    xp = get_array_module(w, x)
    O, C, KH, KW, N, H, W, ph, pw, sh, sw, OH, OW = _conv_geometry(
        w.shape, x.shape, padding, stride)
    wk = _kernel(w, mode)
    if onednn.enabled(w, x):
        y = onednn.conv_fwd(np.ascontiguousarray(wk), x, (N, O, OH, OW), (ph, pw, sh, sw))
        if y is not None:                       # else a case oneDNN does not implement
            return y
    xT = _padded_chwn(xp, x, ph, pw)
    cols = _im2col(xp, xT, KH, KW, OH, OW, sh, sw)
    if not xp.may_share_memory(cols, xT):       # a view (1x1 filters) costs nothing to rebuild
        colcache.put(x, (KH, KW, ph, pw, sh, sw), _snapshot(x, xT, ph, pw), cols)
    y = xp.ascontiguousarray(wk).reshape(O, C * KH * KW) @ cols   # (O, OH*OW*N)
    return layout.nchw_view(y.reshape(O, OH, OW, N))


def _snapshot(x, xT, ph, pw):
    """A copy of x's values that nothing else writes: xT's interior, unless xT is x itself."""
    if not (ph or pw) and layout.is_chwn(x):        # _padded_chwn returned a view of x
        return x.copy(order="K")
    H, W = x.shape[2], x.shape[3]
    return layout.nchw_view(xT[:, ph:ph + H, pw:pw + W, :])


def _columns(xp, x, KH, KW, OH, OW, ph, pw, sh, sw):
    """The im2col matrix of x: the one conv4 kept for this x if x is unchanged, else built."""
    cols = colcache.take(xp, x, (KH, KW, ph, pw, sh, sw))
    if cols is None:
        cols = _im2col(xp, _padded_chwn(xp, x, ph, pw), KH, KW, OH, OW, sh, sw)
    return cols


def conv4_dw(dy, w, x, padding=0, stride=1, mode=0):
    """Gradient of ``conv4(w, x, padding, stride, mode)`` with respect to ``w``.

    Args:
        dy: gradient of the loss w.r.t. the output, shape ``(N, Cout, OH, OW)``.
        w, x, padding, stride, mode: the forward call's arguments.

    Returns:
        ``dw`` with ``w``'s shape and dtype.

    Example::

        y = conv4(w, x); dw = conv4_dw(np.ones_like(y), w, x)
    """
    xp = get_array_module(dy, w, x)
    O, C, KH, KW, N, H, W, ph, pw, sh, sw, OH, OW = _conv_geometry(
        w.shape, x.shape, padding, stride)
    _check_mode(mode)
    if tuple(dy.shape) != (N, O, OH, OW):
        raise ValueError("conv4_dw: dy has shape %s, expected %s"
                         % (tuple(dy.shape), (N, O, OH, OW)))
    dw = onednn.conv_bwd_weights(dy, x, w.shape, (ph, pw, sh, sw)) \
        if onednn.enabled(dy, w, x) else None
    if dw is not None:
        return np.ascontiguousarray(dw[:, :, ::-1, ::-1]) if mode == 0 else dw
    cols = _columns(xp, x, KH, KW, OH, OW, ph, pw, sh, sw)
    dy2 = _chwn_of(xp, dy).reshape(O, OH * OW * N)
    # cols @ dy2.T then transposed: OpenBLAS is ~15% faster on this operand
    # order (long inner dimension, small outputs) than on dy2 @ cols.T
    dw = (cols @ dy2.T).T.reshape(O, C, KH, KW)
    if mode == 0:
        dw = dw[:, :, ::-1, ::-1]
    return xp.ascontiguousarray(dw.astype(w.dtype, copy=False))


def conv4_dx(dy, w, x, padding=0, stride=1, mode=0):
    """Gradient of ``conv4(w, x, padding, stride, mode)`` with respect to ``x``.

    One matrix product ``w2.T @ dy2`` gives the gradient of the im2col
    matrix; col2im then adds it back into the (padded) image with one
    strided add per kernel offset (KH*KW of them).  Padding is cropped off.

    Args:
        dy: gradient w.r.t. the output, shape ``(N, Cout, OH, OW)``.
        w, x, padding, stride, mode: the forward call's arguments (only
            ``x``'s shape and dtype are used).

    Returns:
        ``dx`` with ``x``'s shape and dtype.

    Example::

        y = conv4(w, x); dx = conv4_dx(np.ones_like(y), w, x)
    """
    xp = get_array_module(dy, w, x)
    O, C, KH, KW, N, H, W, ph, pw, sh, sw, OH, OW = _conv_geometry(
        w.shape, x.shape, padding, stride)
    if tuple(dy.shape) != (N, O, OH, OW):
        raise ValueError("conv4_dx: dy has shape %s, expected %s"
                         % (tuple(dy.shape), (N, O, OH, OW)))
    if C >= ONEDNN_DX_MIN_CHANNELS and onednn.enabled(dy, w, x):
        dx = onednn.conv_bwd_data(dy, np.ascontiguousarray(_kernel(w, mode)), x.shape,
                                  (ph, pw, sh, sw))
        if dx is not None:
            return dx
    wk = xp.ascontiguousarray(_kernel(w, mode)).reshape(O, C * KH * KW)
    dy2 = _chwn_of(xp, dy).reshape(O, OH * OW * N)
    dcols = (wk.T @ dy2).reshape(C, KH, KW, OH, OW, N)
    dxT = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            dxT[:, i:i + sh * OH:sh, j:j + sw * OW:sw, :] += dcols[:, i, j]
    if ph or pw:
        dxT = xp.ascontiguousarray(dxT[:, ph:ph + H, pw:pw + W, :])
    return layout.nchw_view(dxT.astype(x.dtype, copy=False))


# ----------------------------------------------------------------- pool

_POOL_MODES = {0: "max", 1: "avg", 2: "avg_nopad",
               "max": "max", "avg": "avg", "avg_nopad": "avg_nopad"}


def _pool_mode(mode):
    try:
        return _POOL_MODES[mode]
    except (KeyError, TypeError):
        raise ValueError("pool mode must be 'max' (0), 'avg' (1, padding counted) or "
                         "'avg_nopad' (2, padding not counted), got %r" % (mode,))


def _pool_geometry(xshape, window, padding, stride):
    if len(xshape) != 4:
        raise ValueError("pool needs a 4-D (N, C, H, W) array, got shape %s" % (tuple(xshape),))
    N, C, H, W = xshape
    kh, kw = _pair(window, "window")
    ph, pw = _pair(padding, "padding")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError("pool: window and stride must be >= 1, padding >= 0")
    OH = 1 + (H + 2 * ph - kh) // sh
    OW = 1 + (W + 2 * pw - kw) // sw
    if OH < 1 or OW < 1:
        raise ValueError("pool: window %dx%d larger than padded input %dx%d"
                         % (kh, kw, H + 2 * ph, W + 2 * pw))
    return N, C, H, W, kh, kw, ph, pw, sh, sw, OH, OW


def pool_out_shape(xshape, window=2, padding=0, stride=None):
    """Shape of ``pool(x, window, padding, stride)``.

    ``OH = 1 + (H + 2*padding - window) // stride`` (likewise W), as in Knet.

    Example::

        pool_out_shape((100, 20, 24, 24))   # (100, 20, 12, 12)
    """
    N, C, H, W, kh, kw, ph, pw, sh, sw, OH, OW = _pool_geometry(
        tuple(xshape), window, padding, stride)
    return (N, C, OH, OW)


def _padded(xp, x, ph, pw, fill):
    """x (N, C, H, W) padded on H and W with ``fill`` (x itself if no padding)."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    out = layout.full(xp, (N, C, H + 2 * ph, W + 2 * pw), fill, x.dtype, layout.order(x))
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def _offset(a, i, j, g):
    """The (N, C, OH, OW) strided view of the elements at window offset (i, j)."""
    sh, sw, OH, OW = g[8], g[9], g[10], g[11]
    return a[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw]


def _avg_counts(xp, g, dtype):
    """Number of non-padding elements in each window, shape (OH, OW)."""
    N, C, H, W, kh, kw, ph, pw, sh, sw, OH, OW = g
    r0 = np.arange(OH) * sh - ph
    c0 = np.arange(OW) * sw - pw
    rows = np.minimum(r0 + kh, H) - np.maximum(r0, 0)
    cols = np.minimum(c0 + kw, W) - np.maximum(c0, 0)
    cnt = np.maximum(rows, 0)[:, None] * np.maximum(cols, 0)[None, :]
    return xp.asarray(np.maximum(cnt, 1).astype(dtype))


def _lowest(dtype):
    """Padding value for max pooling: never larger than any element."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _float_dtype(*dtypes):
    dt = np.result_type(*dtypes)
    return dt if dt.kind in "fc" else np.dtype(np.float64)


def _onednn_pool(x, g, m, dy=None):
    """pool(x) (or, given ``dy``, its gradient) by oneDNN for float32 x stored
    NHWC, as oneDNN's convolutions leave it; None where it does not apply."""
    if not (layout.has_order(x, "nhwc") and onednn.enabled(x, *(() if dy is None else (dy,)))):
        return None
    og = (g[4], g[5], g[6], g[7], g[8], g[9], m)       # kh, kw, ph, pw, sh, sw, mode
    return onednn.pool(x, og) if dy is None else onednn.pool_dx(dy, x, og)


def pool(x, window=2, padding=0, stride=None, mode="max"):
    """Pooling over the H and W axes of an NCHW array, Knet's ``pool``.

    Args:
        x: array of shape ``(N, C, H, W)``.
        window: pooling window (int or (kh, kw)); default 2.
        padding: padding on both sides of H and W (int or pair).  Max
            pooling pads with ``-inf`` (padding never wins); average pooling
            pads with zeros.
        stride: step between windows; ``None`` (default) = ``window``.
        mode: ``'max'`` (Knet mode 0), ``'avg'`` (Knet mode 1: average,
            padding counted) or ``'avg_nopad'`` (Knet mode 2: padding not
            counted).  Knet's integer modes 0/1/2 are accepted.

    Returns:
        ``y`` of shape ``(N, C, OH, OW)``,
        ``OH = 1 + (H + 2*padding - window) // stride`` (likewise OW); rows
        and columns that do not fill a window are dropped, as in Knet.
        Gradient: :func:`pool_dx`.

    The work is one vectorized elementwise pass per window offset
    (kh*kw passes), which on NumPy is much faster than a reduction over
    strided window axes.

    Example::

        y = pool(np.random.rand(100, 20, 24, 24))    # (100, 20, 12, 12)
    """
    xp = get_array_module(x)
    m = _pool_mode(mode)
    g = _pool_geometry(x.shape, window, padding, stride)
    N, C, H, W, kh, kw, ph, pw, sh, sw, OH, OW = g
    y = _onednn_pool(x, g, m)
    if y is not None:
        return y
    if m == "max":
        a = _padded(xp, x, ph, pw, _lowest(x.dtype))
        y = layout.empty(xp, (N, C, OH, OW), x.dtype, layout.order(x))
        xp.copyto(y, _offset(a, 0, 0, g))
        for t in range(1, kh * kw):
            i, j = divmod(t, kw)
            xp.maximum(y, _offset(a, i, j, g), out=y)
        return y
    a = _padded(xp, x, ph, pw, 0)
    y = _offset(a, 0, 0, g).astype(_float_dtype(x.dtype))      # a copy
    for t in range(1, kh * kw):
        i, j = divmod(t, kw)
        xp.add(y, _offset(a, i, j, g), out=y)
    if m == "avg":
        y /= kh * kw
    else:
        y /= _avg_counts(xp, g, y.dtype)
    return y


def _in_order(xp, a, order):
    """``a`` stored in memory order ``order`` (a name of :data:`layout.ORDERS`;
    None = NCHW): itself if it already is, else a copy.

    Mixing memory orders makes every elementwise pass a strided gather,
    several times slower than one copy."""
    if layout.has_order(a, order or "nchw"):
        return a
    out = layout.empty(xp, a.shape, a.dtype, order)
    xp.copyto(out, a)
    return out


def pool_dx(dy, y, x, window=2, padding=0, stride=None, mode="max"):
    """Gradient of ``y = pool(x, window, padding, stride, mode)`` w.r.t. ``x``.

    Max pooling routes each window's gradient to the element that holds the
    maximum; when several elements tie, to the first one in row-major window
    order (so, e.g., a window of relu zeros passes its gradient to exactly
    one element, as in PyTorch).  Average pooling spreads ``dy`` evenly over
    the window (over its non-padding part for ``'avg_nopad'``).  Overlapping
    windows add up.  The work is a few vectorized passes per window offset
    (kh*kw of them), with preallocated buffers.

    Args:
        dy: gradient w.r.t. ``y``, shape ``(N, C, OH, OW)``.
        y: the forward output (used by max pooling to find the argmax; may be
            ``None``, then it is recomputed).
        x, window, padding, stride, mode: the forward call's arguments.

    Returns:
        ``dx`` with ``x``'s shape (floating dtype).

    Example::

        y = pool(x); dx = pool_dx(np.ones_like(y), y, x)
    """
    xp = get_array_module(dy, y, x)
    m = _pool_mode(mode)
    g = _pool_geometry(x.shape, window, padding, stride)
    N, C, H, W, kh, kw, ph, pw, sh, sw, OH, OW = g
    if tuple(dy.shape) != (N, C, OH, OW):
        raise ValueError("pool_dx: dy has shape %s, expected %s"
                         % (tuple(dy.shape), (N, C, OH, OW)))
    dx = _onednn_pool(x, g, m, dy)
    if dx is not None:
        return dx
    dtype = _float_dtype(dy.dtype, x.dtype)
    order = layout.order(x)      # the memory order of x, kept by every buffer below
    dy = _in_order(xp, dy, order)
    if y is not None:
        y = _in_order(xp, y, order)
    overlap = sh < kh or sw < kw
    tiled = (ph == 0 and pw == 0 and sh == kh and sw == kw
             and OH * kh == H and OW * kw == W)
    # the gradient of the padded input, in x's memory order (so that every
    # pass streams through both); every element is written exactly once
    # when the windows tile x exactly, else start from zeros
    shape = (N, C, H + 2 * ph, W + 2 * pw)
    dxp = (layout.empty(xp, shape, dtype, order) if tiled
           else layout.full(xp, shape, 0, dtype, order))
    tmp = layout.empty(xp, (N, C, OH, OW), dtype, order) if overlap else None

    def put(i, j, value_fn):
        dst = _offset(dxp, i, j, g)
        if overlap:
            value_fn(tmp)
            xp.add(dst, tmp, out=dst)
        else:
            value_fn(dst)

    if m == "max":
        if y is None:
            y = pool(x, window, padding, stride, mode)
        a = _padded(xp, x, ph, pw, _lowest(x.dtype))
        hit = layout.empty(xp, (N, C, OH, OW), bool, order)
        todo = layout.empty(xp, (N, C, OH, OW), bool, order)   # windows not yet routed
        for t in range(kh * kw):
            i, j = divmod(t, kw)
            xp.equal(_offset(a, i, j, g), y, out=hit)
            if t == 0:
                xp.logical_not(hit, out=todo)
            else:
                xp.logical_and(hit, todo, out=hit)    # first hit only
                if t < kh * kw - 1:
                    xp.greater(todo, hit, out=todo)   # todo and not hit
            put(i, j, lambda out: xp.multiply(dy, hit, out=out))
    else:
        if m == "avg":
            share = dy / (kh * kw)
        else:
            share = dy / _avg_counts(xp, g, dtype)
        share = share.astype(dtype, copy=False)
        for t in range(kh * kw):
            i, j = divmod(t, kw)
            put(i, j, lambda out: xp.copyto(out, share))
    if ph or pw:
        inner = dxp[:, :, ph:ph + H, pw:pw + W]
        dxp = layout.empty(xp, inner.shape, dtype, order)
        xp.copyto(dxp, inner)
    return dxp
