"""Column "autograd": HIPS autograd (tape-based reverse mode over NumPy).

The models are written the way the Knet tutorial writes them, in
``autograd.numpy``: a ``predict`` and a ``loss`` per model, ``grad(loss)``,
and the tutorial's ``train`` loop.  Layout is Knet's (features x instances),
gold answers are one-hot columns (``-sum(ygold * logp(ypred)) / n``), and
CharLM is the tutorial's per-step loop with one-hot inputs.  This is the
same code structure as the knet_st column, so the two compare directly.

Convolution is im2col built from 25 differentiable slices and one matrix
product.  autograd's own ``autograd.scipy.signal.convolve`` computes the same
thing with a non-BLAS einsum and was about 30 times slower on LeNet's second
layer here (0.5 s against 0.017 s per gradient), which would make the LeNet
cell take minutes; the slices are what a user who times it would write.
"""

from importlib.metadata import version

import autograd.numpy as np
from autograd import grad
from autograd.scipy.special import logsumexp

from knet_st.bench.problems import Impl, onehot, step_size


def logp(x, axis=0):
    return x - logsumexp(x, axis=axis, keepdims=True)


def xent(scores, ygold):
    """Cross entropy with one-hot gold columns, as in the tutorial."""
    return -np.sum(ygold * logp(scores, 0)) / ygold.shape[1]


def linreg_loss(w, x, y):
    return np.sum((y - (np.dot(w[0], x) + w[1])) ** 2) / y.shape[1]


def mlp_predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = np.maximum(0, np.dot(w[i], x) + w[i + 1])
    return np.dot(w[-2], x) + w[-1]


def mlp_loss(w, x, ygold):
    return xent(mlp_predict(w, x), ygold)


def conv4(w, x):
    """Valid, stride-1 cross-correlation, NCHW input and OIHW weights."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    ho, wo = h - k + 1, wd - k + 1
    patches = np.stack([x[:, :, i:i + ho, j:j + wo] for i in range(k) for j in range(k)], axis=2)
    cols = np.reshape(np.transpose(patches, (0, 3, 4, 1, 2)), (n * ho * wo, c * k * k))
    y = np.dot(cols, np.reshape(w, (o, c * k * k)).T)
    return np.transpose(np.reshape(y, (n, ho, wo, o)), (0, 3, 1, 2))


def pool(x):
    """2x2 max pooling, stride 2."""
    n, c, h, wd = x.shape
    return np.max(np.reshape(x, (n, c, h // 2, 2, wd // 2, 2)), axis=(3, 5))


def mat(x):
    return np.reshape(x, (x.shape[0], -1)).T


def lenet_predict(w, x):
    x = pool(np.maximum(0, conv4(w[0], x) + w[1]))
    x = pool(np.maximum(0, conv4(w[2], x) + w[3]))
    x = np.maximum(0, np.dot(w[4], mat(x)) + w[5])
    return np.dot(w[6], x) + w[7]


def lenet_loss(w, x, ygold):
    return xent(lenet_predict(w, x), ygold)


def sigm(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


def lstm(weight, bias, hidden, cell, input):
    gates = np.dot(weight, np.concatenate([input, hidden], axis=0)) + bias
    h = hidden.shape[0]
    forget = sigm(gates[:h])
    ingate = sigm(gates[h:2 * h])
    outgate = sigm(gates[2 * h:3 * h])
    change = np.tanh(gates[3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def charlm_loss(w, onehots, state):
    """Mean cross entropy of predicting onehots[t+1] from onehots[:t+1]."""
    hidden, cell = state
    total = 0.0
    for t in range(len(onehots) - 1):
        x = np.dot(w[2], onehots[t])
        hidden, cell = lstm(w[0], w[1], hidden, cell, x)
        total = total + xent(np.dot(w[3], hidden) + w[4], onehots[t + 1])
    return total / (len(onehots) - 1)


def mlp_quad_loss(w, x, y):
    """The second table's MLP with quadratic loss."""
    a3 = np.maximum(0, np.dot(w[0], x) + w[1])
    a6 = np.dot(w[2], a3) + w[3] - y
    return np.sum(a6 * a6)


def build(problem):
    """The autograd implementation of *problem*."""
    name, lr, gclip = problem.name, problem.lr, problem.gclip
    if name == "linreg":
        loss, batches = linreg_loss, problem.batches
    elif name in ("softmax", "mlp"):
        loss, batches = mlp_loss, [(x, onehot(y, 10)) for x, y in problem.batches]
    elif name == "lenet":
        loss, batches = lenet_loss, [(x, onehot(y, 10)) for x, y in problem.batches]
    elif name == "charlm":
        V, H = problem.sizes["vocab"], problem.sizes["hidden"]
        state = (np.zeros((H, problem.batches[0].shape[1]), np.float32),) * 2
        loss = charlm_loss
        batches = [([onehot(row, V) for row in ids], state) for ids in problem.batches]
    else:
        raise KeyError(name)
    lossgradient = grad(loss)

    def step(w, batch):
        dw = lossgradient(w, *batch)
        scale = step_size(dw, lr, gclip)
        return [wi - scale * di for wi, di in zip(w, dw)]

    return Impl(init=lambda: [a.copy() for a in problem.weights], step=step,
                loss=lambda w, batch: float(loss(w, *batch)), batches=batches)


def versions():
    return {"autograd": version("autograd")}

