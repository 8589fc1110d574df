"""The Knet tutorial's models, written in Python, differentiated by kt.grad and
checked against finite differences (tiny sizes, float64)."""

import copy

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad


# ---------------------------------------------------------- linear regression

def linreg_predict(w, x):
    return w[0] @ x + w[1]


def linreg_loss(w, x, y):
    return np.sum((y - (w[0] @ x + w[1])) ** 2) / y.shape[1]


def linreg_loss_helper(w, x, y):
    return np.mean(np.sum((y - linreg_predict(w, x)) ** 2, axis=0))


@pytest.mark.parametrize("loss", [linreg_loss, linreg_loss_helper], ids=lambda f: f.__name__)
@pytest.mark.parametrize("outputs", [1, 2])
def test_linear_regression(loss, outputs):
    r = np.random.default_rng(outputs)
    features, instances = 4, 6
    w = [r.standard_normal((outputs, features)) * 0.1, np.zeros((outputs, 1))]
    x = r.standard_normal((features, instances))
    y = r.standard_normal((outputs, instances))
    g = check_grad(loss, [w, x, y], wrt=(0, 1, 2))
    # closed form for the weights
    err = w[0] @ x + w[1] - y
    np.testing.assert_allclose(g[0][0], 2 * err @ x.T / instances)
    np.testing.assert_allclose(g[0][1], 2 * err.sum(axis=1, keepdims=True) / instances)


def test_linear_regression_training_reduces_loss():
    r = np.random.default_rng(0)
    x = r.standard_normal((3, 20))
    w_true = r.standard_normal((1, 3))
    y = w_true @ x + 0.5
    w = [np.zeros((1, 3)), np.zeros((1, 1))]
    g = kt.grad(linreg_loss)
    first = linreg_loss(w, x, y)
    for _ in range(200):
        dw = g(w, x, y)
        w = [wi - 0.1 * di for wi, di in zip(w, dw)]
    assert linreg_loss(w, x, y) < 1e-3 * first
    np.testing.assert_allclose(w[0], w_true, atol=1e-2)


# --------------------------------------------------------- softmax regression

def softmax_loss(w, x, ygold):
    ypred = w[0] @ x + w[1]
    ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=0, keepdims=True))
    return -np.sum(ygold * ynorm) / ygold.shape[1]


def softmax_loss_logp(w, x, ygold):
    ypred = w[0] @ x + w[1]
    return -np.sum(ygold * kt.logp(ypred, 0)) / ygold.shape[1]


def onehot(labels, classes):
    y = np.zeros((classes, len(labels)))
    y[labels, np.arange(len(labels))] = 1.0
    return y


@pytest.mark.parametrize("classes", [2, 4])
def test_softmax_regression(classes):
    r = np.random.default_rng(classes)
    features, instances = 3, 5
    w = [r.standard_normal((classes, features)) * 0.5, r.standard_normal((classes, 1)) * 0.1]
    x = r.standard_normal((features, instances))
    ygold = onehot(r.integers(0, classes, instances), classes)
    g = check_grad(softmax_loss, [w, x, ygold], wrt=(0, 1))
    # closed form: (softmax - ygold) / N
    z = w[0] @ x + w[1]
    p = np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0)
    np.testing.assert_allclose(g[0][0], (p - ygold) @ x.T / instances, atol=1e-12)
    if hasattr(kt, "logp"):
        g2 = check_grad(softmax_loss_logp, [w, x, ygold], wrt=(0, 1))
        for a, b in zip(g2[0], g[0]):
            np.testing.assert_allclose(a, b, atol=1e-12)


# ------------------------------------------------------------------------ MLP

def mlp_predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = np.maximum(0, w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def mlp_loss(w, x, ygold):
    ypred = mlp_predict(w, x)
    ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=0, keepdims=True))
    return -np.sum(ygold * ynorm) / ygold.shape[1]


def mlp_predict_relu(w, x):
    for i in range(0, len(w) - 2, 2):
        x = kt.relu(w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def mlp_loss_relu(w, x, ygold):
    ypred = mlp_predict_relu(w, x)
    ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=0, keepdims=True))
    return -np.sum(ygold * ynorm) / ygold.shape[1]


def mlp_weights(sizes, seed=0):
    r = np.random.default_rng(seed)
    w = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w += [r.standard_normal((b, a)) * 0.5, r.standard_normal((b, 1)) * 0.1]
    return w


