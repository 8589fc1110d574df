"""Pass 5a, effects: what each statement changes.

A statement may *rebind* names (``x = ...``, ``x += v``, a loop variable) and
*change objects in place* (``x += v`` on an array, ``x[i] = v``, ``x.attr =
v``, a mutating method such as ``xs.append(v)`` or ``a.fill(0)``, an ``out=``
argument, ``np.copyto(a, b)``, ``np.add.at(a, i, v)``, or a user function that
changes its argument).  The methods and functions that change an argument
are declared in the registry (``adjoints.py``); this module is the one
analysis of them, and every later decision to save a value or to refuse a
program reads it:

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

from .registry import is_mutating_method, mutated_argument
from .trees import statements

from .facts import fact

# Methods that grow a list (its negative indices then move).
GROWING_METHODS = frozenset({"append", "extend", "insert"})
# Methods that store values into their receiver (which may then carry gradients).
STORING_METHODS = GROWING_METHODS | {"update", "setdefault", "add"}


@dataclass(frozen=True)
class Effect:
    """What one statement does to names and objects."""
    rebinds: frozenset = frozenset()
    mutates: frozenset = frozenset()


@dataclass
class Effects:
    """What a function does: ``mutated`` names (their objects change in place),
    ``grown`` lists, ``unstable`` names (may change in place after a read),
    ``by_statement`` maps ``id(stmt)`` to its :class:`Effect`, ``changed`` the
    objects changed in place (see :func:`points_to`), ``changes`` lists
    ``(id(stmt), objects it changes, names it changes them through)``,
    ``reached[name]`` the objects an
    unstable name may hold or reach, ``facts`` the points-to facts."""
    mutated: set = field(default_factory=set)
    grown: set = field(default_factory=set)
    unstable: set = field(default_factory=set)
    by_statement: dict = field(default_factory=dict)
    changed: set = field(default_factory=set)
    changes: list = field(default_factory=list)
    reached: dict = field(default_factory=dict)
    facts: object = None


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
    target = fact(call, "target", None)
    kind = target.kind if target is not None else None
    func = call.func
    if kind == "method" or (isinstance(func, ast.Attribute) and kind in (None, "dynamic")):
        if isinstance(func, ast.Attribute) and is_mutating_method(func.attr):
            names.add(_root_name(func.value))
    elif kind in ("user", "local"):
        names |= set(callee_mutates(call))
    elif target is not None and target.obj is not None:
        position = mutated_argument(target.obj)
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


# Calls whose result is a new object (a number, a new array), never a view.
_FRESH_CALLS = {len, range, int, float, bool, round, isinstance, type, abs, np.shape,
                np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.zeros, np.ones,
                np.empty, np.full, np.zeros_like, np.ones_like, np.empty_like, np.full_like,
                np.arange, np.eye, np.sum, np.mean, np.dot, np.matmul, np.copy, np.array}


def _fresh(value):
    """Whether an expression's value is certainly a new object that shares
    nothing with its operands (arithmetic, comparisons, constants, calls of
    functions that make numbers or new arrays)."""
    if isinstance(value, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant,
                          ast.BoolOp, ast.JoinedStr)):
        return True
    target = fact(value, "target", None)
    if isinstance(value, ast.Call) and target is not None and target.kind == "method" \
            and target.name == "copy" and not value.args:
        return True                                      # x.copy()
    if isinstance(value, ast.Call) and target is not None and target.obj is not None \
            and not out_arguments(value):
        try:
            return isinstance(target.obj, np.ufunc) or target.obj in _FRESH_CALLS
        except TypeError:
            return False
    return False


def _flow(value):
    """How the value of an expression relates to the names it reads:
    ``(same, inside, elements)``.  It may be (a view of) an object of a name in
    ``same``, or an object stored inside one of ``inside``; a display is a new
    container holding the objects of ``elements`` (else ``None``)."""
    if value is None or _fresh(value):
        return set(), set(), None
    if isinstance(value, ast.Name):
        return {value.id}, set(), None
    if isinstance(value, (ast.Attribute, ast.Starred)):
        return _flow(value.value)
    if isinstance(value, ast.Subscript):
        same, inside, _ = _flow(value.value)
        return same, inside | same, None
    if isinstance(value, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
        elts = value.values if isinstance(value, ast.Dict) else value.elts
        names = set()
        for e in elts:
            same, inside, _ = _flow(e)
            names |= same | inside
        return set(), set(), names
    if isinstance(value, ast.IfExp):
        a, b = _flow(value.body), _flow(value.orelse)
        return a[0] | b[0], a[1] | b[1], None
    names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    if isinstance(value, ast.Call):
        parts = list(value.args) + [k.value for k in value.keywords]
        if isinstance(value.func, ast.Attribute):
            parts.append(value.func.value)
        names = set()
        for part in parts:
            same, inside, elements = _flow(part)
            names |= same | inside | (elements or set())
    return names, set(names), None


class _Objects:
    """Points-to facts: ``versions[name][version]`` the objects a version of a
    name may hold, ``contents[obj]`` the objects stored inside ``obj``."""

    def __init__(self):
        self.versions = {}
        self.contents = {}
        self.grew = False

    def of(self, names):
        return set().union(*(o for n in names for o in self.versions.get(n, {}).values()))

    def inside(self, objects):
        return set().union(*(self.contents.get(o, set()) for o in objects))

    def deep(self, objects):
        """The objects and everything stored inside them, transitively."""
        seen, todo = set(), list(objects)
        while todo:
            o = todo.pop()
            if o not in seen:
                seen.add(o)
                todo += self.contents.get(o, ())
        return seen

    def add(self, table, key, objects):
        if not objects <= table.setdefault(key, set()):
            table[key] |= objects
            self.grew = True


def points_to(func):
    """Which objects each name may hold, and what each object holds: a
    flow-insensitive points-to analysis over *versions* of names (one per
    parameter and per binding statement, so that a name rebound from an input
    to a list's element does not tie the two together).  Objects are named by
    where they are made: ``("param", name)``, or ``("new", id(stmt))`` for the
    statement that makes a new value.  A view of an object counts as the
    object itself; an element read from a container may be any object stored
    in it, or a view of it (arrays).  Returns an :class:`_Objects`."""
    facts, rules = _Objects(), []
    for arg in ast.walk(func.args):
        if isinstance(arg, ast.arg):
            facts.versions.setdefault(arg.arg, {})[("param", arg.arg)] = {("param", arg.arg)}
    for stmt in statements(func.body):
        if isinstance(stmt, (ast.Assign, ast.For, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = stmt.iter if isinstance(stmt, ast.For) else stmt.value
            if isinstance(stmt, ast.AugAssign):
                flow = ({stmt.target.id}, set(), None)
            elif isinstance(stmt, ast.For):
                same, inside, elements = _flow(value)
                flow = (same, inside | same | (elements or set()), None)
            else:
                flow = _flow(value)
            made = {("new", id(stmt))}
            for target in targets:
                if isinstance(target, (ast.Subscript, ast.Attribute)):
                    rules.append(("store", _root_name(target), flow))        # x[i] = v
                    continue
                for node in ast.walk(target):
                    if isinstance(node, ast.Name):
                        new = made if flow[2] is not None or isinstance(stmt, ast.AugAssign) \
                            or not (flow[0] or flow[1]) else set()
                        facts.versions.setdefault(node.id, {})[id(stmt)] = set(new)
                        rules.append(("bind", (node.id, id(stmt)), flow))
                        if flow[2] is not None:
                            rules.append(("fill", ("new", id(stmt)), flow))
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            if isinstance(call.func, ast.Attribute) and call.func.attr in GROWING_METHODS:
                names = set()
                for arg in call.args:
                    same, inside, elements = _flow(arg)
                    names |= same | inside | (elements or set())
                rules.append(("store", _root_name(call.func.value), (names, set(), None)))
    facts.grew = True
    while facts.grew:
        facts.grew = False
        for kind, key, (same, inside, elements) in rules:
            if kind == "bind":
                name, version = key
                objects = facts.of(same) | facts.inside(facts.of(inside))
                facts.add(facts.versions[name], version, objects)
            elif kind == "fill":
                facts.add(facts.contents, key, facts.of(elements))
            elif key in facts.versions:
                stored = facts.of(same) | facts.inside(facts.of(inside))
                for obj in facts.of({key}):
                    facts.add(facts.contents, obj, stored)
    return facts


def function_effects(func, callee_mutates):
    """The :class:`Effects` of the normalized function ``func``.

    A name is unstable when an object it may hold is changed in place
    somewhere in the function, directly or through a name that may share it
    (a copy ``y = x``, a view ``y = x.T`` or ``y = x[0]``, a loop variable
    over ``x``, a list holding it).  Sharing errs on the side of more copies,
    never of fewer."""
    effects = Effects()
    for stmt in statements(func.body):
        effect = statement_effect(stmt, callee_mutates)
        effects.by_statement[id(stmt)] = effect
        effects.mutated |= effect.mutates
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func_node = stmt.value.func
            if isinstance(func_node, ast.Attribute) and func_node.attr in GROWING_METHODS:
                name = _root_name(func_node.value)
                if name is not None:
                    effects.grown.add(name)
    facts = points_to(func)
    effects.changed = facts.of(effects.mutated)
    effects.unstable = {n for n in facts.versions
                        if facts.deep(facts.of({n})) & effects.changed}
    effects.changes = [(key, facts.of(effect.mutates), effect.mutates)
                       for key, effect in effects.by_statement.items() if effect.mutates]
    effects.reached = {n: facts.deep(facts.of({n})) for n in effects.unstable}
    effects.facts = facts
    return effects


def stored_parameters(func, callee_stores):
    """The parameters of ``func`` whose objects it stores values into (``x[i] =
    v``, ``x.append(v)``, directly, through an alias, or in a function it
    calls): the containers a call may make carry gradients."""
    params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
    names = set()
    for stmt in statements(func.body):
        if isinstance(stmt, ast.Assign):
            names |= {_root_name(t) for t in stmt.targets
                      if isinstance(t, (ast.Subscript, ast.Attribute))}
        if isinstance(stmt, (ast.Assign, ast.Expr)):
            for node in ast.walk(stmt.value):
                if isinstance(node, ast.Call):
                    target = fact(node, "target", None)
                    if isinstance(node.func, ast.Attribute) and \
                            node.func.attr in STORING_METHODS and \
                            (target is None or target.kind == "method"):
                        names.add(_root_name(node.func.value))
                    elif target is not None and target.kind in ("user", "local"):
                        names |= set(callee_stores(node))
    facts = points_to(func)
    changed = facts.of(names - {None})
    return {p for p in params if ("param", p) in changed}


def mutated_parameters(func, callee_mutates):
    """The parameters of ``func`` whose objects it changes in place (directly,
    through an alias, or in a function it calls)."""
    params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
    effects = function_effects(func, callee_mutates)
    return {p for p in params if ("param", p) in effects.changed}
