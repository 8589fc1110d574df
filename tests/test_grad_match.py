"""``match`` with sequence (starred), mapping and class patterns
(knet_st/transform/patterns.py), against float64 central differences.
Values, captures, alternatives and fixed-length sequences are in
test_grad_sugar.py."""

from dataclasses import dataclass

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

rng = np.random.default_rng(7)


def rnd(*shape):
    return rng.standard_normal(shape)


@dataclass
class Pair:
    a: object
    b: object


def starred(w, xs):
    match xs:
        case [first, *rest]:
            h = w * first
            for r in rest:
                h = h + np.tanh(r * w)
        case []:
            h = w
    match xs:
        case (*init, last) if len(init) > 1:
            h = h * last + init[1]
        case [a, *_, b]:
            h = h - a * b
    return np.sum(h ** 2)


def test_sequence_patterns_with_a_star():
    w = rnd(3)
    for n in (0, 1, 2, 3, 4):
        xs = [rnd(3) for _ in range(n)]
        check_grad(starred, (w, xs), wrt=(0, 1) if n else 0)
        check_grad(starred, (w, tuple(xs)), wrt=0)


def mapped(w, d):
    match d:
        case {"scale": s, "shift": t, **others}:
            h = w * s + t
            for k in others:
                h = h + others[k] * w
        case {"scale": s}:
            h = w * s
        case {}:
            h = w * 2.0
        case _:
            h = w
    return np.sum(np.sin(h))


def test_mapping_patterns():
    w = rnd(3)
    full = {"scale": 2.0, "shift": rnd(3), "u": rnd(3), "v": rnd(3)}
    check_grad(mapped, (w, full), wrt=(0, 1))
    for d in ({"scale": rnd(3)}, {"x": 1.0}, {}, 3.0, [("scale", 1.0)]):
        check_grad(mapped, (w, d), wrt=0)
    check_grad(mapped, (w, {"scale": rnd(3)}), wrt=1)


def classed(w, p, q):
    match p:
        case Pair(a=x, b=Pair(a=y)):
            h = w * x - y
        case Pair(a=x, b=y):
            h = w * x + y
        case float(v) | int(v) if v > 0:
            h = w * v
        case _:
            h = w
    match q:
        case complex(real=r, imag=i):
            h = h * r + i
    return np.sum(h * h)


def test_class_patterns_with_named_attributes():
    w = rnd(3)
    for p in (Pair(2.0, 3.0), Pair(rnd(3), Pair(1.5, None)), 2.5, 3, -1.0, "x"):
        check_grad(classed, (w, p, 1 + 2j), wrt=0)
        check_grad(classed, (w, p, 7), wrt=0)


def positional(w, p):
    match p:
        case Pair(x, y):  # <-
            return np.sum(w * x)
    return np.sum(w)


def test_positional_sub_patterns_of_a_class_are_refused_at_the_line():
    with pytest.raises(kt.TransformError, match=r"positional sub-patterns.*Point\(x=a") as info:
        kt.grad(positional)(rnd(3), Pair(1.0, 2.0))
    assert info.value.lineno == positional.__code__.co_firstlineno + 2


def failed_patterns_leave_names(w, xs):
    a = w * 2.0
    rest = [w]
    match xs:
        case [a, 0.0]:              # binds a only if the second item is 0.0
            pass
        case [a, *rest] if False:   # a guard that fails leaves its captures bound
            pass
    match xs:
        case [b, 1.5] | (b, 2.5, _):
            a = a * b
    total = np.sum(a * w)
    for r in rest:
        total = total + np.sum(r * w)
    return total


def test_captures_are_bound_only_when_the_whole_pattern_matches():
    w = rnd(3)
    for xs in ([rnd(3), 1.0], [rnd(3), 0.0], [rnd(3), 1.5], (rnd(3), 2.5, 1.0), [rnd(3)]):
        assert np.allclose(kt.grad(failed_patterns_leave_names)(w, xs),
                           kt.grad(failed_patterns_leave_names)(w, xs))
        check_grad(failed_patterns_leave_names, (w, xs), wrt=0)


def matched_then_changed(w, x):
    d = {"a": w * 0.5, "b": x}
    hs = [w]
    match d:
        case {"a": a, **rest}:
            h = a * 2.0 + rest["b"]
        case _:
            h = w
    d["c"] = h * 0.5                  # the matched dict changes afterwards
    match hs:
        case [first] if np.sum(first) > -100.0:
            hs.append(h * first)
    match x:
        case x if np.sum(x) > 100.0:  # a capture of the subject's own name
            h = h * 0.0
    return np.sum(d["c"] * w) + np.sum(hs[-1]) + np.sum(x * h)


def test_a_subject_that_changes_afterwards_or_is_captured():
    check_grad(matched_then_changed, (rnd(3), rnd(3)), wrt=(0, 1))
