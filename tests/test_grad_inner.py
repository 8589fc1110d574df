"""``kt.grad`` of a function defined inside the differentiated function (a
gradient penalty, MAML's inner step), differentiated in turn, against float64
central differences."""

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

rng = np.random.default_rng(3)


def rnd(*shape):
    return rng.standard_normal(shape)


def penalty(w, x):
    def critic(v):
        return np.sum(np.tanh(w * v))
    g = kt.grad(critic)(x)
    return np.sum(g ** 2) + np.sum(w * x)


def maml(w, xs, ys, x, y):
    def inner(v):
        return np.sum((v @ xs - ys) ** 2)
    for _ in range(2):                      # two inner steps, in a loop
        w = w - 0.05 * kt.grad(inner)(w)
    return np.sum((w @ x - y) ** 2)


def several(w, b, x):
    scale = 2.0

    def f(v, u):
        h = np.tanh(w @ v + b) * u
        return np.sum(h * h) * scale

    gv, gu = kt.grad(f, wrt=(0, 1))(x, 1.5)
    value, gx = kt.value_and_grad(f)(x * 2.0, 0.5)
    return np.sum(gv * x) + gu * value + np.sum(np.sin(gx))


def no_enclosing(w):
    def f(v):
        return np.sum(np.exp(v) * 0.5)
    return np.sum(kt.grad(f)(w) * w)


def test_gradient_penalty():
    check_grad(penalty, (rnd(3), rnd(3)), wrt=(0, 1))


def test_inner_steps_as_maml_takes_them():
    args = (rnd(2, 3), rnd(3, 4), rnd(2, 4), rnd(3, 5), rnd(2, 5))
    check_grad(maml, args, wrt=(0, 1, 3))


def test_several_positions_value_and_grad_and_enclosing_values():
    check_grad(several, (rnd(3, 3), rnd(3), rnd(3)), wrt=(0, 1, 2))


def test_a_function_reading_nothing_of_its_parent():
    check_grad(no_enclosing, (rnd(4),))


def passed_on(w, x):
    def f(v):
        return np.sum(w * v)
    g = kt.grad(f)
    return np.sum(apply(g, x))


def apply(g, x):
    return g(x)


def test_a_gradient_of_an_inner_function_passed_on_is_refused_at_its_line():
    with pytest.raises(kt.TransformError, match="may only be called here") as info:
        kt.grad(passed_on)(rnd(3), rnd(3))
    assert info.value.lineno == passed_on.__code__.co_firstlineno + 3


def sibling(w, x):
    def a(v):
        return np.tanh(v * w)

    def b(v):
        return np.sum(a(v) ** 2)
    return np.sum(kt.grad(b)(x) * w)


def counted(w, x):
    n = 0

    def f(v):
        nonlocal n
        n += 1
        return np.sum(v * w)
    g = kt.grad(f)(x)
    g = g + kt.grad(f)(x * 2.0)
    return np.sum(g * x) * n


@pytest.mark.parametrize("mode", ["on", "off"])
def test_calling_other_inner_functions_and_nonlocal_counters(monkeypatch, mode):
    # not in the suite's test-only KNET_ST_SPECIALIZE=first, whose first call
    # of each gradient also runs it on copies of its arguments: a counter of
    # the enclosing function that the inner function bumps then counts wrong
    from knet_st import api
    monkeypatch.setattr(api, "_MODE", mode)
    check_grad(sibling, (rnd(3), rnd(3)), wrt=(0, 1))
    check_grad(counted, (rnd(3), rnd(3)), wrt=(0, 1))


def reads_a_list_grown_later(w, x):
    hs = [w]

    def f(v):
        return np.sum(v * hs[-1])
    g1 = kt.grad(f)(x)
    hs.append(w * 2.0)
    g2 = kt.grad(f)(x)
    return np.sum(g1 * g2) + np.sum(g1 * hs[-1])


def reads_a_dict_changed_later(w, x):
    d = {"a": w}

    def f(v):
        return np.sum(np.tanh(v * d["a"]))
    g1 = kt.grad(f)(x)
    d["a"] = w * 2.0
    return np.sum(g1 * kt.grad(f)(x))


@pytest.mark.parametrize("fn", [reads_a_list_grown_later, reads_a_dict_changed_later])
def test_the_gradient_of_an_inner_function_reading_a_list_changed_later(fn):
    # the gradient's adjoint ran f again on the list as it was at the end
    # (grown): the first call's second-order part went to the later element
    check_grad(fn, (rnd(3), rnd(3)), wrt=(0, 1))


def gradient_loops_over_a_list(w, xs):
    def f(vs, u):
        s = 0.0
        for v in vs:
            s = s + np.sum(np.tanh(v * u))
        return s
    gvs, gu = kt.grad(f, wrt=(0, 1))(xs, w)
    return np.sum(np.stack(gvs) ** 2) + np.sum(gu ** 2)


def gradient_sums_a_list(w, xs):
    def f(u):
        return sum(np.sum(np.tanh(v * u)) for v in xs)
    return np.sum(kt.grad(f)(w) ** 2)


@pytest.mark.parametrize("fn", [gradient_loops_over_a_list, gradient_sums_a_list])
def test_the_gradient_of_an_inner_function_looping_over_a_list(fn):
    check_grad(fn, (rnd(3), [rnd(3), rnd(3)]), wrt=(0, 1))


def gradient_inside_another_inner_function(w, x):
    def f(v):
        return np.sum(np.sin(v * w) * v)

    def gf(v):                      # reads w only through f
        return kt.grad(f)(v)
    return np.sum(gf(x) * w)


def test_an_inner_function_taking_the_gradient_of_another_gets_its_variables():
    # was refused as "name 'w' is not defined": gf's enclosing variables did
    # not include those of the function it names in kt.grad(f)
    check_grad(gradient_inside_another_inner_function, (rnd(3), rnd(3)), wrt=(0, 1))


def gradient_of_a_gradient_inside(w, x):
    def f(v):
        return np.sin(v * w) * v

    def gf(v):
        return kt.grad(f)(v)
    return kt.grad(gf)(x)


def test_the_gradient_of_an_inner_function_that_takes_a_gradient_is_refused_plainly():
    # was "name 'w' is not defined", then "forward mode cannot call a function
    # with *args or **kwargs"
    with pytest.raises(kt.TransformError, match="a second time") as info:
        kt.grad(gradient_of_a_gradient_inside)(1.3, 0.7)
    assert "test_grad_inner.py" in str(info.value)
