"""Linear regression on the Boston housing data: the Knet tutorial's first model.

Run it with ``knet-st run housing`` or ``python examples/housing.py``.

The data are 506 neighborhoods of Boston (1978), 13 features each,
normalized to zero mean and unit variance; ``y`` is the median house value
in $1000s.  As in the tutorial, ``x`` is features x instances (13 x 506)
and the model takes 10 full-batch steps of gradient descent with lr 0.1;
the tutorial's quadratic loss falls from 366.0 (after the first step) to
29.6 (after the tenth).

The Julia of the tutorial, and its Python here::

    predict(w,x) = w[1]*x .+ w[2]                       def predict(w, x):
                                                            return w[0] @ x + w[1]
    loss(w,x,y) = sumabs2(y - predict(w,x)) / size(y,2) def loss(w, x, y):
                                                            return np.sum((y - predict(w, x)) ** 2) / y.shape[1]
    lossgradient = grad(loss)                           lossgradient = kt.grad(loss)
"""

import numpy as np

import knet_st as kt
from knet_st.examples import _common


def predict(w, x):
    return w[0] @ x + w[1]


def loss(w, x, y):
    return np.sum((y - predict(w, x)) ** 2) / y.shape[1]


# kt.grad(loss) gives dw; value_and_grad also gives the loss, for the progress bar.
lossgradient = kt.value_and_grad(loss)


def train(w, data, opts, progress=None):
    """One pass over ``data``, a list of (x, y) minibatches.  With SGD,
    ``kt.update`` is the tutorial's ``w[i] -= lr * dw[i]``."""
    for x, y in data:
        value, dw = lossgradient(w, x, y)
        kt.update(w, dw, opts)
        if progress is not None:
            progress.update(value)
    return w


def init_weights():
    """The tutorial's ``w = Any[0.1*randn(1,13), 0]``."""
    return [kt.gaussian(1, 13, std=0.1), 0.0]


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def build_parser(prog=None):
    p = _common.parser(prog, __doc__, epochs=10, batchsize=None, lr=0.1)
    p.add_argument("--test", type=float, default=0.0, metavar="FRACTION",
                   help="hold out this fraction of the data as a test set "
                        "(default 0: train on all 506, as the tutorial)")
    return p


def run(args):
    """Trains and reports; returns a dict with the ``history`` of reported
    tuples, the per-step ``losses`` and the weights ``w``."""
    if not 0.0 <= args.test < 1.0:
        raise _common.ExampleError(f"--test must be in [0, 1), got {args.test}")
    if args.test > 0:
        xtrn, ytrn, xtst, ytst = kt.datasets.housing(test=args.test, rng=args.seed)
    else:
        xtrn, ytrn = kt.datasets.housing()
        xtst = ytst = None
    saved = _common.start(args, "housing")
    w = saved["w"] if saved else init_weights()
    atype = args.atype
    w, xtrn, ytrn, xtst, ytst = atype([w, xtrn, ytrn, xtst, ytst])
    batchsize = args.batchsize or xtrn.shape[1]
    dtrn = kt.minibatch(xtrn, ytrn, batchsize, shuffle=args.shuffle)
    _common.check_batches(dtrn, batchsize, xtrn.shape[1], "instances")
    opts = _common.make_optimizers(w, args, saved)

    def evaluate():
        if xtst is None:
            return "loss", loss(w, xtrn, ytrn)
        return "trn", loss(w, xtrn, ytrn), "tst", loss(w, xtst, ytst)

    # no progress bar for a single (full) batch per epoch
    def save(epoch):
        _common.save(args.save, "housing", w, opts, epoch, args)

    history, losses = _common.train_epochs(
        "housing", args, dtrn, lambda data, bar: train(w, data, opts, bar), evaluate,
        progress=len(dtrn) > 1, save=save)
    if args.save and args.epochs < args.first_epoch:    # nothing trained: --load
        _common.save(args.save, "housing", w)
    if args.plot:
        _common.plot(args.plot, "housing: linear regression",
                     [("quadratic loss", "epoch", _common.curves(history))])
    return {"history": history, "losses": losses, "w": w}


def main(argv=None, prog=None):
    """``knet-st run housing [options]``; ``--help`` lists the options.
    Returns what :func:`run` returns."""
    return _common.run_main(build_parser, run, argv, prog)


if __name__ == "__main__":
    main()
