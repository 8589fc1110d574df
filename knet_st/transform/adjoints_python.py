"""Adjoints of Python's own operations on lists, tuples and dicts: copies,
concatenation, repetition, ``dict.get``.  One declaration each, as in
:mod:`.adjoints`."""

import builtins

from ..runtime.sequences import (
    default_grad, dict_get, dict_get_grad, plus, plus_grad, seq_concat, seq_copy, seq_fold,
    seq_part, seq_repeat, times, times_grad, times_grad_tangent, times_tangent)
from .adjoints import METHODS
from .registry import adjoint
from .tangents import tangent


@adjoint(builtins.list, builtins.tuple, containers=["iterable"])
def list_copy(dy, y, iterable=()):
    diterable = seq_copy(dy)


@adjoint(builtins.dict, containers=["mapping"])
def dict_copy(dy, y, mapping=()):
    dmapping = seq_copy(dy)


@adjoint(seq_concat, containers=["a", "b"])
def concatenation(dy, y, a, b):
    da = seq_part(dy, 0, len(a))
    db = seq_part(dy, len(a), len(y))


@adjoint(seq_repeat, containers=["a"])
def repetition(dy, y, a, n):
    da = seq_fold(dy, len(a))


@adjoint(plus, containers=["a", "b"])
def concatenation_or_sum(dy, y, a, b):
    da = plus_grad(dy, a, b, False)
    db = plus_grad(dy, b, a, True)


@adjoint(times, containers=["a", "b"])
def repetition_or_product(dy, y, a, b):
    da = times_grad(dy, a, b)
    db = times_grad(dy, b, a)


# forward mode: copies of lists and tuples (sorted, min, max, reduce: .callbacks);
# plus, times and their adjoints' helpers (forward over reverse too)
@tangent(builtins.list)
def list_tangent(y, iterable=(), *, diterable):
    dy = list(diterable)


@tangent(builtins.tuple)
def tuple_tangent(y, iterable=(), *, diterable):
    dy = tuple(diterable)


@tangent(plus)
def plus_tangent(y, a, b, *, da, db):
    dy = plus(da, db)


@tangent(times)
def times_tangent_rule(y, a, b, *, da, db):
    dy = times_tangent(a, b, da, db)


@tangent(plus_grad)
def plus_grad_tangent(r, g, x, other, last, *, dg):
    dr = plus_grad(dg, x, other, last)


@tangent(times_grad)
def times_grad_tangent_rule(r, g, x, other, *, dg, dother):
    dr = times_grad_tangent(g, x, other, dg, dother)


@adjoint(dict_get, containers=["d", "default"])   # either may get no adjoint
def get(dy, y, d, key, default=None):
    dd = dict_get_grad(dy, d, key)
    ddefault = default_grad(dy, d, key)


METHODS["get"] = dict_get
