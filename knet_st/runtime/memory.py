"""A Knet-style GPU memory pool for CuPy.

Knet keeps GPU blocks that arrays no longer use in free lists keyed by size
and hands them to the next array of the same size class, so a training loop,
which allocates the same shapes every iteration, stops calling ``cudaMalloc``
after its first iteration.  When the device runs out of memory, Knet runs
the garbage collector, releases its cached blocks and tries again.

This module has two layers:

* :class:`BlockPool`: the size classes, free lists, out-of-memory
  flush-and-retry and statistics, in pure Python over an *injected* raw
  allocator, so it is unit-tested on the CPU with a fake device.
* :class:`KnetCupyAllocator`: the CuPy glue, ``cupy.cuda.set_allocator(
  allocator.malloc)``: each request returns a ``cupy.cuda.MemoryPointer`` on
  a ``cupy.cuda.UnownedMemory`` chunk whose owner object gives the block back
  to the pool when the last array using it dies.

Select the allocator with :func:`set_pool` and read counters with
:func:`pool_stats`::

    kt.set_pool("knet")            # Knet-style pool; "cupy" = CuPy's own; None = plain cudaMalloc
    ... train ...
    print(kt.pool_stats())         # {'pool': 'knet', 'allocs': 31, 'reuses': 91214, ...}

Size classes: requests are rounded up to a multiple of ``granularity``
(512 bytes) up to ``pow2_threshold`` (1 MiB), and to the next power of two
above it.  Blocks are reused only within their class.

Limitations: one device (the current one when the pool is made) and one
stream: a block freed by an array whose kernels are still queued on another
stream could be handed out early.  CuPy's own pool ("cupy") tracks streams.
The CuPy glue is tested only on a GPU machine (``tests/test_memory.py -m gpu``).
"""

import gc
import threading

from . import backend

__all__ = ["BlockPool", "Block", "KnetCupyAllocator", "set_pool", "get_pool", "pool_stats",
           "flush_pool"]


class Block:
    """A raw device allocation owned by a :class:`BlockPool`.

    Attributes:
        raw: what the raw allocator returned (for CuPy, a ``cupy.cuda.Memory``).
        size: the rounded size in bytes (the size class).
        in_use: True while handed out.
    """

    __slots__ = ("raw", "size", "in_use")

    def __init__(self, raw, size):
        self.raw = raw
        self.size = size
        self.in_use = False

    def __repr__(self):
        return "Block(size=%d, in_use=%s)" % (self.size, self.in_use)


