"""Python constructs beyond the first round's subset (issue 11), each against
float64 central differences: writes into arrays, ``x[i] += v``, and more."""

import functools

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

R = np.random.default_rng(7)


def rnd(*shape):
    return R.standard_normal(shape)


# ---------------------------------------------------------- writes into arrays

def rnn_rows(W, x):
    T = x.shape[0]
    h = np.zeros((T + 1, 3))
    for t in range(T):
        h[t + 1] = np.tanh(W @ h[t] + x[t])
    return np.sum(h ** 2)


def fill_loop(w):
    out = np.zeros(4)
    for i in range(4):
        out[i] = np.sin(w[i]) * w[0]
    return np.sum(out * out)


def column_then_read_then_write(w):
    out = np.ones((3, 2))
    out[:, 0] = w * 2.0
    y = out * w[:, None]          # read before the next write
    out[1, 1] = 5.0
    return np.sum(y) + np.sum(out ** 2)


def copy_then_add(w, v):
    h = w.copy()
    h[0] += v
    return np.sum(h ** 2)


def broadcast_into_slice(w):
    out = np.zeros(3)
    out[1:] = w[0]
    return np.sum(out * w)


def overwrite_twice(w):
    out = np.zeros(3)
    out[0] = w[0] * 3.0
    s = np.sum(out * w)
    out[0] = w[1]                 # the first value's adjoint ends here
    return s + np.sum(out ** 3)


def fancy_index_write(w):
    out = np.zeros(5)
    idx = np.array([4, 0, 2])
    out[idx] = w * w
    return np.sum(np.cos(out))


def elements_of_a_list(w):
    s = [w * 1.0, w * 2.0]
    s[1] = s[1] + w                # a list element replaced
    return np.sum(s[0] * s[1])


def element_array_changed_in_place(w):
    s = [w * 1.0, w * 2.0]
    s[1] += w  # <-
    return np.sum(s[0] * s[1])


def test_element_array_with_gradient_changed_in_place_refused():
    # s[1] += w changes the array s[1] in place (as Python does), which the
    # backward cannot replay for a value with gradient: refused at the line
    with pytest.raises(kt.TransformError, match="in-place") as info:
        kt.grad(element_array_changed_in_place)(rnd(3))
    assert info.value.lineno is not None


@pytest.mark.parametrize("f, args, wrt", [
    (rnn_rows, (rnd(3, 3) * 0.5, rnd(4, 3)), (0, 1)),
    (fill_loop, (rnd(4),), 0),
    (column_then_read_then_write, (rnd(3),), 0),
    (copy_then_add, (rnd(3), 0.7), (0, 1)),
    (broadcast_into_slice, (rnd(3),), 0),
    (overwrite_twice, (rnd(3),), 0),
    (fancy_index_write, (rnd(3),), 0),
    (elements_of_a_list, (rnd(3),), 0),
], ids=lambda v: getattr(v, "__name__", ""))
def test_writes_into_arrays(f, args, wrt):
    check_grad(f, args, wrt=wrt)


# ---------------------------------------------- bound methods, functools.partial

class Model:
    def __init__(self, scale):
        self.scale = scale

    def predict(self, w, x):
        return np.tanh(w @ x) * self.scale

    def loss(self, w, x):
        return np.sum(self.scale * np.sin(w @ x) ** 2)


def scaled_loss(w, x, scale=1.0, power=2):
    return np.sum(np.tanh(w @ x) ** power) * scale


def test_bound_method():
    import knet_st as kt
    m = Model(1.5)
    w, x = rnd(2, 3), rnd(3)
    check_grad(m.loss, (w, x))
    dw, dx = kt.grad(m.loss, wrt=(0, 1))(w, x)       # wrt counts after self
    assert dw.shape == w.shape and dx.shape == x.shape


def test_partial():
    import functools
    import knet_st as kt
    w, x = rnd(2, 3), rnd(3)
    f = functools.partial(scaled_loss, scale=3.0, power=3)
    check_grad(f, (w, x))
    g = functools.partial(scaled_loss, w)            # w given: x is position 0 now
    dx = kt.grad(g)(x, scale=2.0)
    check_grad(lambda_free_x_loss, (x, w))
    assert np.allclose(dx, kt.grad(lambda_free_x_loss)(x, w))


def lambda_free_x_loss(x, w):
    return scaled_loss(w, x, scale=2.0)


