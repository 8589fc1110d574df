"""kt.grad across functions and data structures, and the public API around it."""

import copy
import itertools
import linecache
import time

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad


def rnd(*shape, seed=0):
    return np.random.default_rng(seed + 13 * len(shape) + sum(shape)).standard_normal(shape)


_counter = itertools.count()


def define(source, namespace=None, name=None):
    """Defines the function(s) in ``source`` (readable by ``inspect``, as if from a
    file) in ``namespace``; returns the namespace, or the function ``name``."""
    filename = f"<test_grad_structure generated {next(_counter)}>"
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    namespace = {"np": np, "kt": kt} if namespace is None else namespace
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name] if name else namespace


# -------------------------------------------------------------- helper functions

def dense(w, b, x, scale=1.0, shift=0.0):
    return np.tanh(w @ x + b + shift) * scale


def layer_norm_ish(h, eps=1e-3, *, power=2):
    return h / np.sqrt(np.sum(h ** power) + eps)


def f_helpers_keywords(w, x):
    h = dense(w[0], w[1], x)
    h = dense(w[2], b=w[3], x=h, shift=0.5, scale=2.0)
    h = layer_norm_ish(h, power=2)
    return np.sum(h * np.arange(1.0, 3.0)[:, None])


def f_helper_defaults_only(w, x):
    return np.sum(layer_norm_ish(dense(w[0], w[1], x)))


def two_layers():
    r = np.random.default_rng(5)
    return [r.standard_normal((3, 2)), r.standard_normal((3, 1)),
            r.standard_normal((2, 3)), r.standard_normal((2, 1))], r.standard_normal((2, 4))


def test_module_helpers_with_keywords_and_defaults():
    w, x = two_layers()
    check_grad(f_helpers_keywords, [w, x], wrt=(0, 1))
    check_grad(f_helper_defaults_only, [w, x], wrt=(0, 1))


def helper_sq_and_sum(a, b):
    return a * a, np.sum(b)


def helper_chain(a):
    return helper_sq_and_sum(a, a)[0] + 1.0


def f_helper_returns_tuple(x, y):
    sq, s = helper_sq_and_sum(x, y)
    both = helper_sq_and_sum(y, x)
    return np.sum(sq * s) + np.sum(both[0]) * both[1] + np.sum(helper_chain(x))


def test_helper_returning_several_values():
    check_grad(f_helper_returns_tuple, [rnd(3), rnd(3, seed=1)], wrt=(0, 1))


def f_helper_called_twice_with_same_arg(x):
    a = dense(x, x, np.ones((2, 2)))
    b = dense(x, x, a)
    return np.sum(a * b)


def test_helper_called_twice_same_argument():
    check_grad(f_helper_called_twice_with_same_arg, [rnd(2, 2) * 0.5])


# ------------------------------------------------------------------- closures

def make_loss(lam):
    def loss(w, x):
        return np.sum((w @ x) ** 2) + lam * np.sum(w ** 2)
    return loss


def make_loss_with_array(v):
    def loss(w):
        return np.sum(np.sin(w * v))
    return loss


def test_closure_from_factory():
    w, x = rnd(2, 3), rnd(3, 2, seed=1)
    g1 = check_grad(make_loss(0.0), [w, x])
    g2 = check_grad(make_loss(10.0), [w, x])
    np.testing.assert_allclose(g2 - g1, 20.0 * w)
    v1, v2 = rnd(3), rnd(3, seed=1)
    check_grad(make_loss_with_array(v1), [rnd(3, seed=2)])
    ga = kt.grad(make_loss_with_array(v1))(np.ones(3))
    gb = kt.grad(make_loss_with_array(v2))(np.ones(3))
    np.testing.assert_allclose(ga, v1 * np.cos(v1))
    np.testing.assert_allclose(gb, v2 * np.cos(v2))


# -------------------------------------------------------------------- recursion

def power(x, n):
    if n == 0:
        r = np.ones_like(x)
    else:
        r = x * power(x, n - 1)
    return r


def f_power(x, n):
    return np.sum(power(x, n))


def tree_sum(t):
    if isinstance(t, (list, tuple)):
        total = 0.0
        for c in t:
            total = total + tree_sum(c)
    else:
        total = np.sum(t ** 2)
    return total


def f_tree_sum(t):
    return tree_sum(t)


def fib_like(x, n):
    if n < 2:
        r = x
    else:
        r = fib_like(x, n - 1) + np.sin(fib_like(x, n - 2))
    return r


