"""The program that tests/test_distributed.py starts under ``mpiexec -n 2``.

``python dist_worker.py OUTDIR`` trains a small MLP with each way of
averaging gradients (and a small convolutional model) and checks the
collectives on nested structures; every rank writes ``OUTDIR/rank<r>.npz``.
``python dist_worker.py --plain OUTDIR`` writes the one-process runs to
``OUTDIR/plain.npz``; ``--gpu OUTDIR`` checks the NCCL path.
"""

import sys

import knet_st as kt          # before NumPy: one BLAS thread per process
import numpy as np
from knet_st import distributed as dist
from knet_st.distributed import _comm

STEPS = 6
BATCH = 16


def data(model="mlp"):
    """Fixed random data, 96 instances of 5 classes: 20 features x 96 for
    the MLP, 96 x 1 x 12 x 12 images for the convolutional model."""
    rng = np.random.default_rng(0)
    shape = (20, 96) if model == "mlp" else (96, 1, 12, 12)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 5, 96)
    return x, y


def init(model="mlp"):
    """The weights of ``model`` (from kt.seed)."""
    if model == "mlp":
        return [kt.uniform(32, 20, low=-0.3, high=0.3), kt.zeros(32, 1),
                kt.uniform(5, 32, low=-0.3, high=0.3), kt.zeros(5, 1)]
    return [kt.uniform(4, 1, 3, 3, low=-0.3, high=0.3), kt.zeros(1, 4, 1, 1),
            kt.uniform(5, 100, low=-0.3, high=0.3), kt.zeros(5, 1)]


def predict_conv(w, x):
    h = kt.pool(kt.relu(kt.conv4(w[0], x) + w[1]))      # 4 x 5 x 5 per image
    return w[2] @ kt.mat(h) + w[3]


def loss_conv(w, x, y):
    return kt.nll(predict_conv(w, x), y)


def predict(w, x):
    h = kt.relu(w[0] @ x + w[1])
    return w[2] @ h + w[3]


def loss(w, x, y):
    return kt.nll(predict(w, x), y)


lossgradient = kt.grad(loss)
GRADIENTS = {"mlp": lossgradient, "conv": kt.grad(loss_conv)}


def train(mode, optimizer="sgd", shard=True, gpu=False, model="mlp"):
    """The weights after STEPS steps on shuffled global batches of BATCH.

    ``mode``: "overlap" (dist.update with overlap), "default"
    (dist.update, not overlapping on the CPU), "blocking" (allreduce_mean then
    kt.update), "stream" (leaves given one by one, last first, as a
    backward pass would) or "plain" (kt.update, the one-process run).
    With ``gpu`` the weights and batches are CuPy arrays (NCCL)."""
    kt.seed(1)
    x, y = data(model)
    w = init(model)
    move = kt.to_gpu if gpu else None
    if gpu:
        w = kt.to_gpu(w)
    dist.broadcast(w)
    cls = {"sgd": lambda: kt.SGD(lr=0.5), "adam": lambda: kt.Adam(lr=0.01)}
    opts = [cls[optimizer]() for _ in w]
    red = dist.Reducer(bucket_bytes=600)        # several buckets
    batches = kt.minibatch(x, y, BATCH, shuffle=True, shard=shard,
                           xtype=move, ytype=move,
                           axis=-1 if model == "mlp" else 0)
    for step in range(STEPS):
        for xb, yb in batches:
            dw = GRADIENTS[model](w, xb, yb)
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


def reference(outdir):
    """The one-process runs, written to ``OUTDIR/plain.npz`` (run with one
    BLAS thread, as each MPI process has: OpenBLAS's results depend on its
    thread count, and the models' kinks amplify that)."""
    out = {}
    for opt in ("sgd", "adam"):
        for i, a in enumerate(train("plain", opt, shard=False)[0]):
            out[f"{opt}_{i}"] = a
    for i, a in enumerate(train("plain", "sgd", shard=False, model="conv")[0]):
        out[f"conv_{i}"] = a
    for i, a in enumerate(train("plain", "sgd", shard=(0, 2))[0]):
        out[f"alone_{i}"] = a
    np.savez(f"{outdir}/plain.npz", **out)


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
    w, _ = train("default", "sgd", model="conv")
    for i, a in enumerate(w):
        out[f"conv_{i}"] = a
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
    elif sys.argv[1] == "--plain":
        reference(sys.argv[2])
    else:
        main(sys.argv[1])
