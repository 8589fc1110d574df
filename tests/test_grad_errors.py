"""kt.TransformError: what kt.grad refuses, pointing at the user's file and line."""

import inspect
import math

import functools

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad
from knet_st.transform.registry import primitives

THIS_FILE = __file__


def line_of(fn, text):
    """The file line number of the first line of ``fn``'s source containing ``text``."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(f"{text!r} not in the source of {fn.__name__}")


def expect_error(fn, marker, args=(), wrt=0, at_call=False):
    """Asserts that differentiating ``fn`` raises TransformError at the line of
    ``fn`` containing ``marker``; returns the error."""
    with pytest.raises(kt.TransformError) as info:
        kt.grad(fn, wrt=wrt)(*args)
    err = info.value
    assert err.filename == THIS_FILE, (err.filename, str(err))
    assert err.lineno == line_of(fn, marker), (err.lineno, str(err))
    text = inspect.getsourcelines(fn)[0][err.lineno - inspect.getsourcelines(fn)[1]].strip()
    assert text in str(err), str(err)
    assert f"{err.lineno}" in str(err)
    return err


X = np.array([0.3, -0.2, 0.5])


# --------------------------------------------------------------- statements

def f_try(x):
    y = x * 2
    try:  # <-
        y = np.sin(y)
    except ValueError:
        pass
    return np.sum(y)


def f_with(x):
    y = x * 2
    with np.errstate(all="ignore"):  # <-
        y = np.log(y)
    return np.sum(y)


def f_yield(x):
    y = x * 2
    yield np.sum(y)  # <-


counter = 0


def f_global(x):
    global counter  # <-
    counter = counter + 1
    return np.sum(x * 2)


def make_nonlocal():
    calls = 0

    def f_nonlocal(x):
        nonlocal calls  # <-
        calls += 1
        return np.sum(x * 2)

    return f_nonlocal


def f_lambda_inside(x):
    sq = lambda v: v * v  # noqa: E731   # <-
    return np.sum(sq(x))


def f_lambda_passed(x):
    return np.sum(np.apply_along_axis(lambda v: v * v, 0, x))  # <-


@pytest.mark.parametrize("fn,marker", [
    (f_yield, "yield np.sum"), (f_lambda_passed, "lambda v"),
], ids=["yield", "lambda-passed"])
def test_refused_statements(fn, marker):
    expect_error(fn, marker, (X,))


@pytest.mark.parametrize("fn", [f_with, f_lambda_inside, f_global, make_nonlocal(), f_try],
                         ids=["with", "named-lambda", "global", "nonlocal", "try"])
def test_formerly_refused_statements(fn):
    check_grad(fn, [np.abs(X) + 0.5])


def test_refused_statement_message_names_the_construct():
    assert "yield" in str(expect_error(f_yield, "yield np.sum", (X,))) or \
        "generator" in str(expect_error(f_yield, "yield np.sum", (X,)))


def test_global_write_is_performed_once():
    before = counter
    kt.grad(f_global)(X)
    assert counter == before + 1


def test_lambda_passed_to_grad():
    g = lambda x: np.sum(x * x)  # noqa: E731
    assert np.allclose(kt.grad(g)(X), 2 * X)


# ---------------------------------------------------------- in-place writes

def f_inplace(x):
    y = x * 1.0
    x[0] = 1.0  # <-
    return np.sum(x * y)


def f_inplace_on_derived(x):
    y = np.sin(x)
    y[1] = 0.0  # <-
    return np.sum(y)


def f_inplace_store_active(x, buf):
    buf[0] = np.sum(x)  # <-
    return np.sum(buf * x)


def test_inplace_write_into_active_parameter():
    err = expect_error(f_inplace, "x[0] = 1.0", (X.copy(),))
    assert "in-place" in str(err)


def test_inplace_write_into_a_new_array_is_differentiated():
    # y is an array for certain (np.sin makes one): the write stays in place
    check_grad(f_inplace_on_derived, [X.copy()])


def test_inplace_write_of_active_value_into_array():
    expect_error(f_inplace_store_active, "buf[0] = np.sum(x)", (X.copy(), np.zeros(3)))


def f_inplace_inactive(x, buf):
    buf = buf.copy()
    buf[0] = 2.0
    return np.sum(buf * x)


def test_inplace_write_into_inactive_array_is_fine():
    check_grad(f_inplace_inactive, [X, np.ones(3)])


# --------------------------------------------------------- no adjoint rule

def f_math_erf(x):
    s = np.sum(x)
    return math.erf(s)  # <-


def f_fft(x):
    y = np.fft.fft(x)  # <-
    return np.sum(np.abs(y))


def f_cumprod_method(x):
    y = x.cumprod()  # <-
    return np.sum(y)


def f_unknown_user_c_function(x):
    return np.sum(np.frompyfunc(math.sin, 1, 1)(x))  # <-


@pytest.mark.parametrize("fn,marker", [(f_math_erf, "math.erf"), (f_fft, "np.fft.fft"),
                                       (f_cumprod_method, "x.cumprod()")],
                         ids=["math.erf", "np.fft.fft", "cumprod-method"])
def test_no_rule_on_active_value(fn, marker):
    err = expect_error(fn, marker, (X,))
    assert "gradient" in str(err)


def f_math_on_inactive(x, c):
    return np.sum(x) * math.erf(c) + np.sum(np.abs(np.fft.fft(np.ones(3))))


def test_no_rule_on_inactive_value_is_fine():
    check_grad(f_math_on_inactive, [X, 0.3])


def f_det(a):
    return np.linalg.det(a)  # <-


def f_cumsum_method(x):
    y = x.cumsum()  # <-
    return np.sum(y * y)


def test_det_has_rule_or_is_refused():
    a = np.array([[1.0, 0.3], [0.2, 0.8]])
    if np.linalg.det in primitives():
        g = check_grad(f_det, [a])
        np.testing.assert_allclose(g, np.linalg.det(a) * np.linalg.inv(a).T)
    else:
        expect_error(f_det, "np.linalg.det", (a,))


def test_cumsum_method_has_rule_or_is_refused():
    try:
        kt.grad(f_cumsum_method)(X)
    except kt.TransformError:
        expect_error(f_cumsum_method, "x.cumsum()", (X,))
    else:
        check_grad(f_cumsum_method, [X])


# --------------------------------------------------- errors inside helpers

def helper_with_class(x):
    class Local:  # <-
        pass
    return x * 2


def f_calls_bad_helper(x):
    return np.sum(helper_with_class(x))


def test_error_points_into_the_helper():
    with pytest.raises(kt.TransformError) as info:
        kt.grad(f_calls_bad_helper)(X)
    assert info.value.filename == THIS_FILE
    assert info.value.lineno == line_of(helper_with_class, "class Local:")


def f_undefined_name(x):
    return np.sum(x * no_such_name)  # noqa: F821   # <-


def test_undefined_name():
    with pytest.raises((kt.TransformError, NameError)) as info:
        kt.grad(f_undefined_name)(X)
    if isinstance(info.value, kt.TransformError):
        assert info.value.lineno == line_of(f_undefined_name, "no_such_name")


def f_star_kwargs(x, **kw):
    return np.sum(x * kw["a"])


def test_star_kwargs_of_a_partial_refused():
    with pytest.raises(kt.TransformError, match="named parameters") as info:
        kt.grad(functools.partial(f_star_kwargs, a=2.0))(X)
    assert info.value.filename == THIS_FILE
    assert info.value.lineno == line_of(f_star_kwargs, "def f_star_kwargs")


def test_transform_error_is_an_exception_with_attributes():
    err = kt.TransformError("msg", "file.py", 3, "x = 1")
    assert isinstance(err, Exception)
    assert err.filename == "file.py" and err.lineno == 3
    assert "file.py:3" in str(err) and "x = 1" in str(err)


def f_aug_into_element(x):
    y = x * 2
    y[0] += 1.0  # <-
    return np.sum(y)


def f_attribute_without_rule(x):
    y = x.real  # <-
    return np.sum(y)


def f_method_in_place(x):
    y = x * 2
    y.sort()  # <-
    return np.sum(y)


@pytest.mark.parametrize("fn,marker", [(f_attribute_without_rule, "x.real"),
                                       (f_method_in_place, "y.sort()")],
                         ids=["attribute", "sort-method"])
def test_more_refusals(fn, marker):
    expect_error(fn, marker, (X.copy(),))


def test_augmented_assignment_into_an_element():
    check_grad(f_aug_into_element, [X.copy()])
