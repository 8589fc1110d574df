"""Pass 6b, assemble: the forward and backward functions from what the
reverse pass wrote.

The reverse pass leaves push/restore markers wherever a value is about to be
overwritten.  Here they become ``stack.append(v)`` / ``v = stack.pop()`` for
exactly the variables the backward function reads and that are bound more
than once (found by a small fixed point: removing an empty adjoint loop can
make its counter unneeded), loops whose variable needs no saving go back to
their plain form, and the two ``FunctionDef`` trees are built: the forward
function returns ``(result, saved)``, the backward one unpacks ``saved``.
"""

import ast
import collections
import copy

from .facts import fact, set_fact
from .registry import has_scalar_result, rule_for
from .trees import Marker, relocate
from .trees import assign as _assign, call as _call, name as _name, none as _none


class _Finisher:
    """Turns push/restore markers into stack operations (or nothing) and cleans up."""

    def __init__(self, rev, pushed, counters, first=frozenset()):
        self.rev = rev
        self.first = first
        self.pushed = pushed
        self.counters = counters
        self.stack = rev.stack

    def stmts(self, stmts):
        """The statements with markers resolved."""
        out = []
        for stmt in stmts:
            out += self.stmt(stmt)
        return out

    def stmt(self, stmt):
        """One statement with its markers resolved (a list)."""
        if isinstance(stmt, Marker):
            if stmt.var not in self.pushed or (id(stmt.origin), stmt.var) in self.first:
                return []
            stack = _name(self.rev.stack)
            if stmt.kind == "push":
                return [relocate(ast.Expr(_call(ast.Attribute(
                    value=stack, attr="append", ctx=ast.Load()), _name(stmt.var))), stmt)]
            return [relocate(_assign(stmt.var, _call(ast.Attribute(
                value=stack, attr="pop", ctx=ast.Load()))), stmt)]
        counter = fact(stmt, "counter", None)
        if counter is not None and counter not in self.counters:
            return []
        stmt = copy.copy(stmt)
        if isinstance(stmt, ast.If):
            stmt.body = self.stmts(stmt.body)
            stmt.orelse = self.stmts(stmt.orelse)
            if not stmt.body and not stmt.orelse:
                return [] if _pure_test(stmt.test) else [stmt]
            stmt.body = stmt.body or [ast.Pass()]
        elif isinstance(stmt, (ast.For, ast.While)):
            body = self.stmts(stmt.body)
            if not [s for s in body if not fact(s, "counter", None)] \
                    and fact(stmt, "adjoint_loop", False):
                return []
            stmt.body = body or [ast.Pass()]
        return [stmt]


def _pure_test(test):
    return isinstance(test, (ast.Name, ast.Constant, ast.Compare))


def _loads(stmts):
    return {n.id for s in stmts for n in ast.walk(s)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _stores(stmts):
    return {n.id for s in stmts for n in ast.walk(s)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _mark_adjoint_loops(stmts):
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, (ast.For, ast.While)):
                set_fact(node, "adjoint_loop", True)


def assemble(rev, args, fwd_name, bwd_name, ctx):
    """The forward and backward ``FunctionDef`` trees from what the reverse pass
    wrote (a :class:`~knet_st.transform.reverse.Reversed`); ``args`` are the
    function's arguments, ``ctx`` its :class:`~knet_st.transform.context.Context`."""
    names = ctx.names
    params, primal, adjoint, grads = rev.params, rev.primal, rev.adjoint, rev.grads
    _mark_adjoint_loops(adjoint)
    ret = rev.ret if rev.ret is not None else ast.Constant(None)
    locals_ = set(params) | _stores(primal) | {rev.stack} | rev.counters
    adjoint_body = adjoint + [ast.Return(_tuple(grads))]
    # Which overwritten values to push: those the backward code reads.  Pushing
    # one can make an adjoint loop non-empty, whose reads then count too, so
    # this grows to a fixed point; loop counters are kept where still read.
    pushed = set()
    while True:
        needed = _loads(_Finisher(rev, pushed, rev.counters).stmts(adjoint_body)) & locals_
        candidates = {v for v in needed if rev.sites.get(v, 0) +
                      (2 if rev.extra_sites.get(v, 0) else (1 if v in rev.extra_sites else 0))
                      > 1} - rev.counters
        if candidates <= pushed:
            break
        pushed |= candidates
    counters = rev.counters & needed
    # Loops whose variable needs no saving go back to their plain form.
    for loop, target, item in rev.loop_copies:
        if target not in pushed:
            _plain_loop(loop, target, item)
    # A variable's first binding in the straight-line top level has no earlier
    # value worth saving.
    first, bound = set(), set(params)
    for stmt in primal:
        if isinstance(stmt, Marker) and stmt.kind == "push" and stmt.var not in bound:
            first.add((id(stmt.origin), stmt.var))
        bound |= _stores([stmt])
    finisher = _Finisher(rev, pushed, counters, first)
    fwd_body = finisher.stmts(primal)
    bwd_body = finisher.stmts(adjoint)
    needed = _loads(bwd_body + [ast.Return(_tuple(grads))]) & locals_
    uses_stack = any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                     and n.value.id == rev.stack for s in fwd_body + bwd_body
                     for n in ast.walk(s))
    top_level = set(params) | _stores([s for s in fwd_body if not isinstance(
        s, (ast.If, ast.For, ast.While))])
    saved = [v for v in _ordered(params, fwd_body) if v in needed]
    if uses_stack and rev.stack not in saved:
        saved.append(rev.stack)
    init = [_assign(v, _none()) for v in _ordered(params, fwd_body)
            if v not in params and (v in pushed or v in saved and v not in top_level)]
    if uses_stack:
        init.insert(0, _assign(rev.stack, ast.List(elts=[], ctx=ast.Load())))
    shapes = {v: names.fresh(f"{v}_shape")
              for v in _shape_only(bwd_body, saved + sorted(pushed - set(saved)),
                                   set(params) | rev.counters)}
    if shapes:                  # pushed values the backward reads only the shape of
        _push_shapes(fwd_body, shapes, rev.stack, ctx.helper("shape_of"))
    if shapes:
        _rename_loads(bwd_body, shapes)
    saved_name = names.fresh("saved")
    scalars = _scalar_results(fwd_body, shapes)
    kept = [ctx.helper("SCALAR_SHAPE") if v in scalars else
            _call(ctx.helper("shape_of"), _name(v)) if v in shapes else _name(v)
            for v in saved]
    fwd_return = ast.Return(ast.Tuple(elts=[copy.deepcopy(ret), _tuple(kept)],
                                      ctx=ast.Load()))
    fwd = ast.FunctionDef(name=fwd_name, args=copy.deepcopy(args),
                          body=init + fwd_body + [fwd_return], decorator_list=[],
                          returns=None, type_comment=None, type_params=[])
    unpack = []
    if saved:
        unpack = [_assign(ast.Tuple(elts=[_name(shapes.get(v, v), True) for v in saved],
                                    ctx=ast.Store()), _name(saved_name))]
    bwd_args = ast.arguments(posonlyargs=[], args=[ast.arg(a) for a in
                                                   [saved_name, rev.dout] + rev.incoming],
                             vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                             defaults=[])
    grads_value = grads[0] if len(grads) == 1 else _tuple(grads)
    bwd = ast.FunctionDef(name=bwd_name, args=bwd_args,
                          body=unpack + bwd_body + [ast.Return(grads_value)],
                          decorator_list=[], returns=None, type_comment=None, type_params=[])
    return fwd, bwd