@pytest.mark.parametrize("hidden", [[], [5], [4, 3]], ids=str)
def test_mlp(hidden):
    sizes = [3] + hidden + [3]
    w = mlp_weights(sizes, len(hidden))
    r = np.random.default_rng(10)
    x = r.standard_normal((3, 4))
    ygold = onehot(r.integers(0, 3, 4), 3)
    g = check_grad(mlp_loss, [w, x, ygold])
    assert len(g) == len(w)
    if hasattr(kt, "relu"):
        g2 = check_grad(mlp_loss_relu, [w, x, ygold])
        for a, b in zip(g, g2):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_mlp_training_step_decreases_loss():
    w = mlp_weights([3, 8, 3], 4)
    r = np.random.default_rng(5)
    x = r.standard_normal((3, 16))
    ygold = onehot(r.integers(0, 3, 16), 3)
    g = kt.grad(mlp_loss)
    before = mlp_loss(w, x, ygold)
    for _ in range(20):
        w = [wi - 0.3 * di for wi, di in zip(w, g(w, x, ygold))]
    assert mlp_loss(w, x, ygold) < before


# ---------------------------------------------------------------- LSTM char model

def sigm_manual(x):
    return 1 / (1 + np.exp(-x))


def lstm(param, state, index, input):
    weight, bias = param[index], param[index + 1]
    hidden, cell = state[index], state[index + 1]
    h = hidden.shape[1]
    gates = np.hstack((input, hidden)) @ weight + bias
    forget = sigm_manual(gates[:, :h])
    ingate = sigm_manual(gates[:, h:2 * h])
    outgate = sigm_manual(gates[:, 2 * h:3 * h])
    change = np.tanh(gates[:, 3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def lstm_kt(param, state, index, input):
    weight, bias = param[index], param[index + 1]
    hidden, cell = state[index], state[index + 1]
    h = hidden.shape[1]
    gates = np.hstack((input, hidden)) @ weight + bias
    forget = kt.sigm(gates[:, :h])
    ingate = kt.sigm(gates[:, h:2 * h])
    outgate = kt.sigm(gates[:, 2 * h:3 * h])
    change = np.tanh(gates[:, 3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def lstm_transposed(param, state, index, input):
    # features x instances layout: gates = weight @ [input; hidden] + bias
    weight, bias = param[index], param[index + 1]
    hidden, cell = state[index], state[index + 1]
    h = hidden.shape[0]
    gates = weight @ np.vstack((input, hidden)) + bias
    forget = sigm_manual(gates[:h])
    ingate = sigm_manual(gates[h:2 * h])
    outgate = sigm_manual(gates[2 * h:3 * h])
    change = np.tanh(gates[3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def charlm_predict(param, state, input):
    x = input @ param[-3]
    for i in range(0, len(state), 2):
        state[i], state[i + 1] = lstm(param, state, i, x)
        x = state[i]
    return x @ param[-2] + param[-1]


def charlm_predict_kt(param, state, input):
    x = input @ param[-3]
    for i in range(0, len(state), 2):
        state[i], state[i + 1] = lstm_kt(param, state, i, x)
        x = state[i]
    return x @ param[-2] + param[-1]


def logp_rows(y):
    return y - np.log(np.sum(np.exp(y), axis=1, keepdims=True))


def charlm_loss(param, state, sequence):
    total = 0.0
    count = 0
    input = sequence[0]
    for t in range(len(sequence) - 1):
        ypred = charlm_predict(param, state, input)
        ynorm = logp_rows(ypred)
        ygold = sequence[t + 1]
        total += np.sum(ygold * ynorm)
        count += ygold.shape[0]
        input = ygold
    return -total / count


def charlm_loss_kt(param, state, sequence):
    total = 0.0
    count = 0
    input = sequence[0]
    for t in range(len(sequence) - 1):
        ypred = charlm_predict_kt(param, state, input)
        ynorm = kt.logp(ypred, 1)
        ygold = sequence[t + 1]
        total += np.sum(ygold * ynorm)
        count += ygold.shape[0]
        input = ygold
    return -total / count


def charlm_loss_transposed(param, state, sequence):
    # one layer, features x instances, the LSTM call inlined in the loss
    total = 0.0
    for t in range(len(sequence) - 1):
        x = param[2] @ sequence[t]
        state[0], state[1] = lstm_transposed(param, state, 0, x)
        ypred = param[3] @ state[0] + param[4]
        ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=0, keepdims=True))
        total += np.sum(sequence[t + 1] * ynorm)
    return -total / sequence[0].shape[1]


def charlm_setup(layers=1, vocab=4, embed=3, hidden=2, batch=2, steps=3, seed=0):
    r = np.random.default_rng(seed)
    param = []
    inputs = embed
    for _ in range(layers):
        param += [r.standard_normal((inputs + hidden, 4 * hidden)) * 0.5,
                  r.standard_normal((1, 4 * hidden)) * 0.1]
        inputs = hidden
    param += [r.standard_normal((vocab, embed)) * 0.5,      # embedding
              r.standard_normal((hidden, vocab)) * 0.5,     # output weights
              r.standard_normal((1, vocab)) * 0.1]          # output bias
    state = [r.standard_normal((batch, hidden)) * 0.1 for _ in range(2 * layers)]
    sequence = [np.eye(vocab)[r.integers(0, vocab, batch)] for _ in range(steps + 1)]
    return param, state, sequence


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_charlm(layers):
    param, state, sequence = charlm_setup(layers)
    g = check_grad(charlm_loss, [param, state, sequence], wrt=(0, 1))
    assert all(np.any(gi != 0) for gi in g[0])
    assert all(np.any(gi != 0) for gi in g[1])


def test_lstm_charlm_with_kt_primitives():
    if not (hasattr(kt, "sigm") and hasattr(kt, "logp")):
        pytest.skip("kt.sigm / kt.logp not available")
    param, state, sequence = charlm_setup(2, seed=1)
    g = check_grad(charlm_loss_kt, [param, state, sequence], wrt=(0, 1))
    g_manual = kt.grad(charlm_loss, wrt=(0, 1))(param, copy.deepcopy(state), sequence)
    for a, b in zip(g[0], g_manual[0]):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_lstm_transposed_layout():
    r = np.random.default_rng(3)
    vocab, embed, hidden, batch = 4, 3, 2, 2
    param = [r.standard_normal((4 * hidden, embed + hidden)) * 0.5,
             r.standard_normal((4 * hidden, 1)) * 0.1,
             r.standard_normal((embed, vocab)) * 0.5,
             r.standard_normal((vocab, hidden)) * 0.5,
             r.standard_normal((vocab, 1)) * 0.1]
    state = [r.standard_normal((hidden, batch)) * 0.1, r.standard_normal((hidden, batch)) * 0.1]
    sequence = [np.eye(vocab)[:, r.integers(0, vocab, batch)] for _ in range(4)]
    check_grad(charlm_loss_transposed, [param, state, sequence], wrt=(0, 1))


def test_lstm_state_after_grad_matches_f():
    param, state, sequence = charlm_setup(2, seed=2)
    s_f = copy.deepcopy(state)
    value = charlm_loss(param, s_f, sequence)
    s_g = copy.deepcopy(state)
    v, g = kt.value_and_grad(charlm_loss)(param, s_g, sequence)
    assert v == pytest.approx(value)
    for a, b in zip(s_g, s_f):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_lstm_training_reduces_loss():
    param, state0, sequence = charlm_setup(1, vocab=3, hidden=3, steps=4, seed=4)
    g = kt.grad(charlm_loss)
    before = charlm_loss(param, copy.deepcopy(state0), sequence)
    for _ in range(30):
        dparam = g(param, copy.deepcopy(state0), sequence)
        param = [p - 0.5 * d for p, d in zip(param, dparam)]
    assert charlm_loss(param, copy.deepcopy(state0), sequence) < before


# ------------------------------------- the LSTM with Knet's original signature

def lstm_knet(weight, bias, hidden, cell, input):
    gates = np.hstack((input, hidden)) @ weight + bias
    h = hidden.shape[1]
    forget = sigm_manual(gates[:, :h])
    ingate = sigm_manual(gates[:, h:2 * h])
    outgate = sigm_manual(gates[:, 2 * h:3 * h])
    change = np.tanh(gates[:, 3 * h:])
    cell = cell * forget + ingate * change
    hidden = outgate * np.tanh(cell)
    return hidden, cell


def charlm_knet_predict(w, s, x):
    x = x @ w[-3]
    for i in range(0, len(s), 2):
        (s[i], s[i + 1]) = lstm_knet(w[i], w[i + 1], s[i], s[i + 1], x)
        x = s[i]
    return x @ w[-2] + w[-1]


def charlm_knet_loss(w, s, sequence):
    total = 0.0
    count = 0
    input = sequence[0]
    for t in range(len(sequence) - 1):
        ypred = charlm_knet_predict(w, s, input)
        ynorm = ypred - np.log(np.sum(np.exp(ypred), axis=1, keepdims=True))
        ygold = sequence[t + 1]
        total += np.sum(ygold * ynorm)
        count += ygold.shape[0]
        input = ygold
    return -total / count


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_knet_signature(layers):
    w, s, sequence = charlm_setup(layers, seed=layers + 5)
    g = check_grad(charlm_knet_loss, [w, s, sequence], wrt=(0, 1))
    g_ref = kt.grad(charlm_loss, wrt=(0, 1))(w, copy.deepcopy(s), sequence)
    for a, b in zip(g[0], g_ref[0]):
        np.testing.assert_allclose(a, b, atol=1e-12)
