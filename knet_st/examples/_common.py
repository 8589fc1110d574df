"""What the examples share that is not the model: options, the loop over
epochs (progress bar, per-epoch report, timing), accuracy, the device,
checkpoints, plots and error messages.

The model code of each example (``predict``, ``loss``, the ``train`` pass
over the minibatches) stays in the example's own module, where it reads
like the Knet tutorial.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

import knet_st as kt
from knet_st._threads import set_blas_threads
from knet_st.checkpoint import CheckpointError
from knet_st.datasets import DatasetError
from knet_st.distributed import DistributedError
from knet_st.init import get_rng

from ._errors import Diverged, ExampleError, check_finite, diverged  # noqa: F401
from ._files import check_plot, check_writable, start  # noqa: F401

OPTIMIZERS = {
    "sgd": kt.SGD, "momentum": kt.Momentum, "nesterov": kt.Nesterov,
    "adagrad": kt.Adagrad, "adadelta": kt.Adadelta, "rmsprop": kt.Rmsprop,
    "adam": kt.Adam,
}


# Errors that become one message on stderr and a non-zero exit status.
EXPECTED = (ExampleError, DatasetError, kt.TransformError, CheckpointError, OSError,
            DistributedError)


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------

def _int_option(minimum, wanted):
    """An argparse ``type``: an integer of at least ``minimum``."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{wanted}, got {n}")
        return n
    return parse


positive_int = _int_option(1, "must be at least 1")
nonnegative_int = _int_option(0, "must be 0 or more")


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def nonnegative_float(text):
    """An argparse ``type``: a finite number of at least 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= v < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return v


def parser(prog, doc, *, epochs, batchsize, lr, optimizer="sgd", shuffle=False):
    """The options every example has; the example adds its own.

    ``--epochs`` defaults to ``epochs`` (0 with ``--load``: evaluate or
    generate from a saved model); ``--lr`` defaults to ``lr`` for SGD and to
    the optimizer's own default for the others; ``--shuffle/--no-shuffle``
    defaults to ``shuffle`` (``None``: no such option).
    """
    summary = doc.strip().splitlines()[0]
    p = argparse.ArgumentParser(prog=prog, description=summary)
    p.set_defaults(default_epochs=epochs, default_lr=lr, default_optimizer=optimizer)
    p.add_argument("--epochs", type=nonnegative_int, default=None,
                   help=f"train until this epoch (default {epochs}; 0 with "
                        f"--load; with --resume, the epochs before count)")
    if batchsize is None:
        p.add_argument("--batchsize", type=positive_int, default=None,
                       help="instances per minibatch (default: the whole "
                            "training set, one step per epoch)")
    else:
        p.add_argument("--batchsize", type=positive_int, default=batchsize,
                       help=f"instances per minibatch (default {batchsize})")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"learning rate (default {lr} for sgd, else the "
                        f"optimizer's own default)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None,
                   help=f"update rule (default {optimizer})")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed for the weights and the shuffling "
                        "(default 1; -1 for a fresh one)")
    if shuffle is not None:
        default = ("on; --no-shuffle for the tutorial's fixed order and figures"
                   if shuffle else "off, the tutorial's fixed order")
        p.add_argument("--shuffle", action=argparse.BooleanOptionalAction,
                       default=shuffle,
                       help=f"a new order of the training minibatches every "
                            f"epoch (default {default})")
    p.add_argument("--gpu", action="store_true",
                   help="train on the GPU (needs CuPy and a CUDA device)")
    p.add_argument("--save", metavar="FILE",
                   help="save the model and the optimizer state to FILE (.npz) "
                        "after every epoch")
    p.add_argument("--load", metavar="FILE",
                   help="start from the model saved in FILE (a new optimizer)")
    p.add_argument("--resume", metavar="FILE",
                   help="continue the training saved in FILE by --save: its "
                        "model, optimizer state, epoch and random state")
    p.add_argument("--plot", metavar="FILE",
                   help="plot the training curves to FILE (e.g. out.png; "
                        "needs matplotlib)")
    p.add_argument("--steps", type=positive_int, default=None, metavar="N",
                   help="a quick run: at most N training minibatches per epoch, "
                        "and N minibatches of each evaluation set")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads of NumPy's BLAS library (default: its own)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr: auto (only when stdout is a "
                        "terminal), on or off")
    return p


def finish(args):
    """Fills the defaults that depend on other options; checks what can be
    checked before any work (the output files, the GPU, matplotlib).  Under
    ``mpiexec`` it joins the data-parallel run: only rank 0 prints, plots and
    saves."""
    if args.load and args.resume:
        raise ExampleError("--load and --resume exclude each other: --load starts "
                           "a new training from saved weights, --resume continues "
                           "a saved one")
    rank, size = kt.distributed.init(gpu=args.gpu)
    if size > 1 and (args.seed is None or args.seed < 0):
        # one fresh seed for all: the same weights and shuffles everywhere
        fresh = int(np.random.SeedSequence().entropy % 2**31)
        args.seed = kt.distributed.broadcast([fresh])[0]
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
        args.progress = "off"
    if args.epochs is None:
        args.epochs = 0 if args.load else args.default_epochs
    args.lr_given, args.optimizer_given = args.lr, args.optimizer
    if args.optimizer is None:
        args.optimizer = args.default_optimizer
    if args.lr is None:
        if args.optimizer == "sgd":
            args.lr = args.default_lr
        else:
            args.lr = _default_lr(OPTIMIZERS[args.optimizer])
    args.first_epoch = 1
    for option in ("load", "resume"):
        path = getattr(args, option)
        if path and not os.path.isfile(path):
            raise ExampleError(f"--{option} {path}: no such file")
    if args.save:
        check_writable("--save", args.save)
    if args.plot:
        check_plot(args.plot)
        require_matplotlib()
    if args.threads is not None and not set_blas_threads(args.threads):
        raise ExampleError("--threads: this NumPy's BLAS library was not found; "
                           "pip install threadpoolctl, or set OMP_NUM_THREADS "
                           "before starting")
    args.atype = device(args.gpu)
    if args.seed is not None and args.seed >= 0:
        kt.seed(args.seed)
    else:
        kt.seed(None)
    return args


def _default_lr(cls):
    import inspect
    return inspect.signature(cls).parameters["lr"].default


def make_optimizers(w, args, saved=None):
    """``kt.optimizers(w, kt.SGD, lr=...)`` for the chosen ``--optimizer``, or,
    with ``--resume``, the optimizers of the checkpoint ``saved``; in a
    data-parallel run, every process first takes rank 0's ``w``."""
    kt.distributed.broadcast(w)
    if args.resume:
        return saved["opts"]
    return kt.optimizers(w, OPTIMIZERS[args.optimizer], lr=args.lr)


