"""Memory order of 4-D image batches for conv4 and pool.

Every image batch has the NCHW *shape* ``(N, C, H, W)``, but the arrays that
:func:`~knet_st.runtime.conv.conv4` and :func:`~knet_st.runtime.conv.pool`
return are *stored* channels-first, instances-last: ``(C, H, W, N)`` in
memory, seen through a transposed view.  That is the order im2col reads and
the convolution's matrix product writes, so a conv4 -> bias -> relu -> pool ->
conv4 chain copies no transposes (elementwise NumPy/CuPy operations keep their
inputs' memory order).  The values and shapes are the same either way; only
the strides differ, and functions accept every order.

Where conv4 runs on oneDNN (:mod:`knet_st.runtime.onednn`) its results are
stored channels-last, ``(N, H, W, C)`` in memory, the order oneDNN's fastest
kernels read and write; ``pool`` keeps that order too.  :func:`order` names
an array's order and :func:`empty` / :func:`full` make arrays in one.
"""

ORDERS = {"nchw": (0, 1, 2, 3), "chwn": (1, 2, 3, 0), "nhwc": (0, 2, 3, 1)}


def is_chwn(a):
    """Whether the 4-D array ``a`` (shape NCHW) is stored as contiguous ``(C, H, W, N)``.

    Example::

        is_chwn(np.zeros((2, 3, 4, 4)).transpose(3, 0, 1, 2))   # True
    """
    return a.ndim == 4 and a.transpose(1, 2, 3, 0).flags.c_contiguous


def order(a):
    """The memory order of the 4-D NCHW-shaped array ``a``: ``"nchw"`` (C-contiguous),
    ``"chwn"``, ``"nhwc"``, or None (none of them, e.g. a strided slice).

    Example::

        order(np.zeros((2, 3, 4, 4)))       # "nchw"
    """
    if a.ndim != 4:
        return None
    for name, perm in ORDERS.items():
        if a.transpose(perm).flags.c_contiguous:
            return name
    return None


def has_order(a, order_):
    """Whether ``a`` is stored contiguously in ``order_`` (a name of :data:`ORDERS`)."""
    return a.ndim == 4 and a.transpose(ORDERS[order_]).flags.c_contiguous


def nchw_view(a):
    """The NCHW-shaped view of a ``(C, H, W, N)`` array (no copy).

    Example::

        nchw_view(np.zeros((3, 4, 4, 2))).shape    # (2, 3, 4, 4)
    """
    return a.transpose(3, 0, 1, 2)


def empty(xp, shape, dtype, chwn):
    """An uninitialized array of NCHW ``shape``, stored CHWN if ``chwn`` is true,
    else NCHW; or in the order ``chwn`` names (``"nchw"``, ``"chwn"``, ``"nhwc"``;
    None means NCHW).

    Example::

        is_chwn(empty(np, (2, 3, 4, 4), np.float32, True))    # True
    """
    perm = ORDERS[chwn] if isinstance(chwn, str) else ORDERS["chwn" if chwn else "nchw"]
    if perm == (0, 1, 2, 3):
        return xp.empty(shape, dtype=dtype)
    inverse = tuple(perm.index(i) for i in range(4))
    return xp.empty(tuple(shape[i] for i in perm), dtype=dtype).transpose(inverse)


def full(xp, shape, fill, dtype, chwn):
    """Like :func:`empty`, every element set to ``fill``.

    Example::

        full(np, (1, 1, 2, 2), 0.0, np.float32, False)    # zeros
    """
    out = empty(xp, shape, dtype, chwn)
    out.fill(fill)
    return out
