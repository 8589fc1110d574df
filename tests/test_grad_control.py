"""kt.grad through Python control flow: branches, loops, jumps, comprehensions.

Each function is checked against finite differences with inputs that take
each branch (and each loop exit) both ways.
"""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad


def rnd(*shape, seed=0):
    return np.random.default_rng(seed + 11 * len(shape) + sum(shape)).standard_normal(shape)


# -------------------------------------------------------------------- branches

def f_if_else(x):
    if np.sum(x) > 0:
        y = np.sin(x) * 2
    else:
        y = x ** 3
    return np.sum(y)


def f_if_elif_else(x, c):
    s = np.sum(x)
    if s > c:
        y = np.exp(x)
    elif s > -c:
        y = x * x * s
    else:
        y = np.tanh(x) - s
    return np.sum(y * x)


def f_if_no_else(x):
    y = x * 2
    if np.max(x) > 0.5:
        y = y * np.cos(x)
    return np.sum(y)


def f_if_on_element(w, x):
    h = w @ x
    if h[0] > 0:
        out = np.sum(h ** 2)
    else:
        out = -np.sum(h)
    return out


def f_nested_if(x):
    a = np.sum(x)
    b = np.max(x)
    if a > 0:
        if b > 1:
            r = a * b
        else:
            r = a * a
    else:
        if b > 1:
            r = np.sum(np.sin(x))
        else:
            r = b * 3
    return r


def f_if_reads_param_in_one_branch(x, y):
    if np.sum(x) > 0:
        r = np.sum(x * y)
    else:
        r = np.sum(x)
    return r


def pos(*shape, seed=0):
    return np.abs(rnd(*shape, seed=seed)) + 0.1


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("shape", [(3,), (2, 3)])
def test_if_else_both_branches(sign, shape):
    x = sign * pos(*shape)
    check_grad(f_if_else, [x])
    check_grad(f_if_no_else, [x])
    check_grad(f_if_reads_param_in_one_branch, [x, rnd(*shape, seed=1)], wrt=(0, 1))


@pytest.mark.parametrize("scale", [2.0, 0.1, -2.0])
def test_if_elif_else(scale):
    x = scale * pos(4)
    check_grad(f_if_elif_else, [x, 1.0])


@pytest.mark.parametrize("seed", range(4))
def test_branch_on_array_element(seed):
    w, x = rnd(2, 3, seed=seed), rnd(3, seed=seed + 10)
    check_grad(f_if_on_element, [w, x], wrt=(0, 1))


@pytest.mark.parametrize("x", [[0.5, 0.7], [0.2, 0.1], [-0.5, 2.0], [-1.0, 0.5]])
def test_nested_if_all_four_paths(x):
    check_grad(f_nested_if, [np.array(x)])


# ------------------------------------------------------------------------ loops

def f_for_range(x, n):
    y = x
    for i in range(n):
        y = np.sin(y) * (i + 1)
    return np.sum(y)


def f_for_range_start_stop_step(x):
    total = 0.0
    for i in range(1, 7, 2):
        total = total + np.sum(x ** i)
    return total


def f_for_list(ws, x):
    for w in ws:
        x = np.tanh(w @ x)
    return np.sum(x)


def f_for_zip(ws, bs, x):
    for w, b in zip(ws, bs):
        x = np.tanh(w @ x + b)
    return np.sum(x ** 2)


def f_for_enumerate(xs):
    total = 0.0
    for i, x in enumerate(xs):
        total += (i + 1) * np.sum(x ** 2)
    return total


def f_for_over_array_rows(x):
    total = 0.0
    for row in x:
        total = total + np.sum(np.sin(row)) * np.sum(row)
    return total


def f_accumulate(x):
    total = 0
    for i in range(3):
        total += np.sum(x * i) + np.sum(x ** 2)
    return total


def f_reassign_in_loop(w, x, n):
    for i in range(n):
        x = np.tanh(w @ x)
    return np.sum(x)


