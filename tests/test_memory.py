"""Knet-style memory pool: size classes, reuse, OOM flush-and-retry (fake device); CuPy glue on GPU."""

import gc

import pytest

from knet_st.runtime import memory
from knet_st.runtime.memory import BlockPool


class FakeDevice:
    """A device with a byte capacity; allocations are tokens."""

    def __init__(self, capacity=1 << 30):
        self.capacity = capacity
        self.used = 0
        self.mallocs = 0
        self.frees = 0
        self.live = {}
        self._next = 0

    def alloc(self, n):
        if self.used + n > self.capacity:
            raise MemoryError("fake device out of memory (%d + %d > %d)" % (self.used, n, self.capacity))
        self._next += 1
        self.live[self._next] = n
        self.used += n
        self.mallocs += 1
        return self._next

    def free(self, token):
        self.used -= self.live.pop(token)
        self.frees += 1


def make_pool(capacity=1 << 30, **kw):
    dev = FakeDevice(capacity)
    kw.setdefault("on_oom", None)
    return dev, BlockPool(dev.alloc, dev.free, **kw)


def test_size_classes():
    _, pool = make_pool()
    assert pool.block_size(0) == 512
    assert pool.block_size(1) == 512
    assert pool.block_size(512) == 512
    assert pool.block_size(513) == 1024
    assert pool.block_size(1 << 20) == 1 << 20               # threshold: 512-multiple
    assert pool.block_size((1 << 20) + 1) == 1 << 21         # above: power of two
    assert pool.block_size(3 << 20) == 4 << 20
    _, p2 = make_pool(granularity=256, pow2_threshold=4096)
    assert p2.block_size(300) == 512 and p2.block_size(5000) == 8192
    with pytest.raises(ValueError):
        BlockPool(None, granularity=0)


def test_reuse_within_size_class_only():
    dev, pool = make_pool()
    a = pool.malloc(1000)
    assert a.size == 1024 and a.in_use
    pool.free(a)
    b = pool.malloc(600)                  # same class (1024): reused
    assert b is a
    c = pool.malloc(2000)                 # other class: new block
    assert c is not a
    s = pool.stats()
    assert (s["requests"], s["allocs"], s["reuses"], s["frees"]) == (3, 2, 1, 1)
    assert s["bytes_held"] == 1024 + 2048 == dev.used
    assert s["bytes_in_use"] == 1024 + 2048 and s["bytes_free"] == 0


def test_double_free_is_an_error():
    _, pool = make_pool()
    a = pool.malloc(10)
    pool.free(a)
    with pytest.raises(ValueError, match="double free"):
        pool.free(a)


def test_steady_loop_makes_no_new_allocations_after_warmup():
    dev, pool = make_pool()
    sizes = [4 * 784 * 100, 4 * 10 * 100, 4 * 20 * 24 * 24 * 100, 4 * 500 * 800, 4, 12345]

    def iteration():
        blocks = [pool.malloc(n) for n in sizes]            # forward: temporaries
        blocks += [pool.malloc(n) for n in sizes[:3]]       # backward: more of the same
        for b in reversed(blocks):
            pool.free(b)

    iteration()
    warm = pool.stats()
    for _ in range(100):
        iteration()
    s = pool.stats()
    assert s["allocs"] == warm["allocs"] == dev.mallocs      # zero new allocations
    assert s["reuses"] - warm["reuses"] == 100 * (len(sizes) + 3)
    assert s["bytes_in_use"] == 0
    assert s["bytes_held"] == warm["bytes_held"] == dev.used
    assert s["blocks_free"] == len(sizes) + 3


def test_oom_flushes_cached_blocks_and_retries():
    dev, pool = make_pool(capacity=8192)
    a = pool.malloc(4096)
    b = pool.malloc(2048)
    pool.free(a)
    pool.free(b)                           # 6144 bytes cached, device nearly full
    c = pool.malloc(6000)                  # class 6144: 6144 + 6144 > 8192 -> flush, retry
    assert c.size == 6144 and c.in_use
    s = pool.stats()
    assert s["oom_flushes"] == 1
    assert s["releases"] == 2 and dev.frees == 2
    assert s["bytes_held"] == 6144 == dev.used
    assert s["blocks_free"] == 0


