"""Each stage of the compiler on small trees, alone: facts, effects, the
in-place pass, bindings, optimize, the registry's declared properties and
the pipeline's front end."""

import ast
import textwrap

import numpy as np
import pytest

from knet_st.transform import adjoints  # noqa: F401  (registers the rules)
from knet_st.transform.bindings import assignment_sites, bindings_of
from knet_st.transform.context import Context
from knet_st.transform.effects import function_effects, mutated_parameters, points_to, \
    statement_effect
from knet_st.transform.facts import fact, has_fact, set_fact
from knet_st.transform.inplace import lower_out, snapshot_reads
from knet_st.transform.names import Names
from knet_st.transform.normalize import normalize
from knet_st.transform.operands import ARRAY, NUMBER, UNKNOWN, lower_ambiguous, operand_kinds
from knet_st.transform.optimize import hoist_checks, propagate_copies
from knet_st.transform.parse import Source
from knet_st.transform.pipeline import front_end
from knet_st.transform.registry import is_mutating_method, mutated_argument, rule_for
from knet_st.transform.resolve import Environment, resolve_calls
from knet_st.errors import TransformError


def tree_of(text, env=None):
    """A normalized, resolved function tree from source text."""
    text = textwrap.dedent(text)
    func = ast.parse(text).body[0]
    source = Source("<test>", 1, text.splitlines(True))
    names = Names.of(func)
    normalize(func, names, source)
    resolve_calls(func, Environment(dict(env or {"np": np})), {}, source)
    return func, source, names


def no_callees(call):
    return set()


# ---- facts -------------------------------------------------------------------

def test_facts_are_declared_and_typed():
    call = ast.parse("f(x)").body[0].value
    set_fact(call, "target", "T")
    assert fact(call, "target") == "T" and has_fact(call, "target")
    assert fact(ast.Name("x"), "target", None) is None      # a default for any node
    with pytest.raises(KeyError):
        set_fact(call, "no_such_fact", 1)
    with pytest.raises(TypeError):
        set_fact(ast.Name("x"), "target", 1)                # target is for calls
    with pytest.raises(AttributeError):
        fact(ast.parse("g()").body[0].value, "target")


# ---- effects -----------------------------------------------------------------

def effect_of(line):
    func, _, _ = tree_of(f"def f(a, b, c):\n    {line}\n")
    return statement_effect(func.body[0], no_callees)


@pytest.mark.parametrize("line, rebinds, mutates", [
    ("a = b", {"a"}, set()),
    ("a += b", {"a"}, {"a"}),
    ("a[0] = b", set(), {"a"}),
    ("a.append(b)", set(), {"a"}),
    ("a.fill(0.0)", set(), {"a"}),
    ("np.copyto(a, b)", set(), {"a"}),
    ("np.add.at(a, b, c)", set(), {"a"}),
])
def test_statement_effects(line, rebinds, mutates):
    effect = effect_of(line)
    assert rebinds <= set(effect.rebinds) and set(effect.mutates) == mutates


def test_out_argument_is_an_in_place_change():
    func, _, _ = tree_of("def f(a, b):\n    np.tanh(a, out=b)\n")
    assert set().union(*(statement_effect(s, no_callees).mutates for s in func.body)) == {"b"}


def test_registry_declares_what_changes_in_place():
    assert is_mutating_method("append") and is_mutating_method("fill")
    assert not is_mutating_method("sum")
    assert mutated_argument(np.copyto) == 0 and mutated_argument(np.exp) is None
    assert "arrays" in rule_for(np.concatenate).containers
    assert not rule_for(np.exp).containers


def test_points_to_follows_versions_of_a_name():
    # x first holds the input, later an element of the list s: changing s
    # (a list) changes neither the input nor its elements.
    func, _, _ = tree_of("""
        def f(x, s):
            h = x
            h = s[0]
            s[0] = h * 2.0
            return h
    """)
    effects = function_effects(func, no_callees)
    assert effects.mutated == {"s"}
    assert ("param", "x") not in effects.changed
    assert "x" not in effects.unstable


def test_views_and_aliases_are_unstable():
    func, _, _ = tree_of("""
        def f(w, buf):
            v = buf.T
            m = buf
            y = w * v
            buf[0] = 1.0
            return y
    """)
    effects = function_effects(func, no_callees)
    assert {"buf", "v", "m"} <= effects.unstable and "w" not in effects.unstable


def test_points_to_containers_hold_what_is_stored():
    func, _, _ = tree_of("""
        def f(a, b):
            xs = [a]
            xs.append(b)
            c = xs[1]
            return c
    """)
    facts = points_to(func)
    assert facts.of({"c"}) >= {("param", "a"), ("param", "b")}


def test_mutated_parameters():
    func, _, _ = tree_of("""
        def f(a, b, c):
            d = b
            d += 1.0
            c = c * 2.0
            a.append(c)
    """)
    assert mutated_parameters(func, no_callees) == {"a", "b"}


# ---- the in-place pass -------------------------------------------------------

def make_ctx(source, names):
    namespace = {}

    def bind(key, obj, names):
        namespace[key] = obj
        return key
    return Context(source, names, bind), namespace