def f_nested_loops(w, x):
    total = 0.0
    for i in range(2):
        h = x
        for j in range(3):
            h = np.tanh(w @ h) + i * 0.1
            total = total + np.sum(h * (j + 1))
    return total


def f_loop_bound_from_data(x):
    n = len(x)
    y = 0.0
    for i in range(n - 1):
        y = y + x[i] * x[i + 1]
    return y


@pytest.mark.parametrize("n", [0, 1, 3])
def test_for_range(n):
    check_grad(f_for_range, [rnd(3), n])
    check_grad(f_reassign_in_loop, [rnd(3, 3) * 0.7, rnd(3, seed=1), n], wrt=(0, 1))


def test_for_range_variants():
    check_grad(f_for_range_start_stop_step, [rnd(3)])
    check_grad(f_accumulate, [rnd(2, 2)])
    check_grad(f_loop_bound_from_data, [rnd(5)])
    check_grad(f_nested_loops, [rnd(2, 2) * 0.8, rnd(2, seed=1)], wrt=(0, 1))


@pytest.mark.parametrize("layers", [1, 3])
def test_for_over_list(layers):
    ws = [rnd(3, 3, seed=i) * 0.6 for i in range(layers)]
    check_grad(f_for_list, [ws, rnd(3, seed=9)], wrt=(0, 1))
    ws_tuple = tuple(ws)
    check_grad(f_for_list, [ws_tuple, rnd(3, seed=9)], wrt=0)


def test_for_zip():
    ws = [rnd(3, 2), rnd(2, 3, seed=1)]
    bs = [rnd(3, seed=2), rnd(2, seed=3)]
    check_grad(f_for_zip, [ws, bs, rnd(2, seed=4)], wrt=(0, 1, 2))


def test_for_enumerate():
    check_grad(f_for_enumerate, [[rnd(2), rnd(3, seed=1), rnd(1, seed=2)]])


def test_for_over_array_rows():
    check_grad(f_for_over_array_rows, [rnd(3, 2)])


# ------------------------------------------------------------------ while loops

def f_while_norm(x, c):
    steps = 0
    while np.sqrt(np.sum(x * x)) > c:
        x = x * 0.5 + np.sin(x) * 0.1
        steps += 1
    return np.sum(x ** 2) + steps


def f_while_counter(x):
    i = 0
    y = x
    while i < 3:
        y = y * np.cos(y)
        i += 1
    return np.sum(y)


@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0])
def test_while_data_dependent(scale):
    x = rnd(3) * scale
    check_grad(f_while_norm, [x, 0.5])


def test_while_counter():
    check_grad(f_while_counter, [rnd(3)])


# ------------------------------------------------------------ break / continue

def f_break(x, limit):
    total = 0.0
    for i in range(5):
        total = total + np.sum(x * (i + 1))
        if total > limit:
            break
    return total


def f_continue(xs):
    total = 0.0
    for x in xs:
        if np.sum(x) < 0:
            continue
        total = total + np.sum(np.sin(x))
    return total


def f_break_continue(x):
    y = x
    for i in range(6):
        if i % 2 == 1:
            continue
        y = np.sin(y) + x
        if np.sum(y) > 4:
            break
        y = y * 1.1
    return np.sum(y)


def f_nested_break(w, x):
    total = 0.0
    for i in range(3):
        h = x
        for j in range(4):
            h = np.tanh(w @ h)
            if np.sum(h) < -0.5:
                break
        total = total + np.sum(h)
    return total


@pytest.mark.parametrize("limit", [-100.0, 1.0, 100.0])
def test_break(limit):
    x = np.array([0.3, 0.4])
    check_grad(f_break, [x, limit])


def test_continue():
    xs = [np.array([0.5, 0.2]), np.array([-0.5, -0.2]), np.array([1.0, 0.3])]
    check_grad(f_continue, [xs])


@pytest.mark.parametrize("x", [[0.1, 0.2], [1.5, 1.5], [-2.0, 0.1]])
def test_break_and_continue(x):
    check_grad(f_break_continue, [np.array(x)])


