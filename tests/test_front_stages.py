"""The front end's rewriting stages alone, on small trees: desugar (with
handlers and patterns), scopes and dispatch.  Each takes a tree and gives
one in the supported subset; the gradients of the same constructs are
checked in test_grad_sugar.py."""

import ast
import re
import textwrap

import numpy as np
import pytest

from knet_st.errors import TransformError
from knet_st.transform.desugar import desugar
from knet_st.transform.dispatch import dispatch_calls
from knet_st.transform.facts import fact
from knet_st.transform.names import Names
from knet_st.transform.normalize import normalize
from knet_st.transform.parse import Source
from knet_st.transform.scopes import imported, outer_names
from knet_st.transform.facts import set_fact
from knet_st.transform.resolve import Target
from knet_st.transform.varargs import pack_arguments, spread_parameters


def parsed(text):
    text = textwrap.dedent(text)
    return ast.parse(text).body[0], Source("<test>", 1, text.splitlines(True))


def kinds(func):
    return {type(n).__name__ for n in ast.walk(func)}


def test_desugar_leaves_the_supported_subset():
    func, source = parsed("""\
        def f(x, xs):
            y = list(map(lambda v: v * 2, xs))
            del y
            for i in range(3):
                if i > x:
                    break
            else:
                x = x + 1
            with open_ctx() as c:
                try:
                    z = g(x)
                except (KeyError, ValueError) as e:
                    z = 0
                finally:
                    done = 1
            return z
        """)
    desugar(func, source, frozenset({"map"}))
    left = kinds(func)
    assert not left & {"Lambda", "Delete", "With", "ExceptHandler"}
    assert "Try" not in left                  # no early exit: body then final part
    assert all(not isinstance(n, (ast.For, ast.While)) or not n.orelse for n in ast.walk(func))
    defs = [n.name for n in ast.walk(func) if isinstance(n, ast.FunctionDef)]
    assert "lambda1" in defs and "try1" in defs


def test_desugar_keeps_a_try_for_early_exits():
    func, source = parsed("""\
        def f(x):
            with ctx():
                return x
        """)
    desugar(func, source)
    tries = [n for n in ast.walk(func) if isinstance(n, ast.Try)]
    assert len(tries) == 1 and not tries[0].handlers and tries[0].finalbody


def test_except_guard_and_refusals():
    func, source = parsed("""\
        def f(x):
            try:
                y = g(x)
            except ValueError:
                y = x
            return y
        """)
    desugar(func, source)
    guards = [n for n in ast.walk(func) if isinstance(n, ast.Name) and
              fact(n, "guard", None) is not None]
    assert len(guards) == 1
    bad, source = parsed("""\
        def f(x, hs):
            try:
                hs.append(x)
            except ValueError:
                pass
        """)
    with pytest.raises(TransformError, match="in-place changes"):
        desugar(bad, source)


def test_match_becomes_ifs():
    func, source = parsed("""\
        def f(x, k):
            match k:
                case 1 | 2:
                    x = x * 2
                case [a, b] if a:
                    x = x * b
                case _:
                    pass
            return x
        """)
    desugar(func, source)
    assert "Match" not in kinds(func) and "If" in kinds(func)
    namespace = {}
    exec(compile(ast.fix_missing_locations(ast.Module(body=[func], type_ignores=[])),
                 "<test>", "exec"), namespace)
    f = namespace["f"]
    assert (f(1.0, 2), f(1.0, [True, 3.0]), f(1.0, [0, 3.0]), f(1.0, "z")) == \
        (2.0, 3.0, 1.0, 1.0)


def test_scopes_cells_globals_and_imports():
    func, source = parsed("""\
        def f(x):
            global count
            import numpy as onp
            total = 0
            def add(v):
                nonlocal total
                total = total + v
            add(x)
            count = count + 1
            return onp.sum(x) + total
        """)
    outer_names(func, source)
    text = ast.unparse(func)
    assert "total_cell[0]" in text and "module_globals['count']" in text
    assert "import" not in text and "nonlocal" not in text and "global " not in text
    space = {"count": 0}
    found = imported(func, space, {})
    assert found["onp"] is np and found["module_globals"] is space


def test_dispatch_tests_which_function_a_variable_holds():
    func, source = parsed("""\
        def f(x, deep):
            act = np.tanh if deep else relu
            y = act(x)
            z = apply(act, x)
            return y + z
        """)
    names = Names.of(func)
    normalize(func, names, source)
    dispatch_calls(func, names)
    calls = [ast.unparse(n.func) for n in ast.walk(func) if isinstance(n, ast.Call)]
    assert {"np.tanh", "relu"} <= set(calls) and "act" not in calls
    applied = [n for n in ast.walk(func) if isinstance(n, ast.Call) and
               ast.unparse(n.func) == "apply"]
    assert sorted(ast.unparse(n.args[0]) for n in applied) == ["np.tanh", "relu"]


