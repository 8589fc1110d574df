"""The program that tests/test_distributed.py starts under ``mpiexec -n 2``
(and calls in-process for the single-process reference).

``python dist_worker.py OUTDIR`` trains a small MLP with each way of
averaging gradients and checks the collectives on nested structures;
every rank writes ``OUTDIR/rank<r>.npz``.
"""

import sys

import knet_st as kt          # before NumPy: one BLAS thread per process
import numpy as np
from knet_st import distributed as dist
from knet_st.distributed import _comm

STEPS = 6
BATCH = 16


def data():
    """Fixed random data: 20 features x 96 instances, 5 classes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 96)).astype(np.float32)
    y = rng.integers(0, 5, 96)
    return x, y


def predict(w, x):
    h = kt.relu(w[0] @ x + w[1])
    return w[2] @ h + w[3]


def loss(w, x, y):
    return kt.nll(predict(w, x), y)


lossgradient = kt.grad(loss)


def train(mode, optimizer="sgd", shard=True, gpu=False):
    """The weights after STEPS steps on shuffled global batches of BATCH.

    ``mode``: "overlap" (dist.update with overlap), "default"
    (dist.update, not overlapping on the CPU), "blocking" (allreduce_mean then
    kt.update), "stream" (leaves given one by one, last first, as a
    backward pass would) or "plain" (kt.update, the one-process run).
    With ``gpu`` the weights and batches are CuPy arrays (NCCL)."""
    kt.seed(1)
    x, y = data()
    w = [kt.uniform(32, 20, low=-0.3, high=0.3), kt.zeros(32, 1),
         kt.uniform(5, 32, low=-0.3, high=0.3), kt.zeros(5, 1)]
    move = kt.to_gpu if gpu else None
    if gpu:
        w = kt.to_gpu(w)
    dist.broadcast(w)
    cls = {"sgd": lambda: kt.SGD(lr=0.5), "adam": lambda: kt.Adam(lr=0.01)}
    opts = [cls[optimizer]() for _ in w]
    red = dist.Reducer(bucket_bytes=600)        # several buckets
    batches = kt.minibatch(x, y, BATCH, shuffle=True, shard=shard,
                           xtype=move, ytype=move)
    for step in range(STEPS):
        for xb, yb in batches:
            dw = lossgradient(w, xb, yb)
            if mode == "overlap":
                dist.update(w, dw, opts, overlap=True, reducer=red)
            elif mode == "default":
                dist.update(w, dw, opts, reducer=red)
            elif mode == "blocking":
                kt.update(w, red.allreduce_mean(dw), opts)
            elif mode == "stream":
                stream = red.stream(w)
                for i in reversed(range(len(dw))):
                    stream.ready(i, dw[i])
                kt.update(w, stream.finish(dw).finish(), opts)
            else:
                kt.update(w, dw, opts)
            break                               # one batch per "step"
    return w, red


def collectives(rank):
    """Nested broadcast and allreduce results, as a dict of arrays."""
    out = {}
    w = {"a": [np.full((2, 3), rank + 1.0, np.float32), 7 + rank],
         "b": (0.5 + rank, np.arange(4) * (rank + 1)),
         "c": np.arange(12.0).reshape(3, 4).T * (rank + 1)}   # not contiguous
    w = dist.broadcast(w)
    out["b_a0"], out["b_a1"] = w["a"][0], np.array(w["a"][1])
    out["b_b0"], out["b_b1"], out["b_c"] = np.array(w["b"][0]), w["b"][1], w["c"]
    dw = [np.full(5, float(rank), np.float32), (float(rank) + 1.0, None),
          {"k": np.full((2, 2), 2.0 * rank)}, np.arange(3)]
    dw = dist.allreduce_mean(dw)
    out["r_0"], out["r_1"] = dw[0], np.array(dw[1][0])
    out["r_k"], out["r_int"] = dw[2]["k"], dw[3]
    g = [np.full(3, 10.0 * (rank + 1), np.float32)]
    dist.allreduce_mean(g, weight=rank + 1)      # (1*10 + 2*20) / 3
    out["weighted"] = g[0]
    return out


def main_gpu(outdir):
    """The NCCL path: raw collectives (also with one GPU) and, with two
    GPUs or more, the training property on CuPy arrays."""
    import cupy
    rank, size = dist.init(gpu=True)
    out = {"size": np.array(size)}
    buf = cupy.full(1000, rank + 1.0, cupy.float32)
    _comm.start_allreduce_sum(buf).Wait()
    b = cupy.arange(10, dtype=cupy.float64) * (rank + 1)
    _comm.broadcast_buffer(b)
    cupy.cuda.get_current_stream().synchronize()
    out["sum"], out["bcast"] = buf.get(), b.get()
    if size > 1:
        for mode in ("overlap", "blocking"):
            w, red = train(mode, "sgd", gpu=True)
            for i, a in enumerate(w):
                out[f"{mode}_sgd_{i}"] = kt.to_cpu(a)
    np.savez(f"{outdir}/rank{rank}.npz", **out)


def main(outdir):
    rank, size = dist.init()
    out = {"size": np.array(size)}
    out.update(collectives(rank))
    for mode in ("overlap", "default", "blocking", "stream"):
        for opt in ("sgd", "adam"):
            w, red = train(mode, opt)
            for i, a in enumerate(w):
                out[f"{mode}_{opt}_{i}"] = a
            out[f"{mode}_{opt}_bytes"] = np.array(red.bytes)
            out[f"{mode}_{opt}_messages"] = np.array(red.messages)
    # the reduce of a model whose structure differs: an error, not a hang
    try:
        dist.Reducer().allreduce_mean([np.zeros(3 + rank, np.float32)])
        out["mismatch"] = np.array("no error")
    except dist.DistributedError as e:
        out["mismatch"] = np.array(str(e))
    np.savez(f"{outdir}/rank{rank}.npz", **out)


if __name__ == "__main__":
    if sys.argv[1] == "--gpu":
        main_gpu(sys.argv[2])
    else:
        main(sys.argv[1])