def test_oom_hook_runs_first_and_a_returned_block_is_reused():
    # the hook plays the garbage collector: a dead array returns its block
    dev = FakeDevice(capacity=4096)
    holder = {}

    def collect():
        pool.free(holder.pop("blk"))

    pool = BlockPool(dev.alloc, dev.free, on_oom=collect)
    holder["blk"] = pool.malloc(4096)      # device full
    again = pool.malloc(4000)              # OOM -> hook frees the 4096 block -> reused
    assert again.size == 4096
    s = pool.stats()
    assert s["oom_flushes"] == 1 and s["reuses"] == 1 and s["allocs"] == 1
    assert dev.frees == 0                  # nothing had to be released


def test_real_oom_propagates_after_flush():
    dev, pool = make_pool(capacity=4096)
    keep = pool.malloc(2048)
    spare = pool.malloc(1024)
    pool.free(spare)
    with pytest.raises(MemoryError):
        pool.malloc(4096)                  # even after releasing `spare` it does not fit
    s = pool.stats()
    assert s["oom_flushes"] == 1 and s["releases"] == 1
    assert keep.in_use and dev.used == 2048 == s["bytes_held"]


def test_non_oom_errors_are_not_swallowed():
    def broken(n):
        raise MemoryError("status 700: illegal address")

    pool = BlockPool(broken, is_oom=lambda e: "out of memory" in str(e), on_oom=None)
    with pytest.raises(MemoryError, match="illegal"):
        pool.malloc(10)
    assert pool.stats()["oom_flushes"] == 0


def test_flush_returns_bytes_and_keeps_blocks_in_use():
    dev, pool = make_pool()
    a, b, c = pool.malloc(512), pool.malloc(1024), pool.malloc(1 << 21)
    pool.free(a)
    pool.free(c)
    assert pool.flush() == 512 + (1 << 21)
    assert dev.used == 1024 and pool.stats()["bytes_held"] == 1024
    pool.free(b)
    assert pool.malloc(1024) is b


def test_pool_stats_and_set_pool_without_gpu(monkeypatch):
    from knet_st.runtime import backend
    if backend.gpu():
        pytest.skip("a GPU is present")
    st = memory.pool_stats()
    assert st["pool"] is None or st["pool"] in ("knet", "cupy")
    with pytest.raises(RuntimeError, match="no usable GPU"):
        memory.set_pool("knet")
    with pytest.raises(ValueError):
        memory.set_pool("other")


# ------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_knet_pool_with_cupy_steady_loop(cp):
    old = memory.set_pool("knet")
    try:
        import numpy as np
        x = cp.asarray(np.arange(1000, dtype=np.float32))
        for _ in range(3):                     # warm-up
            y = (x * 2 + 1).sum()
        cp.cuda.Device().synchronize()
        gc.collect()
        warm = memory.pool_stats()
        assert warm["pool"] == "knet" and warm["allocs"] > 0
        for _ in range(50):
            y = (x * 2 + 1).sum()
        cp.cuda.Device().synchronize()
        s = memory.pool_stats()
        assert float(y) == float((np.arange(1000) * 2 + 1).sum())
        assert s["allocs"] == warm["allocs"], (warm, s)
        assert s["reuses"] > warm["reuses"]
        del x, y
        gc.collect()
        assert memory.flush_pool() > 0
        assert memory.pool_stats()["bytes_in_use"] >= 0
    finally:
        memory.set_pool(old if old is not None else "cupy")


@pytest.mark.gpu
def test_knet_pool_oom_flush_on_gpu(cp):
    # 512-byte classes at every size, so that the sizes below are exact
    old = memory.set_pool("knet", pow2_threshold=1 << 50)
    try:
        free, total = cp.cuda.runtime.memGetInfo()
        n = int(free * 0.55) // 8
        a = cp.zeros(n, dtype=cp.float64)
        del a                                  # cached in the pool, not released
        gc.collect()
        assert memory.pool_stats()["bytes_free"] >= n * 8
        # another size class; both together exceed the free memory, so this
        # allocation succeeds only after the pool flushes its cached block
        b = cp.ones(n + 4096, dtype=cp.float64)
        assert memory.pool_stats()["oom_flushes"] >= 1
        assert float(b[-1]) == 1.0
        del b
    finally:
        memory.set_pool(old if old is not None else "cupy")