def test_spread_parameters_names_each_value_of_the_call():
    func, _ = parsed("""\
        def f(w, *xs, power=2, xs_0=1.0, **opts):
            opts_0 = xs
            return opts
        """)
    spread_parameters(func, 2, ("b", "a-b"))
    args = func.args
    assert [a.arg for a in args.args] == ["w", "xs_0_", "xs_1"]
    assert [a.arg for a in args.kwonlyargs] == ["power", "xs_0", "opts_0_", "opts_1"]
    assert args.vararg is None and args.kwarg is None
    assert [ast.unparse(s) for s in func.body[:2]] == [
        "xs = (xs_0_, xs_1)", "opts = {'b': opts_0_, 'a-b': opts_1}"]
    func, _ = parsed("""\
        def f(w, **opts):
            return opts
        """)
    spread_parameters(func, None, ())
    assert ast.unparse(func.body[0]) == "opts = {}" and not func.args.kwonlyargs


def test_varargs_spreads_a_star_given_to_a_primitive_by_its_count():
    func, source = parsed("""\
        def f(w, xs):
            y = np.add(w, *xs)
            z = np.sum(*xs, keepdims=True)
            return y
        """)
    calls = [n for n in ast.walk(func) if isinstance(n, ast.Call)]
    set_fact(calls[0], "target", Target("primitive", np.add, "np.add"))
    set_fact(calls[1], "target", Target("primitive", np.sum, "np.sum"))
    pack_arguments(func, Names.of(func), source)
    text = ast.unparse(func)
    assert not any(isinstance(n, ast.Starred) for n in ast.walk(func))
    assert "y = np.add(w, item)" in text and "star_count_refused(count, 'np.add', (1,))" in text
    # the rule sum(dy, y, a, axis=None, keepdims=False), keepdims given: 1 or 2 values
    assert re.search(r"np\.sum\(item\d+, keepdims=True\)", text)
    assert re.search(r"np\.sum\(item\d+, item\d+, keepdims=True\)", text)
    assert "star_count_refused(count2, 'np.sum', (1, 2))" in text
    assert text.count("= count2 ==") == 2


def test_desugar_writes_out_the_functions_given_to_sorted_max_and_reduce():
    func, source = parsed("""\
        def f(xs, w):
            key = lambda v: v * w
            a = sorted(xs, key=key, reverse=True)
            b = max(xs[0], xs[1], key=np.sum)
            c = functools.reduce(key2, xs, 0.0) if w else reduce(key2, xs)
            d = [sorted(xs, key=k) for k in ks]          # the key: a comprehension's
            e = sorted(xs, key=make(2))                  # the key: a call
            return a, b, c, d, e
        """)
    desugar(func, source, frozenset({"sorted", "max", "functools.reduce"}))
    text = ast.unparse(func)
    defs = {n.name: n for n in func.body if isinstance(n, ast.FunctionDef)}
    assert {"sorted1", "max1", "reduce1"} <= set(defs)
    assert "a = sorted1(xs, True)" in text and "b = max1([xs[0], xs[1]])" in text
    assert "reduce1(xs, 0.0) if w else reduce(key2, xs)" in text   # reduce: not functools'
    assert "sorted(xs, key=k)" in text and "sorted(xs, key=make(2))" in text
    helpers = [fact(n, "runtime") for n in ast.walk(func)
               if isinstance(n, ast.Call) and fact(n, "runtime", None)]
    assert sorted(helpers) == ["extreme_position", "sort_order"]
    loops = [n for n in ast.walk(defs["reduce1"]) if isinstance(n, ast.For)]
    assert len(loops) == 1 and "key2(acc" in ast.unparse(loops[0])


def test_varargs_spreads_a_read_only_dict_given_by_two_stars():
    func, source = parsed("""\
        def f(w, opts):
            d = {'axis': 0}
            e = {'axis': 1}
            e['keepdims'] = True
            y = np.sum(w, **d)
            z = np.sum(w, **e)
            return y + d['axis']
        """)
    calls = [n for n in ast.walk(func) if isinstance(n, ast.Call)]
    for call in calls:
        set_fact(call, "target", Target("primitive", np.sum, "np.sum"))
    with pytest.raises(TransformError, match="arguments of np.sum"):
        pack_arguments(func, Names.of(func), source)     # e changes: its keys are unknown
    assert "y = np.sum(w, axis=axis" in ast.unparse(func)