def f_fib_like(x):
    return np.sum(fib_like(x, 4))


@pytest.mark.parametrize("n", [0, 1, 4])
def test_recursive_power(n):
    x = rnd(3)
    g = check_grad(f_power, [x, n])
    np.testing.assert_allclose(g, n * x ** (n - 1) if n else 0 * x)


def test_recursive_tree_sum():
    r = np.random.default_rng(3)
    t = [r.standard_normal(2), [r.standard_normal(3), (r.standard_normal(1),)],
         [[r.standard_normal((2, 2))]]]
    check_grad(f_tree_sum, [t])


def test_recursion_with_two_calls():
    check_grad(f_fib_like, [rnd(3)])


# ----------------------------------------------------------------------- tuples

def f_tuple_pack_unpack(x, y):
    t = (x, y * 2)
    a, b = t
    b, a = a, b
    (c, (d, e)) = (a * b, (a, np.sin(b)))
    return np.sum(c + d * e) + np.sum(t[0] * t[1])


def f_swap_in_loop(x, y):
    for i in range(3):
        x, y = y, x * 1.5 + np.sin(y)
    return np.sum(x * 2 + y)


def test_tuples():
    check_grad(f_tuple_pack_unpack, [rnd(3), rnd(3, seed=1)], wrt=(0, 1))
    check_grad(f_swap_in_loop, [rnd(3), rnd(3, seed=1)], wrt=(0, 1))


# ---------------------------------------------------------------------- lists

def f_list_append_and_index(w, xs):
    hs = []
    h = np.zeros(2)
    for x in xs:
        h = np.tanh(w @ h + x)
        hs.append(h)
    return np.sum(hs[-1] ** 2) + np.sum(hs[0] * hs[1]) + np.sum(hs[-2])


def f_list_literal_then_index(x):
    ys = [x, x * 2, np.sin(x)]
    return np.sum(ys[0] * ys[2]) + np.sum(ys[-2])


def f_list_element_assignment(x):
    ys = [x, x, x]
    ys[1] = np.sin(ys[0])
    ys[2] = ys[1] * ys[0]
    ys[0] = 3.0 * ys[2]
    return np.sum(ys[0]) + np.sum(ys[1] * ys[2])


def f_list_assign_in_loop(x):
    buf = [x, x]
    for i in range(4):
        buf[i % 2] = np.tanh(buf[0] + buf[1])
    return np.sum(buf[0] - 2 * buf[1])


def test_lists():
    r = np.random.default_rng(4)
    w = r.standard_normal((2, 2))
    xs = [r.standard_normal(2) for _ in range(3)]
    check_grad(f_list_append_and_index, [w, xs], wrt=(0, 1))
    check_grad(f_list_literal_then_index, [r.standard_normal(3)])
    check_grad(f_list_element_assignment, [r.standard_normal(3)])
    check_grad(f_list_assign_in_loop, [r.standard_normal(3)])


# ------------------------------------------------ a state list mutated by f

def cell(param, state, index, x):
    h, c = state[index], state[index + 1]
    c = np.tanh(param[0] @ x + param[1] @ h) + 0.5 * c
    h = np.tanh(c) * 0.9
    return h, c


def f_state_mutation(param, state, seq):
    total = 0.0
    for x in seq:
        state[0], state[1] = cell(param, state, 0, x)
        total += np.sum(state[0] * x)
    return total


def f_state_mutation_two_layers(param, state, seq):
    total = 0.0
    for x in seq:
        state[0], state[1] = cell(param[0], state, 0, x)
        state[2], state[3] = cell(param[1], state, 2, state[0])
        total = total + np.sum(state[2] ** 2)
    return total


def state_problem(layers=1):
    r = np.random.default_rng(9)
    param = [[r.standard_normal((2, 2)) * 0.7, r.standard_normal((2, 2)) * 0.7]
             for _ in range(layers)]
    if layers == 1:
        param = param[0]
    state = [r.standard_normal(2) * 0.1 for _ in range(2 * layers)]
    seq = [r.standard_normal(2) for _ in range(3)]
    return param, state, seq


def test_state_list_mutated_by_f_gradients():
    param, state, seq = state_problem()
    check_grad(f_state_mutation, [param, state, seq], wrt=(0, 1, 2))
    param, state, seq = state_problem(2)
    check_grad(f_state_mutation_two_layers, [param, state, seq], wrt=(0, 1))