def test_snapshot_only_where_a_change_follows():
    func, source, names = tree_of("""
        def f(w):
            s = 2.0
            y = w * s
            s += 1.0
            z = w * s
            return y + z
    """)
    ctx, _ = make_ctx(source, names)
    effects = function_effects(func, no_callees)
    snapshot_reads(ctx, func, effects, {"w", "y", "z"}, no_callees)
    text = ast.unparse(func)
    assert "s_now = snapshot(s)" in text and "y = w * s_now" in text
    assert "z = w * s\n" in text                 # nothing changes s after this read


def test_out_with_gradients_becomes_a_binding():
    func, source, names = tree_of("""
        def f(w):
            h = w * 2.0
            np.tanh(h, out=h)
            return h
    """)
    ctx, _ = make_ctx(source, names)
    active = lower_out(ctx, func, {"w", "h"})
    text = ast.unparse(func)
    assert "out=" not in text and "h = t" in text.replace("h = t1", "h = t")
    assert "h" in active


def test_out_into_a_parameter_is_refused():
    func, source, names = tree_of("""
        def f(w, buf):
            np.multiply(w, 2.0, out=buf)
            return np.sum(buf)
    """)
    ctx, _ = make_ctx(source, names)
    with pytest.raises(TransformError, match="out="):
        lower_out(ctx, func, {"w", "buf"})


# ---- bindings, optimize --------------------------------------------------------

def test_bindings():
    func, _, _ = tree_of("""
        def f(w, xs):
            h = w
            for i in range(3):
                h = h * 2.0
                xs.append(h)
            return h
    """)
    b = bindings_of(func, ["w", "xs"])
    assert b.sites["h"] > 1 and b.sites["w"] == 1
    assert "xs" in b.containers and "xs" in b.may_grow
    assert assignment_sites(func.body, ["w"])["i"] == 2


def test_checks_hoisted_out_of_loops():
    func, source, names = tree_of("""
        def f(s, n):
            for i in range(n):
                s[i] = 1.0
            return s
    """)
    ctx, _ = make_ctx(source, names)
    loop = func.body[0]
    loop.body.insert(0, ctx.run_check("check_container", "s", loop.body[0]))
    loop.body.insert(0, ctx.run_check("check_container", "s", loop.body[1]))
    hoist_checks(func)
    assert isinstance(func.body[0], ast.Expr) and fact(func.body[0], "check")
    assert not any(isinstance(s, ast.Expr) for s in func.body[1].body)
    assert sum(isinstance(s, ast.Expr) for s in func.body) == 1


def test_copy_propagation():
    func = ast.parse("def f(a):\n    b = a\n    c = b * 2\n    return c\n").body[0]
    propagate_copies(func)
    assert ast.unparse(func).count("=") == 1 and "c = a * 2" in ast.unparse(func)


# ---- the front end -------------------------------------------------------------

def test_front_end_normalizes_and_resolves():
    text = textwrap.dedent("""
        def f(w, x):
            return np.sum(np.tanh(w @ x) ** 2)
    """)
    func = ast.parse(text).body[0]
    unit = front_end("f", "f", func, Source("<test>", 1, text.splitlines(True)),
                     Environment({"np": np}), {})
    assert unit.params == ["w", "x"]
    calls = [n for n in ast.walk(unit.tree) if isinstance(n, ast.Call)]
    assert {fact(c, "target").kind for c in calls} == {"primitive"}
    # one operation per statement
    assert all(not any(isinstance(n, (ast.Call, ast.BinOp)) for n in ast.walk(s.value)
                       if n is not s.value)
               for s in unit.tree.body if isinstance(s, ast.Assign))


# ---- + and * on values that may be lists (operands) ----------------------------

def test_operand_kinds_and_the_ambiguous_operators():
    func, source, names = tree_of("""
        def f(a, b, n, xs):
            s = 0.0
            for i in range(n):
                s = s + xs[i]
            k = len(xs) - 1
            t = np.tanh(a)
            u = a + b
            v = a * k
            w = t * a
            z = xs[0] + s
            parts = np.split(a, 2)
            p = parts + b
            return u
        """)
    kinds = operand_kinds(func)
    assert kinds["s"] == ARRAY and kinds["t"] == ARRAY and kinds["w"] == ARRAY
    assert kinds["k"] == NUMBER and kinds["i"] == NUMBER
    assert kinds["u"] == UNKNOWN and kinds["v"] == UNKNOWN and kinds["parts"] == UNKNOWN
    assert kinds["z"] == ARRAY                 # xs[0] + s: s is never a list
    assert "a" not in kinds                    # a parameter
    ctx, namespace = make_ctx(source, names)
    lower_ambiguous(ctx, func, {"a", "b", "xs", "s", "parts"})
    text = ast.unparse(func)
    assert "u = plus(a, b)" in text and "v = times(a, k)" in text and "p = plus(parts, b)" in text
    assert "w = t * a" in text and "t1 = s + xs_i" in text and "z = xs0 + s" in text
    func, source, names = tree_of("""
        def f(a, b):
            return a + b
        """)
    lower_ambiguous(make_ctx(source, names)[0], func, {"a"}, {"a": ARRAY, "b": UNKNOWN})
    assert "plus" not in ast.unparse(func)
