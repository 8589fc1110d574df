"""Minibatching: iterate over (x, y) batches along the instance axis.

knet_st follows the Knet tutorial's layout: ``x`` is features x instances
(MNIST is 784 x N), so instances are on the LAST axis by default; for NCHW
image batches (N x C x H x W) pass ``axis=0``::

    for x, y in kt.minibatch(xtrn, ytrn, 100, shuffle=True):
        update(w, lossgradient(w, x, y), opts)
"""

import numbers

from .init import get_rng
from .distributed.train import shard_range

__all__ = ["minibatch", "MiniBatch"]


def _index(ndim, axis, sl):
    return (slice(None),) * axis + (sl,)


def _norm_axis(axis, ndim, what):
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{what} must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what}={axis} is out of range for an array with "
                         f"{ndim} dimensions")
    return int(axis) % ndim


class MiniBatch:
    """An iterable of minibatches; see :func:`minibatch`.

    ``len()`` is the number of batches per epoch; every ``iter()`` starts a
    new epoch (with a fresh permutation when shuffling).

    Example::

        d = MiniBatch(x, y, 100)
        len(d), next(iter(d))
    """

    def __init__(self, x, y, batchsize, shuffle=False, partial=False,
                 axis=-1, rng=None, yaxis=None, xtype=None, ytype=None,
                 shard=False):
        if not hasattr(x, "shape") or len(x.shape) == 0:
            raise TypeError("x must be an array with at least one dimension")
        if (not isinstance(batchsize, numbers.Integral)
                or isinstance(batchsize, bool) or batchsize < 1):
            raise ValueError(f"batchsize must be a positive integer, got "
                             f"{batchsize!r}")
        self.x = x
        self.y = y
        self.batchsize = int(batchsize)
        self.shuffle = bool(shuffle)
        self.partial = bool(partial)
        self.axis = _norm_axis(axis, len(x.shape), "axis")
        self.n = int(x.shape[self.axis])
        if y is not None:
            if not hasattr(y, "shape") or len(y.shape) == 0:
                raise TypeError("y must be an array with at least one "
                                "dimension, or None")
            if yaxis is None:
                yaxis = 0 if len(y.shape) == 1 else len(y.shape) - 1
            self.yaxis = _norm_axis(yaxis, len(y.shape), "yaxis")
            if int(y.shape[self.yaxis]) != self.n:
                raise ValueError(
                    f"x has {self.n} instances on axis {self.axis} but y has "
                    f"{y.shape[self.yaxis]} on axis {self.yaxis}")
        else:
            self.yaxis = None
        # None: the default generator of kt.seed, looked up at every epoch;
        # an int seed becomes one Generator, so each epoch differs
        self.rng = None if rng is None else get_rng(rng)
        self.xtype = xtype
        self.ytype = ytype
        self.shard = None
        if shard:
            from . import distributed
            if shard is True:
                rank, size = distributed.init()
            else:                                   # (rank, size)
                rank, size = shard
                shard_range(0, rank, size)          # checks them
            if size > 1:
                if self.batchsize % size:
                    raise distributed.DistributedError(
                        f"batchsize {self.batchsize} does not split evenly "
                        f"over {size} processes")
                self.shard = (rank, size)

    def __len__(self):
        if self.partial:
            return -(-self.n // self.batchsize)
        return self.n // self.batchsize

    def __repr__(self):
        shard = "" if self.shard is None else ", shard=%d/%d" % self.shard
        return (f"MiniBatch({len(self)} batches of {self.batchsize}, "
                f"n={self.n}, shuffle={self.shuffle}, "
                f"partial={self.partial}{shard})")

    def _take(self, a, axis, sel):
        return a[_index(len(a.shape), axis, sel)]

    def __iter__(self):
        n, bs = self.n, self.batchsize
        perm = None
        if self.shuffle:
            perm = get_rng(self.rng).permutation(n)
        for b in range(len(self)):
            i, j = b * bs, min(n, (b + 1) * bs)
            if self.shard is not None:       # this process's part of the batch
                i, j = (i + k for k in shard_range(j - i, *self.shard))
            sel = slice(i, j) if perm is None else perm[i:j]
            xb = self._take(self.x, self.axis, sel)
            if self.xtype is not None:
                xb = self.xtype(xb)
            if self.y is None:
                yield xb
                continue
            yb = self._take(self.y, self.yaxis, sel)
            if self.ytype is not None:
                yb = self.ytype(yb)
            yield xb, yb


def minibatch(x, y, batchsize, shuffle=False, partial=False, axis=-1,
              rng=None, yaxis=None, xtype=None, ytype=None, shard=False):
    """Split data into minibatches along the instance axis (Knet's
    ``minibatch``).

    Arguments:
        x: inputs, any NumPy-like array (CuPy works too).
        y: targets, or ``None`` to iterate over ``x`` batches alone.
        batchsize: instances per batch.
        shuffle: a new random order at every epoch (every ``iter``).
            Without it the batches are views of ``x`` and ``y`` (no copy).
        partial: keep the last, smaller batch (default: drop it).
        axis: instance axis of ``x``: the last one by default (features x
            instances, as in Knet); ``axis=0`` for NCHW images.
        rng: for shuffling: None (the generator of ``kt.seed``), an int seed
            or a ``numpy.random.Generator``.
        yaxis: instance axis of ``y``; default its last axis, or 0 when
            ``y`` is 1-D (a vector of labels).
        xtype, ytype: optional callables applied to each batch, e.g.
            ``cupy.asarray`` to move CPU data to the GPU batch by batch.
        shard: in a data-parallel run (``mpiexec``, see
            :mod:`knet_st.distributed`), each process gets its contiguous
            1/P of every batch of ``batchsize`` (the global batch, which
            must split evenly; a partial last batch may split unevenly).
            Every process must shuffle with the same seed.  Nothing changes
            in a plain process.  ``(rank, size)`` picks a part explicitly.

    Returns:
        A :class:`MiniBatch` iterable of ``(x, y)`` pairs (or ``x`` alone),
        with ``len()`` equal to the number of batches.

    Example::

        xtrn, ytrn, xtst, ytst = kt.datasets.mnist()   # 784xN, N labels
        dtrn = kt.minibatch(xtrn, ytrn, 100, shuffle=True)
        for x, y in dtrn:           # x: 784x100, y: 100
            ...
    """
    return MiniBatch(x, y, batchsize, shuffle=shuffle, partial=partial,
                     axis=axis, rng=rng, yaxis=yaxis, xtype=xtype,
                     ytype=ytype, shard=shard)
