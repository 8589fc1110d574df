"""Adjoints of Python's own operations on lists, tuples and dicts: copies,
concatenation, repetition, ``dict.get``.  One declaration each, as in
:mod:`.adjoints`."""

import builtins

from ..runtime.sequences import (
    default_grad, dict_get, dict_get_grad, seq_concat, seq_copy, seq_fold, seq_part,
    seq_repeat)
from .adjoints import METHODS
from .registry import adjoint


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


@adjoint(dict_get, containers=["d", "default"])   # either may get no adjoint
def get(dy, y, d, key, default=None):
    dd = dict_get_grad(dy, d, key)
    ddefault = default_grad(dy, d, key)


METHODS["get"] = dict_get
