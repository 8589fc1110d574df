"""Memory order of 4-D image batches for conv4 and pool.

Every image batch has the NCHW *shape* ``(N, C, H, W)``, but the arrays that
:func:`~knet_st.runtime.conv.conv4` and :func:`~knet_st.runtime.conv.pool`
return are *stored* channels-first, instances-last: ``(C, H, W, N)`` in
memory, seen through a transposed view.  That is the order im2col reads and
the convolution's matrix product writes, so a conv4 -> bias -> relu -> pool ->
conv4 chain copies no transposes (elementwise NumPy/CuPy operations keep their
inputs' memory order).  The values and shapes are the same either way; only
the strides differ, and functions accept both orders.
"""


def is_chwn(a):
    """Whether the 4-D array ``a`` (shape NCHW) is stored as contiguous ``(C, H, W, N)``.

    Example::

        is_chwn(np.zeros((2, 3, 4, 4)).transpose(3, 0, 1, 2))   # True
    """
    return a.ndim == 4 and a.transpose(1, 2, 3, 0).flags.c_contiguous


def nchw_view(a):
    """The NCHW-shaped view of a ``(C, H, W, N)`` array (no copy).

    Example::

        nchw_view(np.zeros((3, 4, 4, 2))).shape    # (2, 3, 4, 4)
    """
    return a.transpose(3, 0, 1, 2)


def empty(xp, shape, dtype, chwn):
    """An uninitialized array of NCHW ``shape``, stored CHWN if ``chwn`` else NCHW.

    Example::

        is_chwn(empty(np, (2, 3, 4, 4), np.float32, True))    # True
    """
    if not chwn:
        return xp.empty(shape, dtype=dtype)
    n, c, h, w = shape
    return nchw_view(xp.empty((c, h, w, n), dtype=dtype))


def full(xp, shape, fill, dtype, chwn):
    """Like :func:`empty`, every element set to ``fill``.

    Example::

        full(np, (1, 1, 2, 2), 0.0, np.float32, False)    # zeros
    """
    out = empty(xp, shape, dtype, chwn)
    out.fill(fill)
    return out
