"""The five benchmark problems of the Knet tutorial, in one canonical form.

Every column trains the same model from the same float32 initial weights on
the same minibatches in the same order with plain SGD.  This module builds
that common ground once, as NumPy arrays from ``knet_st.datasets`` (which
reads ``$KNET_ST_DATA``); each column converts it to its own
array type and layout (outside the timed region).

Canonical layouts (Knet's: features x instances)::

    linreg   x (13, 506)  y (1, 506)            w = [W (1,13), b (1,1)]
    softmax  x (784, 100) labels (100,) int64   w = [W (10,784), b (10,1)]
    mlp      same data                          w = [W1 (64,784), b1 (64,1), W2 (10,64), b2 (10,1)]
    lenet    x (100,1,28,28) NCHW, labels       w = [(20,1,5,5), (1,20,1,1), (50,20,5,5), (1,50,1,1),
                                                     (500,800), (500,1), (10,500), (10,1)]
    charlm   ids (101, 128) int64: rows 0..99 are the inputs, rows 1..100 the targets
             w = [W (4H, E+H), b (4H,1), Wemb (E,V), Wpred (V,H), bpred (V,1)]
             gates = W @ [x; h] + b, in the tutorial's order forget, input, output, change;
             the state starts at zero for every BPTT segment (charlm.jl's default).

Hyperparameters are the tutorial's (and its example scripts'): learning rates
0.1 (linreg), 0.5 (softmax, mlp), 0.1 (lenet, lenet.jl), 1.0 with the
gradient norm clipped at 5 (charlm, charlm.jl); initial weights 0.1*randn
(linreg), uniform(-0.1, 0.1) (softmax, mlp, lenet), Xavier uniform with forget
bias 1 (charlm).
"""

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SEED = 1
QUICK_FRACTION = 100   # --quick runs 1/QUICK_FRACTION of the steps ...
QUICK_MIN_STEPS = 2    # ... and at least this many
EVAL_BATCHES = 5       # loss before/after is the mean over the first few distinct batches trained on


@dataclass(frozen=True)
class Spec:
    """What the table's row says about a problem."""
    label: str
    data: str
    epochs: str
    batch: int


SPECS = {
    "linreg": Spec("LinReg", "Housing", "10K", 506),
    "softmax": Spec("Softmax", "MNIST", "10", 100),
    "mlp": Spec("MLP", "MNIST", "10", 100),
    "lenet": Spec("LeNet", "MNIST", "1", 100),
    "charlm": Spec("CharLM", "Hiawatha", "1", 128),
}
MODELS = tuple(SPECS)


@dataclass
class Problem:
    """A model's training run in canonical NumPy form.

    ``order`` holds one batch index per SGD step; ``eval`` the batches whose
    mean loss is reported before and after training.
    """
    name: str
    weights: list
    batches: list
    order: list
    lr: float
    gclip: float = 0.0
    sizes: dict = field(default_factory=dict)

    @property
    def eval(self):
        return list(dict.fromkeys(self.order))[:EVAL_BATCHES]


@dataclass
class Impl:
    """One column's implementation of one problem.

    ``init()`` returns fresh parameters in the column's own format (called
    once for the warm-up step and once for the timed run), ``step(params,
    batch)`` takes one SGD step and returns the parameters, ``loss(params,
    batch)`` returns the loss as a float, ``batches`` are the problem's
    batches converted for the column, and ``sync(params)`` waits for pending
    asynchronous work.
    """
    init: Callable[[], Any]
    step: Callable[[Any, Any], Any]
    loss: Callable[[Any, Any], float]
    batches: list
    sync: Callable[[Any], None] = lambda params: None


def quick_steps(n):
    """How many of *n* steps a --quick run takes."""
    return max(QUICK_MIN_STEPS, math.ceil(n / QUICK_FRACTION))


def uniform(rng, shape, scale):
    """float32 uniform(-scale, scale), the tutorial's ``-0.1+0.2*rand(Float32, ...)``."""
    return ((rng.random(shape) * 2 - 1) * scale).astype(np.float32)


def xavier(rng, rows, cols):
    """charlm.jl's ``xavier``: uniform(-s, s) with s = sqrt(2 / (fanin + fanout))."""
    return uniform(rng, (rows, cols), math.sqrt(2 / (rows + cols)))


@functools.lru_cache(maxsize=1)
def mnist_train():
    """MNIST's training images (60000, 784) float32 in [0, 1] and labels (60000,) int64."""
    from knet_st import datasets
    x, y, _, _ = datasets.mnist()
    return x.T, y                                  # x.T is C-contiguous: one image per row


