"""Bucketed reductions: the gradient leaves are copied into a few large flat
buffers (one message each, not one per array) and summed over processes.

A :class:`Reducer` keeps one plan per model signature: which leaf goes to
which bucket at which offset, and the preallocated buffers, so a steady
training loop allocates nothing.  Leaves are assigned in REVERSE order, the
order in which a backward pass finishes them (the last layer's gradient is
final first), and grouped by device and dtype; a bucket holds up to
``bucket_bytes`` (a larger leaf gets a bucket of its own).

Three ways to use it:

* ``reducer.allreduce_mean(dw)``: pack, reduce, unpack; blocking.
* ``pending = reducer.start(dw)`` starts a non-blocking reduction of every
  bucket; ``pending.wait(b)`` finishes bucket ``b`` (so that an optimizer can
  update its parameters while later buckets are still in flight).
* ``stream = reducer.stream(dw_like)`` then ``stream.ready(i, g)`` for each
  leaf ``i`` as soon as its gradient is final: a bucket's reduction starts
  the moment its last leaf arrives.  This is the entry point for a backward
  pass that reports finished gradients (see README, "Data-parallel
  training").
"""

import numpy as np

from . import _comm
from ._tree import collect, describe, is_array, is_float_array, \
    is_float_scalar, paths, replace
from .errors import DistributedError

DEFAULT_BUCKET_BYTES = 4 << 20


def is_grad_leaf(x):
    """The leaves that are reduced: float arrays and float scalars."""
    return is_float_array(x) or is_float_scalar(x)


class Bucket:
    """One flat buffer and the leaves it carries: ``slots`` is a list of
    ``(leaf index, start, stop, shape)``."""

    def __init__(self, xp, dtype, slots):
        self.slots = slots
        self.inplace = None         # the leaf reduced in place, if any
        self.buf = xp.empty(slots[-1][2], dtype=dtype)
        self.leaves = [s[0] for s in slots]

    @property
    def nbytes(self):
        """The bytes this bucket sends (its buffer's size)."""
        return self.buf.nbytes

    def pack(self, leaves, weight=None):
        """Copies (and scales by ``weight``) the bucket's leaves into it;
        returns the buffer to reduce.  A bucket of one contiguous array is
        reduced in that array itself, without a copy."""
        if len(self.slots) == 1:
            leaf = leaves[self.slots[0][0]]
            if (is_array(leaf) and leaf.flags.c_contiguous
                    and leaf.dtype == self.buf.dtype):
                if weight is not None:
                    leaf *= weight
                self.inplace = leaf
                return leaf.reshape(-1)
        self.inplace = None
        for i, a, b, _ in self.slots:
            self.pack_one(leaves[i], a, b, weight)
        return self.buf

    def pack_one(self, leaf, a, b, weight=None):
        """Copies one leaf to ``buf[a:b]``."""
        view = self.buf[a:b]
        if is_array(leaf):
            src = leaf.reshape(-1)
            if weight is None:
                view[...] = src
            else:
                np.multiply(src, weight, out=view)
        else:
            view[0] = leaf if weight is None else leaf * weight

    def unpack(self, leaves, out, scale):
        """Writes the reduced, scaled values back: arrays in place, scalars
        into ``out`` (a list indexed like ``leaves``)."""
        if self.inplace is not None:
            self.inplace *= scale
            return
        for i, a, b, shape in self.slots:
            leaf, view = leaves[i], self.buf[a:b]
            if is_array(leaf):
                np.multiply(view.reshape(shape), scale, out=leaf)
            else:
                out[i] = type(leaf)(float(view[0]) * scale)


def _group_key(leaf):
    if is_array(leaf):
        return (_comm.is_cupy(leaf), np.dtype(leaf.dtype).str)
    return (False, np.dtype(np.float64).str)


class Plan:
    """The buckets for one list of gradient leaves (see module doc)."""

    def __init__(self, leaves, bucket_bytes):
        groups = {}
        for i in reversed(range(len(leaves))):
            groups.setdefault(_group_key(leaves[i]), []).append(i)
        self.buckets = []
        self.bucket_of = {}
        for (on_gpu, dtype), indices in groups.items():
            xp = np
            if on_gpu:
                import cupy as xp
            itemsize = np.dtype(dtype).itemsize
            slots, size = [], 0
            for i in indices:
                leaf = leaves[i]
                n = int(np.prod(leaf.shape)) if is_array(leaf) else 1
                if slots and (size + n) * itemsize > bucket_bytes:
                    self._add(xp, dtype, slots)
                    slots, size = [], 0
                slots.append((i, size, size + n,
                              tuple(leaf.shape) if is_array(leaf) else ()))
                size += n
            if slots:
                self._add(xp, dtype, slots)

    def _add(self, xp, dtype, slots):
        for s in slots:
            self.bucket_of[s[0]] = (len(self.buckets), s[1], s[2])
        self.buckets.append(Bucket(xp, np.dtype(dtype), slots))

    @property
    def nbytes(self):
        """Bytes sent into each reduction (all buckets)."""
        return sum(b.nbytes for b in self.buckets)