@pytest.mark.parametrize("seed", range(3))
def test_nested_break(seed):
    check_grad(f_nested_break, [rnd(2, 2, seed=seed) * 1.5, rnd(2, seed=seed + 5)],
               wrt=(0, 1))


# ------------------------------------------------------------------- returns

def f_return_in_branch(x):
    if np.sum(x) > 0:
        return np.sum(x ** 2)
    y = np.sin(x)
    return np.sum(y * x)


def f_return_in_loop(x):
    y = x
    for i in range(5):
        y = np.sin(y) + 0.5
        if np.sum(y) > 1.7:
            return np.sum(y * x)
    return np.sum(y)


def f_return_in_nested_loop(w, x):
    for i in range(3):
        for j in range(3):
            x = np.tanh(w @ x + 0.2)
            if np.max(x) > 0.9:
                return np.sum(x) * (i + j)
    return -np.sum(x)


def f_return_in_while(x):
    y = x
    n = 0
    while n < 10:
        y = y * 1.3
        n += 1
        if np.sum(y) > 2:
            return np.sum(y ** 2) + n
    return np.sum(y)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_return_in_branch(sign):
    check_grad(f_return_in_branch, [sign * pos(3)])


@pytest.mark.parametrize("x", [[0.9, 0.9], [0.1, 0.1], [-3.0, -3.0], [0.5, 0.2]])
def test_early_return_in_loop(x):
    check_grad(f_return_in_loop, [np.array(x)])


@pytest.mark.parametrize("seed", range(4))
def test_return_in_nested_loop(seed):
    check_grad(f_return_in_nested_loop, [rnd(2, 2, seed=seed) * 2, rnd(2, seed=seed + 3)],
               wrt=(0, 1))


@pytest.mark.parametrize("x", [[1.0, 1.5], [0.1, 0.1], [-1.0, 0.2]])
def test_return_in_while(x):
    check_grad(f_return_in_while, [np.array(x)])




def f_while_true_break(x):
    y = x
    while True:
        y = np.tanh(y) * 1.5
        if np.sum(y) > 1.0 or np.sum(y) < -1.5:
            break
    return np.sum(y ** 2)


@pytest.mark.parametrize("x", [[2.0, 1.0], [0.1, 0.2], [-0.4, -0.3]])
def test_while_true_break(x):
    check_grad(f_while_true_break, [np.array(x)])




# ------------------------------------------- comprehensions consumed as a whole

def f_sum_comprehension(w):
    return sum([np.sum(wi ** 2) for wi in w])


def f_np_sum_comprehension(w):
    return np.sum(np.array([np.sum(wi ** 2) for wi in w]))


def f_generator_sum(w):
    return sum(np.sum(wi ** 2) for wi in w)


def f_comprehension_stack(xs):
    return np.sum(np.stack([np.tanh(x) for x in xs]) * np.arange(1.0, 4.0)[:, None])


def f_appended_then_stacked(xs):
    hs = []
    for x in xs:
        hs.append(np.tanh(x))
    return np.sum(np.stack(hs) * np.arange(1.0, 4.0)[:, None])


def f_comprehension_filtered(w):
    parts = [np.sum(np.sin(wi)) for wi in w if wi.shape[0] > 1]
    return parts[0] * parts[-1]


def f_comprehension_filter_on_data(xs):
    ys = [np.sum(x * x) for x in xs if np.sum(x) > 0]
    return ys[0] * ys[-1]


@pytest.mark.parametrize("f", [f_sum_comprehension, f_np_sum_comprehension, f_generator_sum,
                               f_comprehension_stack, f_appended_then_stacked],
                         ids=lambda f: f.__name__)
def test_comprehension_consumed_whole(f):
    w = [rnd(2), rnd(2, seed=1), rnd(2, seed=2)]
    g = check_grad(f, [w])
    assert all(np.any(gi != 0) for gi in g)


