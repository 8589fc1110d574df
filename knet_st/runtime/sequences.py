"""Lists and tuples that carry gradients: concatenation (``a + b``), repetition
(``[x] * n``) and copies (``list(xs)``), with the helpers of their adjoints.
A sequence's adjoint is a dict ``{position: adjoint}`` (missing: zero)."""

import operator

from .gradients import add, as_container, dense, unbroadcast


def seq_concat(a, b):
    """``a + b`` of two lists or tuples."""
    return a + b


def seq_repeat(a, n):
    """``a * n`` of a list or tuple."""
    return a * n


def plus(a, b):
    """``a + b`` where the compiler cannot tell whether the operands are lists
    or tuples (a concatenation) or arrays and numbers (an addition)."""
    return a + b


def times(a, b):
    """``a * b`` where the compiler cannot tell a repetition of a list or
    tuple from a product of arrays and numbers."""
    return a * b


def concatenates(a, b):
    """Whether ``a + b`` concatenates (two lists or two tuples), as Python
    decides it."""
    return isinstance(a, list) and isinstance(b, list) or \
        isinstance(a, tuple) and isinstance(b, tuple)


def repeats(a, n):
    """Whether ``a * n`` repeats the list or tuple ``a``: ``n`` is an index
    (an int, a NumPy integer), as Python decides it."""
    if not isinstance(a, (list, tuple)):
        return False
    try:
        operator.index(n)
    except TypeError:
        return False
    return True


def plus_grad(g, x, other, last):
    """The adjoint of the operand ``x`` of ``plus(x, other)`` (``last``:
    of ``plus(other, x)``): its part of the sequence adjoint ``g`` where the
    operands are concatenated, else ``g`` summed over what ``x`` was
    broadcast along."""
    if concatenates(x, other):
        start = len(other) if last else 0
        return seq_part(g, start, start + len(x))
    return unbroadcast(g, x)


def times_grad(g, x, other):
    """The adjoint of the operand ``x`` of ``times(x, other)`` (either
    order): the copies' adjoints added up where ``x`` is a repeated list or
    tuple, none for the count, else the product's adjoint."""
    if repeats(x, other):
        return seq_fold(g, len(x))
    if repeats(other, x):
        return None
    return unbroadcast(dense(g) * other, x)


def times_tangent(a, b, da, db):
    """The tangent of ``times(a, b)``: the repeated tangents of the list or
    tuple, or the product rule."""
    if repeats(a, b):
        return da * b
    if repeats(b, a):
        return db * a
    return da * b + a * db


def times_grad_tangent(g, x, other, dg, dother):
    """The tangent of ``times_grad(g, x, other)`` (linear in ``g``; in
    ``other`` too where the product is arithmetic)."""
    if repeats(x, other):
        return seq_fold(dg, len(x))
    if repeats(other, x):
        return None
    return unbroadcast(dense(dg) * other + dense(g) * dother, x)


def sort_order(keys, reverse):
    """The positions of ``keys`` in the order ``sorted(..., key=...,
    reverse=reverse)`` puts them (the same comparisons; equal keys keep
    their order).  No gradient: the keys only choose."""
    return sorted(range(len(keys)), key=keys.__getitem__, reverse=reverse)


def extreme_position(keys, which):
    """The position ``max(..., key=...)`` (``which`` ``'max'``) or ``min``
    chooses among ``keys``: the first of the largest (smallest)."""
    return (max if which == "max" else min)(range(len(keys)), key=keys.__getitem__)


def deletion(x, index):
    """What ``del x[index]`` removes, for its adjoint: ``(length, positions)``
    of a list, ``(None, key)`` of a dict."""
    if isinstance(x, dict):
        return None, index
    positions = range(len(x))[index]
    return len(x), (positions,) if isinstance(positions, int) else tuple(positions)


def deletion_grad(g, removed):
    """The adjoint of a container before ``del x[index]`` from its adjoint
    ``g`` after (``removed`` from :func:`deletion`): a list's positions
    moved back past the removed ones, a dict's key gone (the value removed
    gets no gradient: nothing reads it)."""
    g = as_container(g)
    if g is None:
        return None
    length, what = removed
    if length is None:
        return {k: v for k, v in g.items() if k != what}
    gone = set(what)
    kept = [i for i in range(length) if i not in gone]
    return {kept[j]: v for j, v in g.items()}


def seq_part(g, start, stop):
    """The adjoint of ``seq[start:stop]`` taken from the adjoint ``g`` of ``seq``,
    renumbered from 0."""
    g = as_container(g)
    if g is None:
        return None
    return {i - start: v for i, v in g.items() if start <= i < stop}


def seq_fold(g, n):
    """The adjoint of ``a`` from the adjoint ``g`` of ``a * k`` (``len(a) == n``):
    the copies' adjoints added up."""
    g = as_container(g)
    if g is None:
        return None
    out = {}
    for i, v in g.items():
        out[i % n] = add(out.get(i % n), v)
    return out


def seq_copy(xs):
    """The adjoint of ``list(xs)`` or ``tuple(xs)`` (the same positions)."""
    return as_container(xs)


def dict_get(d, key, default=None):
    """``d.get(key, default)``, as a function."""
    return d.get(key, default)


def dict_get_grad(g, d, key):
    """The adjoint of ``d`` in ``d.get(key, default)``: ``g`` at ``key`` when
    ``d`` has it."""
    return {key: g} if key in d and g is not None else None


def default_grad(g, d, key):
    """The adjoint of ``default`` in ``d.get(key, default)``."""
    return None if key in d else g