class Pending:
    """A reduction under way (from :meth:`Reducer.start` or a finished
    :class:`Stream`): ``wait(b)`` finishes bucket ``b``, ``finish()`` all
    and returns the gradient structure (rebuilt if it held floats in
    tuples)."""

    def __init__(self, dw, leaves, plan, requests, scale):
        self.dw, self.leaves, self.plan = dw, leaves, plan
        self.requests, self.scale = requests, scale
        self.values = list(leaves)
        self.done = [False] * len(plan.buckets)

    def wait(self, b):
        """Finishes bucket ``b``: its leaves hold the mean from now on."""
        if not self.done[b]:
            self.requests[b].Wait()
            self.plan.buckets[b].unpack(self.leaves, self.values, self.scale)
            self.done[b] = True

    def progress(self):
        """Lets MPI move the requests still in flight (MPICH progresses
        non-blocking collectives only inside MPI calls)."""
        for b, r in enumerate(self.requests):
            if not self.done[b] and r is not None:
                r.Test()

    def finish(self):
        """Waits for every bucket; returns the averaged gradient."""
        for b in range(len(self.plan.buckets)):
            self.wait(b)
        return replace(self.dw, is_grad_leaf, self.values)


class Stream:
    """Buckets filled as gradients arrive (see :meth:`Reducer.stream`)."""

    def __init__(self, reducer, template):
        self.reducer = reducer
        self.leaves = collect(template, is_grad_leaf)
        self.index_of = {p: i for i, p in enumerate(paths(template, is_grad_leaf))}
        self.plan = reducer.plan(self.leaves)
        self.missing = [len(b.slots) for b in self.plan.buckets]
        self.requests = [None] * len(self.plan.buckets)
        self.size = _comm.world().size

    def ready(self, i, grad):
        """Leaf ``i`` has its final gradient ``grad``: copies it into its
        bucket, and starts the bucket's reduction when it was the bucket's
        last missing leaf.  ``i`` is the leaf's position in walking order
        or its path from the root, a tuple such as ``(2,)`` or
        ``("dense", 0)``."""
        if isinstance(i, tuple):
            if i not in self.index_of:
                raise DistributedError(f"stream.ready: no gradient leaf at "
                                       f"{i!r}")
            i = self.index_of[i]
        if not 0 <= i < len(self.leaves):
            raise DistributedError(f"stream.ready: no gradient leaf {i}; "
                                   f"the model has {len(self.leaves)}")
        b, start, stop = self.plan.bucket_of[i]
        bucket = self.plan.buckets[b]
        bucket.inplace = None
        bucket.pack_one(grad, start, stop)
        self.missing[b] -= 1
        if self.missing[b] == 0:
            self.requests[b] = (_comm.start_allreduce_sum(bucket.buf)
                                if self.size > 1 else _comm._Done())
            self.reducer.messages += 1
            self.reducer.bytes += bucket.nbytes

    def finish(self, dw):
        """Returns a :class:`Pending` over ``dw`` (the gradient structure the
        leaves were taken from); every leaf must have been given."""
        late = [b for b, n in enumerate(self.missing) if n]
        if late:
            raise DistributedError(
                f"stream.finish: {sum(self.missing[b] for b in late)} "
                "gradient leaves were never given to ready()")
        leaves = collect(dw, is_grad_leaf)
        return Pending(dw, leaves, self.plan, self.requests, 1.0 / self.size)


class Reducer:
    """Bucketed mean of gradients over the processes; see the module doc.

    Example::

        reducer = Reducer(bucket_bytes=1 << 20)
        dw = reducer.allreduce_mean(lossgradient(w, x, y))
    """

    def __init__(self, bucket_bytes=DEFAULT_BUCKET_BYTES):
        if not bucket_bytes > 0:
            raise DistributedError(f"bucket_bytes must be positive, got "
                                   f"{bucket_bytes!r}")
        self.bucket_bytes = int(bucket_bytes)
        self.plans = {}
        self.messages = 0           # buffers reduced so far
        self.bytes = 0              # their total size

    def plan(self, leaves):
        """The :class:`Plan` for these leaves (made, and checked to be the
        same on every process, the first time their signature is seen)."""
        sig = describe(leaves)
        plan = self.plans.get(sig)
        if plan is None:
            sigs = _comm.allgather_object(sig)
            for r, other in enumerate(sigs):
                if other != sig:
                    raise DistributedError(
                        f"the gradient of process {r} differs in structure "
                        f"from process {_comm.world().rank}'s")
            if len(self.plans) >= 16:
                self.plans.pop(next(iter(self.plans)))
            plan = self.plans[sig] = Plan(leaves, self.bucket_bytes)
        return plan

    def start(self, dw, weight=None, blocking=False):
        """Packs the float leaves of ``dw`` into buckets (last leaves
        first) and starts reducing each one; returns a :class:`Pending`.

        ``weight`` (e.g. this process's number of instances) makes the
        result ``sum(weight_r * dw_r) / sum(weight_r)`` instead of the plain
        mean, for batches that do not split evenly.  ``blocking`` reduces
        each bucket to the end before packing the next."""
        w = _comm.world()
        leaves = collect(dw, is_grad_leaf)
        plan = self.plan(leaves)
        scale = 1.0 / w.size
        if weight is not None:
            scale = 1.0 / float(w.comm.allreduce(float(weight))
                                if w.size > 1 else weight)
        requests = []
        for bucket in plan.buckets:
            buf = bucket.pack(leaves, weight)
            requests.append(_comm.start_allreduce_sum(buf, blocking)
                            if w.size > 1 else _comm._Done())
            self.messages += 1
            self.bytes += bucket.nbytes
        return Pending(dw, leaves, plan, requests, scale)

    def allreduce_mean(self, dw, weight=None):
        """The mean of ``dw`` over the processes, in place (see
        :func:`knet_st.distributed.allreduce_mean`)."""
        return self.start(dw, weight, blocking=True).finish()

    def stream(self, template):
        """A :class:`Stream` for gradients shaped like ``template`` (the
        parameters, or a previous gradient)."""
        return Stream(self, template)
