"""Column "NumPy by hand": each step with hand-derived gradients.

Written the way a careful person would write it, as the practical floor for
NumPy code: matrix products go to BLAS in as few and as large calls as the
model allows, temporaries are reused in place where that stays readable, and
nothing is computed that the gradient does not need.  Deliberate choices:

* LeNet runs in NHWC internally: convolution is im2col (a strided window
  view, one copy) plus one matrix product, and the input gradient is the
  col2im sum over the 5x5 offsets.  2x2 max pooling sends the gradient to
  the first maximum of each window, as cuDNN and torch do.
* CharLM runs batch-major (instances x features): the input half of the gate
  product, the output layer and the weight gradients are one product each
  over all 100 time steps; only the recurrent half stays in the time loop.
  The embedding gradient is a one-hot matrix product (faster than np.add.at).

The functions work for any float dtype, so tests can check them against
finite differences in float64.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from knet_st.bench.problems import Impl, step_size

# --------------------------------------------------------------------------- shared pieces


def nll(scores, labels, axis=0):
    """Mean negative log likelihood of integer *labels*; classes run along *axis*."""
    m = scores.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(scores - m).sum(axis=axis, keepdims=True)) + m
    gold = np.take_along_axis(scores, np.expand_dims(labels, axis), axis)
    return float(np.mean(lse - gold))


def nll_grad(scores, labels, axis=0):
    """Gradient of :func:`nll` with respect to *scores*: (softmax - onehot) / n."""
    p = scores - scores.max(axis=axis, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=axis, keepdims=True)
    rows = np.arange(labels.size)
    if axis == 0:
        p[labels, rows] -= 1
    else:
        p[rows, labels] -= 1
    p /= labels.size
    return p


def sgd(w, grads, lr):
    """w[i] -= lr * grads[i] in place (the gradients are consumed)."""
    for p, g in zip(w, grads):
        g *= lr
        p -= g
    return w


def sigmoid_(x):
    """In-place logistic sigmoid, as 0.5 * tanh(x / 2) + 0.5 (never overflows)."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


# --------------------------------------------------------------------------- LinReg


def linreg_loss(w, x, y):
    """sum((y - (W x + b))^2) / n."""
    r = w[0] @ x + w[1] - y
    return float(np.vdot(r, r)) / y.shape[1]


def linreg_grads(w, x, y):
    r = w[0] @ x
    r += w[1]
    r -= y
    r *= 2 / y.shape[1]
    return [r @ x.T, r.sum(axis=1, keepdims=True)]


# --------------------------------------------------------------------------- Softmax and MLP


def mlp_forward(w, x):
    """Relu layers w[0:2], w[2:4], ... then a linear layer; returns (layer inputs, scores)."""
    acts = [x]
    for i in range(0, len(w) - 2, 2):
        a = w[i] @ acts[-1]
        a += w[i + 1]
        np.maximum(a, 0, out=a)
        acts.append(a)
    scores = w[-2] @ acts[-1]
    scores += w[-1]
    return acts, scores