def test_state_list_mutated_exactly_as_f_does():
    param, state, seq = state_problem()
    expected = copy.deepcopy(state)
    value = f_state_mutation(param, expected, seq)
    got = copy.deepcopy(state)
    v, _ = kt.value_and_grad(f_state_mutation)(param, got, seq)
    assert np.isclose(v, value)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    # a second call continues from the mutated state, as f would
    v2 = kt.value_and_grad(f_state_mutation)(param, got, seq)[0]
    assert np.isclose(v2, f_state_mutation(param, expected, seq))


# ------------------------------------------------------------- dicts, nesting

def f_dict_param(w, x):
    return np.sum(np.tanh(w['W'] @ x + w['b']) ** 2)


def f_nested_structure(model, x):
    for W, b in model['layers']:
        x = np.tanh(W @ x + b)
    return np.sum(x * model['out']['scale']) + np.sum(model['out']['bias'] * x)


def f_float_leaves(p, x):
    a, b = p
    return np.sum(np.sin(a * x + b)) + a * b


def f_float_param(s, x):
    return np.sum(np.exp(s * x))


def test_dict_parameters():
    r = np.random.default_rng(11)
    w = {'W': r.standard_normal((2, 3)), 'b': r.standard_normal((2, 1))}
    check_grad(f_dict_param, [w, r.standard_normal((3, 4))], wrt=(0, 1))


def test_nested_structure_with_float_leaf():
    r = np.random.default_rng(12)
    model = {'layers': [(r.standard_normal((3, 2)), r.standard_normal(3)),
                        (r.standard_normal((2, 3)), r.standard_normal(2))],
             'out': {'scale': r.standard_normal(2), 'bias': 0.3}}
    g = check_grad(f_nested_structure, [model, r.standard_normal(2)])
    assert isinstance(g['layers'][0], tuple)
    assert isinstance(g['out']['bias'], float)


def test_float_leaves_and_float_parameter():
    g = check_grad(f_float_leaves, [[0.7, -0.2], rnd(3)], wrt=(0, 1))
    assert isinstance(g[0][0], float) and isinstance(g[0][1], float)
    g = check_grad(f_float_param, [0.3, rnd(3)])
    assert isinstance(g, float)


# ------------------------------------------------------- augmented assignment

def f_augmented(x, y):
    z = x * 1.0
    z += y
    z *= x
    z -= np.sin(y)
    z /= 2.0 + x * x
    z **= 2
    s = np.sum(z)
    s += np.sum(x @ y)
    return s


def test_augmented_assignment():
    check_grad(f_augmented, [rnd(3), rnd(3, seed=1)], wrt=(0, 1))


def f_augmented_on_param(x):
    x += 1.0
    x *= np.sin(x)
    return np.sum(x)


def test_augmented_on_parameter():
    """``x += 1`` on the differentiated array changes the caller's array in
    place: refused with the line, never a gradient of something else."""
    with pytest.raises(kt.TransformError, match="in-place operator") as info:
        kt.grad(f_augmented_on_param)(rnd(3))
    assert info.value.line == "x += 1.0"


# ------------------------------------------------------------------------ wrt

def f_three(a, b, c):
    return np.sum(a * np.sin(b) + c ** 2 * a)


def test_wrt_forms():
    a, b, c = rnd(3), rnd(3, seed=1), rnd(3, seed=2)
    ga = check_grad(f_three, [a, b, c])
    gb = check_grad(f_three, [a, b, c], wrt=1)
    gac = check_grad(f_three, [a, b, c], wrt=(0, 2))
    assert isinstance(gac, tuple) and len(gac) == 2
    np.testing.assert_allclose(gac[0], ga)
    np.testing.assert_allclose(gb, a * np.cos(b))
    np.testing.assert_allclose(gac[1], 2 * c * a)
    (g1,) = kt.grad(f_three, wrt=(1,))(a, b, c)
    np.testing.assert_allclose(g1, gb)


def test_keyword_arguments_in_call():
    a, b, c = rnd(3), rnd(3, seed=1), rnd(3, seed=2)
    np.testing.assert_allclose(kt.grad(f_three, wrt=2)(a, c=c, b=b), 2 * c * a)


