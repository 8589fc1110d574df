"""Run benchmark cells (one column, given models) in this process; the harness starts one per cell.

Each result is printed as one line ``BENCH_RESULT {json}`` on stdout.  The
harness starts this module with the thread variables already in the
environment; run by hand, it starts itself again with them set (importing
the knet_st package has imported NumPy before any code here runs), so that
it gives the same conditions::

    python -m knet_st.bench.worker --column numpy --models mlp --quick --threads 2

This module imports nothing heavy at the top: the frameworks are loaded only
after the thread settings are in place.
"""

import argparse
import importlib
import json
import os
import sys
import time
import traceback

RESULT_PREFIX = "BENCH_RESULT "

#: column name -> module implementing it (each has ``build(problem)`` and ``versions()``)
COLUMNS = {
    "knet_st": "knet_st.bench.knet_col",
    "numpy": "knet_st.bench.models_numpy",
    "autograd": "knet_st.bench.models_autograd",
    "torch": "knet_st.bench.models_torch",
    "jax": "knet_st.bench.models_jax",
}


def thread_env(threads, environ=os.environ):
    """Environment variables that give every library *threads* threads."""
    n = str(threads)
    xla = environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in xla:
        eigen = "true" if threads > 1 else "false"
        xla = f"{xla} --xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={n}".strip()
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "VECLIB_MAXIMUM_THREADS": n, "NUMEXPR_NUM_THREADS": n, "XLA_FLAGS": xla}


def emit(record):
    print(RESULT_PREFIX + json.dumps(record), flush=True)


def reason(exc):
    """One line saying what went wrong."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def warm_up(impl, problem):
    """Take the first step on a throwaway copy of the weights (compiles what compiles); its seconds."""
    t = time.perf_counter()
    params = impl.step(impl.init(), impl.batches[problem.order[0]])
    impl.sync(params)
    return time.perf_counter() - t


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat); None where unknown."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds():
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


def timed_run(impl, problem, repeat=1):
    """Train from the initial weights through ``problem.order``, best of *repeat* runs.

    Returns the seconds, the number of steps, the mean loss before and after,
    and ``others``: the CPU seconds that other processes (and the hypervisor)
    took on this machine while the best run was timed.
    """
    def mean_loss(params):
        return sum(impl.loss(params, impl.batches[i]) for i in problem.eval) / len(problem.eval)

    batches, step = impl.batches, impl.step
    best, others = float("inf"), None
    for _ in range(repeat):
        params = impl.init()
        loss_before = mean_loss(params)
        busy, own, t = busy_seconds(), own_seconds(), time.perf_counter()
        for i in problem.order:
            params = step(params, batches[i])
        impl.sync(params)
        seconds = time.perf_counter() - t
        if seconds < best:
            best = seconds
            if busy is not None:
                others = max(0.0, (busy_seconds() - busy) - (own_seconds() - own))
    return dict(seconds=best, steps=len(problem.order), others=others,
                loss_before=loss_before, loss_after=mean_loss(params))


def run_column(column, models, quick, threads, repeat, verbose):
    """Benchmark *models* with one column, emitting a record per model."""
    from knet_st.bench import problems

    base = dict(column=column)
    try:
        module = importlib.import_module(COLUMNS[column])
        configure = getattr(module, "configure", None)
        if configure:
            configure(threads)
        emit(dict(base, versions=module.versions()))
    except Exception as exc:  # a missing or broken peer is a skipped column
        if verbose:
            traceback.print_exc()
        for name in models:
            emit(dict(base, model=name, status="skipped", reason=reason(exc)))
        return
    for name in models:
        record = dict(base, model=name)
        try:   # a column that cannot build or take its first step is skipped
            problem = problems.make(name, quick)
            impl = module.build(problem)
            record["warmup"] = warm_up(impl, problem)
        except Exception as exc:
            if verbose:
                traceback.print_exc()
            emit(dict(record, status="skipped", reason=reason(exc)))
            continue
        try:
            emit(dict(record, status="ok", **timed_run(impl, problem, repeat)))
        except Exception as exc:
            traceback.print_exc()
            emit(dict(record, status="error", reason=reason(exc)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m knet_st.bench.worker", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--column", choices=sorted(COLUMNS))
    what.add_argument("--diff", action="store_true", help="the cost-of-differentiation table")
    parser.add_argument("--models", help="comma-separated model names (with --column)")
    parser.add_argument("--data", help="data folder (sets $KNET_ST_DATA)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.column and not args.models:
        parser.error("--column needs --models")
    os.environ.update(thread_env(args.threads))
    if args.data:
        os.environ["KNET_ST_DATA"] = args.data
    if args.diff:
        from knet_st.bench import difftable
        for record in difftable.run(args.quick):
            emit(record)
    else:
        run_column(args.column, args.models.split(","), args.quick, args.threads, args.repeat, args.verbose)
    return 0


def reexec_with_threads(argv):
    """Start this module again with the thread variables set, if NumPy came in before them.

    ``python -m knet_st.bench.worker`` imports the knet_st package, and with
    it NumPy, before :func:`main` runs: OpenBLAS has then read its thread
    count already, and only a fresh process can change it."""
    threads = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--threads"), None)
    if threads is None or not threads.isdigit() or "numpy" not in sys.modules:
        return
    env = thread_env(int(threads))
    if all(os.environ.get(k) == v for k, v in env.items()) or os.environ.get("KNET_ST_BENCH_REEXEC"):
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, **env, KNET_ST_BENCH_REEXEC="1",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "knet_st.bench.worker", *argv], env)


if __name__ == "__main__":
    reexec_with_threads(sys.argv[1:])
    sys.exit(main())