def mlp_backward(w, acts, d, need_dx=False):
    """Backpropagate *d* (gradient of the scores); returns (weight gradients, input gradient or None)."""
    grads = [None] * len(w)
    for i in range(len(w) - 2, -1, -2):
        a = acts[i // 2]
        grads[i] = d @ a.T
        grads[i + 1] = d.sum(axis=1, keepdims=True)
        if i > 0:
            d = w[i].T @ d
            d *= a > 0
        else:
            d = w[0].T @ d if need_dx else None
    return grads, d


def mlp_loss(w, x, labels):
    return nll(mlp_forward(w, x)[1], labels)


def mlp_grads(w, x, labels):
    acts, scores = mlp_forward(w, x)
    return mlp_backward(w, acts, nll_grad(scores, labels))[0]


# --------------------------------------------------------------------------- LeNet (NHWC inside)


def im2col(x, k):
    """(N, H, W, C) -> (N*Ho*Wo, k*k*C): one row per output pixel, its k x k x C patch."""
    c = x.shape[3]
    windows = sliding_window_view(x, (k, k), axis=(1, 2))          # (N, Ho, Wo, C, k, k)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c)


def conv_forward(x, wm, b, k):
    """Valid, stride-1 convolution (cross-correlation) of NHWC *x* with wm (O, k*k*C)."""
    n, h, w, _ = x.shape
    cols = im2col(x, k)
    y = cols @ wm.T
    y += b
    return y.reshape(n, h - k + 1, w - k + 1, -1), cols


def conv_backward(dy, cols, wm, x_shape, k, need_dx=True):
    """Gradients of :func:`conv_forward`: (dwm, db, dx or None)."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    dwm = dy2.T @ cols
    db = dy2.sum(axis=0)
    if not need_dx:
        return dwm, db, None
    n, _, _, c = x_shape
    ho, wo = dy.shape[1:3]
    dcols = (dy2 @ wm).reshape(n, ho, wo, k, k, c)
    dx = np.zeros(x_shape, dy.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + ho, j:j + wo, :] += dcols[:, :, :, i, j, :]
    return dwm, db, dx


def _windows(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c)


def pool_forward(x):
    """2x2 max pooling with stride 2, NHWC."""
    return _windows(x).max(axis=(2, 4))


def pool_backward(x, y, dy):
    """Route *dy* to the maximum of each 2x2 window of *x* (y = pool_forward(x)).

    Where a window holds several equal maxima (common on MNIST's blank
    background once the bias is positive), only the first in row-major
    order gets the gradient, as in cuDNN and torch.
    """
    windows = _windows(x)
    dx = np.zeros_like(windows)
    taken = np.zeros(y.shape, bool)
    for a in (0, 1):
        for b in (0, 1):
            hit = windows[:, :, a, :, b, :] == y
            hit &= ~taken
            taken |= hit
            np.multiply(hit, dy, out=dx[:, :, a, :, b, :])
    return dx.reshape(x.shape)


def lenet_weights(w):
    """Canonical LeNet weights (OIHW, NCHW flattening) -> this module's NHWC form (fresh copies)."""
    def conv(wc, bc):
        return wc.transpose(0, 2, 3, 1).reshape(wc.shape[0], -1).copy(), bc.reshape(-1).copy()
    c2 = w[2].shape[0]
    side = int(round((w[4].shape[1] // c2) ** 0.5))
    dense = w[4].reshape(-1, c2, side, side).transpose(0, 2, 3, 1).reshape(w[4].shape[0], -1)
    return [*conv(w[0], w[1]), *conv(w[2], w[3]), dense.copy(),
            *(a.copy() for a in w[5:])]


def lenet_forward(w, x):
    k1 = int(round((w[0].shape[1] // x.shape[3]) ** 0.5))
    k2 = int(round((w[2].shape[1] // w[0].shape[0]) ** 0.5))
    a1, cols1 = conv_forward(x, w[0], w[1], k1)
    np.maximum(a1, 0, out=a1)
    p1 = pool_forward(a1)
    a2, cols2 = conv_forward(p1, w[2], w[3], k2)
    np.maximum(a2, 0, out=a2)
    p2 = pool_forward(a2)
    acts, scores = mlp_forward(w[4:], p2.reshape(len(x), -1).T)
    return scores, (x, k1, k2, a1, cols1, p1, a2, cols2, p2, acts)


def lenet_loss(w, x, labels):
    return nll(lenet_forward(w, x)[0], labels)


def lenet_grads(w, x, labels):
    scores, (x, k1, k2, a1, cols1, p1, a2, cols2, p2, acts) = lenet_forward(w, x)
    dense, dflat = mlp_backward(w[4:], acts, nll_grad(scores, labels), need_dx=True)
    da2 = pool_backward(a2, p2, dflat.T.reshape(p2.shape))
    da2 *= a2 > 0
    dw2, db2, dp1 = conv_backward(da2, cols2, w[2], p1.shape, k2)
    da1 = pool_backward(a1, p1, dp1)
    da1 *= a1 > 0
    dw1, db1, _ = conv_backward(da1, cols1, w[0], x.shape, k1, need_dx=False)
    return [dw1, db1, dw2, db2, *dense]


# --------------------------------------------------------------------------- CharLM (batch-major inside)


def charlm_weights(w):
    """Canonical CharLM weights -> fresh [W^T (E+H, 4H), b (4H,), Emb (V, E), Wpred^T (H, V), bpred (V,)]."""
    W, b, emb, wp, bp = w
    return [W.T.copy(), b.reshape(-1).copy(), emb.T.copy(), wp.T.copy(), bp.reshape(-1).copy()]


def charlm_forward(w, ids):
    """LSTM over ids[:-1] (T, B) from a zero state; returns (scores (T*B, V), saved values)."""
    wt, b, emb, wpt, bp = w
    E, H = emb.shape[1], wt.shape[1] // 4
    T, B = ids.shape[0] - 1, ids.shape[1]
    xe = emb[ids[:-1]]                                              # (T, B, E)
    gates = (xe.reshape(T * B, E) @ wt[:E]).reshape(T, B, 4 * H)
    gates += b
    hs = np.zeros((T + 1, B, H), wt.dtype)
    cs = np.zeros((T + 1, B, H), wt.dtype)
    tcs = np.empty((T, B, H), wt.dtype)                            # tanh(cell)
    wht = wt[E:]
    for t in range(T):
        g = gates[t]
        g += hs[t] @ wht
        sigmoid_(g[:, :3 * H])
        np.tanh(g[:, 3 * H:], out=g[:, 3 * H:])
        f, i, o, ch = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        np.multiply(cs[t], f, out=cs[t + 1])
        cs[t + 1] += i * ch
        np.tanh(cs[t + 1], out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t + 1])
    scores = hs[1:].reshape(T * B, H) @ wpt
    scores += bp
    return scores, (xe, gates, hs, cs, tcs)


def charlm_loss(w, ids):
    return nll(charlm_forward(w, ids)[0], ids[1:].reshape(-1), axis=1)


def charlm_grads(w, ids):
    wt, b, emb, wpt, bp = w
    V, E, H = emb.shape[0], emb.shape[1], wt.shape[1] // 4
    T, B = ids.shape[0] - 1, ids.shape[1]
    scores, (xe, gates, hs, cs, tcs) = charlm_forward(w, ids)
    ds = nll_grad(scores, ids[1:].reshape(-1), axis=1)             # (T*B, V)
    dwpt = hs[1:].reshape(T * B, H).T @ ds
    dbp = ds.sum(axis=0)
    dhs = (ds @ wpt.T).reshape(T, B, H)
    dgates = np.empty_like(gates)
    dh_next = np.zeros((B, H), wt.dtype)
    dc_next = np.zeros((B, H), wt.dtype)
    wht = wt[E:]
    for t in reversed(range(T)):
        g, dg = gates[t], dgates[t]
        f, i, o, ch = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        dh = dhs[t]
        dh += dh_next
        tc = tcs[t]
        dc = dh * o * (1 - tc * tc) + dc_next
        dg[:, :H] = dc * cs[t] * f * (1 - f)
        dg[:, H:2 * H] = dc * ch * i * (1 - i)
        dg[:, 2 * H:3 * H] = dh * tc * o * (1 - o)
        dg[:, 3 * H:] = dc * i * (1 - ch * ch)
        dc_next = dc * f
        dh_next = dg @ wht.T
    dg2 = dgates.reshape(T * B, 4 * H)
    dwt = np.empty_like(wt)
    np.matmul(xe.reshape(T * B, E).T, dg2, out=dwt[:E])
    np.matmul(hs[:-1].reshape(T * B, H).T, dg2, out=dwt[E:])
    db = dg2.sum(axis=0)
    onehot = np.zeros((T * B, V), wt.dtype)
    onehot[np.arange(T * B), ids[:-1].reshape(-1)] = 1
    demb = onehot.T @ (dg2 @ wt[:E].T)
    return [dwt, db, demb, dwpt, dbp]


# --------------------------------------------------------------------------- columns


def _impl(problem, convert_w, convert_batch, loss, grads):
    lr, gclip = problem.lr, problem.gclip

    def step(w, batch):
        g = grads(w, *batch)
        return sgd(w, g, step_size(g, lr, gclip))

    return Impl(init=lambda: convert_w(problem.weights),
                step=step,
                loss=lambda w, batch: loss(w, *batch),
                batches=[convert_batch(b) for b in problem.batches])


def _copy(w):
    return [a.copy() for a in w]


def build(problem):
    """The NumPy-by-hand implementation of *problem*."""
    name = problem.name
    if name == "linreg":
        return _impl(problem, _copy, tuple, linreg_loss, linreg_grads)
    if name in ("softmax", "mlp"):
        return _impl(problem, _copy, tuple, mlp_loss, mlp_grads)
    if name == "lenet":
        return _impl(problem, lenet_weights,
                     lambda b: (np.ascontiguousarray(b[0].transpose(0, 2, 3, 1)), b[1]),
                     lenet_loss, lenet_grads)
    if name == "charlm":
        return _impl(problem, charlm_weights, lambda ids: (ids,), charlm_loss, charlm_grads)
    raise KeyError(name)


def versions():
    """Library versions for the report."""
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {"numpy": f"{np.__version__} ({blas.get('name', '?')} {blas.get('version', '')})".replace(" )", ")")}