# ---------------------------------------------------------------------------
# device
# ---------------------------------------------------------------------------

def _identity(x):
    return x


def device(use_gpu):
    """The function that puts arrays where training happens: ``kt.to_gpu``
    with ``--gpu`` (when ``kt.gpu()``), else the identity."""
    if not use_gpu:
        return _identity
    if not kt.gpu():
        try:
            kt.to_gpu(np.zeros(1, np.float32))      # its message says why
        except RuntimeError as e:
            raise ExampleError(f"--gpu: {e}") from None
        raise ExampleError("--gpu: no usable GPU")
    return kt.to_gpu


def to_float(v):
    """A Python float from a float, a NumPy scalar or a 0-d (GPU) array."""
    return float(v)


# ---------------------------------------------------------------------------
# output: the tutorial's per-epoch lines, a progress bar, a timer
# ---------------------------------------------------------------------------

def report(*items):
    """Prints the tutorial's ``(:epoch, 1, :trn, 0.9005, :tst, 0.9048)`` as a
    Python tuple: ``('epoch', 1, 'trn', 0.9005, 'tst', 0.9048)``."""
    out = []
    for v in items:
        if isinstance(v, (str, bool, int)) and not isinstance(v, np.generic):
            out.append(v)
        elif isinstance(v, (np.integer,)):
            out.append(int(v))
        else:
            out.append(round(float(v), 4))
    print(tuple(out), flush=True)
    return tuple(out)


