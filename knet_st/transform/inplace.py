"""Pass 5c, in place: changes of objects in place made safe for the backward pass.

Reads the :mod:`effects` of the function; runs after activity, before reverse.

* :func:`lower_out`: ``t = f(a, out=o)`` where a value carries a gradient
  becomes ``t = f(a); o = t`` when no other name can see ``o``'s old object;
  otherwise it is refused.  ``out=`` on values without gradients is kept.
* :func:`snapshot_reads`: a statement whose adjoint reads a value without
  gradient that may change in place later (``s += 1.0``, ``buf[:] = v``,
  ``mask[i] = False``, ``np.copyto(idx, p)``, a helper that fills it) reads a
  copy taken at that point instead: ``s_now = snapshot(s)`` (numbers are not
  copied; ``snapshot`` is a primitive whose adjoint is the identity, for a
  name that holds values with gradients at other times).  The backward pass
  then sees the value the forward statement saw.
"""

import ast
import operator

import numpy as np

from .facts import fact, set_fact
from ..runtime import gradients as rt
from .activity import value_active
from .effects import out_arguments
from .registry import rule_for
from .resolve import Target
from .trees import assign, call, name, rewrite, statements, stored_names

# Calls whose result is a new array no other name shares.
_ALLOCATIONS = (np.zeros, np.ones, np.empty, np.full, np.zeros_like, np.ones_like,
                np.empty_like, np.full_like, np.copy, np.array)


def _new_object(value):
    """Whether an assigned value is a new array that no other name shares."""
    if isinstance(value, (ast.BinOp, ast.UnaryOp)):
        return True
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
            value.func.attr == "copy" and not value.args and \
            fact(value, "target").kind == "method":
        return True
    target = fact(value, "target", None)
    if not isinstance(value, ast.Call) or target is None or target.kind != "primitive" and \
            target.kind != "nondiff":
        return False
    if out_arguments(value):
        return False
    return isinstance(target.obj, np.ufunc) or target.obj in _ALLOCATIONS or \
        target.obj in (np.sum, np.mean, np.dot, np.matmul)


def sole_owner(func, var):
    """Whether every binding of ``var`` is a new object and no other name can
    share it: each read of ``var`` is an operand of arithmetic or of a call
    that makes a new array."""
    for stmt in statements(func.body):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                stmt.targets[0].id == var and not _new_object(stmt.value):
            return False
        if isinstance(stmt, ast.For) and var in stored_names(stmt.target):
            return False
        reads = [stmt.value] if isinstance(stmt, (ast.Assign, ast.Expr, ast.AugAssign)) \
            else []
        for value in reads:
            shared = isinstance(value, (ast.Name, ast.Subscript, ast.Attribute, ast.Tuple,
                                        ast.List, ast.Dict)) or \
                isinstance(value, ast.Call) and not _new_object(value) and \
                not out_arguments(value)
            if shared and var in {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}:
                return False
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    return var not in params


def written_arrays(func, active):
    """The names with gradients written into by ``x[i] = v`` that are arrays
    for certain: every binding makes a new array (``np.zeros(n)``,
    ``w.copy()``, arithmetic).  Such writes are kept in place: the adjoint
    takes the written region's adjoint for ``v`` and zeroes it, and the
    in-place pass copies earlier reads of the array that the backward needs."""
    stored = {t.value.id for s in statements(func.body) if isinstance(s, ast.Assign)
              for t in s.targets if isinstance(t, ast.Subscript)
              and isinstance(t.value, ast.Name)}
    arrays = set()
    for var in stored & set(active):
        bindings = [s.value for s in statements(func.body) if isinstance(s, ast.Assign)
                    and isinstance(s.targets[0], ast.Name) and s.targets[0].id == var]
        loops = [s for s in statements(func.body) if isinstance(s, ast.For)
                 and var in stored_names(s.target)]
        params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
        if bindings and not loops and var not in params and all(
                _new_object(b) and not (isinstance(b, ast.BinOp) and isinstance(
                    b.left, (ast.List, ast.Tuple)) or isinstance(b, ast.BinOp) and
                    isinstance(b.right, (ast.List, ast.Tuple))) for b in bindings):
            arrays.add(var)
    for stmt in statements(func.body):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Subscript) and \
                isinstance(stmt.targets[0].value, ast.Name) and \
                stmt.targets[0].value.id in arrays:
            set_fact(stmt, "array_write", True)
    return arrays


