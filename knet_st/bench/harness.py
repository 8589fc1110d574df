"""The benchmark driver: ``python -m knet_st.bench`` or ``knet-st bench``.

It runs each (model, column) cell in a fresh worker process
(:mod:`knet_st.bench.worker`) with the same thread settings, collects the measurements and writes the Knet
tutorial's benchmark table as Markdown (and the raw records as JSON beside
it), then prints it.  A column whose library is missing or broken is shown
as skipped, with the reason.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

from knet_st.bench import problems
from knet_st.bench.worker import COLUMNS, RESULT_PREFIX, thread_env

# The folder that holds this knet_st package (a checkout or site-packages): the
# workers import the same knet_st as the harness, whatever the current folder.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Relative to the current folder, never beside the installed package.
DEFAULT_OUT = os.path.join("bench-results", "table.md")
LABELS = {"knet_st": "knet_st", "numpy": "NumPy by hand", "autograd": "autograd",
          "torch": "torch", "jax": "jax.jit"}
PEERS = ("autograd", "torch", "jax")
CONTENTION = 0.1   # a cell is marked when other processes took more than this share of its CPUs
NOTES = {
    "knet_st": "the tutorial's predict/loss in NumPy and kt operators, kt.grad, the tutorial's update loop",
    "numpy": "hand-derived gradients; LeNet im2col in NHWC, CharLM batch-major with the input and output "
             "products hoisted out of the time loop",
    "autograd": "the tutorial's code in autograd.numpy (one-hot answers); convolution as im2col from 25 slices",
    "torch": "eager, batch-first; CharLM with the fused nn.LSTM and clip_grad_norm_",
    "jax": "jax.jit of the whole step (parameters donated); LeNet NHWC; CharLM cell under lax.scan",
}


def parse_args(argv, prog="python -m knet_st.bench"):
    """The options, checked; *prog* names the command in usage messages."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time the Knet tutorial's models in knet_st, NumPy by hand, autograd, torch and JAX.")
    parser.add_argument("--models", default=",".join(problems.MODELS),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--columns", default=",".join(COLUMNS),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--quick", action="store_true",
                        help=f"run 1/{problems.QUICK_FRACTION} of the steps (at least "
                             f"{problems.QUICK_MIN_STEPS}): a smoke test")
    parser.add_argument("--data", help="data folder (default: $KNET_ST_DATA, read by knet_st.datasets)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="Markdown output; JSON goes beside it (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads for every library (default: the usable cores, %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each cell this many times and keep the best (default: %(default)s)")
    parser.add_argument("--diff", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the cost of differentiation (the tutorial's second table)")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of skipped columns")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.models = _choices(parser, "--models", args.models, problems.MODELS)
    args.columns = _choices(parser, "--columns", args.columns, COLUMNS)
    return args


def _choices(parser, flag, value, allowed):
    names = [n for n in value.split(",") if n]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown}; choose from {','.join(allowed)}")
    return names


# --------------------------------------------------------------------------- running


def worker_env(threads):
    env = dict(os.environ)
    env.update(thread_env(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def run_worker(worker_args, threads, on_record):
    """Run ``python -m knet_st.bench.worker ARGS``; pass each record to *on_record*; return the exit code."""
    cmd = [sys.executable, "-m", "knet_st.bench.worker", *worker_args]
    with subprocess.Popen(cmd, env=worker_env(threads), stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                on_record(json.loads(line[len(RESULT_PREFIX):]))
            else:
                sys.stderr.write(line)
    return proc.returncode


def progress(record):
    if "model" not in record:
        return
    where = f"  {record['column']:<9} {record['model']:<8}"
    if record["status"] == "ok":
        print(f"{where} {record['seconds']:9.3f} s  {record['steps']:6d} steps  "
              f"loss {record['loss_before']:.4g} -> {record['loss_after']:.4g}  "
              f"(first step {record['warmup']:.3g} s)", flush=True)
    else:
        print(f"{where} {record['status']}: {record['reason']}", flush=True)


def collect(args):
    """Run the selected columns (and the second table); return (results, versions, diff rows)."""
    results, versions, diff = [], {}, []

    def on_record(record):
        if "versions" in record:
            versions.update(record["versions"])
        else:
            results.append(record)
            progress(record)

    common = ["--threads", str(args.threads), "--repeat", str(args.repeat)]
    if args.data:
        common += ["--data", os.path.abspath(args.data)]
    if args.quick:
        common.append("--quick")
    if args.verbose:
        common.append("--verbose")
    # Model by model, a fresh process per cell: the cells of a row, which the ratios
    # compare, run close together in time, so a change in the machine's load
    # falls on the whole row rather than on the columns that happen to run last.
    for model in args.models:
        for column in args.columns:
            code = run_worker(["--column", column, "--models", model, *common], args.threads, on_record)
            if not any(r["column"] == column and r["model"] == model for r in results):
                on_record(dict(column=column, model=model, status="error",
                               reason=f"worker exited with code {code}"))
    if args.diff:
        print("  cost of differentiation (MLP, quadratic loss) ...", flush=True)
        run_worker(["--diff", *common], args.threads,
                   lambda r: versions.update(r["versions"]) if "versions" in r else diff.append(r))
    return results, versions, diff


# --------------------------------------------------------------------------- reporting


def cpu_model():
    """The CPU's model name (with its family and model numbers where known)."""
    cpu = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break                       # the first processor is enough
                key, _, value = line.partition(":")
                cpu[key.strip()] = value.strip()
    except OSError:
        pass
    model = cpu.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in cpu:
        model += f" (family {cpu['cpu family']}, model {cpu.get('model', '?')})"
    return model


def machine():
    """CPU model, core counts and OS, as one line."""
    return (f"{cpu_model()}; {os.cpu_count()} logical CPUs, {len(os.sched_getaffinity(0))} usable; "
            f"{platform.system()} {platform.release()}")


def header(args, versions, load):
    """The run's conditions, one line each: machine, threads, data, environment, versions, mode."""
    inherited = {k: v for k, v in sorted(os.environ.items())
                 if k.startswith(("OPENBLAS_", "GOTO", "MKL_", "OMP_", "KMP_", "KNET_ST_ONEDNN"))
                 and k not in thread_env(1)}
    threads = thread_env(args.threads)
    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {machine()}",
        "load average (1, 5, 15 min) at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(
            *load, *os.getloadavg()),
        "threads: " + ", ".join(f"{k}={v}" for k, v in threads.items() if k != "XLA_FLAGS")
        + f", torch.set_num_threads({args.threads}), XLA_FLAGS='{threads['XLA_FLAGS']}'",
        f"data: {args.data or os.environ.get('KNET_ST_DATA') or 'knet_st.datasets default folder'}",
        "inherited environment: " + (", ".join(f"{k}={v}" for k, v in inherited.items()) or "none"),
        f"python: {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "mode: " + (f"QUICK (1/{problems.QUICK_FRACTION} of the steps, at least {problems.QUICK_MIN_STEPS}); "
                    "not comparable with full runs" if args.quick else "full")
        + (f"; best of {args.repeat} runs per cell" if args.repeat > 1 else "; one run per cell"),
    ]
    return lines


def _seconds(record):
    return record["seconds"] if record and record["status"] == "ok" else None


def contended(record, threads):
    """Whether other processes took more than CONTENTION of the CPUs this cell's timing needed."""
    others = record.get("others")
    return others is not None and others > max(CONTENTION * record["seconds"] * threads, 0.05)


def _fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _per_column(args, cell, fmt):
    """A model x column table of fmt(record) for the runs that finished."""
    rows = [[problems.SPECS[m].label]
            + [fmt(cell[c, m]) if cell.get((c, m), {}).get("status") == "ok" else "—" for c in args.columns]
            for m in args.models]
    return _table(["model"] + [LABELS[c] for c in args.columns], rows)


def render(args, head, results, diff):
    """The Markdown report; *head* is the list of :func:`header` lines."""
    cell = {(r["column"], r["model"]): r for r in results}
    lines = ["# knet_st benchmark: the Knet tutorial's models on this machine", ""]
    lines += [f"- {line}" for line in head] + [""]

    lines += [f"## Seconds to train on {cpu_model()}, {args.threads} thread{'s' * (args.threads != 1)} "
              "(data in memory, float32, plain SGD)", ""]
    rows = []
    for model in args.models:
        spec = problems.SPECS[model]
        steps = next((r["steps"] for r in results if r["model"] == model and r["status"] == "ok"), "—")
        secs = {c: _seconds(cell.get((c, model))) for c in args.columns}
        knet, floor = secs.get("knet_st"), secs.get("numpy")
        peers = {c: secs[c] for c in PEERS if secs.get(c) is not None}
        best = min(peers, key=peers.get) if peers else None
        marks = {c: " *" if contended(cell.get((c, model)) or {}, args.threads) else "" for c in args.columns}
        rows.append([spec.label, spec.data, spec.epochs, spec.batch, steps]
                    + [_fmt(secs[c]) + marks[c] for c in args.columns]
                    + [_fmt(knet / floor if knet and floor else None, 2),
                       f"{knet / peers[best]:.2f} ({LABELS[best]})" if knet and best else "—"])
    lines += _table(["model", "data", "epochs", "batch", "steps"] + [LABELS[c] for c in args.columns]
                    + ["knet_st/NumPy", "knet_st/best peer"], rows) + [""]

    failures = {}
    for r in results:
        if r["status"] != "ok":
            failures.setdefault((r["column"], r["status"], r["reason"]), []).append(r["model"])
    lines += [f"- {LABELS[column]} {status} ({', '.join(models)}): {why}"
              for (column, status, why), models in failures.items()]
    if any(contended(r, args.threads) for r in results):
        lines.append(f"- \\* other processes took more than {CONTENTION:.0%} of the {args.threads} CPUs "
                     "while this cell was timed: its time is inflated")
    lines += [f"- {LABELS[c]}: {NOTES[c]}" for c in args.columns] + [""]

    lines += ["## Mean loss on the first batches trained on, before -> after", ""]
    lines += _per_column(args, cell, lambda r: f"{r['loss_before']:.4g} -> {r['loss_after']:.4g}") + [""]
    lines += ["## Seconds of the untimed first step (includes tracing and compilation)", ""]
    lines += _per_column(args, cell, lambda r: _fmt(r["warmup"])) + [""]

    if diff:
        lines += ["## Cost of differentiation: MLP with quadratic loss, cumulative seconds "
                  f"over {diff[0]['batches']} minibatches", ""]
        lines += _table(["op", "secs"], [[d["op"], d.get("reason") or _fmt(d["seconds"])] for d in diff])
        lines.append("")
    return "\n".join(lines)


def main(argv=None, prog="python -m knet_st.bench"):
    """Entry point of ``python -m knet_st.bench`` and ``knet-st bench``; returns the exit status."""
    args = parse_args(argv, prog)
    if args.data and not os.path.isdir(args.data):
        print(f"bench: data folder {args.data!r} does not exist", file=sys.stderr)
        return 2
    print(f"bench: models {','.join(args.models)}; columns {','.join(args.columns)}; "
          f"{args.threads} threads{'; quick' if args.quick else ''}", flush=True)
    load = os.getloadavg()
    results, versions, diff = collect(args)
    head = header(args, versions, load)
    report = render(args, head, results, diff)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(dict(header=head, versions=versions, results=results, diff=diff), f, indent=1)
    print()
    print(report)
    print(f"\nwritten to {args.out}")
    return 0
