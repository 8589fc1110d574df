"""LeNet, a convolutional network, on MNIST: the Knet tutorial's third model.

Run it with ``knet-st run lenet`` or ``python examples/lenet.py``.

Two convolutional layers (20 and 50 filters of 5x5, each followed by a
rectifier and 2x2 max pooling) and two dense layers (500 hidden units with
a rectifier, then 10 scores).  Images are N x 1 x 28 x 28 (NCHW) and filters
are out x in x 5 x 5 (OIHW); ``kt.mat`` flattens the 50 x 4 x 4 feature maps
of each image into a column, so the dense layers keep the tutorial's
features x instances layout.  The tutorial trains with minibatches of 100
and SGD, lr 0.1::

    (:epoch,1,:trn,0.96963334f0,:tst,0.971f0) ... (:epoch,10,:trn,0.99553335f0,:tst,0.9879f0)

The tutorial's Julia::

    function predict(w,x0)
        x1 = pool(max(0, conv4(w[1],x0) .+ w[2]))
        x2 = pool(max(0, conv4(w[3],x1) .+ w[4]))
        x3 = max(0, w[5]*mat(x2) .+ w[6])
        return w[7]*x3 .+ w[8]
    end
"""

import knet_st as kt
from knet_st.examples import _common


def predict(w, x0):
    x1 = kt.pool(kt.relu(kt.conv4(w[0], x0) + w[1]))
    x2 = kt.pool(kt.relu(kt.conv4(w[2], x1) + w[3]))
    x3 = kt.relu(w[4] @ kt.mat(x2) + w[5])
    return w[6] @ x3 + w[7]


def loss(w, x, ygold):
    return kt.nll(predict(w, x), ygold)


# kt.grad(loss) gives dw; value_and_grad also gives the loss, for the progress bar.
lossgradient = kt.value_and_grad(loss)


def train(w, data, opts, progress=None):
    """One pass over ``data``, (images, labels) minibatches.  With SGD,
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


def init_weights():
    """The tutorial's weights, ``-0.1+0.2*rand(Float32, ...)``, zero biases."""
    def winit(*shape):
        return kt.uniform(*shape, low=-0.1, high=0.1)
    return [winit(20, 1, 5, 5), kt.zeros(1, 20, 1, 1),
            winit(50, 20, 5, 5), kt.zeros(1, 50, 1, 1),
            winit(500, 800), kt.zeros(500, 1),
            winit(10, 500), kt.zeros(10, 1)]


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def build_parser(prog=None):
    p = _common.parser(prog, __doc__, epochs=1, batchsize=100, lr=0.1, shuffle=True)
    p.add_argument("--ntrain", type=_common.positive_int, default=None, metavar="N",
                   help="use only the first N training images")
    p.add_argument("--ntest", type=_common.positive_int, default=None, metavar="N",
                   help="use only the first N test images")
    p.add_argument("--no-trn-accuracy", dest="trn_accuracy", action="store_false",
                   help="skip the accuracy on the training set (a forward pass "
                        "over all of it after every epoch)")
    return p


def run(args):
    """Trains and reports; returns a dict with the ``history`` of reported
    tuples, the per-step ``losses`` and the weights ``w``."""
    saved = _common.start(args, "lenet")
    w = saved["w"] if saved else init_weights()
    xtrn, ytrn, xtst, ytst = kt.datasets.mnist(layout="nchw")
    xtrn, ytrn = xtrn[:args.ntrain], ytrn[:args.ntrain]
    xtst, ytst = xtst[:args.ntest], ytst[:args.ntest]
    atype = args.atype
    w, xtrn, ytrn, xtst, ytst = atype([w, xtrn, ytrn, xtst, ytst])

    # NCHW: the instances are axis 0
    dtrn = kt.minibatch(xtrn, ytrn, args.batchsize, shuffle=args.shuffle, axis=0,
                           shard=True)        # each process: its 1/P of a batch
    _common.check_batches(dtrn, args.batchsize, xtrn.shape[0], "images")
    etrn = kt.minibatch(xtrn, ytrn, 500, partial=True, axis=0)
    etst = kt.minibatch(xtst, ytst, 500, partial=True, axis=0)
    opts = _common.make_optimizers(w, args, saved)

    def evaluate():
        out = ()
        if args.trn_accuracy:
            out = ("trn", accuracy(w, _common.evaluating(etrn, args, "trn accuracy")))
        return out + ("tst", accuracy(w, _common.evaluating(etst, args, "tst accuracy")))

    def save(epoch):
        _common.save(args.save, "lenet", w, opts, epoch, args)

    history, losses = _common.train_epochs(
        "lenet", args, dtrn, lambda data, bar: train(w, data, opts, bar), evaluate,
        save=save)
    if args.save and args.epochs < args.first_epoch:    # nothing trained: --load
        _common.save(args.save, "lenet", w)
    if args.plot:
        _common.plot(args.plot, "lenet", [
            ("accuracy", "epoch", _common.curves(history)),
            ("loss", "step", _common.step_curve(losses))])
    return {"history": history, "losses": losses, "w": w}


def main(argv=None, prog=None):
    """``knet-st run lenet [options]``; ``--help`` lists the options.
    Returns what :func:`run` returns."""
    return _common.run_main(build_parser, run, argv, prog)


if __name__ == "__main__":
    main()