def progress_enabled(mode):
    if mode == "on":
        return True
    if mode == "off":
        return False
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A progress bar over the minibatches of an epoch, with the loss and the
    speed: tqdm when it is installed, else a one-line bar of its own.  Silent
    unless enabled (by default only when stdout is a terminal).

    It also watches the losses: a nan or infinite one raises :class:`Diverged`
    naming ``epoch`` and the step (at once for losses on the CPU; for GPU
    arrays, which would have to wait for the GPU, when :attr:`losses` is read).
    """

    def __init__(self, total, desc, enabled, unit="batch", epoch=None):
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.unit = unit
        self.epoch = epoch
        self.n = 0
        self.loss = None
        self.values = []            # every loss given to update(), as given
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False,
                                dynamic_ncols=True, file=sys.stderr)

    def update(self, loss=None):
        self.n += 1
        if loss is not None:
            self.values.append(loss)
            if isinstance(loss, (float, int, np.generic, np.ndarray)) and \
                    not math.isfinite(loss):
                raise diverged(float(loss), self.epoch, self.n)
        if not self.enabled:
            return
        if loss is not None:
            value = float(loss)
            self.loss = value if self.loss is None else 0.9 * self.loss + 0.1 * value
        if self.bar is not None:
            if self.loss is not None:
                self.bar.set_postfix(loss=f"{self.loss:.4f}", refresh=False)
            self.bar.update(1)
            return
        now = time.perf_counter()
        if now - self.last_draw >= 0.1 or self.n == self.total:
            self.last_draw = now
            self._draw(now)

    def _draw(self, now):
        elapsed = max(now - self.start, 1e-9)
        width = 24
        done = int(width * self.n / self.total) if self.total else width
        bar = "=" * done + ">" * (done < width) + " " * max(width - done - 1, 0)
        loss = f" loss {self.loss:.4f}" if self.loss is not None else ""
        text = (f"\r{self.desc} {self.n}/{self.total} [{bar}]{loss} "
                f"{self.n / elapsed:.1f} {self.unit}/s")
        sys.stderr.write(text + "\x1b[K")
        sys.stderr.flush()

    @property
    def losses(self):
        """The losses of the steps so far, as Python floats (:class:`Diverged`
        if one is nan or infinite)."""
        values = [float(v) for v in self.values]
        for step, v in enumerate(values, 1):
            if not math.isfinite(v):
                raise diverged(v, self.epoch, step)
        return values

    def close(self):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def limited(data, steps):
    """The first ``steps`` minibatches of ``data`` (all of them when None)."""
    n = len(data)
    if steps is not None:
        n = min(n, steps)
    it = iter(data)
    for _ in range(n):
        yield next(it)


def nbatches(data, steps):
    return len(data) if steps is None else min(len(data), steps)


def done(what, seconds):
    """The training time (without the evaluations), on stderr."""
    if not kt.distributed.is_root():
        return
    print(f"{what}: {seconds:.2f} s of training", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# training: the epoch loop around an example's own train, and evaluation
# ---------------------------------------------------------------------------

def check_batches(dtrn, batchsize, ninstances, what):
    """Refuses a ``--batchsize`` that leaves no training minibatch."""
    if len(dtrn) == 0:
        raise ExampleError(f"--batchsize {batchsize} is larger than the "
                           f"{ninstances} training {what}")


def train_epochs(name, args, dtrn, train, evaluate, progress=True, save=None):
    """The tutorial's ``for epoch = 1:n; train(...); report(epoch); end``
    with the progress bar, ``--steps``, the training time, a stop at a nan
    loss and a checkpoint after every epoch.

    ``train(data, progress)`` is one pass over ``data`` (the first
    ``--steps`` minibatches of ``dtrn``) that gives each step's loss to
    ``progress.update``; ``evaluate()`` is what to report before the first
    epoch and after each, e.g. ``("trn", 0.9005, "tst", 0.9048)``; each
    epoch's line adds the mean training loss of its steps (``trnloss``) and
    its wall time in seconds, training and evaluation (``time``).
    ``save(epoch)`` writes the checkpoint of ``--save``.  Returns the
    reported tuples and the per-step losses.
    """
    def quiet():
        return np.errstate(over="ignore", invalid="ignore", divide="ignore")

    with quiet():
        history = [report("epoch", args.first_epoch - 1, *evaluate())]
    losses, seconds = [], 0.0
    enabled = progress and progress_enabled(args.progress)
    for epoch in range(args.first_epoch, args.epochs + 1):
        bar = Progress(nbatches(dtrn, args.steps), f"epoch {epoch}", enabled,
                       epoch=epoch)
        t0 = time.perf_counter()
        try:
            with quiet():
                train(limited(dtrn, args.steps), bar)
            epoch_losses = bar.losses       # (waits for the GPU)
        finally:
            bar.close()
        losses += epoch_losses
        seconds += time.perf_counter() - t0
        with quiet():
            values = evaluate()
        check_finite(values, epoch)
        history.append(report("epoch", epoch, *values, "trnloss",
                              sum(epoch_losses) / len(epoch_losses),
                              "time", time.perf_counter() - t0))
        if save is not None and args.save:
            save(epoch)
    if args.epochs >= args.first_epoch:
        done(f"{name}: {args.epochs - args.first_epoch + 1} epochs", seconds)
    return history, losses


def evaluating(data, args, desc):
    """The minibatches of an evaluation set ``data``: the first ``--steps``
    of them, with a progress bar named ``desc`` while they are read."""
    bar = Progress(nbatches(data, args.steps), desc, progress_enabled(args.progress))
    try:
        for batch in limited(data, args.steps):
            yield batch
            bar.update()
    finally:
        bar.close()


def accuracy(predict, w, data):
    """The fraction of instances of ``data``, (x, labels) minibatches, that
    ``predict(w, x)`` classifies correctly, as the tutorial's.  In a
    data-parallel run each process counts every P-th minibatch."""
    ncorrect = ninstance = 0
    rank, size = kt.distributed.rank(), kt.distributed.size()
    for i, (x, ygold) in enumerate(data):
        if i % size == rank:
            ncorrect += kt.accuracy(predict(w, x), ygold) * len(ygold)
            ninstance += len(ygold)
    if size > 1:
        ncorrect, ninstance = kt.distributed.allreduce_mean(
            [float(ncorrect), float(ninstance)])
    return ncorrect / ninstance


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------

def save(path, example, w, opts=None, epoch=None, args=None, **extra):
    """``kt.save(path, example=..., w=..., ...)`` with the weights on the CPU
    (by rank 0 alone in a data-parallel run); with ``opts``, ``epoch`` and
    ``args``, also what ``--resume`` needs: the optimizer state, the epoch,
    the optimizer's name and the random state."""
    if not kt.distributed.is_root():
        return
    if opts is not None:
        extra.update(opts=opts, epoch=epoch, optimizer=args.optimizer, lr=args.lr,
                     rng=get_rng().bit_generator.state)
    kt.save(path, example=example, w=kt.to_cpu(w), **extra)
    after = f" after epoch {epoch}" if epoch is not None else ""
    print(f"saved {example} model to {path}{after}", file=sys.stderr)