class Network:
    def __init__(self, depth):
        self.depth = depth

    def layer(self, w, h):
        return np.tanh(w @ h)

    def predict(self, ws, x):
        h = x
        for i in range(self.depth):
            h = self.layer(ws[i], h)
        return h

    def loss(self, ws, x, y):
        return np.sum((self.predict(ws, x) - y) ** 2)


class Deeper(Network):
    def layer(self, w, h):                     # the subclass's method is the one called
        return np.sin(w @ h)


@pytest.mark.parametrize("cls", [Network, Deeper])
def test_method_calling_methods_of_self(cls):
    net = cls(2)
    ws = [rnd(3, 3) * 0.5, rnd(3, 3) * 0.5]
    check_grad(net.loss, (ws, rnd(3), rnd(3)))


# ------------------------------------------------ functions held in parameters

def dense(W, x, act=np.tanh):
    return act(W @ x)


def my_act(z):
    return z * np.exp(-z * z)


def net_default(W, x):
    return np.sum(dense(W, x) ** 2)


def net_given(W, x):
    h = dense(W, x, act=kt.sigm)
    g = dense(W, x, my_act)
    return np.sum(h * g)


def net_passed_in(W, x, act):
    return np.sum(dense(W, x, act) ** 2)


def apply_twice(f, W, x):
    return f(W @ f(W @ x))


def net_through_two_levels(W, x):
    return np.sum(apply_twice(np.sin, W, x))


def test_function_valued_parameters():
    import knet_st as kt
    W, x = rnd(3, 3), rnd(3)
    check_grad(net_default, (W, x))
    check_grad(net_given, (W, x))
    check_grad(net_through_two_levels, (W, x))
    for act in (np.tanh, kt.relu, my_act):
        g = kt.grad(net_passed_in)(W, x, act)
        h = 1e-6
        num = np.zeros_like(W)
        for i in np.ndindex(W.shape):
            d = np.zeros_like(W)
            d[i] = h
            num[i] = (net_passed_in(W + d, x, act) - net_passed_in(W - d, x, act)) / (2 * h)
        assert np.allclose(g, num, atol=1e-5), act


# ----------------------------------------------- lists, tuples, dicts, builtins

def cell(w, h, c):
    return np.tanh(w @ h + c), np.sin(c)


def copy_of_state_then_changed(w, state):
    s = list(state)
    s[0], s[1] = cell(w, s[0], s[1])
    return np.sum(s[0] * s[1]) + np.sum(state[0])


def concatenated_layers(w, x):
    enc = [w[0], w[1]]
    dec = [w[2]]
    layers = enc + dec
    h = x
    for layer in layers:
        h = np.tanh(layer @ h)
    return np.sum(h)


def slots_filled_in_a_loop(w, x):
    T = 3
    hs = [None] * T
    h = x
    for t in range(T):
        h = np.tanh(w @ h)
        hs[t] = h
    return np.sum(hs[0] * hs[2]) + np.sum(hs[1])


def tuple_concatenation(x):
    t = (x, x * 2)
    u = t + (x * 3,) + t
    return np.sum(u[2] * u[1] * u[4])


def repeated_list(x):
    l = [x, x * 0.5] * 3
    return np.sum(l[0] * l[3] * l[5])


def dict_get(w):
    d = {"a": w * 2.0}
    return np.sum(d.get("a", w) * d.get("b", w * 3.0))


def extrema_of_many(x):
    return max(x[0], x[1] * 2.0, x[2]) + min(x[0], x[1], x[2] * 0.5, 0.1)


@pytest.mark.parametrize("f, args, wrt", [
    (copy_of_state_then_changed, (rnd(3, 3), [rnd(3), rnd(3)]), (0, 1)),
    (concatenated_layers, ([rnd(3, 3), rnd(3, 3), rnd(2, 3)], rnd(3)), 0),
    (slots_filled_in_a_loop, (rnd(3, 3) * 0.5, rnd(3)), (0, 1)),
    (tuple_concatenation, (rnd(3),), 0),
    (repeated_list, (rnd(3),), 0),
    (dict_get, (rnd(3),), 0),
    (extrema_of_many, (np.array([0.3, -0.2, 0.9]),), 0),
], ids=lambda v: getattr(v, "__name__", ""))
def test_containers_and_builtins(f, args, wrt):
    check_grad(f, args, wrt=wrt)


# ------------------------------------------------------------------- lambdas

def with_named_lambdas(w, x):
    act = lambda z: np.maximum(z, 0.0) + 0.1 * z      # noqa: E731
    scale = lambda v, k=2.0: v * k                     # noqa: E731
    return np.sum(scale(act(w @ x)) ** 2)


