"""Softmax classifier and multi-layer perceptron on MNIST, from the Knet tutorial.

Run them with ``knet-st run mnist --model softmax`` (or ``knet-st run
softmax``) and ``knet-st run mnist --model mlp`` (``knet-st run mlp``), or
``python examples/mnist.py --model mlp``.

MNIST has 60000 training and 10000 test images of 28x28 pixels; ``x`` is
784 x instances and the labels are digits 0..9.  The tutorial trains with
minibatches of 100, SGD with lr 0.5, for 10 epochs, and prints the accuracy
on the training and test sets after each epoch::

    softmax: (:epoch,1,:trn,0.9005f0,:tst,0.9048f0) ... (:epoch,10,:trn,0.9196f0,:tst,0.9153f0)
    mlp 64:  (:epoch,1,:trn,0.9389167f0,:tst,0.9407f0) ... (:epoch,10,:trn,0.9866f0,:tst,0.9735f0)

The softmax model is the linear model of ``housing`` with a cross-entropy
loss (``kt.nll``: the tutorial's ``-sum(ygold .* logp(ypred)) / size(ygold,2)``
with integer labels); the MLP puts layers with the rectifier ``kt.relu`` (the
tutorial's ``max(0, x)``) in front of it.  One ``predict`` serves both: with
only two weights its loop does nothing.
"""

import knet_st as kt
from knet_st.examples import _common


def predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = kt.relu(w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def loss(w, x, ygold):
    return kt.nll(predict(w, x), ygold)


# kt.grad(loss) gives dw; value_and_grad also gives the loss, for the progress bar.
lossgradient = kt.value_and_grad(loss)


def train(w, data, opts, progress=None):
    """One pass over ``data``, (x, labels) minibatches.  With SGD,
    ``kt.update`` is the tutorial's ``w[i] -= lr * dw[i]``."""
    for x, ygold in data:
        value, dw = lossgradient(w, x, ygold)
        kt.distributed.update(w, dw, opts)     # the mean over processes, then kt.update
        if progress is not None:
            progress.update(value)
    return w


def accuracy(w, data):
    """The fraction of instances classified correctly, as the tutorial's."""
    return _common.accuracy(predict, w, data)


def init_weights(sizes):
    """The tutorial's ``-0.1+0.2*rand(Float32,out,in)`` weights and zero
    biases, for layer sizes such as ``[784, 64, 10]``."""
    w = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w += [kt.uniform(n_out, n_in, low=-0.1, high=0.1), kt.zeros(n_out, 1)]
    return w


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

MODELS = ("softmax", "mlp")


def build_parser(prog=None):
    p = _common.parser(prog, __doc__, epochs=10, batchsize=100, lr=0.5, shuffle=True)
    p.add_argument("--model", choices=MODELS, default=None,
                   help="softmax (default, or the model of --load) or mlp")
    p.add_argument("--hidden", type=_common.positive_int, nargs="+", default=[64],
                   metavar="N", help="hidden layer sizes of the mlp (default 64)")
    p.add_argument("--ntrain", type=_common.positive_int, default=None, metavar="N",
                   help="use only the first N training images")
    p.add_argument("--ntest", type=_common.positive_int, default=None, metavar="N",
                   help="use only the first N test images")
    return p


def layer_sizes(w):
    return [w[0].shape[1]] + [w[i].shape[0] for i in range(0, len(w), 2)]


def run(args):
    """Trains and reports; returns a dict with the ``history`` of reported
    tuples, the per-step ``losses`` and the weights ``w``."""
    saved = _common.start(args, "mnist")
    if saved:
        w = saved["w"]
        model = saved.get("model", "mlp" if len(w) > 2 else "softmax")
        if args.model is not None and args.model != model:
            raise _common.ExampleError(f"{args.load or args.resume} holds a {model} "
                                       f"model; run with --model {model}")
        args.model = model
    else:
        args.model = args.model or "softmax"
        hidden = args.hidden if args.model == "mlp" else []
        w = init_weights([784, *hidden, 10])
    xtrn, ytrn, xtst, ytst = kt.datasets.mnist()
    xtrn, ytrn = xtrn[:, :args.ntrain], ytrn[:args.ntrain]
    xtst, ytst = xtst[:, :args.ntest], ytst[:args.ntest]
    atype = args.atype
    w, xtrn, ytrn, xtst, ytst = atype([w, xtrn, ytrn, xtst, ytst])

    dtrn = kt.minibatch(xtrn, ytrn, args.batchsize, shuffle=args.shuffle,
                           shard=True)        # each process: its 1/P of a batch
    _common.check_batches(dtrn, args.batchsize, xtrn.shape[1], "images")
    # evaluation in larger batches, every instance counted
    etrn = kt.minibatch(xtrn, ytrn, 1000, partial=True)
    etst = kt.minibatch(xtst, ytst, 1000, partial=True)
    opts = _common.make_optimizers(w, args, saved)
    name = "mnist " + (args.model if args.model == "softmax" else
                       "mlp " + "x".join(map(str, layer_sizes(w)[1:-1])))

    def evaluate():
        return ("trn", accuracy(w, _common.evaluating(etrn, args, "trn accuracy")),
                "tst", accuracy(w, _common.evaluating(etst, args, "tst accuracy")))

    def save(epoch):
        _common.save(args.save, "mnist", w, opts, epoch, args, model=args.model)

    history, losses = _common.train_epochs(
        name, args, dtrn, lambda data, bar: train(w, data, opts, bar), evaluate,
        save=save)
    if args.save and args.epochs < args.first_epoch:    # nothing trained: --load
        _common.save(args.save, "mnist", w, model=args.model)
    if args.plot:
        _common.plot(args.plot, name, [
            ("accuracy", "epoch", _common.curves(history)),
            ("loss", "step", _common.step_curve(losses))])
    return {"history": history, "losses": losses, "w": w}


def main(argv=None, prog=None, fixed=None):
    """``knet-st run mnist [options]``; ``--help`` lists the options.
    ``fixed``: the options of an alias, ``{"model": "mlp"}`` for
    ``knet-st run mlp``.  Returns what :func:`run` returns."""
    return _common.run_main(build_parser, run, argv, prog, fixed)


if __name__ == "__main__":
    main()
