"""Column "torch": PyTorch eager on the CPU.

Idiomatic PyTorch: instances x features (batch first), ``F.linear``,
``F.conv2d``, ``F.max_pool2d``, ``F.cross_entropy``, ``loss.backward()`` and a
plain SGD update under ``torch.no_grad()``.  CharLM uses the fused
``nn.LSTM`` (what people would pick; it runs the whole 100-step sequence in
one call) with ``nn.functional.embedding`` and ``clip_grad_norm_``.  The
canonical gate order (forget, input, output, change) is permuted to torch's
(input, forget, cell, output), and torch's second bias ``bias_hh`` is fixed
at zero, so the model and the SGD trajectory are the tutorial's.
"""

import numpy as np
import torch
import torch.nn.functional as F

from knet_st.bench.problems import Impl


def configure(threads):
    torch.set_num_threads(threads)


def versions():
    return {"torch": torch.__version__}


def _param(a):
    return torch.tensor(np.array(a), requires_grad=True)


def _tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def linreg_loss(w, x, y):
    return ((F.linear(x, w[0], w[1]) - y) ** 2).sum() / y.shape[0]


def mlp_loss(w, x, y):
    for i in range(0, len(w) - 2, 2):
        x = F.relu(F.linear(x, w[i], w[i + 1]))
    return F.cross_entropy(F.linear(x, w[-2], w[-1]), y)


def lenet_loss(w, x, y):
    x = F.max_pool2d(F.relu(F.conv2d(x, w[0], w[1])), 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, w[2], w[3])), 2)
    x = F.relu(F.linear(x.flatten(1), w[4], w[5]))
    return F.cross_entropy(F.linear(x, w[6], w[7]), y)


class CharLM(torch.nn.Module):
    """Embedding, one fused LSTM layer, linear output; parameters from the canonical weights."""

    def __init__(self, w):
        super().__init__()
        W, b, emb, wp, bp = (torch.from_numpy(np.array(a)) for a in w)
        H, E = W.shape[0] // 4, emb.shape[0]
        f, i, o, c = (torch.arange(k * H, (k + 1) * H) for k in range(4))
        perm = torch.cat([i, f, c, o])                     # torch's gate order
        self.lstm = torch.nn.LSTM(E, H)
        with torch.no_grad():
            self.lstm.weight_ih_l0.copy_(W[perm, :E])
            self.lstm.weight_hh_l0.copy_(W[perm, E:])
            self.lstm.bias_ih_l0.copy_(b[perm, 0])
            self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0.requires_grad_(False)        # the tutorial's LSTM has one bias
        self.emb = torch.nn.Parameter(emb.T.contiguous())   # (V, E)
        self.wp = torch.nn.Parameter(wp)                    # (V, H)
        self.bp = torch.nn.Parameter(bp[:, 0].contiguous())

    def forward(self, ids):
        out, _ = self.lstm(F.embedding(ids[:-1], self.emb))   # zero initial state
        scores = F.linear(out, self.wp, self.bp)
        return F.cross_entropy(scores.reshape(-1, scores.shape[-1]), ids[1:].reshape(-1))


def _sgd(params, lr):
    with torch.no_grad():
        for p in params:
            p.add_(p.grad, alpha=-lr)
            p.grad = None


def build(problem):
    """The PyTorch implementation of *problem*."""
    name, lr, gclip = problem.name, problem.lr, problem.gclip
    if name == "charlm":
        def init():
            model = CharLM(problem.weights)
            return model, [p for p in model.parameters() if p.requires_grad]

        def step(state, ids):
            model, params = state
            model(ids).backward()
            torch.nn.utils.clip_grad_norm_(params, gclip)
            _sgd(params, lr)
            return state

        def loss(state, ids):
            with torch.no_grad():
                return float(state[0](ids))

        return Impl(init=init, step=step, loss=loss,
                    batches=[_tensor(ids) for ids in problem.batches])

    if name == "linreg":
        loss_fn = linreg_loss
        batches = [(_tensor(x.T), _tensor(y.T)) for x, y in problem.batches]
    elif name in ("softmax", "mlp"):
        loss_fn = mlp_loss
        batches = [(_tensor(x.T), _tensor(y)) for x, y in problem.batches]
    elif name == "lenet":
        loss_fn = lenet_loss
        batches = [(_tensor(x), _tensor(y)) for x, y in problem.batches]
    else:
        raise KeyError(name)

    def init():
        # biases are vectors in torch: (n, 1) and (1, n, 1, 1) become (n,)
        return [_param(a.reshape(-1) if i % 2 else a) for i, a in enumerate(problem.weights)]

    def step(w, batch):
        loss_fn(w, *batch).backward()
        _sgd(w, lr)
        return w

    def loss(w, batch):
        with torch.no_grad():
            return float(loss_fn(w, *batch))

    return Impl(init=init, step=step, loss=loss, batches=batches)