def test_named_lambdas():
    check_grad(with_named_lambdas, (rnd(3, 3), rnd(3)))


# ------------------------------------------------------------- with blocks

def with_errstate(w, x):
    with np.errstate(over="ignore", divide="ignore"):
        h = np.exp(w @ x)
        y = np.log1p(h)
    return np.sum(y * y)


def with_in_a_loop(w, x):
    total = 0.0
    for t in range(2):
        with np.errstate(invalid="ignore") as state:
            total = total + np.sum(np.tanh(w @ x) * (t + 1))
    return total


def test_with_blocks():
    check_grad(with_errstate, (rnd(3, 3) * 0.3, rnd(3)))
    check_grad(with_in_a_loop, (rnd(3, 3), rnd(3)))
    before = np.geterr()
    kt.grad(with_errstate)(rnd(3, 3), rnd(3))
    assert np.geterr() == before                     # the context was left


def returns_inside_with(w):
    with np.errstate(over="ignore"):
        return np.sum(w)  # <-


def test_return_inside_with():
    check_grad(returns_inside_with, (rnd(3),))


# ------------------------------------------------ *args, **kwargs, keyword-only

def total_of_squares(*terms):
    total = 0.0
    for t in terms:
        total = total + np.sum(t ** 2)
    return total


def with_options(w, *rest, scale=1.0, **kw):
    return np.sum(w * kw["a"]) * scale + kw.get("b", 1.0) + total_of_squares(*rest) \
        if rest else np.sum(w * kw["a"]) * scale + kw.get("b", 1.0)


def keyword_only(w, x, *, scale=2.0):
    return np.sum(np.tanh(w @ x) * scale)


def uses_varargs(w, x):
    return total_of_squares(w @ x, w * 2.0, x) + total_of_squares()


def uses_kwargs(w, x):
    return with_options(w, a=2.0, b=w[0, 0]) + with_options(w, x, scale=0.5, a=x[0])


def uses_keyword_only(w, x):
    return keyword_only(w, x, scale=3.0) + keyword_only(w, x)


@pytest.mark.parametrize("f", [uses_varargs, uses_kwargs, uses_keyword_only],
                         ids=lambda f: f.__name__)
def test_varargs_and_keywords(f):
    check_grad(f, (rnd(3, 3), rnd(3)), wrt=(0, 1))


def test_top_level_varargs():
    check_grad(total_of_squares, (rnd(3), rnd(2)), wrt=(0, 1))


def with_keywords(w, **parts):
    return np.sum(w * parts["a"] ** 2)


def test_top_level_kwargs():
    w = rnd(3)
    np.testing.assert_allclose(kt.grad(with_keywords)(w, a=2.0), np.full(3, 4.0))
    with pytest.raises(kt.TransformError, match="named parameters"):
        kt.grad(functools.partial(with_keywords, a=2.0))(w)


# ------------------------------------ found by adversarial testing (break_findings.md)

def in_list_then_write(w):
    out = np.zeros(3)
    l = [out]
    out[0] = w[0]  # <-
    return np.sum(l[0])  # <-


def view_before_write(w):
    out = np.zeros(3)
    v = out[:2]
    out[0] = w[0]
    return np.sum(v ** 2)  # <-


def keep_row_before_loop(W, x):
    h = np.zeros((4, 3))
    last = h[3]
    for t in range(3):
        h[t + 1] = np.tanh(W @ h[t] + x[t])
    return np.sum(last ** 2)  # <-


@pytest.mark.parametrize("f, args", [
    (in_list_then_write, (rnd(3),)), (view_before_write, (rnd(3),)),
    (keep_row_before_loop, (rnd(3, 3), rnd(3, 3))),
], ids=lambda v: getattr(v, "__name__", ""))
def test_views_read_after_a_write_are_refused(f, args):
    with pytest.raises(kt.TransformError, match="shares memory") as info:
        kt.grad(f)(*args)
    assert info.value.lineno is not None


def element_of_list_changed_in_place(w, state):
    s = list(state)
    s[0] *= 2.0                     # changes state[0] too, as in Python
    return np.sum(state[0] * w)


def element_without_gradient(w):
    a = np.ones(3)
    d = {"k": a}
    y = w * a
    d["k"] *= 3.0                   # a changes: y's backward must see the old a
    return np.sum(y ** 2) + np.sum(a * w)


def repeated_positions(w):
    out = np.zeros(2)
    out[np.array([0, 0])] = w       # NumPy keeps the last write
    return out[0] + 2.0 * out[1]