def mnist_batches(batch, layout):
    """MNIST in contiguous minibatches: x (784, batch) columns, or NCHW for ``layout='nchw'``."""
    x, y = mnist_train()
    out = []
    for i in range(0, len(x) - batch + 1, batch):
        xb = x[i:i + batch]
        xb = xb.reshape(batch, 1, 28, 28) if layout == "nchw" else np.ascontiguousarray(xb.T)
        out.append((xb, y[i:i + batch]))
    return out


def linreg(rng):
    from knet_st import datasets
    x, y = datasets.housing()                      # x normalised per feature, as in housing.jl
    batches = [(np.ascontiguousarray(x), y)]
    w = [(0.1 * rng.standard_normal((1, 13))).astype(np.float32), np.zeros((1, 1), np.float32)]
    return Problem("linreg", w, batches, [0] * 10_000, lr=0.1)


def _mnist_problem(name, rng, hidden, epochs, lr):
    batches = mnist_batches(100, "columns")
    w = []
    for fan_out, fan_in in zip(hidden + [10], [784] + hidden):
        w += [uniform(rng, (fan_out, fan_in), 0.1), np.zeros((fan_out, 1), np.float32)]
    return Problem(name, w, batches, list(range(len(batches))) * epochs, lr=lr)


def softmax(rng):
    return _mnist_problem("softmax", rng, [], 10, 0.5)


def mlp(rng):
    return _mnist_problem("mlp", rng, [64], 10, 0.5)


def lenet(rng):
    batches = mnist_batches(100, "nchw")
    w = [uniform(rng, (20, 1, 5, 5), 0.1), np.zeros((1, 20, 1, 1), np.float32),
         uniform(rng, (50, 20, 5, 5), 0.1), np.zeros((1, 50, 1, 1), np.float32),
         uniform(rng, (500, 800), 0.1), np.zeros((500, 1), np.float32),
         uniform(rng, (10, 500), 0.1), np.zeros((10, 1), np.float32)]
    return Problem("lenet", w, batches, list(range(len(batches))), lr=0.1)


def charlm_batches(text, batch, seqlen):
    """charlm.jl's minibatching: vocabulary in order of first appearance, the text cut
    into *batch* parallel streams, BPTT segments of *seqlen* inputs plus one target row."""
    vocab = {}
    for ch in text:
        vocab.setdefault(ch, len(vocab))
    ids = np.fromiter((vocab[ch] for ch in text), dtype=np.int64, count=len(text))
    nbatch = len(ids) // batch
    streams = ids[:nbatch * batch].reshape(batch, nbatch).T      # streams[i, j] = ids[i + nbatch*j]
    segments = [np.ascontiguousarray(streams[t:t + seqlen + 1])
                for t in range(0, nbatch - seqlen, seqlen)]
    return segments, vocab


def charlm(rng, embed=256, hidden=256, batch=128, seqlen=100):
    from knet_st import datasets
    segments, vocab = charlm_batches(datasets.text("hiawatha"), batch, seqlen)
    V, E, H = len(vocab), embed, hidden
    W = np.concatenate([np.concatenate([xavier(rng, H, E), xavier(rng, H, H)], axis=1)
                        for _gate in ("forget", "input", "output", "change")])
    b = np.zeros((4 * H, 1), np.float32)
    b[:H] = 1                                                        # forget gate bias 1
    w = [W, b, xavier(rng, E, V), xavier(rng, V, H), np.zeros((V, 1), np.float32)]
    return Problem("charlm", w, segments, list(range(len(segments))), lr=1.0, gclip=5.0,
                   sizes=dict(vocab=V, embed=E, hidden=H))


BUILDERS = {"linreg": linreg, "softmax": softmax, "mlp": mlp, "lenet": lenet, "charlm": charlm}


def make(name, quick=False):
    """Build problem *name*; ``quick`` keeps only the first steps.

    Weights and batches are made read-only: every column must copy the
    weights it trains, so that all columns start from the same values.
    """
    problem = BUILDERS[name](np.random.default_rng(SEED))
    if quick:
        problem.order = problem.order[:quick_steps(len(problem.order))]
    for batch in problem.batches:
        for array in (batch if isinstance(batch, tuple) else (batch,)):
            array.setflags(write=False)
    for array in problem.weights:            # a column that trains these in place fails loudly
        array.setflags(write=False)
    return problem


def step_size(grads, lr, gclip):
    """The SGD step size: *lr*, scaled by gclip / |grads| when the gradient norm exceeds
    *gclip*, as charlm.jl clips (``gclip=0``: no clipping)."""
    if not gclip:
        return lr
    gnorm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    return lr * gclip / gnorm if gnorm > gclip else lr


def onehot(labels, classes):
    """One-hot columns (classes x instances, float32) for integer *labels*."""
    y = np.zeros((classes, len(labels)), np.float32)
    y[labels, np.arange(len(labels))] = 1
    return y
