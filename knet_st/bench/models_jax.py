"""Column "jax.jit": JAX on the CPU, ``jax.jit`` over the whole training step.

Each step (loss, ``jax.grad``, SGD update, and for CharLM the gradient
clipping) is one jitted function with the parameters donated, so XLA can
update them in place.  Layouts are Knet's (features x instances) except
LeNet, which uses NHWC/HWIO as JAX users (and Flax) do; its dense weight is
permuted to match.  CharLM runs its LSTM cell, written like the tutorial's
(one product of [x; h] with the fused gate matrix), under ``lax.scan`` and
applies the output layer to all steps at once.  The first, untimed call
compiles.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from knet_st.bench.problems import Impl


def versions():
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def nll(scores, labels, axis=0):
    """Mean negative log likelihood of integer labels; classes along *axis*."""
    logp = jax.nn.log_softmax(scores, axis=axis)
    return -jnp.mean(jnp.take_along_axis(logp, jnp.expand_dims(labels, axis), axis))


def linreg_loss(w, x, y):
    return jnp.sum((y - (w[0] @ x + w[1])) ** 2) / y.shape[1]


def mlp_predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = jax.nn.relu(w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def mlp_loss(w, x, labels):
    return nll(mlp_predict(w, x), labels)


def conv(x, w, b):
    y = lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


def pool(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def lenet_loss(w, x, labels):
    x = pool(jax.nn.relu(conv(x, w[0], w[1])))
    x = pool(jax.nn.relu(conv(x, w[2], w[3])))
    x = jax.nn.relu(x.reshape(x.shape[0], -1) @ w[4].T + w[5])
    return nll(x @ w[6].T + w[7], labels, axis=1)


def lenet_weights(w):
    """Canonical LeNet weights -> HWIO kernels, vector biases, dense weight for NHWC flattening."""
    c2 = w[2].shape[0]
    side = int(round((w[4].shape[1] // c2) ** 0.5))
    dense = w[4].reshape(-1, c2, side, side).transpose(0, 2, 3, 1).reshape(w[4].shape[0], -1)
    return [w[0].transpose(2, 3, 1, 0), w[1].reshape(-1), w[2].transpose(2, 3, 1, 0), w[3].reshape(-1),
            dense, w[5].reshape(-1), w[6], w[7].reshape(-1)]


def charlm_loss(w, ids):
    W, b, emb, wp, bp = w                      # W (E+H, 4H), b (4H,), emb (V, E), wp (H, V), bp (V,)
    H = W.shape[1] // 4

    def cell(state, x):
        h, c = state
        gates = jnp.concatenate([x, h], axis=1) @ W + b
        forget = jax.nn.sigmoid(gates[:, :H])
        ingate = jax.nn.sigmoid(gates[:, H:2 * H])
        outgate = jax.nn.sigmoid(gates[:, 2 * H:3 * H])
        change = jnp.tanh(gates[:, 3 * H:])
        c = c * forget + ingate * change
        h = outgate * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((ids.shape[1], H), W.dtype)
    _, hs = lax.scan(cell, (zeros, zeros), emb[ids[:-1]])
    return nll(hs @ wp + bp, ids[1:], axis=2)


def charlm_weights(w):
    W, b, emb, wp, bp = w
    return [W.T, b.reshape(-1), emb.T, wp.T, bp.reshape(-1)]


def sgd_step(loss, lr, gclip, w, *batch):
    g = jax.grad(loss)(w, *batch)
    if gclip:
        gnorm = jnp.sqrt(sum(jnp.vdot(d, d) for d in g))
        lr = jnp.where(gnorm > gclip, lr * gclip / gnorm, lr)
    return [p - lr * d for p, d in zip(w, g)]


def build(problem):
    """The JAX implementation of *problem*."""
    name = problem.name
    weights = list(problem.weights)
    batches = problem.batches
    if name == "linreg":
        loss = linreg_loss
    elif name in ("softmax", "mlp"):
        loss = mlp_loss
    elif name == "lenet":
        loss, weights = lenet_loss, lenet_weights(weights)
        batches = [(x.transpose(0, 2, 3, 1), y) for x, y in batches]
    elif name == "charlm":
        loss, weights, batches = charlm_loss, charlm_weights(weights), [(ids,) for ids in batches]
    else:
        raise KeyError(name)
    step = jax.jit(partial(sgd_step, loss, problem.lr, problem.gclip), donate_argnums=0)
    batches = [tuple(jax.device_put(np.ascontiguousarray(a)) for a in b) for b in batches]
    jit_loss = jax.jit(loss)
    return Impl(init=lambda: [jnp.array(a) for a in weights],
                step=lambda w, batch: step(w, *batch),
                loss=lambda w, batch: float(jit_loss(w, *batch)),
                batches=batches,
                sync=jax.block_until_ready)