def copy_written_outputs(ctx, func, arrays, active):
    """``o = np.tanh(x)`` where ``o`` is written into later and the rule of
    ``np.tanh`` reads its output: ``t = np.tanh(x); o = snapshot(t)``, so that
    the adjoint reads the output as it was made.  Returns the active names."""
    active = set(active)

    def one(stmt):
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id in arrays and _reads_output(stmt.value)):
            return [stmt]
        var = stmt.targets[0].id
        made = ctx.fresh("t")
        stmt.targets[0] = name(made, True)
        if var in active:
            active.add(made)
        copy_call = call(ctx.helper("snapshot"), name(made))
        set_fact(copy_call, "target", Target("primitive", rt.snapshot, "snapshot"))
        return [stmt, assign(var, copy_call, like=stmt)]

    func.body = rewrite(func.body, one)
    return active


def _reads_output(value):
    """Whether the adjoint rule of an assigned value reads the value itself."""
    from .adjoints import METHODS
    from .registry import rule_for
    from .reverse import BINOPS, UNARYOPS
    rule = None
    if isinstance(value, ast.BinOp) and type(value.op) in BINOPS:
        rule = rule_for(getattr(operator, BINOPS[type(value.op)]))
    elif isinstance(value, ast.UnaryOp) and type(value.op) in UNARYOPS:
        rule = rule_for(getattr(operator, UNARYOPS[type(value.op)]))
    elif isinstance(value, ast.Call):
        target = fact(value, "target", None)
        if target is not None and target.kind == "primitive":
            rule = rule_for(target.obj)
        elif target is not None and target.kind == "method" and target.name in METHODS:
            rule = rule_for(METHODS[target.name])
    return rule is not None and rule.reads_output


def check_written_aliases(ctx, func, effects, arrays):
    """Refuses reading another name of an array (a view ``v = out[:2]``, a copy
    of the name, a list holding it) after the array was written into: the
    adjoint of the read would reach the array after the write's adjoint took
    the written region.  Reads that happen before the write, or from names
    bound after it, are fine (the rows ``h[t]`` of a time loop)."""
    if not arrays:
        return
    facts, places = effects.facts, positions(func.body)
    writes = {x: [s for s in statements(func.body) if fact(s, "array_write", False)
                  and s.targets[0].value.id == x] for x in arrays}
    defs = {}
    for s in statements(func.body):
        for var in (stored_names(s.target) if isinstance(s, ast.For) else
                    stored_names(ast.Module(body=s.targets, type_ignores=[]))
                    if isinstance(s, ast.Assign) else set()):
            defs.setdefault(var, []).append(s)
    for x in arrays:
        objects = facts.of({x})
        aliases = {n for n in facts.versions if n != x and n not in arrays
                   and facts.deep(facts.of({n})) & objects}
        for read in statements(func.body):
            header = [read.test] if isinstance(read, (ast.If, ast.While)) else \
                [read.iter] if isinstance(read, ast.For) else \
                [v for v in (getattr(read, "value", None),) if v is not None]
            used = {n.id for h in header for n in ast.walk(h)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} & aliases
            for var in sorted(used):
                for bind in defs.get(var, []):
                    for write in writes[x]:
                        if _between(bind, write, read, places):
                            raise ctx.error(
                                f"cannot differentiate: {var!r} shares memory with the "
                                f"array {x!r}, which is written into at line "
                                f"{write.lineno} before {var!r} is read here; make "
                                f"{var!r} a copy (.copy()) or take it after the write", read)


def _between(bind, write, read, places):
    """Whether ``write`` may run after ``bind`` binds a name and before ``read``
    reads it."""
    if id(bind) not in places or id(write) not in places or id(read) not in places:
        return True
    (b, b_loops), (w, w_loops), (r, r_loops) = places[id(bind)], places[id(write)], \
        places[id(read)]
    if b < w < r:
        return True
    if (w_loops & r_loops) - b_loops:         # bound before a loop, read in later rounds
        return True
    return r <= b and bool(w_loops & r_loops & b_loops)   # read from the last round