def repeated_positions_added(w):
    out = np.zeros(2)
    out[np.array([0, 0])] += w
    return out[0] + 2.0 * out[1]


def tuple_doubled(x):
    u = (x,) + (x * 2,)
    u = u + u
    return np.sum(u[3] * u[0])


@pytest.mark.parametrize("f, args", [
    (element_of_list_changed_in_place, (rnd(3), [rnd(3), rnd(3)])),
    (element_without_gradient, (rnd(3),)), (repeated_positions, (rnd(2),)),
    (repeated_positions_added, (rnd(2),)), (tuple_doubled, (rnd(3),)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_found_by_adversarial_testing(f, args):
    import copy
    assert np.isclose(f(*copy.deepcopy(args)),
                      kt.value_and_grad(f)(*copy.deepcopy(args))[0])
    check_grad(f, args)


def list_times_in_place(w):
    l = [w * 2]
    l *= 2  # <-
    return np.sum(l[1])


def test_list_augmented_in_place_refused():
    with pytest.raises(kt.TransformError, match="in place") as info:
        kt.grad(list_times_in_place)(rnd(3))
    assert info.value.lineno is not None


def concatenated_parameters(a, b):
    c = a + b
    return np.sum(c[0] * c[1])


def test_unknown_sequences_concatenated():
    check_grad(concatenated_parameters, ([rnd(2)], [rnd(2)]), wrt=(0, 1))
    check_grad(concatenated_parameters, (rnd(2, 2), rnd(2, 2)), wrt=(0, 1))


def extrema_of_displays(x):
    return max([x[0], x[1] * 2.0, x[2]]) - min((x[0], x[1]))


def test_extrema_of_a_display():
    check_grad(extrema_of_displays, (np.array([0.3, -0.2, 0.9]),))


# ------------------------------- found by the random-program sweep (findings 7-12)

def doubled(h):
    return h * 2.0


def helper_result_indexed(x):
    h = doubled(x)
    return h[0] + np.sum(h[1:])


def output_read_by_its_rule_then_written(x):
    o = np.tanh(x)                 # tanh's adjoint reads o as it was made
    o[0] = o[0] * 2.0
    return np.sum(o)


def exp_read_then_written(x):
    o = np.exp(x)
    a = np.sum(o * x)
    o[0] = 0.1
    return a + np.sum(o)


def copy_of_an_array_then_written(w, x):
    h = np.tanh(w @ x)
    o = h.copy()                   # a new array: h is not a view of it
    o[0] = x[0] * 2.0
    return np.sum(h * o)


def break_of_a_loop_inside_with(x):
    t = 0.0
    with np.errstate(over="ignore"):
        for i in range(3):
            if i == 2:
                break
            t = t + np.sum(np.exp(x) * i)
    return t


@pytest.mark.parametrize("f, args, wrt", [
    (helper_result_indexed, (rnd(3),), 0),
    (output_read_by_its_rule_then_written, (rnd(3),), 0),
    (exp_read_then_written, (rnd(3),), 0),
    (copy_of_an_array_then_written, (rnd(3, 3), rnd(3)), (0, 1)),
    (break_of_a_loop_inside_with, (rnd(3),), 0),
], ids=lambda v: getattr(v, "__name__", ""))
def test_found_by_the_sweep(f, args, wrt):
    check_grad(f, args, wrt=wrt)


def write_through_a_mask_and_a_column(w):
    out = np.zeros((3, 2))
    m = np.array([True, False, True])
    out[m, 0] = w[:2]              # a mask selects each row once
    return np.sum(out ** 2)


def write_through_broadcast_index_arrays(w):
    out = np.zeros((3, 2))
    out[np.array([0, 2])[:, None], np.array([0, 1])] = w.reshape(2, 2)
    return np.sum(out * np.arange(6.0).reshape(3, 2))


@pytest.mark.parametrize("f, args", [
    (write_through_a_mask_and_a_column, (rnd(2),)),
    (write_through_broadcast_index_arrays, (rnd(4),)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_writes_through_index_tuples(f, args):
    check_grad(f, args)


def augmented_new_arrays(w, x):
    h = x.copy()
    h += w                         # h is a new array nothing else sees
    out = np.zeros(3)
    for i in range(2):
        out += h * (i + 1)
    return np.sum(out ** 2) + np.sum(h * x)


def test_augmented_assignment_on_new_arrays():
    check_grad(augmented_new_arrays, (rnd(3), rnd(3)), wrt=(0, 1))
