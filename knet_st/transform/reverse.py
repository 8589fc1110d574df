"""Pass 6, reverse: the forward (primal) and backward (adjoint) functions.

For a normalized function ``f`` this writes

* ``f_fwd(params)``: computes ``f`` and returns ``(result, saved)``, where
  ``saved`` holds the values the backward sweep reads;
* ``f_bwd(saved, dout, <adjoints of active params>)``: walks the statements
  backwards and returns the adjoints of the active parameters.

Control flow is replayed from a stack (a local list): a loop pushes how many
times it ran (a ``for`` over ``range`` is simply run in reverse), an ``if``'s
adjoint tests the same condition variable, and a value about to be
overwritten is pushed first and popped back when the adjoint reaches the
assignment.  Pushes are decided at the end (:meth:`Reverse.finish`): only
variables that the adjoint reads and that are assigned more than once.

Adjoint variables start as "zero" (no code); the first contribution assigns,
later ones add.  Each adjoint variable is tracked as one of ``ZERO`` (treat
as zero, never read), ``DENSE`` (an array or number) or ``ANY`` (may be
``None``, a sparse container adjoint or an index gradient).
"""

import ast
import copy
import operator
from dataclasses import dataclass

import numpy as np

from .accumulate import ANY, DENSE, SOME, ZERO, Accumulation, merge
from .activity import call_operands, names_in
from .adjoints import METHODS, NONDIFFERENTIABLE_ATTRIBUTES, NONDIFFERENTIABLE_METHODS
from .calls import UserCalls
from .containers import Containers
from .facts import fact, has_fact
from .inline import Inlining
from .loops import ControlFlow
from .registry import rule_for
from .trees import Marker, assign as _assign, call as _call, name as _name, none as _none, \
    relocate

# functions that call a function given to them (desugared by .callbacks)
_CALLBACKS = frozenset({"sorted", "min", "max", "reduce", "functools.reduce"})
BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
          ast.Pow: "pow", ast.MatMult: "matmul", ast.Mod: "mod"}
UNARYOPS = {ast.USub: "neg", ast.UAdd: "pos"}


@dataclass
class Reversed:
    """What the reverse pass wrote, for the assemble pass: the parameters, the
    forward (``primal``) and backward (``adjoint``) statements with their
    push/restore markers, the adjoints of the active parameters (``grads``),
    the incoming adjoint parameters and the name of the output's adjoint
    (``dout``), the returned expression, the stack's name, the loop counters,
    how often each name is bound (``sites``, ``extra_sites`` for the names
    the pass made) and the loops whose variable may go back to plain form."""
    params: list
    primal: list
    adjoint: list
    grads: list
    incoming: list
    dout: str
    ret: object
    stack: str
    counters: set
    sites: dict
    extra_sites: dict
    loop_copies: list