def lower_out(ctx, func, active):
    """Rewrites ``out=`` calls whose values carry gradients (see the module doc);
    returns the active names, the arrays written into now among them."""
    active = set(active)

    def one(stmt):
        out = []
        value = getattr(stmt, "value", None)
        outs = out_arguments(value) if isinstance(value, ast.Call) else []
        involved = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} \
            if outs else set()
        if not outs or not (involved & active or value_active(value, active)):
            out.append(stmt)
            return out
        if len(outs) != 1 or not isinstance(outs[0], ast.Name) or \
                not isinstance(stmt, ast.Assign) or \
                not sole_owner(func, outs[0].id):
            raise ctx.error("cannot differentiate 'out=' here: the array it writes "
                            "into is shared (a parameter, a view, another name); "
                            "assign the result instead, e.g. 'h = np.tanh(h)'", stmt)
        target = outs[0].id
        value.keywords = [k for k in value.keywords if k.arg != "out"]
        active.add(target)
        out.append(stmt)
        out.append(assign(target, name(stmt.targets[0].id), like=stmt))
        return out

    func.body = rewrite(func.body, one)
    return active


# Functions whose result may be (a view of) their first argument: their
# adjoints read only its shape, so nothing of it needs keeping.
_VIEWS = {np.reshape, np.ravel, np.transpose, np.squeeze, np.expand_dims, np.broadcast_to,
          np.swapaxes, np.moveaxis, np.atleast_1d, np.atleast_2d, np.atleast_3d, np.asarray,
          np.asanyarray, np.real, np.diagonal, np.flip, np.fliplr, np.flipud, np.rot90}
_VIEW_METHODS = {"reshape", "ravel", "transpose", "squeeze", "swapaxes", "diagonal", "view"}


def _is_view(value):
    """Whether the value of an assignment may share an operand's memory (a
    view, another name, a display holding it)."""
    if isinstance(value, (ast.Name, ast.Attribute, ast.List, ast.Tuple, ast.Dict, ast.Set)):
        return True
    target = fact(value, "target", None) if isinstance(value, ast.Call) else None
    if target is None:
        return False
    if target.kind == "method":
        return target.name in _VIEW_METHODS
    try:
        return target.kind in ("primitive", "nondiff") and target.obj in _VIEWS
    except TypeError:
        return False