def test_value_and_grad():
    a, b, c = rnd(3), rnd(3, seed=1), rnd(3, seed=2)
    v, g = kt.value_and_grad(f_three)(a, b, c)
    assert v == pytest.approx(f_three(a, b, c))
    np.testing.assert_allclose(g, kt.grad(f_three)(a, b, c))
    v, (ga, gc) = kt.value_and_grad(f_three, wrt=(0, 2))(a, b, c)
    assert v == pytest.approx(f_three(a, b, c))
    np.testing.assert_allclose(gc, 2 * c * a)


def test_decorator_forms():
    @kt.grad
    def d_plain(x, y):
        return np.sum(x * y * y)

    @kt.grad(wrt=1)
    def d_wrt1(x, y):
        return np.sum(x * y * y)

    @kt.value_and_grad
    def vg(x, y):
        return np.sum(x * y * y)

    x, y = rnd(3), rnd(3, seed=1)
    np.testing.assert_allclose(d_plain(x, y), y * y)
    np.testing.assert_allclose(d_wrt1(x, y), 2 * x * y)
    v, g = vg(x, y)
    assert v == pytest.approx(np.sum(x * y * y))
    np.testing.assert_allclose(g, y * y)


# ------------------------------------------------------------ source, verbose

def f_for_source(w, x):
    h = np.tanh(w @ x)
    return np.sum(h * h)


def test_source_is_compilable_python():
    g = kt.grad(f_for_source)
    text = kt.source(g)
    assert isinstance(text, str) and "def " in text
    compile(text, "<generated>", "exec")
    assert kt.source(kt.grad(f_for_source)) == text
    with pytest.raises(TypeError):
        kt.source(f_for_source)


def test_verbose_prints_source(capsys):
    g = kt.grad(f_for_source, verbose=True)
    printed = capsys.readouterr().out
    assert "def " in printed
    assert kt.source(g).strip() in printed
    np.testing.assert_allclose(g(rnd(2, 2), rnd(2)), kt.grad(f_for_source)(rnd(2, 2), rnd(2)))


# ------------------------------------------------------------------------ cache

def f_cached(w, x):
    h = w @ x
    for i in range(3):
        h = np.tanh(h) * 1.1 + np.sin(h)
    return np.sum(h ** 2)


def test_cache_second_grad_is_fast_and_same():
    w, x = rnd(3, 3), rnd(3)
    t0 = time.perf_counter()
    g1 = kt.grad(f_cached)
    r1 = g1(w, x)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    g2 = kt.grad(f_cached)
    r2 = g2(w, x)
    second = time.perf_counter() - t0
    np.testing.assert_array_equal(r1, r2)
    assert kt.source(g1) == kt.source(g2)
    # the transformation is not redone: the second is much cheaper than a compile
    assert second < max(first / 3, 0.005), (first, second)


def test_redefined_function_gets_new_gradient():
    ns = define("def loss(x):\n    return np.sum(x ** 2)\n")
    x = rnd(3)
    g_old = kt.grad(ns["loss"])
    np.testing.assert_allclose(g_old(x), 2 * x)
    define("def loss(x):\n    return np.sum(x ** 3)\n", ns)
    np.testing.assert_allclose(kt.grad(ns["loss"])(x), 3 * x ** 2)
    # the old gradient function still differentiates the old function
    np.testing.assert_allclose(g_old(x), 2 * x)


def test_redefined_function_same_code_location():
    # same file and line, different body: must not reuse the old transform
    a = define("def loss(x):\n    return np.sum(np.sin(x))\n", name="loss")
    b = define("def loss(x):\n    return np.sum(np.cos(x))\n", name="loss")
    x = rnd(3)
    np.testing.assert_allclose(kt.grad(a)(x), np.cos(x))
    np.testing.assert_allclose(kt.grad(b)(x), -np.sin(x))


def test_redefined_helper_is_noticed():
    ns = define("def helper(x):\n    return x * 2.0\n\n"
                "def loss(x):\n    return np.sum(helper(x) ** 2)\n")
    x = rnd(3)
    g = kt.grad(ns["loss"])
    np.testing.assert_allclose(g(x), 8 * x)
    define("def helper(x):\n    return x * 3.0\n", ns)
    np.testing.assert_allclose(kt.grad(ns["loss"])(x), 18 * x)
    np.testing.assert_allclose(g(x), 18 * x)  # same loss object, helper changed


def test_redefined_global_primitive_is_noticed():
    ns = define("act = np.tanh\n\ndef loss(x):\n    return np.sum(act(x))\n")
    x = rnd(3)
    np.testing.assert_allclose(kt.grad(ns["loss"])(x), 1 - np.tanh(x) ** 2)
    ns["act"] = np.sin
    np.testing.assert_allclose(kt.grad(ns["loss"])(x), np.cos(x))


