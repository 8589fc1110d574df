"""GPU columns of the benchmark: knet_st on CuPy arrays and PyTorch on CUDA.

``python -m knet_st.bench.gpu [--steps N] [--models ...]`` times the same problems as
the CPU table (knet_st.bench.problems: same weights, data and SGD), each column on the
GPU, for N steps of each model after a warm-up step, and prints a Markdown
table of milliseconds per step and the seconds the table's epochs would take.
Needs CuPy (knet_st column) and/or PyTorch with CUDA (torch column); a missing
one is a skipped column.
"""

import argparse
import sys
import time

import numpy as np

from knet_st.bench import problems

MODELS = ["linreg", "softmax", "mlp", "lenet", "charlm"]


def knet_gpu(problem):
    import cupy as cp

    import knet_st as kt
    from knet_st.bench import knet_col
    impl = knet_col.build(problem)
    batches = [kt.to_gpu(b) for b in impl.batches]
    init = impl.init
    return (lambda: kt.to_gpu(init()), impl.step, batches,
            lambda: cp.cuda.Device().synchronize())


def torch_gpu(problem):
    import torch

    from knet_st.bench import models_torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    impl = models_torch.build(problem)
    dev = torch.device("cuda")

    def move(x):
        if isinstance(x, torch.nn.Module):
            return x.to(dev)                      # moves its parameters in place
        if isinstance(x, torch.Tensor):
            if x.requires_grad:                   # a parameter: keep its identity
                x.data = x.data.to(dev)
                return x
            return x.to(dev)
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        return x

    batches = [move(b) for b in impl.batches]
    init = impl.init
    return lambda: move(init()), impl.step, batches, torch.cuda.synchronize


COLUMNS = {"knet_st": knet_gpu, "torch": torch_gpu}


def time_column(build, problem, steps):
    init, step, batches, sync = build(problem)
    params = init()
    params = step(params, batches[0])             # warm-up: compiles, allocates
    sync()
    order = [problem.order[i % len(problem.order)] for i in range(steps)]
    start = time.perf_counter()
    for i in order:
        params = step(params, batches[i])
    sync()
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m knet_st.bench.gpu", description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--pool", choices=["cupy", "knet"], default=None,
                        help="GPU memory pool for the knet_st column (kt.set_pool)")
    args = parser.parse_args(argv)
    if args.pool:
        import knet_st as kt
        kt.set_pool(args.pool)
        print(f"memory pool: {args.pool}", file=sys.stderr)
    rows = []
    for name in args.models.split(","):
        problem = problems.make(name)
        total_steps = len(problem.order)
        steps = min(args.steps, total_steps)
        cells = {}
        for column, build in COLUMNS.items():
            try:
                cells[column] = time_column(build, problem, steps)
            except Exception as exc:          # a missing library or device: skipped column
                cells[column] = f"skipped: {type(exc).__name__}: {str(exc)[:80]}"
        rows.append((name, total_steps, steps, cells))
        print(name, cells, file=sys.stderr, flush=True)
    print("| model | steps in the table | steps timed | " +
          " | ".join(f"{c} ms/step | {c} s for the table" for c in COLUMNS) + " |")
    print("|---|---|---|" + "---|---|" * len(COLUMNS))
    for name, total, steps, cells in rows:
        parts = []
        for column in COLUMNS:
            v = cells[column]
            parts += [f"{v * 1e3:.3g}", f"{v * total:.3g}"] if isinstance(v, float) else [v, "—"]
        print(f"| {name} | {total} | {steps} | " + " | ".join(parts) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