def _reads_backward(stmt, active):
    """The names whose values ``stmt``'s adjoint may read (for a user call: all
    its arguments, which its backward function may read)."""
    if isinstance(stmt, ast.Assign):
        target, value = stmt.targets[0], stmt.value
        if isinstance(target, ast.Subscript):
            if not (target.value.id in active or value_active(value, active)):
                return set()
            nodes = [target.slice]
        elif isinstance(value, ast.Subscript):      # x[i]: the index, not x
            if not value_active(value, active):
                return set()
            nodes = [value.slice]
        elif _is_view(value):
            return set()
        else:
            user = isinstance(value, ast.Call) and fact(value, "target").kind in ("user", "local")
            if not (value_active(value, active) or
                    user and {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
                    & active):
                return set()
            nodes = [value]
    elif isinstance(stmt, ast.If):
        nodes = [stmt.test]
    elif isinstance(stmt, ast.For):
        nodes = [stmt.iter]
    else:
        return set()
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _container_arguments(stmt):
    """The names ``stmt`` passes to a primitive's container parameters (its
    rule's ``containers``: ``np.stack(hs)``'s ``hs``), whose structure the
    adjoint reads."""
    value = getattr(stmt, "value", None)
    target = fact(value, "target", None) if isinstance(value, ast.Call) else None
    rule = rule_for(target.obj) if target is not None and target.kind == "primitive" else None
    if rule is None or not rule.containers:
        return set()
    try:
        bound = rule.bind(value.args, {k.arg: k.value for k in value.keywords if k.arg})
    except TypeError:
        return set()
    return {n.id for param in rule.containers if param in bound
            for n in ast.walk(bound[param]) if isinstance(n, ast.Name)}


class _Rename(ast.NodeTransformer):
    def __init__(self, renames):
        self.renames = renames

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id in self.renames:
            return ast.copy_location(name(self.renames[node.id]), node)
        return node


def positions(body):
    """For each statement: its place in the order of the code and the loops
    around it."""
    places = {}

    def walk(stmts, loops):
        for stmt in stmts:
            places[id(stmt)] = (len(places), loops)
            inner = loops | {id(stmt)} if isinstance(stmt, (ast.For, ast.While)) else loops
            walk(getattr(stmt, "body", []), inner)
            walk(getattr(stmt, "orelse", []), inner)

    walk(body, frozenset())
    return places


def _changed_later(var, stmt, effects, places, settled):
    """Whether an object ``var`` holds at ``stmt`` may be changed in place after
    ``stmt`` runs: by a statement later in the code or in a loop around both.
    A parameter's object may be changed by a later call of this function, so
    any change counts.  Changes made through names with gradients are not
    counted: they are refused or rewritten elsewhere, or are changes of lists
    and dicts that the adjoints of containers replay."""
    reached = effects.reached.get(var, set())
    here, loops = places[id(stmt)]
    for key, objects, through in effects.changes:
        common = objects & reached
        if not common or key not in places or through <= settled:
            continue
        there, their_loops = places[key]
        if there > here or loops & their_loops or any(o[0] == "param" for o in common):
            return True
    return False


def snapshot_reads(ctx, func, effects, active, calls, arrays=frozenset(),
                   volatile=frozenset()):
    """Copies values where the backward pass reads them and they may change in
    place later (see the module doc); returns the active names, the copies of
    active names among them.  ``arrays`` are the :func:`written_arrays`;
    ``calls`` answers for user functions; ``volatile`` names the parameters
    whose objects the caller changes after this function returns.  The
    arguments of a user call are not copied: the callee is told which of its
    parameters change afterwards, and keeps copies of what it reads of them."""
    active = set(active)
    settled = active - set(arrays)
    places = positions(func.body)
    facts = effects.facts
    outside = facts.deep({("param", p) for p in volatile})

    def header(stmt):
        return stmt.test if isinstance(stmt, ast.If) else \
            stmt.iter if isinstance(stmt, ast.For) else stmt

    def changes_later(var, stmt, structure):
        if outside and facts.deep(facts.of({var})) & outside:
            return True
        if var not in effects.unstable:
            return False
        if id(stmt) not in places:
            return var not in active
        # A list whose length the adjoint reads (hs + hs, np.stack(hs)) must
        # not grow or shrink later, even by appends whose adjoints are replayed.
        return _changed_later(var, stmt, effects, places, frozenset() if structure else settled)

    def one(stmt):
        out = []
        reads = _reads_backward(stmt, active)
        value = getattr(stmt, "value", None)
        user = isinstance(stmt, ast.Assign) and isinstance(value, ast.Call) and \
            fact(value, "target").kind in ("user", "local")
        # a user function's adjoint may read the structure of any list it gets;
        # a gradient's (kt.grad(f)(x, hs)) runs f again on the arguments it got
        gradient = isinstance(stmt, ast.Assign) and isinstance(value, ast.Call) and \
            fact(value, "target").kind == "gradient"
        structure = reads if user or gradient else _container_arguments(stmt)
        if isinstance(stmt, ast.If):        # the backward pass tests it again
            structure = reads
        wanted = sorted(v for v in reads if changes_later(v, stmt, v in structure))
        if user:
            if wanted:
                params = calls.parameters(value)
                set_fact(stmt, "volatile", frozenset(
                    p for node, p in zip(calls.bind(value), params)
                    if isinstance(node, ast.Name) and node.id in wanted))
            return [stmt]
        renames = {}
        for var in wanted:
            copy_name = ctx.fresh(f"{var}_now")
            if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name):
                # if hs: ... hs.append(v): only its truth is read again
                truth = call(ctx.helper("bool"), name(var))
                set_fact(truth, "target", Target("nondiff", bool, "bool"))
                out.append(assign(copy_name, truth, like=stmt))
                renames[var] = copy_name
                continue
            copy_call = call(ctx.helper("snapshot"), name(var))
            set_fact(copy_call, "target", Target("primitive", rt.snapshot, "snapshot"))
            out.append(assign(copy_name, copy_call, like=stmt))
            if var in active:               # the copy's adjoint flows back to var
                active.add(copy_name)
            renames[var] = copy_name
        if renames:
            renamer = _Rename(renames)
            if isinstance(stmt, (ast.If, ast.For)):
                part = "test" if isinstance(stmt, ast.If) else "iter"
                setattr(stmt, part, renamer.visit(header(stmt)))
            elif isinstance(stmt.targets[0], ast.Subscript):
                stmt.targets[0].slice = renamer.visit(stmt.targets[0].slice)
            else:
                stmt.value = renamer.visit(stmt.value)
        out.append(stmt)
        return out

    func.body = rewrite(func.body, one)
    return active
