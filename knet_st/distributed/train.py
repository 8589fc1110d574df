"""Training helpers of :mod:`knet_st.distributed`: each process's slice of
the data, and an update that averages the gradients first."""

import numbers

from .. import optim
from . import _comm
from .errors import DistributedError


def shard_range(n, rank=None, size=None, even=False):
    """``(start, stop)`` of process ``rank``'s contiguous slice of ``n``
    instances split over ``size`` processes (the first ``n % size`` slices
    are one longer).  ``rank``/``size`` default to this run's.  With
    ``even``, refuses an ``n`` that does not split evenly.

    Example::

        shard_range(100, 1, 4)      # (25, 50)
    """
    w = _comm.world()
    rank = w.rank if rank is None else rank
    size = w.size if size is None else size
    for name, v in (("rank", rank), ("size", size), ("n", n)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
            raise DistributedError(f"shard: {name} must be an integer >= 0, "
                                   f"got {v!r}")
    if size < 1 or rank >= size:
        raise DistributedError(f"shard: rank {rank} is not in 0..{size - 1}")
    if even and n % size:
        raise DistributedError(f"{n} instances do not split evenly over "
                               f"{size} processes")
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


def shard(x, axis=-1, even=True):
    """This process's contiguous slice of array ``x`` along ``axis`` (a
    view): the whole of ``x`` in one process.  With ``even`` (the default)
    the length must split evenly, so that the mean over processes of the
    per-process mean losses is the mean loss of the whole.

    Example::

        streams = kt.distributed.shard(sequence, axis=1)   # T x (B/P)
    """
    if not hasattr(x, "shape") or len(x.shape) == 0:
        raise DistributedError("shard: x must be an array with at least one "
                               "dimension")
    nd = len(x.shape)
    if not isinstance(axis, numbers.Integral) or not -nd <= axis < nd:
        raise DistributedError(f"shard: axis {axis!r} is out of range for "
                               f"{nd} dimensions")
    axis %= nd
    start, stop = shard_range(int(x.shape[axis]), even=even)
    return x[(slice(None),) * axis + (slice(start, stop),)]


def _first_arrays(dw):
    """The first array leaf of ``dw`` (as a list of at most one)."""
    from ._tree import collect, is_array
    found = collect(dw, is_array)
    return found[:1]


def update(w, dw, opts, gclip=0.0, overlap=None, reducer=None):
    """``allreduce_mean(dw)`` then ``kt.update(w, dw, opts, gclip)``: the
    data-parallel training step; exactly ``kt.update`` in one process.

    With ``overlap`` every bucket's reduction is started at once (last
    layers first) and each bucket's parameters are updated as soon as it
    arrives, while the others are still in flight.  The default (None)
    overlaps on the GPU, where NCCL runs on a stream of its own, and not on
    the CPU, where MPICH moves a non-blocking reduction only inside MPI
    calls and its blocking ``Allreduce`` is faster (README, "Data-parallel
    training").  Clipping the global norm (``gclip > 0``) needs every
    gradient first, so it waits for all buckets.  Returns ``w``.

    Example::

        kt.distributed.update(w, lossgradient(w, x, y), opts)
    """
    if _comm.world().size == 1:
        return optim.update(w, dw, opts, gclip=gclip)
    from . import reducer as default_reducer
    red = reducer if reducer is not None else default_reducer()
    if overlap is None:
        overlap = any(_comm.is_cupy(g) for g in _first_arrays(dw))
    if gclip > 0 or not overlap:
        dw = red.allreduce_mean(dw)
        return optim.update(w, dw, opts, gclip=gclip)
    pending = red.start(dw)
    leaves = pending.leaves
    if any(not hasattr(g, "shape") for g in leaves):
        # float leaves are replaced, not updated in place: no overlap
        return optim.update(w, pending.finish(), opts)
    by_id = {}
    for container, key, wl, gl, ol, path in optim._pairs(w, dw, opts, ""):
        if ol is not None and gl is not None:
            by_id[id(gl)] = (wl, ol, path)
    for b, bucket in enumerate(pending.plan.buckets):
        pending.wait(b)
        for i in bucket.leaves:
            found = by_id.get(id(leaves[i]))
            if found is None:
                continue
            wl, ol, path = found
            if not isinstance(ol, optim.Optimizer):
                raise TypeError(f"at {path or 'w'}: expected an Optimizer, "
                                f"got {type(ol).__name__}")
            new = ol.step(wl, leaves[i])
            if new is not wl:
                raise DistributedError(f"at {path or 'w'}: a float parameter "
                                       "with an array gradient")
            pending.progress()
    return w