def test_comprehension_with_filter():
    check_grad(f_comprehension_filtered, [[rnd(2), rnd(1, seed=1), rnd(3, seed=2)]])
    xs = [np.array([0.3, 0.4]), np.array([-0.5, 0.1]), np.array([0.2, 0.2])]
    g = check_grad(f_comprehension_filter_on_data, [xs])
    assert np.all(g[1] == 0)


# ------------------------------------------------ early returns in and/or code

def f_and_return(x):
    if np.sum(x) > 0 and np.max(x) < 1:
        return np.sum(x ** 3)
    return np.sum(x)


def f_or_return(x):
    if np.sum(x) > 1 or np.min(x) < -1:
        return np.sum(np.sin(x))
    return np.sum(x * x)


def f_return_reads_param_in_one_branch(x, y):
    if np.sum(x) > 0:
        return np.sum(x * y)
    return np.sum(x)


@pytest.mark.parametrize("x", [[0.3, 0.2], [-0.3, -0.2], [0.8, 0.9], [-2.0, 0.5], [2.0, 1.5]])
def test_early_return_with_and_or(x):
    x = np.array(x)
    check_grad(f_and_return, [x])
    check_grad(f_or_return, [x])
    check_grad(f_return_reads_param_in_one_branch, [x, rnd(2, seed=3)], wrt=(0, 1))


# ----------------------------------------------------------- tutorial MLP loop

def predict(w, x):
    for i in range(0, len(w) - 2, 2):
        x = np.maximum(0, w[i] @ x + w[i + 1])
    return w[-2] @ x + w[-1]


def mlp_loss(w, x, y):
    return np.sum((y - predict(w, x)) ** 2) / y.shape[1]


def mlp_inline(w, x, y):
    for i in range(0, len(w) - 2, 2):
        x = np.maximum(0, w[i] @ x + w[i + 1])
    ypred = w[-2] @ x + w[-1]
    return np.sum((y - ypred) ** 2) / y.shape[1]


@pytest.mark.parametrize("f", [mlp_loss, mlp_inline], ids=lambda f: f.__name__)
@pytest.mark.parametrize("hidden", [[], [4], [4, 3]], ids=str)
def test_mlp_predict_loop(f, hidden):
    sizes = [3] + hidden + [2]
    r = np.random.default_rng(len(hidden))
    w = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w += [r.standard_normal((b, a)), r.standard_normal((b, 1)) * 0.1]
    x, y = r.standard_normal((3, 5)), r.standard_normal((2, 5))
    check_grad(f, [w, x, y], wrt=(0, 1))


# ------------------------------------------------- conditional expressions, and/or

def f_ifexp(x):
    y = np.sin(x) if np.sum(x) > 0 else x ** 2
    return np.sum(y)


def f_ifexp_nested(x, y):
    return np.sum(x * y) if np.sum(x) > 0 else (np.sum(y) if np.sum(y) > 0 else np.sum(x))


def f_and(x):
    if np.sum(x) > 0 and np.max(x) < 1:
        r = np.sum(x ** 3)
    else:
        r = np.sum(x)
    return r


def f_or(x):
    if np.sum(x) > 1 or np.min(x) < -1:
        r = np.sum(np.sin(x))
    else:
        r = np.sum(x * x)
    return r


def f_or_value(x, y):
    z = y or x
    return np.sum(z * x)


def f_and_value(x, flag):
    z = flag and np.sum(x * 2)
    return z * np.sum(x)


@pytest.mark.parametrize("x", [[0.3, 0.2], [-0.3, -0.2], [0.8, 0.9], [-2.0, 0.5], [2.0, 1.5]])
def test_ifexp_and_or(x):
    x = np.array(x)
    check_grad(f_ifexp, [x])
    check_grad(f_and, [x])
    check_grad(f_or, [x])
    for y in ([0.5, 0.1], [-0.5, -0.1]):
        check_grad(f_ifexp_nested, [x, np.array(y)], wrt=(0, 1))


def test_and_or_values():
    x = np.array([0.3, -0.6])
    check_grad(f_or_value, [x, None])
    check_grad(f_or_value, [x, 2.0])
    check_grad(f_and_value, [x, True])
    check_grad(f_and_value, [x, False])


