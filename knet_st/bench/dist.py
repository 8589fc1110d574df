"""Data-parallel steps per second: ``python -m knet_st.bench.dist``.

Runs the tutorial's MLP and LeNet training step (``lossgradient`` then
``kt.distributed.update``) for a few steps on MNIST with 1 and 2 processes
(``mpiexec -n P``), the global batch fixed, alternating the configurations
so that a noisy machine hurts them alike; prints a Markdown table with
steps per second, the split of a step between the gradient and the
reduction+update, and the bytes each process sends per step.

    python -m knet_st.bench.dist --models mlp,lenet --procs 1,2 --steps 30 --repeat 3
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def worker(args):
    """One run, inside mpiexec: prints one JSON line on rank 0."""
    import knet_st as kt            # first: it sets the BLAS threads per process
    from knet_st import distributed as dist
    from knet_st.examples import lenet, mnist
    rank, size = dist.init()
    kt.seed(1)
    if args.model == "mlp":
        mod, w = mnist, mnist.init_weights([784, 64, 10])
        x, y, _, _ = kt.datasets.mnist()
        axis = -1
    else:
        mod, w = lenet, lenet.init_weights()
        x, y, _, _ = kt.datasets.mnist(layout="nchw")
        axis = 0
    n = args.batchsize * (args.steps + args.warmup)
    x, y = (x[:, :n], y[:n]) if axis == -1 else (x[:n], y[:n])
    dist.broadcast(w)
    opts = kt.optimizers(w, kt.SGD, lr=0.1)
    red = dist.Reducer(bucket_bytes=args.bucket_kb << 10)
    data = list(kt.minibatch(x, y, args.batchsize, axis=axis, shard=True))
    tgrad = tupd = 0.0
    for i, (xb, yb) in enumerate(data):
        if i == args.warmup:
            dist.barrier()
            t0, tgrad, tupd, nbytes = time.perf_counter(), 0.0, 0.0, red.bytes
        a = time.perf_counter()
        dw = mod.lossgradient(w, xb, yb)[1]
        b = time.perf_counter()
        dist.update(w, dw, opts, overlap=args.mode == "overlap", reducer=red)
        tgrad += b - a
        tupd += time.perf_counter() - b
    dist.barrier()
    total = time.perf_counter() - t0
    if rank == 0:
        print(json.dumps({
            "model": args.model, "procs": size, "mode": args.mode,
            "steps_per_s": args.steps / total,
            "grad_ms": 1e3 * tgrad / args.steps, "update_ms": 1e3 * tupd / args.steps,
            "bytes_per_step": (red.bytes - nbytes) // args.steps,
            "buckets": red.messages // len(data),
            "params": int(sum(a.size for a in w))}), flush=True)


def main(argv=None):
    """Runs every (model, procs, mode) ``--repeat`` times, alternating; prints
    the median of each as a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,lenet")
    p.add_argument("--procs", default="1,2")
    p.add_argument("--modes", default="blocking,overlap")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batchsize", type=int, default=100)
    p.add_argument("--bucket-kb", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", default="all,1",
                   help="BLAS threads of the one-process runs: all (the "
                        "default of NumPy: one per core) and/or 1")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="blocking", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
    configs = []
    for m in args.models.split(","):
        for n in map(int, args.procs.split(",")):
            for mode in (args.threads.split(",") if n == 1 else args.modes.split(",")):
                configs.append((m, n, mode))
    results = {c: [] for c in configs}
    for _ in range(args.repeat):
        for model, n, mode in configs:
            cmd = [sys.executable, "-m", "knet_st.bench.dist", "--worker", "--model", model,
                   "--mode", mode, "--steps", str(args.steps), "--warmup",
                   str(args.warmup), "--batchsize", str(args.batchsize),
                   "--bucket-kb", str(args.bucket_kb)]
            env = dict(os.environ)
            if n > 1:
                cmd = [exe, "-n", str(n)] + cmd
            elif mode == "1":
                env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 timeout=600, env=env)
            if out.returncode:
                sys.exit(out.stderr)
            r = json.loads(out.stdout.splitlines()[-1])
            r["mode"] = mode if n > 1 else f"{mode} BLAS threads"
            results[(model, n, mode)].append(r)
    print("| model | params | processes | reduction | steps/s (median, range) | gradient ms | "
          "reduce+update ms | bytes/step/process | buckets |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c, runs in results.items():
        runs.sort(key=lambda r: r["steps_per_s"])
        r = runs[len(runs) // 2]
        spread = f"{runs[0]['steps_per_s']:.0f}-{runs[-1]['steps_per_s']:.0f}"
        print(f"| {r['model']} | {r['params']} | {r['procs']} | "
              f"{r['mode']} | {r['steps_per_s']:.0f} "
              f"({spread}) | {r['grad_ms']:.2f} | {r['update_ms']:.2f} | "
              f"{r['bytes_per_step']} | {r['buckets']} |")


if __name__ == "__main__":
    main()