# ------------------------------------------------------------- zeros, errors

def f_uses_some(w, x):
    return np.sum(w[0] * x) + np.sum(w[2]['a'] * x)


def test_unused_leaves_get_zeros():
    w = [rnd(3), rnd(2, 2, seed=1), {'a': 0.5, 'b': rnd(2, seed=2), 'c': 1.5},
         (rnd(1, seed=3), 2.5)]
    g = check_grad(f_uses_some, [w, rnd(3, seed=4)])
    np.testing.assert_array_equal(g[1], np.zeros((2, 2)))
    np.testing.assert_array_equal(g[2]['b'], np.zeros(2))
    assert g[2]['c'] == 0.0 and g[3][1] == 0.0
    np.testing.assert_array_equal(g[3][0], np.zeros(1))
    assert g[2]['a'] == pytest.approx(np.sum(rnd(3, seed=4)))


def f_ignores_param(w, x):
    return np.sum(x ** 2)


def test_parameter_not_used_at_all():
    w = [rnd(2), {'k': rnd(1)}, 3.0]
    g = kt.grad(f_ignores_param)(w, rnd(2))
    np.testing.assert_array_equal(g[0], 0)
    np.testing.assert_array_equal(g[1]['k'], 0)
    assert g[2] == 0.0 and isinstance(g[2], float)


def f_vector_output(x):
    return x * 2


def f_tuple_output(x):
    return np.sum(x), np.sum(x)


def test_non_scalar_output_raises():
    with pytest.raises(TypeError, match="scalar"):
        kt.grad(f_vector_output)(rnd(3))
    with pytest.raises(TypeError, match="scalar"):
        kt.grad(f_tuple_output)(rnd(3))


def test_grad_of_non_function_raises():
    with pytest.raises(TypeError):
        kt.grad(3)


def f_reads_everything(w, x, ys):
    h = np.tanh(w['W'] @ x + w['b'])
    total = 0.0
    for y in ys:
        total = total + np.sum((h - y) ** 2)
    return total


def test_arguments_are_not_mutated():
    r = np.random.default_rng(13)
    w = {'W': r.standard_normal((2, 3)), 'b': r.standard_normal(2)}
    x, ys = r.standard_normal(3), [r.standard_normal(2), r.standard_normal(2)]
    before = copy.deepcopy((w, x, ys))
    kt.grad(f_reads_everything, wrt=(0, 1, 2))(w, x, ys)
    kt.value_and_grad(f_reads_everything)(w, x, ys)
    after = (w, x, ys)
    np.testing.assert_array_equal(after[0]['W'], before[0]['W'])
    np.testing.assert_array_equal(after[0]['b'], before[0]['b'])
    np.testing.assert_array_equal(after[1], before[1])
    assert len(after[2]) == 2
    for a, b in zip(after[2], before[2]):
        np.testing.assert_array_equal(a, b)


def test_gradient_does_not_alias_parameter():
    x = rnd(3)
    g = kt.grad(f_vector_sum_identity)(x)
    g += 1.0
    np.testing.assert_array_equal(x, rnd(3))
    g2 = kt.grad(f_vector_sum_identity)(x)
    np.testing.assert_array_equal(g2, np.ones(3))
    assert g2.flags.writeable


def f_vector_sum_identity(x):
    return np.sum(x)


# ------------------------------------------ lists read while they are growing

def f_rnn_read_last_while_appending(w, x):
    hs = [x]
    for i in range(3):
        hs.append(np.tanh(w @ hs[-1]))
    return np.sum(hs[-1])


def f_rnn_read_index_while_appending(w, x):
    hs = [x]
    for i in range(3):
        h = np.tanh(w @ hs[i])
        hs.append(h)
    return np.sum(hs[-1])


def f_rnn_two_back(w, xs):
    hs = [np.zeros(2), np.zeros(2)]
    for x in xs:
        hs.append(np.tanh(w @ hs[-1] + x) + 0.5 * hs[-2])
    return np.sum(hs[-1] ** 2) + np.sum(hs[2] * hs[3])


