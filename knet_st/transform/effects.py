"""Pass 5a, effects: what each statement changes.

A statement may *rebind* names (``x = ...``, ``x += v``, a loop variable) and
*change objects in place* (``x += v`` on an array, ``x[i] = v``, ``x.attr =
v``, a mutating method such as ``xs.append(v)`` or ``a.fill(0)``, an ``out=``
argument, ``np.copyto(a, b)``, ``np.add.at(a, i, v)``, or a user function that
changes its argument).  This module is the one place that knows which
operations change objects in place; every later decision to save a value or
to refuse a program reads it:

* :func:`statement_effect` gives one statement's :class:`Effect`;
* :func:`function_effects` gives a whole function's :class:`Effects`: the
  names whose objects change in place, and the *unstable* names, those whose
  value may change in place after being read (they or a name that may share
  their object are changed in place somewhere in the function).

The backward pass must read the values a forward statement saw; an unstable
value that it reads is copied at the time of use (see ``prepare``).
"""

import ast
from dataclasses import dataclass, field

import numpy as np

# Methods that change their receiver (lists, dicts, sets, arrays).
MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
    "update", "setdefault", "popitem", "add", "discard",
    "fill", "put", "itemset", "resize", "partition", "setfield", "byteswap"})
# Methods that grow a list (its negative indices then move).
GROWING_METHODS = frozenset({"append", "extend", "insert"})
# Functions that change an argument in place: the argument's position.
MUTATING_FUNCTIONS = {np.copyto: 0, np.put: 0, np.place: 0, np.putmask: 0,
                      np.fill_diagonal: 0, np.random.shuffle: 0, np.put_along_axis: 0}


@dataclass(frozen=True)
class Effect:
    """What one statement does to names and objects."""
    rebinds: frozenset = frozenset()
    mutates: frozenset = frozenset()


@dataclass
class Effects:
    """What a function does: ``mutated`` names (their objects change in place),
    ``grown`` lists, ``unstable`` names (may change in place after a read),
    ``by_statement`` maps ``id(stmt)`` to its :class:`Effect`."""
    mutated: set = field(default_factory=set)
    grown: set = field(default_factory=set)
    unstable: set = field(default_factory=set)
    by_statement: dict = field(default_factory=dict)


def _root_name(node):
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_ufunc_at(obj):
    return getattr(obj, "__name__", None) == "at" and \
        isinstance(getattr(obj, "__self__", None), np.ufunc)


def out_arguments(call):
    """The ``out=`` argument nodes of a call (a name, or the names of a tuple)."""
    nodes = []
    for keyword in call.keywords:
        if keyword.arg == "out":
            value = keyword.value
            nodes += value.elts if isinstance(value, ast.Tuple) else [value]
    return nodes


def call_mutates(call, callee_mutates):
    """The names whose objects ``call`` changes in place.  ``callee_mutates(call)``
    answers for calls of user functions."""
    names = {_root_name(n) for n in out_arguments(call)}
    target = getattr(call, "kt_target", None)
    kind = target.kind if target is not None else None
    func = call.func
    if kind == "method" or (isinstance(func, ast.Attribute) and kind in (None, "dynamic")):
        if isinstance(func, ast.Attribute) and func.attr in MUTATING_METHODS:
            names.add(_root_name(func.value))
    elif kind in ("user", "local"):
        names |= set(callee_mutates(call))
    elif target is not None and target.obj is not None:
        try:
            position = MUTATING_FUNCTIONS.get(target.obj)
        except TypeError:
            position = None
        if position is None and _is_ufunc_at(target.obj):
            position = 0
        if position is not None and len(call.args) > position:
            names.add(_root_name(call.args[position]))
    names.discard(None)
    return names


def statement_effect(stmt, callee_mutates):
    """The :class:`Effect` of one simple (normalized) statement, not counting
    the statements nested in its body."""
    rebinds, mutates = set(), set()
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    rebinds.add(node.id)
            if isinstance(target, (ast.Subscript, ast.Attribute)):
                mutates.add(_root_name(target))
    elif isinstance(stmt, ast.AugAssign):
        name = _root_name(stmt.target)
        mutates.add(name)               # in place on arrays and lists
        if isinstance(stmt.target, ast.Name):
            rebinds.add(name)           # a new value for numbers and tuples
    elif isinstance(stmt, ast.For):
        rebinds |= {n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)}
    header = [stmt.value] if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Expr)) \
        else [stmt.test] if isinstance(stmt, (ast.If, ast.While)) \
        else [stmt.iter] if isinstance(stmt, ast.For) else \
        [stmt.value] if isinstance(stmt, ast.Return) and stmt.value is not None else []
    for expr in header:
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                mutates |= call_mutates(node, callee_mutates)
    mutates.discard(None)
    return Effect(frozenset(rebinds), frozenset(mutates))


def _statements(body):
    for stmt in body:
        yield stmt
        for field_name in ("body", "orelse"):
            yield from _statements(getattr(stmt, field_name, []))


def _fresh(value):
    """Whether an assigned value is certainly a new object that shares nothing
    with its operands (arithmetic, comparisons, constants, a new display of
    constants)."""
    if isinstance(value, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant,
                          ast.BoolOp, ast.JoinedStr)):
        return True
    return False


def _alias_pairs(stmt):
    """Pairs of names that may share an object after ``stmt``."""
    if isinstance(stmt, ast.Assign) and not _fresh(stmt.value):
        targets = {n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        sources = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)
                   and isinstance(n.ctx, ast.Load)}
        # x[i] = v stores v inside x: they share v's object.
        return [(t, s) for t in targets for s in sources]
    if isinstance(stmt, ast.For):
        targets = {n.id for n in ast.walk(stmt.target) if isinstance(n, ast.Name)}
        sources = {n.id for n in ast.walk(stmt.iter) if isinstance(n, ast.Name)}
        return [(t, s) for t in targets for s in sources]
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        # xs.append(v): v now lives inside xs.
        call = stmt.value
        if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
            return [(call.func.value.id, n.id) for a in call.args for n in ast.walk(a)
                    if isinstance(n, ast.Name)]
    return []


def _alias_classes(body):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for stmt in _statements(body):
        for a, b in _alias_pairs(stmt):
            parent[find(a)] = find(b)
    return find


def function_effects(func, callee_mutates):
    """The :class:`Effects` of the normalized function ``func``.

    A name is unstable when its object, or the object of a name that may share
    it (a copy ``y = x``, a view ``y = x.T`` or ``y = x[0]``, a loop variable
    over ``x``, a list holding it), changes in place somewhere in the
    function.  The sharing is found flow-insensitively, so this errs on the
    side of more copies, never of fewer."""
    effects = Effects()
    for stmt in _statements(func.body):
        effect = statement_effect(stmt, callee_mutates)
        effects.by_statement[id(stmt)] = effect
        effects.mutated |= effect.mutates
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func_node = stmt.value.func
            if isinstance(func_node, ast.Attribute) and func_node.attr in GROWING_METHODS:
                name = _root_name(func_node.value)
                if name is not None:
                    effects.grown.add(name)
    find = _alias_classes(func.body)
    changed = {find(n) for n in effects.mutated}
    names = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Store)}
    names |= {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    effects.unstable = {n for n in names if find(n) in changed}
    return effects


def mutated_parameters(func, callee_mutates):
    """The parameters of ``func`` whose objects it changes in place (directly,
    through an alias, or in a function it calls)."""
    params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
    effects = function_effects(func, callee_mutates)
    return {p for p in params if p in effects.unstable}
