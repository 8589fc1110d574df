"""Column "knet_st": the tutorial's models as plain Python, differentiated by ``kt.grad``.

Each model is a ``predict`` and a ``loss`` written the way the Knet tutorial
writes them, in NumPy plus knet_st's operators (``kt.relu``, ``kt.sigm``,
``kt.conv4``, ``kt.pool``, ``kt.mat``, ``kt.nll``), and trained by the
tutorial's loop::

    lossgradient = kt.grad(loss)
    dw = lossgradient(w, x, y)
    for i in range(len(w)):
        w[i] -= lr * dw[i]

Layouts are Knet's: features x instances, NCHW images with OIHW filters.
``kt.conv4`` is Knet's: by default a true convolution (the filter flipped),
where the other columns cross-correlate, so the canonical filters are
stored flipped here and the model computes the same function.  LinReg, MLP
and LeNet are the examples' own ``loss`` functions (``knet_st.examples``);
CharLM, written here, feeds one-hot input columns to the embedding
(``w[2] @ onehot``), as the tutorial does.  Each is a module-level function
in a file: ``kt.grad`` reads its source.

If knet_st cannot be imported, or ``kt.grad`` cannot transform a model, the
worker reports the column as skipped with the reason.
"""

import numpy as np

import knet_st as kt
from knet_st.bench.problems import Impl, onehot, step_size
from knet_st.examples.charlm import lstm      # the example's LSTM cell, as in the tutorial
# the examples' models: the tutorial's code, the same that `knet-st run` trains
from knet_st.examples.housing import loss as linreg_loss
from knet_st.examples.lenet import loss as lenet_loss
from knet_st.examples.mnist import loss as mlp_loss


def versions():
    return {"knet_st": kt.__version__}


# --------------------------------------------------------------------------- models


def charlm_loss(w, inputs, labels, state):
    """Mean cross entropy of predicting labels[t] after the one-hot inputs[0..t]."""
    hidden, cell = state
    total = 0.0
    for t in range(len(inputs)):
        x = w[2] @ inputs[t]
        hidden, cell = lstm(w[0], w[1], hidden, cell, x)
        total = total + kt.nll(w[3] @ hidden + w[4], labels[t])
    return total / len(inputs)


def mlp_quad_loss(w, x, y):
    """The tutorial's second table: an MLP with quadratic loss, one operation per line."""
    a1 = w[0] @ x
    a2 = w[1] + a1
    a3 = kt.relu(a2)
    a4 = w[2] @ a3
    a5 = w[3] + a4
    a6 = a5 - y
    return np.sum(a6 * a6)


# --------------------------------------------------------------------------- column


def build(problem):
    """The knet_st implementation of *problem*."""
    name, lr, gclip = problem.name, problem.lr, problem.gclip
    weights, batches = problem.weights, problem.batches
    if name == "linreg":
        loss = linreg_loss
    elif name in ("softmax", "mlp"):
        loss = mlp_loss
    elif name == "lenet":
        loss = lenet_loss
        weights = [w[:, :, ::-1, ::-1] if w.ndim == 4 and w.shape[2] > 1 else w for w in weights]
    elif name == "charlm":
        loss = charlm_loss
        V, H = problem.sizes["vocab"], problem.sizes["hidden"]
        state = (np.zeros((H, batches[0].shape[1]), np.float32),) * 2
        batches = [([onehot(row, V) for row in ids[:-1]], ids[1:], state) for ids in batches]
    else:
        raise KeyError(name)
    lossgradient = kt.grad(loss)

    def step(w, batch):
        dw = lossgradient(w, *batch)
        scale = step_size(dw, lr, gclip)
        for i in range(len(w)):
            w[i] -= scale * dw[i]
        return w

    return Impl(init=lambda: [a.copy() for a in weights], step=step,
                loss=lambda w, batch: float(loss(w, *batch)), batches=batches)