@pytest.mark.parametrize("wrt", [0, 1, (0, 1)], ids=str)
def test_list_read_while_appending(wrt):
    r = np.random.default_rng(21)
    w, x = r.standard_normal((2, 2)), r.standard_normal(2)
    check_grad(f_rnn_read_last_while_appending, [w, x], wrt=wrt)
    check_grad(f_rnn_read_index_while_appending, [w, x], wrt=wrt)
    xs = [r.standard_normal(2) for _ in range(3)]
    check_grad(f_rnn_two_back, [w, xs], wrt=wrt)


# ---------------------------------------------- Python-float gradients

def f_float_times_constant(p):
    return p * 2.0


def f_float_in_dict(w, x):
    return np.sum(w['W'] @ x) + w['b'] * 3.0


def test_python_float_leaf_gradients():
    g = check_grad(f_float_times_constant, [0.5])
    assert isinstance(g, float) and g == pytest.approx(2.0)
    g = check_grad(f_float_in_dict, [{'W': rnd(2, 2), 'b': 0.5}, rnd(2, seed=1)])
    assert isinstance(g['b'], float) and g['b'] == pytest.approx(3.0)


# ---------------------------------------------- recursion with early returns

def power_early(x, n):
    if n == 0:
        return np.ones_like(x)
    return x * power_early(x, n - 1)


def f_power_early(x, n):
    return np.sum(power_early(x, n))


def tree_sum_early(t):
    if isinstance(t, (list, tuple)):
        total = 0.0
        for c in t:
            total = total + tree_sum_early(c)
        return total
    return np.sum(t ** 2)


def f_tree_sum_early(t):
    return tree_sum_early(t)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_recursion_with_early_return(n):
    x = rnd(3)
    g = check_grad(f_power_early, [x, n])
    np.testing.assert_allclose(g, n * x ** (n - 1) if n else 0 * x)
    r = np.random.default_rng(3)
    check_grad(f_tree_sum_early, [[r.standard_normal(2), [r.standard_normal(3)]]])


# ------------------------------------------- user names that generated code uses

def f_names_like_generated(saved, dout):
    stack = saved * 2
    unbroadcast = np.sin(stack) * dout
    sum_grad = np.sum(unbroadcast)
    getitem_grad = [sum_grad, saved]
    add = getitem_grad[0] + np.sum(getitem_grad[1])
    return add


def f_more_generated_names(x, dx):
    t1 = x * dx
    dt1 = t1 + 1
    count = 0
    item = np.sum(dt1 ** 2)
    for k in range(2):
        count += 1
        item = item * 1.1
    seq = [x, x * 2]
    seqlen = len(seq)
    position = np.sum(seq[0] * seq[1])
    return item + count + position * seqlen


def test_user_names_do_not_clash_with_generated_ones():
    check_grad(f_names_like_generated, [rnd(2), rnd(2, seed=1)], wrt=(0, 1))
    check_grad(f_more_generated_names, [rnd(2), rnd(2, seed=1)], wrt=(0, 1))


# ------------------------------------------------ keyword-only and default params

def f_keyword_only(w, x, *, lam=0.5):
    return np.sum((w @ x) ** 2) + lam * np.sum(w ** 2)


def f_positional_default(w, x, lam=0.5):
    return np.sum((w @ x) ** 2) + lam * np.sum(w ** 2)


def test_keyword_only_and_default_parameters():
    w, x = rnd(2, 2), rnd(2, seed=1)
    g = kt.grad(f_keyword_only)
    np.testing.assert_allclose(g(w, x, lam=2.0) - g(w, x), 3.0 * w)
    g = kt.grad(f_positional_default)
    np.testing.assert_allclose(g(w, x, 2.0) - g(w, x), 3.0 * w)
    assert kt.grad(f_keyword_only, wrt=2)(w, x, lam=2.0) == pytest.approx(np.sum(w ** 2))
    assert kt.grad(f_positional_default, wrt=2)(w, x) == pytest.approx(np.sum(w ** 2))


def f_view_then_augmented(x):
    z = x * 2.0
    y = z.T
    z += 1.0
    return np.sum(y * x.T)


def f_slice_then_augmented(x):
    z = x * 2.0
    y = z[0]
    z *= 3.0
    return np.sum(y)


@pytest.mark.parametrize("f", [f_view_then_augmented, f_slice_then_augmented])
def test_augmented_after_a_view_is_refused(f):
    """``z += v`` changes every view of ``z`` (NumPy's meaning): with a view taken
    it cannot be rewritten as ``z = z + v``, and is refused with its line."""
    with pytest.raises(kt.TransformError, match="in-place operator"):
        kt.grad(f)(rnd(2, 2))
