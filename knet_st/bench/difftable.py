"""The tutorial's second table: what differentiation costs on top of the forward pass.

An MLP (784-64-10, relu) with quadratic loss against one-hot answers, run
over the same minibatches and steps as the MLP benchmark with fixed weights.
Rows are cumulative, as in the tutorial: the time of the forward computation
up to and including each operation, then the forward and backward pass by
hand in NumPy, and the gradient through knet_st (``kt.grad``) and through
autograd when they are available.  Each row is the best of ``REPEATS`` passes.
"""

import time

import numpy as np

from knet_st.bench import problems

REPEATS = 3

#: the forward computation, one operation at a time: (tutorial's name, fn(w, x, y, previous))
OPS = [
    ("a1=w1*x", lambda w, x, y, a: w[0] @ x),
    ("a2=w2.+a1", lambda w, x, y, a: w[1] + a),
    ("a3=max(0,a2)", lambda w, x, y, a: np.maximum(a, 0)),
    ("a4=w3*a3", lambda w, x, y, a: w[2] @ a),
    ("a5=w4.+a4", lambda w, x, y, a: w[3] + a),
    ("a6=a5-y", lambda w, x, y, a: a - y),
    ("a7=sumabs2(a6)", lambda w, x, y, a: np.vdot(a, a)),
]


def hand_grad(w, x, y):
    """Forward and backward of the quadratic-loss MLP by hand."""
    a2 = w[0] @ x
    a2 += w[1]
    a3 = np.maximum(a2, 0)
    d6 = w[2] @ a3
    d6 += w[3]
    d6 -= y
    d6 *= 2
    d3 = w[2].T @ d6
    d3 *= a2 > 0
    return [d3 @ x.T, d3.sum(axis=1, keepdims=True), d6 @ a3.T, d6.sum(axis=1, keepdims=True)]


def best_time(fn, data):
    """Best of REPEATS passes of fn(x, y) over *data*, after one untimed call."""
    fn(*data[0])
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for x, y in data:
            fn(x, y)
        best = min(best, time.perf_counter() - t)
    return best


def prefix(w, ops):
    def forward(x, y):
        a = None
        for _, op in ops:
            a = op(w, x, y, a)
        return a
    return forward


def gradients():
    """(row label, gradient function or the exception that prevented it) per differentiating library."""
    try:
        from knet_st.bench import knet_col
        yield "+backprop (knet_st kt.grad)", knet_col.kt.grad(knet_col.mlp_quad_loss)
    except Exception as exc:
        yield "+backprop (knet_st kt.grad)", exc
    try:
        import autograd
        from knet_st.bench import models_autograd
        yield "+backprop (autograd)", autograd.grad(models_autograd.mlp_quad_loss)
    except Exception as exc:
        yield "+backprop (autograd)", exc


def run(quick):
    """The table's rows as records: {op, seconds, batches} or {op, reason, batches}."""
    from knet_st.bench.worker import reason

    problem = problems.make("mlp", quick)
    w = problem.weights
    batches = [(x, problems.onehot(y, 10)) for x, y in problem.batches]
    data = [batches[i] for i in problem.order]
    rows = [(name, prefix(w, OPS[:k + 1])) for k, (name, _) in enumerate(OPS)]
    try:
        from knet_st.bench import knet_col
        primal = knet_col.kt.grad(knet_col.mlp_quad_loss).forward
        rows.append(("+saving (knet_st forward, what backprop reads kept)",
                     lambda x, y: primal(list(w), x, y)))
    except Exception as exc:
        rows.append(("+saving (knet_st forward, what backprop reads kept)", exc))
    rows.append(("+backprop (NumPy by hand)", lambda x, y: hand_grad(w, x, y)))
    rows += [(label, grad if isinstance(grad, Exception) else lambda x, y, grad=grad: grad(list(w), x, y))
             for label, grad in gradients()]
    for label, fn in rows:
        record = dict(op=label, batches=len(data))
        try:
            if isinstance(fn, Exception):
                raise fn
            record["seconds"] = best_time(fn, data)
        except Exception as exc:
            record["reason"] = f"skipped: {reason(exc)}"
        yield record