def load(path, example):
    """The dict saved by :func:`save`; refuses a checkpoint of another example."""
    values = kt.load(path)
    found = values.get("example")
    if found != example or "w" not in values:
        what = f"a {found!r} model" if found else "no knet_st example model"
        raise ExampleError(f"{path} holds {what}, not a {example!r} model")
    return values


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------

def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ExampleError("--plot needs matplotlib, which is not installed: "
                           "pip install matplotlib (or pip install "
                           "'knet_st[plot]')") from None
    return matplotlib


def curves(history):
    """The values of the reported tuples by name, for :func:`plot`:
    ``{"trn": (epochs, values), "tst": (epochs, values)}``."""
    epochs = [h[1] for h in history]
    return {history[0][i]: (epochs, [h[i + 1] for h in history])
            for i in range(2, len(history[0]), 2)}


def step_curve(losses):
    """The per-step training losses, for :func:`plot`."""
    return {"trn": (list(range(1, len(losses) + 1)), losses)}


def plot(path, title, panels):
    """Writes a figure with one panel per entry of ``panels``: a list of
    ``(ylabel, xlabel, {name: (xs, ys)})``; rank 0 alone draws."""
    if not kt.distributed.is_root():
        return
    matplotlib = require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4),
                             squeeze=False)
    for ax, (ylabel, xlabel, series) in zip(axes[0], panels):
        for name, (xs, ys) in series.items():
            if len(xs):
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None,
                        label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if len(series) > 1:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"plot written to {path}", file=sys.stderr)


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

def run_main(build_parser, train, argv, prog, fixed=None):
    """Parses ``argv``, runs ``train(args)`` and returns its result.

    ``fixed`` holds the options an alias sets (``knet-st run mlp`` is
    ``mnist --model mlp``): ``{"model": "mlp"}``; giving one of them another
    value is an error.  Known errors (missing data, a model that cannot be
    differentiated, a bad checkpoint, a missing GPU, an output that cannot be
    written...) print one message on stderr and exit with status 1, before
    any training when they can be known then; bad options exit with status 2
    (argparse).
    """
    if prog is None:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else None
    p = build_parser(prog)
    args = p.parse_args(argv)
    for option, value in (fixed or {}).items():
        given = getattr(args, option)
        if given is not None and given != value:
            print(f"{p.prog}: error: --{option} {given} contradicts {p.prog}, which "
                  f"is --{option} {value}; for {given}, drop --{option} or run the "
                  f"example {given!r}", file=sys.stderr)
            raise SystemExit(2)
        setattr(args, option, value)
    prog = p.prog
    try:
        finish(args)
        return train(args)
    except EXPECTED as e:
        print(f"{prog}: error: {_message(e)}", file=sys.stderr)
        kt.distributed.abort(1)         # under mpiexec: no process left waiting
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        kt.distributed.abort(130)
        raise SystemExit(130) from None


def _message(e):
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"{e.strerror or 'no such file'}: {e.filename}"
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.strerror}: {e.filename}"
    return str(e)
