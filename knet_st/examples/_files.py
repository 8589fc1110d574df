"""The files an example reads and writes: outputs checked before any
training, and the checkpoint that ``--resume`` continues."""

import os
import sys

from knet_st.init import get_rng

from ._errors import ExampleError


def check_writable(option, path):
    """Refuses, before any training, an output file that cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ExampleError(f"{option} {path}: is a folder, not a file")
    if not os.path.isdir(folder):
        raise ExampleError(f"{option} {path}: no such folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExampleError(f"{option} {path}: the folder {folder} is not writable")


# the formats of matplotlib's savefig
PLOT_FORMATS = ("eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba",
                "svg", "svgz", "tif", "tiff", "webp")


def check_plot(path):
    """Refuses, before any training, a ``--plot`` file matplotlib cannot
    write: its extension names the format (the caller checks matplotlib)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise ExampleError(f"--plot {path}: unknown image format "
                           f"{'.' + ext if ext else '(no extension)'}; use one of "
                           f".png, .pdf, .svg, .jpg (or {', '.join(PLOT_FORMATS)})")
    check_writable("--plot", path)


def start(args, example):
    """The checkpoint of ``--load`` or ``--resume`` (``None`` without either).

    With ``--resume`` it must hold a training saved by ``--save``; the
    optimizer, learning rate and random state become the saved ones, and
    training starts at the epoch after the saved one."""
    path = args.resume or args.load
    if not path:
        return None
    from ._common import load
    saved = load(path, example)
    if not args.resume:
        return saved
    if not all(k in saved for k in ("opts", "epoch", "optimizer", "lr", "rng")):
        raise ExampleError(f"--resume {path}: it holds a model but no training "
                           f"state (optimizer, epoch); start from its weights "
                           f"with --load {path}")
    for option, given, value in (("--optimizer", args.optimizer_given, saved["optimizer"]),
                                 ("--lr", args.lr_given, saved["lr"])):
        if given is not None and given != value:
            raise ExampleError(
                f"--resume continues with the saved optimizer, {saved['optimizer']} "
                f"with lr {saved['lr']}, not {option} {given}; to train the saved "
                f"weights anew, use --load {path}")
    args.optimizer, args.lr = saved["optimizer"], saved["lr"]
    args.first_epoch = saved["epoch"] + 1
    if args.first_epoch > args.epochs:
        raise ExampleError(f"--resume {path}: it was saved after epoch "
                           f"{saved['epoch']}, and --epochs {args.epochs} leaves "
                           f"nothing to train; ask for more, e.g. --epochs "
                           f"{saved['epoch'] + 1}")
    try:
        get_rng().bit_generator.state = saved["rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise ExampleError(f"--resume {path}: unreadable random state ({e})") from None
    print(f"resuming {path} at epoch {args.first_epoch}", file=sys.stderr)
    return saved