class BlockPool:
    """Size-class free lists over an injectable raw allocator.

    Args:
        raw_alloc: ``raw_alloc(nbytes) -> object``: get new device memory;
            raises one of ``oom_errors`` when the device is full.
        raw_free: ``raw_free(object)``: give memory back to the device
            (default: drop the reference, e.g. for ``cupy.cuda.Memory``).
        granularity: small requests are rounded up to a multiple of this.
        pow2_threshold: requests above this are rounded up to a power of two.
        oom_errors: exception types that mean "out of memory".
        is_oom: optional predicate on a caught ``oom_errors`` exception
            (e.g. to check a CUDA status code); others are re-raised at once.
        on_oom: called first when the device is full (default
            ``gc.collect``: dead arrays give their blocks back).

    Example::

        pool = BlockPool(raw_alloc=lambda n: bytearray(n))
        b = pool.malloc(1000)      # a Block of 1024 bytes
        pool.free(b)
        assert pool.malloc(900) is b and pool.stats()["reuses"] == 1
    """

    def __init__(self, raw_alloc, raw_free=None, granularity=512, pow2_threshold=1 << 20,
                 oom_errors=(MemoryError,), is_oom=None, on_oom=gc.collect):
        if granularity < 1 or pow2_threshold < granularity:
            raise ValueError("need granularity >= 1 and pow2_threshold >= granularity")
        self._raw_alloc = raw_alloc
        self._raw_free = raw_free
        self.granularity = int(granularity)
        self.pow2_threshold = int(pow2_threshold)
        self._oom_errors = tuple(oom_errors)
        self._is_oom = is_oom
        self._on_oom = on_oom
        self._lock = threading.RLock()      # re-entrant: finalizers may free during malloc
        self._free = {}                     # size class -> [Block]
        self._n = dict(requests=0, allocs=0, reuses=0, frees=0, releases=0, oom_flushes=0)
        self._bytes_held = 0
        self._bytes_free = 0

    # -- size classes
    def block_size(self, nbytes):
        """The size class of a request: the rounded size in bytes.

        Example::

            BlockPool(None).block_size(1)          # 512
            BlockPool(None).block_size(3 << 20)    # 4 MiB
        """
        n = max(int(nbytes), 1)
        if n <= self.pow2_threshold:
            g = self.granularity
            return -(-n // g) * g
        return 1 << (n - 1).bit_length()

    # -- allocate / free
    def malloc(self, nbytes):
        """A :class:`Block` of at least ``nbytes``: reused if one of its size
        class is free, else new from the raw allocator.

        On out-of-memory: call ``on_oom`` (garbage collection, so that dead
        arrays return their blocks), look in the free list again, then
        release every cached block to the device and retry once; if the
        device is still full the error propagates.
        """
        size = self.block_size(nbytes)
        with self._lock:
            self._n["requests"] += 1
            blk = self._take(size)
        if blk is not None:
            return blk
        raw = self._try_raw(size)
        if raw is None:                      # out of memory
            if self._on_oom is not None:
                self._on_oom()
            with self._lock:
                self._n["oom_flushes"] += 1
                blk = self._take(size)
            if blk is not None:
                return blk
            self.flush()
            raw = self._raw_alloc(size)      # a second failure propagates
        blk = Block(raw, size)
        blk.in_use = True
        with self._lock:
            self._n["allocs"] += 1
            self._bytes_held += size
        return blk

    def _take(self, size):
        lst = self._free.get(size)
        if not lst:
            return None
        blk = lst.pop()
        blk.in_use = True
        self._n["reuses"] += 1
        self._bytes_free -= size
        return blk

    def _try_raw(self, size):
        """The raw allocation, or None when the device is out of memory."""
        try:
            return self._raw_alloc(size)
        except self._oom_errors as e:
            if self._is_oom is not None and not self._is_oom(e):
                raise
        # (the exception and its traceback, which may reference dead
        # arrays, are dropped here, before garbage collection runs)
        return None

    def free(self, block):
        """Return a block to its free list (called when its array dies).

        Raises:
            ValueError: the block is not in use (double free).
        """
        with self._lock:
            if not block.in_use:
                raise ValueError("BlockPool.free: block is not in use (double free?)")
            block.in_use = False
            self._free.setdefault(block.size, []).append(block)
            self._n["frees"] += 1
            self._bytes_free += block.size

    def flush(self):
        """Give every cached (free) block back to the device.

        Returns:
            The number of bytes released.
        """
        with self._lock:
            free, self._free = self._free, {}
            released = 0
            nblocks = 0
            for lst in free.values():
                for blk in lst:
                    released += blk.size
                    nblocks += 1
            self._bytes_free -= released
            self._bytes_held -= released
            self._n["releases"] += nblocks
        for lst in free.values():
            for blk in lst:
                raw, blk.raw = blk.raw, None
                if self._raw_free is not None:
                    self._raw_free(raw)
                del raw
        return released

    # -- statistics
    def stats(self):
        """Counters and byte totals.

        Returns:
            dict with ``requests``, ``allocs`` (new device blocks), ``reuses``,
            ``frees`` (blocks returned by dead arrays), ``releases`` (blocks
            given back to the device), ``oom_flushes``, ``bytes_held``
            (device bytes owned: in use + cached), ``bytes_in_use``,
            ``bytes_free`` (cached) and ``blocks_free``.

        Example::

            s = pool.stats(); print(s["allocs"], s["reuses"])
        """
        with self._lock:
            d = dict(self._n)
            d["bytes_held"] = self._bytes_held
            d["bytes_free"] = self._bytes_free
            d["bytes_in_use"] = self._bytes_held - self._bytes_free
            d["blocks_free"] = sum(len(v) for v in self._free.values())
        return d


# ------------------------------------------------------------------ CuPy glue

class _Lease:
    """Owner of a handed-out block: returns it to the pool when collected."""

    __slots__ = ("pool", "block")

    def __init__(self, pool, block):
        self.pool = pool
        self.block = block

    def __del__(self):
        try:
            self.pool.free(self.block)
        except Exception:       # interpreter shutdown, or already flushed
            pass


class KnetCupyAllocator:
    """CuPy allocator backed by a :class:`BlockPool` of ``cupy.cuda.Memory``.

    Use through :func:`set_pool`; ``malloc`` is the function given to
    ``cupy.cuda.set_allocator``.  Options are passed to :class:`BlockPool`.

    Example::

        alloc = KnetCupyAllocator()
        cupy.cuda.set_allocator(alloc.malloc)
        a = cupy.zeros(1000)            # memory from alloc.pool
    """

    def __init__(self, **options):
        import cupy
        self._cupy = cupy
        runtime = cupy.cuda.runtime
        oom_status = getattr(runtime, "errorMemoryAllocation", 2)

        def is_oom(e):
            return (isinstance(e, cupy.cuda.memory.OutOfMemoryError)
                    or getattr(e, "status", None) == oom_status)

        options.setdefault("on_oom", gc.collect)
        self.pool = BlockPool(self._raw_alloc, None,
                              oom_errors=(cupy.cuda.memory.OutOfMemoryError,
                                          runtime.CUDARuntimeError),
                              is_oom=is_oom, **options)
        self.device_id = runtime.getDevice()

    def _raw_alloc(self, nbytes):
        # cudaMalloc; the memory is freed when this object is collected
        return self._cupy.cuda.Memory(nbytes)

    def malloc(self, nbytes):
        """Allocate ``nbytes`` on the device: a ``cupy.cuda.MemoryPointer``."""
        cp = self._cupy
        blk = self.pool.malloc(nbytes)
        owner = _Lease(self.pool, blk)
        mem = cp.cuda.UnownedMemory(blk.raw.ptr, blk.size, owner, self.device_id)
        return cp.cuda.MemoryPointer(mem, 0)


_state = {"kind": None, "allocator": None}


def set_pool(kind="knet", **options):
    """Choose the GPU memory allocator used by CuPy.

    Args:
        kind: ``'knet'``: a new Knet-style pool (:class:`KnetCupyAllocator`,
            ``options`` go to :class:`BlockPool`); ``'cupy'``: CuPy's default
            memory pool; ``None``: no pooling (``cudaMalloc``/``cudaFree``
            per array).
        **options: ``granularity``, ``pow2_threshold`` for ``'knet'``.

    Returns:
        The previous kind.

    Raises:
        RuntimeError: no usable GPU.
        ValueError: unknown kind.

    Example::

        kt.set_pool("knet")
    """
    if kind not in ("knet", "cupy", None):
        raise ValueError("set_pool: kind must be 'knet', 'cupy' or None, got %r" % (kind,))
    cp = backend._require_gpu()
    old_kind, old = _state["kind"], _state["allocator"]
    if kind == "knet":
        alloc = KnetCupyAllocator(**options)
        cp.cuda.set_allocator(alloc.malloc)
    elif kind == "cupy":
        alloc = None
        cp.cuda.set_allocator(cp.get_default_memory_pool().malloc)
    else:
        alloc = None
        cp.cuda.set_allocator(None)
    _state["kind"], _state["allocator"] = kind, alloc
    if old is not None:
        old.pool.flush()        # live arrays keep their blocks until they die
    return old_kind


def get_pool():
    """The :class:`KnetCupyAllocator` in use, or ``None`` if another is.

    Example::

        kt.set_pool("knet"); alloc = get_pool()
    """
    return _state["allocator"]


def flush_pool():
    """Release the cached blocks of the active pool to the device.

    Returns the number of bytes released (0 when no pool is active).

    Example::

        flush_pool()
    """
    alloc = _state["allocator"]
    if alloc is not None:
        return alloc.pool.flush()
    if _state["kind"] == "cupy":
        cp = backend.cupy_module()
        mp = cp.get_default_memory_pool()
        before = mp.total_bytes()
        mp.free_all_blocks()
        return before - mp.total_bytes()
    return 0


def pool_stats():
    """Statistics of the GPU memory allocator chosen with :func:`set_pool`.

    Returns:
        For ``'knet'``: ``{'pool': 'knet'}`` plus :meth:`BlockPool.stats`
        (``allocs`` = new device blocks, ``reuses``, ``frees``,
        ``bytes_held``, ...).  For ``'cupy'``: ``pool``, ``bytes_held``,
        ``bytes_in_use``, ``bytes_free`` from CuPy's pool.  When
        :func:`set_pool` was never called (or no GPU): ``{'pool': None}``.
        Never raises, never imports CuPy.

    Example::

        kt.pool_stats()["allocs"]
    """
    kind, alloc = _state["kind"], _state["allocator"]
    if alloc is not None:
        d = {"pool": "knet"}
        d.update(alloc.pool.stats())
        return d
    if kind == "cupy":
        mp = backend.cupy_module().get_default_memory_pool()
        return {"pool": "cupy", "bytes_held": mp.total_bytes(),
                "bytes_in_use": mp.used_bytes(), "bytes_free": mp.free_bytes()}
    return {"pool": kind}