# --------------------------------------------------------------- comprehensions

def f_comprehension_indexed(w):
    sq = [np.sum(w[i] * w[i + 1]) for i in range(len(w) - 1)]
    return sq[0] + 2 * sq[-1]


def f_comprehension_read_back(xs):
    hs = [np.tanh(x) for x in xs]
    return np.sum(hs[0] * hs[-1]) + np.sum(hs[1] ** 2)


def test_comprehension_read_by_index():
    w = [rnd(2), rnd(2, seed=1), rnd(2, seed=2)]
    check_grad(f_comprehension_indexed, [w])
    check_grad(f_comprehension_read_back, [w])


# ------------------------------------------------------------------ more loops

def f_tuple_target(layers, x):
    for (W, b) in layers:
        x = np.tanh(W @ x + b)
    return np.sum(x)


def f_branch_per_iteration(x):
    for i in range(5):
        if np.sum(x) > 0:
            x = x - 0.7
        else:
            x = x * np.cos(x) * 1.5
    return np.sum(x ** 2)


def f_conditional_append(xs):
    hs = []
    for x in xs:
        if np.sum(x) > 0:
            hs.append(x * 2)
    return np.sum(hs[0]) + np.sum(hs[-1] ** 2)


def f_range_len(w):
    t = 0.0
    for i in range(len(w)):
        t = t + np.sum(w[i]) * i + np.sum(w[i] ** 2)
    return t


def f_loop_variable_after_loop(x):
    for i in range(3):
        y = x * i
    return np.sum(y) + i


def f_while_with_if(x):
    n = 0
    while n < 4:
        if np.sum(x) > 0:
            x = x - 0.5
        else:
            x = x * 2.0 + 0.3
        n += 1
    return np.sum(x * x)


def f_zip_three(a, b, c):
    t = 0.0
    for x, y, z in zip(a, b, c):
        t = t + np.sum(x * y * z)
    return t


def f_enumerate_tuple_target(xs):
    t = 0.0
    for i, (a, b) in enumerate(xs):
        t = t + i * np.sum(a * b)
    return t


def f_same_list_twice(w):
    t = 0.0
    for a in w:
        for b in w:
            t = t + np.sum(a * b)
    return t


def f_rebinding(x):
    y = x
    x = x * 2
    y = y + x
    x = np.sin(x)
    return np.sum(x * y)


def test_loop_over_list_of_tuples():
    r = np.random.default_rng(1)
    layers = [(r.standard_normal((2, 2)), r.standard_normal(2)) for _ in range(2)]
    check_grad(f_tuple_target, [layers, r.standard_normal(2)], wrt=(0, 1))


@pytest.mark.parametrize("x", [[0.5, 0.3], [-0.5, 0.1], [0.2, 0.1]])
def test_branch_differs_per_iteration(x):
    check_grad(f_branch_per_iteration, [np.array(x)])
    check_grad(f_while_with_if, [np.array(x)])


def test_conditional_append():
    xs = [np.array([0.5, 0.3]), np.array([-0.5, 0.3]), np.array([0.5, -0.3]),
          np.array([-0.5, -0.3])]
    g = check_grad(f_conditional_append, [xs])
    assert np.all(g[1] == 0) and np.all(g[3] == 0)


def test_more_loop_forms():
    r = np.random.default_rng(2)
    check_grad(f_range_len, [[r.standard_normal(2) for _ in range(3)]])
    check_grad(f_loop_variable_after_loop, [r.standard_normal(2)])
    check_grad(f_zip_three, [[r.standard_normal(2)] * 3, r.standard_normal((3, 2)),
                             (r.standard_normal(2),) * 3], wrt=(0, 1, 2))
    check_grad(f_enumerate_tuple_target,
               [[(r.standard_normal(2), r.standard_normal(2)) for _ in range(3)]])
    check_grad(f_same_list_twice, [[r.standard_normal(2) for _ in range(3)]])
    check_grad(f_rebinding, [r.standard_normal(2)])