def _shape_only(body, saved, excluded):
    """The saved values that the backward code reads only for their shape (as
    ``unbroadcast``'s second argument): the forward keeps ``shape_of(v)``, not
    the array."""
    shape_reads, other_reads = set(), set()
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                fact(node.func, "helper", None) == "unbroadcast" and len(node.args) == 2 \
                and isinstance(node.args[1], ast.Name):
            shape_reads.add(id(node.args[1]))
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                id(node) not in shape_reads:
            other_reads.add(node.id)
    return [v for v in saved if v not in excluded and v not in other_reads
            and any(isinstance(n, ast.Name) and n.id == v and id(n) in shape_reads
                    for s in body for n in ast.walk(s))]


def _scalar_results(body, shapes):
    """The values among ``shapes`` that the forward binds once, at its top
    level, to a call whose result is 0-d by its rule (``np.sum(x)``): their
    shape is known without them, so computing them may become dead code."""
    bindings = collections.Counter(
        node.id for node in ast.walk(ast.Module(body=body, type_ignores=[]))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store))
    found = set()
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and \
                isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id in shapes and \
                bindings.get(stmt.targets[0].id) == 1 and isinstance(stmt.value, ast.Call):
            target = fact(stmt.value, "target", None)
            if target is not None and target.kind == "primitive" and has_scalar_result(
                    rule_for(target.obj), stmt.value.args,
                    {k.arg: k.value for k in stmt.value.keywords if k.arg}) and \
                    all(k.arg for k in stmt.value.keywords) and \
                    not any(isinstance(a, ast.Starred) for a in stmt.value.args):
                found.add(stmt.targets[0].id)
    return found


def _push_shapes(body, shapes, stack, shape_of):
    """``stack.append(shape_of(v))`` instead of ``stack.append(v)`` for ``v`` in
    ``shapes``."""
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "append" and isinstance(node.func.value, ast.Name) and \
                node.func.value.id == stack and len(node.args) == 1 and \
                isinstance(node.args[0], ast.Name) and node.args[0].id in shapes:
            node.args = [_call(copy.deepcopy(shape_of), node.args[0])]


def _rename_loads(body, renames):
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id in renames:
                node.id = renames[node.id]


def _tuple(elts):
    return ast.Tuple(elts=list(elts), ctx=ast.Load())


def _ordered(params, stmts):
    seen = list(params)
    for s in stmts:
        for n in ast.walk(s):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in seen:
                seen.append(n.id)
    return seen


def _plain_loop(loop, target, item):
    """``for item in xs: v = item`` back to ``for v in xs``."""
    body = loop.body
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name) and \
                stmt.value.id == item and stmt.targets[0].id == target:
            del body[i]
            loop.target = _name(target, True)
            return