class Reverse(Accumulation, Inlining, Containers, UserCalls, ControlFlow):
    """Writes the forward and backward functions of one normalized function."""

    def __init__(self, ctx, bindings, active, active_params, mixed, sparse, is_top, calls):
        self.ctx = ctx
        self.names = ctx.names
        self.bindings = bindings
        self.sites = dict(bindings.sites)    # the reverse pass adds its own names
        self.active = active
        self.active_params = active_params
        self.mixed = mixed
        self.sparse = sparse
        self.is_top = is_top
        self.calls = calls
        self.adjnames = {}
        self.extra_sites = {}
        self.special = set()
        self.stack = None
        self.ret = None
        self.loop_copies = []

    def run(self, func):
        """The forward and backward statements of the normalized ``func``, as a
        :class:`Reversed`."""
        params = [a.arg for a in func.args.posonlyargs + func.args.args +
                  func.args.kwonlyargs]
        primal = self.block_fwd(func.body, 0)
        self.dout = self.names.fresh("dout")
        K = {}
        incoming, late = [], []
        if not self.is_top:
            # The caller passes the adjoint it holds for each argument.  A parameter
            # that keeps its value throughout starts from it; one that is rebound
            # gets it added where it held the caller's value: at the end.
            for p in self.active_params:
                if self.sites.get(p, 1) > 1:
                    incoming_name = self.names.fresh(f"d{p}_in")
                    incoming.append(incoming_name)
                    late.append((p, incoming_name))
                else:
                    K[self.adj(p)] = ANY
                    incoming.append(self.adj(p))
        adjoint = self.block_bwd(func.body, K, 0)
        for p, incoming_name in late:
            adjoint += self.contrib(p, _name(incoming_name), ANY, K)
        grads = [_name(self.adj(p)) if K.get(self.adj(p), ZERO) != ZERO else _none()
                 for p in self.active_params]
        return Reversed(params=params, primal=primal, adjoint=adjoint, grads=grads,
                        incoming=incoming, dout=self.dout, ret=self.ret,
                        stack=self.stack_name(), counters=self.special,
                        sites=self.sites, extra_sites=self.extra_sites,
                        loop_copies=self.loop_copies)

    # -- names ----------------------------------------------------------------

    def helper(self, key, obj=None):
        """A Name for a runtime helper (or builtin) in the generated module."""
        return self.ctx.helper(key, obj)

    def stack_name(self):
        """The name of the function's tape (made on first use)."""
        if self.stack is None:
            self.stack = self.names.fresh("stack")
        return self.stack

    def checkpoint(self):
        """The state a loop's adjoint rounds start from."""
        return (self.names.checkpoint(), dict(self.adjnames), dict(self.extra_sites),
                len(self.loop_copies))

    def restore(self, state):
        """Back to a :meth:`checkpoint`."""
        names, adjnames, extra, copies = state
        self.names.restore(names)
        self.adjnames = adjnames
        self.extra_sites = extra
        del self.loop_copies[copies:]

    def run_check(self, helper, var, stmt):
        """A run-time check of ``stmt`` (see :meth:`Context.run_check`)."""
        return self.ctx.run_check(helper, var, stmt)

    def error(self, message, node):
        """A :class:`TransformError` at ``node``'s line."""
        return self.ctx.error(message, node)

    def is_active(self, node):
        """Whether ``node`` is a name that carries a gradient."""
        return isinstance(node, ast.Name) and node.id in self.active

    # -- blocks -----------------------------------------------------------------
    # The forward pass over the whole tree runs first and annotates statements
    # (positions, saved tapes); the backward pass reads those annotations.  Only
    # the backward pass is re-run while a loop's adjoint state settles.

    def block_fwd(self, stmts, depth):
        """The forward statements of a body (positions of the user's lines)."""
        out = []
        for stmt in stmts:
            out += [relocate(s, stmt) for s in
                    getattr(self, "fwd_" + type(stmt).__name__)(stmt, depth)]
        return out

    def block_bwd(self, stmts, K, depth):
        """The adjoint statements of a body, last statement first."""
        out = []
        for stmt in reversed(stmts):
            out += [relocate(s, stmt) for s in
                    getattr(self, "bwd_" + type(stmt).__name__)(stmt, K, depth)]
        return out

    # -- simple statements ---------------------------------------------------------

    def fwd_Pass(self, stmt, depth):
        return []

    def bwd_Pass(self, stmt, K, depth):
        return []

    fwd_Assert = fwd_Raise = fwd_Break = lambda self, stmt, depth: [stmt]
    bwd_Assert = bwd_Raise = bwd_Break = bwd_Pass

    def fwd_Return(self, stmt, depth):
        self.ret = stmt.value
        return []

    def bwd_Return(self, stmt, K, depth):
        value = stmt.value
        if self.is_active(value):
            # A caller always passes a real output adjoint (see calls.py).
            return self.contrib(value.id, _name(self.dout), DENSE if self.is_top else SOME, K)
        return []

    # -- assignments ---------------------------------------------------------------

    def fwd_Assign(self, stmt, depth):
        target = stmt.targets[0]
        if isinstance(target, ast.Subscript):
            return self.fwd_setitem(stmt)
        value = stmt.value
        if isinstance(value, ast.Call) and \
                fact(value, "target").kind in ("user", "local", "gradient"):
            return self.fwd_user_call(stmt, depth)
        out = []
        if isinstance(value, ast.Subscript) and self.is_active(value.value):
            out += self.key_for(value, depth, stmt)
        self.check(stmt)
        if isinstance(value, ast.Name) and value.id == target.id:
            return out
        return out + [Marker("push", target.id, stmt), stmt]

    def bwd_Assign(self, stmt, K, depth):
        target = stmt.targets[0]
        if isinstance(target, ast.Subscript):
            return self.bwd_setitem(stmt, K)
        value = stmt.value
        if isinstance(value, ast.Call) and \
                fact(value, "target").kind in ("user", "local", "gradient"):
            return self.bwd_user_call(stmt, K)
        var = target.id
        if isinstance(value, ast.Name) and value.id == var:
            return []
        out = []
        if var in self.active:
            d = self.adj(var)
            kind = K.get(d, ZERO)
            if kind == ANY and self.needs_dense(value):
                skipped = dict(K)
                body = self.rhs_adjoint(stmt, var, value, K)
                if body:
                    if var in self.sparse:
                        body.insert(0, _assign(d, _call(self.helper("dense"), _name(d))))
                    merged, fix_body, fix_skip = merge(K, skipped)
                    K.clear()
                    K.update(merged)
                    test = ast.Compare(left=_name(d), ops=[ast.IsNot()], comparators=[_none()])
                    out.append(ast.If(test=test, body=body + fix_body, orelse=fix_skip))
            elif kind == SOME and self.needs_dense(value) and var in self.sparse:
                out.append(_assign(d, _call(self.helper("dense"), _name(d))))
                out += self.rhs_adjoint(stmt, var, value, K)
            elif kind != ZERO:
                out += self.rhs_adjoint(stmt, var, value, K)
            K[d] = ZERO
        out.append(Marker("restore", var, stmt))
        if has_fact(value, "key"):
            out.append(Marker("restore", fact(value, "key").id, stmt))
        return out

    def needs_dense(self, value):
        """Whether the adjoint of ``value`` reads its output's adjoint as an array
        (templates do; container bookkeeping handles ``None`` itself)."""
        return not isinstance(value, (ast.Name, ast.Subscript, ast.Tuple, ast.List, ast.Dict))

    def rhs_adjoint(self, stmt, var, value, K):
        """The adjoint statements of ``var = value`` for ``value``'s operands."""
        dy = _name(self.adj(var))
        if isinstance(value, ast.Name):
            if value.id in self.active:
                return self.contrib(value.id, dy, K[self.adj(var)], K)
            return []
        if isinstance(value, ast.Constant):
            return []
        if isinstance(value, ast.BinOp):
            op = BINOPS.get(type(value.op))
            if op is None:
                return []
            return self.inline(rule_for(getattr(operator, op)), [value.left, value.right], {},
                               var, dy, K, stmt)
        if isinstance(value, ast.UnaryOp):
            op = UNARYOPS.get(type(value.op))
            if op is None:
                return []
            return self.inline(rule_for(getattr(operator, op)), [value.operand], {}, var, dy,
                               K, stmt)
        if isinstance(value, ast.Call):
            target = fact(value, "target")
            keywords = {k.arg: k.value for k in value.keywords}
            total = self.total_of_elementwise(value)
            if total is not None:
                return self.contrib(total, dy, K[self.adj(var)], K)
            if target.kind == "primitive":
                return self.inline(rule_for(target.obj), value.args, keywords, var, dy, K, stmt)
            if target.kind == "method":
                fn = METHODS[target.name]
                return self.inline(rule_for(fn), [value.func.value] + value.args, keywords,
                                   var, dy, K, stmt)
            return []
        if isinstance(value, ast.Subscript):
            base = value.value
            if base.id not in self.active:
                return []
            d = self.adj(base.id)
            current = _name(d) if K.get(d, ZERO) != ZERO else _none()
            K[d] = ANY
            key = fact(value, "key") if has_fact(value, "key") else self.index_value(value.slice)
            return [_assign(d, _call(self.helper("getitem_grad"), current, _name(base.id),
                                     key, dy))]
        if isinstance(value, ast.Attribute):
            if value.attr == "T":
                return self.inline(rule_for(np.transpose), [value.value], {},
                                   var, dy, K, stmt)
            return []
        if isinstance(value, (ast.Tuple, ast.List)):
            out = []
            for i, elt in enumerate(value.elts):
                if self.is_active(elt):
                    part = _call(self.helper("item"), dy, ast.Constant(i))
                    out += self.contrib(elt.id, part, ANY, K)
            return out
        if isinstance(value, ast.Dict):
            out = []
            for key, elt in zip(value.keys, value.values):
                if self.is_active(elt):
                    part = _call(self.helper("item"), dy, copy.deepcopy(key))
                    out += self.contrib(elt.id, part, ANY, K)
            return out
        return []

    def total_of_elementwise(self, value):
        """For ``s = np.sum(t)`` (all elements) where ``t`` is used only here and
        comes from ``* / **`` (or ``+ -`` with a constant): the name ``t``.  Its
        adjoint can stay the scalar ``ds``: those rules spread it back to each
        operand's shape, so no array of copies is built."""
        target = fact(value, "target")
        if target.kind == "primitive" and target.obj is np.sum and len(value.args) == 1 \
                and not value.keywords:
            operand = value.args[0]
        elif target.kind == "method" and target.name == "sum" and not value.args \
                and not value.keywords:
            operand = value.func.value
        else:
            return None
        if not self.is_active(operand):
            return None
        name = operand.id
        definition = self.bindings.single_defs.get(name)
        if self.bindings.uses.get(name) != 1 or not isinstance(definition, ast.BinOp) or \
                name in self.mixed:
            return None
        # The rules of * / ** multiply the adjoint by an operand or the output,
        # which brings back every broadcast axis before unbroadcast sums; those
        # of + and - pass it on alone, which is right only when the other
        # operand is a constant (no broadcasting between two arrays).
        if isinstance(definition.op, (ast.Mult, ast.Div, ast.Pow)):
            return name
        if isinstance(definition.op, (ast.Add, ast.Sub)) and (
                isinstance(definition.left, ast.Constant) or
                isinstance(definition.right, ast.Constant)):
            return name
        return None

    def fwd_AugAssign(self, stmt, depth):
        return [stmt]

    def bwd_AugAssign(self, stmt, K, depth):
        return []

    # -- validation -------------------------------------------------------------

    def check(self, stmt):
        """Refuses operations that would silently drop a gradient."""
        value = stmt.value
        if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Mult)) and \
                names_in(value) & self.active:
            for operand in (value.left, value.right):
                definition = self.bindings.single_defs.get(getattr(operand, "id", None))
                if isinstance(definition, (ast.List, ast.Tuple, ast.ListComp)):
                    raise self.error("cannot differentiate '+' or '*' on lists or tuples "
                                     "(concatenation, repetition): build the list with "
                                     "append or a display instead", stmt)
        if isinstance(value, ast.Call):
            target = fact(value, "target")
            active = [a for a in call_operands(value) if names_in(a) & self.active]
            if not active:
                return
            if target.kind == "dynamic":
                raise self.error(f"cannot differentiate a call of {target.name!r}, a function "
                                 "held in a variable the compiler cannot follow (taken from a "
                                 "loop, a list or a dict): pass the function itself (np.tanh, "
                                 "a def) as the argument, or call it directly", stmt)
            if target.kind == "opaque" and isinstance(target.obj, type) and \
                    not target.obj.__module__.startswith(("numpy", "builtins", "cupy")):
                raise self.error(f"cannot differentiate through objects of your class "
                                 f"{target.name!r} made here: keep the values with "
                                 "gradients in arrays, lists or dicts, and call plain "
                                 "functions", stmt)
            if target.kind == "opaque" and target.name in _CALLBACKS:
                raise self.error(f"cannot differentiate this call of {target.name}: give "
                                 "it a def or a lambda written in the differentiated code, "
                                 "or a module's function (np.linalg.norm), by its name "
                                 "(not a call's result, a variable holding one or a "
                                 "comprehension's variable)", stmt)
            if target.kind == "opaque":
                raise self.error(f"no gradient is defined for {target.name!r}; declare one "
                                 "with knet_st.adjoint (see the README)", stmt)
            if target.kind == "method" and target.name not in METHODS and \
                    target.name not in NONDIFFERENTIABLE_METHODS:
                raise self.error(f"no gradient is defined for the method "
                                 f"'.{target.name}()' (the methods of objects made in the "
                                 "differentiated function are not followed)", stmt)
        elif isinstance(value, ast.Attribute) and self.is_active(value.value):
            if value.attr != "T" and value.attr not in NONDIFFERENTIABLE_ATTRIBUTES:
                raise self.error(f"no gradient is defined for the attribute "
                                 f"'.{value.attr}'", stmt)
