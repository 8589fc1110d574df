"""Time knet_st's conv4/pool forward + backward against PyTorch on the CPU.

Issue 4's target: conv4 forward + backward (dw and dx) on a 100x1x28x28
batch with 20 5x5 filters within 2x of PyTorch CPU doing the same.  The
LeNet second-layer shape (100x20x12x12 input, 50 5x5 filters) and 2x2 max
pooling are timed too.

Both libraries get the same number of threads (``--threads``, default: the
number of CPUs).  The thread count of NumPy's BLAS is fixed when NumPy is
first imported, so this script sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
MKL_NUM_THREADS before importing NumPy, and ``torch.set_num_threads`` for
PyTorch.  PyTorch is optional: without it only knet_st's times are shown.

Each timing is the best (minimum) over ``--reps`` repetitions after a
warm-up, which is the most stable statistic on a shared machine.

Usage::

    python -m knet_st.bench.bench_conv [--threads 2] [--reps 30] [--dtype float32]
    python -m knet_st.bench.bench_conv --gpu     # CuPy timings (needs a GPU)
"""

import argparse
import os
import time


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--gpu", action="store_true", help="time knet_st on CuPy arrays instead")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    return ap.parse_args()


ARGS = _parse()
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread variables)

from knet_st.runtime import conv as kconv  # noqa: E402

try:
    if ARGS.no_torch or ARGS.gpu:
        raise ImportError
    import torch
    torch.set_num_threads(ARGS.threads)
except ImportError:
    torch = None


def best_time(f, reps, sync=None):
    for _ in range(3):
        f()
    if sync:
        sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return min(ts)


CASES = [
    # name, x shape, w shape
    ("conv1 100x1x28x28 * 20x1x5x5", (100, 1, 28, 28), (20, 1, 5, 5)),
    ("conv2 100x20x12x12 * 50x20x5x5", (100, 20, 12, 12), (50, 20, 5, 5)),
]
POOLS = [
    ("pool 2x2 max 100x20x24x24", (100, 20, 24, 24)),
    ("pool 2x2 max 100x50x8x8", (100, 50, 8, 8)),
]


def main():
    dtype = np.dtype(ARGS.dtype)
    rng = np.random.default_rng(0)
    xp, sync = np, None
    if ARGS.gpu:
        import cupy
        xp = cupy
        sync = cupy.cuda.Device().synchronize
    from knet_st.runtime import onednn
    on = not ARGS.gpu and onednn.enabled(np.zeros(1, dtype))
    print("knet_st conv4/pool benchmark: %s, %d thread(s), best of %d, %s%s%s"
          % (ARGS.dtype, ARGS.threads, ARGS.reps, "cupy" if ARGS.gpu else "numpy " + np.__version__,
             ", oneDNN " + onednn.version() if on else "",
             "" if torch is None else ", torch " + torch.__version__))
    header = "%-36s %12s %12s %8s" % ("case (forward + dw + dx)", "knet_st ms", "torch ms", "ratio")
    print(header)
    print("-" * len(header))
    ratios = {}
    for name, xs, ws in CASES:
        x = xp.asarray(rng.standard_normal(xs).astype(dtype))
        w = xp.asarray((0.1 * rng.standard_normal(ws)).astype(dtype))
        y = kconv.conv4(w, x)
        dy = xp.asarray(rng.standard_normal(y.shape).astype(dtype))

        def ours():
            kconv.conv4(w, x)
            kconv.conv4_dw(dy, w, x)
            kconv.conv4_dx(dy, w, x)

        t_ours = best_time(ours, ARGS.reps, sync)
        t_torch = None
        if torch is not None:
            xt = torch.from_numpy(np.asarray(x)).requires_grad_(True)
            wt = torch.from_numpy(np.asarray(w)).requires_grad_(True)
            dyt = torch.from_numpy(np.asarray(dy))

            def theirs():
                yt = torch.nn.functional.conv2d(xt, wt)
                torch.autograd.grad(yt, (wt, xt), dyt)

            t_torch = best_time(theirs, ARGS.reps)
        _row(name, t_ours, t_torch, ratios)
    for name, xs in POOLS:
        x = xp.asarray(rng.standard_normal(xs).astype(dtype))
        y = kconv.pool(x)
        dy = xp.asarray(rng.standard_normal(y.shape).astype(dtype))

        def ours():
            yy = kconv.pool(x)
            kconv.pool_dx(dy, yy, x)

        t_ours = best_time(ours, ARGS.reps, sync)
        t_torch = None
        if torch is not None:
            xt = torch.from_numpy(np.asarray(x)).requires_grad_(True)
            dyt = torch.from_numpy(np.asarray(dy))

            def theirs():
                yt = torch.nn.functional.max_pool2d(xt, 2)
                torch.autograd.grad(yt, (xt,), dyt)

            t_torch = best_time(theirs, ARGS.reps)
        _row(name, t_ours, t_torch, ratios)
    return ratios


def _row(name, t_ours, t_torch, ratios):
    if t_torch is None:
        print("%-36s %12.3f %12s %8s" % (name, 1e3 * t_ours, "-", "-"))
    else:
        ratios[name] = t_ours / t_torch
        print("%-36s %12.3f %12.3f %7.2fx" % (name, 1e3 * t_ours, 1e3 * t_torch, t_ours / t_torch))


if __name__ == "__main__":
    main()
