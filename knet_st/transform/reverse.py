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
import builtins
import copy
import operator

import numpy as np

from .facts import fact, has_fact, set_fact
from ..runtime import gradients as rt
from .activity import call_operands, names_in
from .adjoints import METHODS, NONDIFFERENTIABLE_ATTRIBUTES, NONDIFFERENTIABLE_METHODS
from .registry import rule_for
from .resolve import Target
from .trees import assign as _assign, bound_name, call as _call, name as _name, none as _none

ZERO, DENSE, ANY = "zero", "dense", "any"

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
          ast.Pow: "pow", ast.MatMult: "matmul", ast.Mod: "mod"}
UNARYOPS = {ast.USub: "neg", ast.UAdd: "pos"}
CONTAINER_GRADS = {"split_grad", "vstack_grad", "array_grad", "seq", "builtin_sum_grad",
                   "element_grad"}


class Marker(ast.Expr):
    """A placeholder resolved by :meth:`Reverse.finish`: push ``var`` before it
    is overwritten (``kind='push'``) or pop it back (``kind='restore'``)."""

    _fields = ("value",)

    def __init__(self, kind, var, origin=None):
        super().__init__(value=ast.Constant(None))
        self.kind = kind
        self.var = var
        self.origin = origin


def join(k1, k2):
    """The adjoint kind after two paths meet: the same kind, or ``ANY``."""
    if k1 == k2:
        return k1
    return ANY


class Reverse:
    """Writes the forward and backward functions of one normalized function."""

    def __init__(self, unit, active, active_params, compiler, is_top):
        self.unit = unit
        self.source = unit.source
        self.names = unit.names
        self.active = active
        self.active_params = active_params
        self.compiler = compiler
        self.is_top = is_top
        self.adjnames = {}
        self.extra_sites = {}
        self.special = set()
        self.sparse = set()
        self.stack = None
        self.ret = None
        self.loop_copies = []
        self.mixed = {}

    # -- names ----------------------------------------------------------------

    def adj(self, var):
        if var not in self.adjnames:
            self.adjnames[var] = self.names.fresh("d" + var)
        return self.adjnames[var]

    def helper(self, name, obj=None):
        """A Name for a runtime helper (or builtin) in the generated module."""
        if obj is None:
            obj = getattr(rt, name) if hasattr(rt, name) else getattr(builtins, name)
        return bound_name(self.compiler.ns.bind(name, obj, self.names))

    def stack_name(self):
        if self.stack is None:
            self.stack = self.names.fresh("stack")
        return self.stack

    def checkpoint(self):
        return (self.names.checkpoint(), dict(self.adjnames), dict(self.extra_sites),
                len(self.loop_copies))

    def restore(self, state):
        names, adjnames, extra, copies = state
        self.names.restore(names)
        self.adjnames = adjnames
        self.extra_sites = extra
        del self.loop_copies[copies:]

    def run_check(self, helper, var, stmt):
        """A run-time check ``helper(var, lineN)`` of ``stmt``: ``lineN`` is a
        name in the generated module for ``(file, line, text)``, for its error."""
        where = (self.source.filename, stmt.lineno, self.source.line(stmt.lineno))
        line = bound_name(self.compiler.ns.bind(f"line{stmt.lineno}", where, self.names))
        check = ast.Expr(_call(self.helper(helper), _name(var), line))
        return set_fact(check, "check", True)

    def error(self, message, node):
        return self.source.error(message, node)

    # -- accumulation -------------------------------------------------------

    def contrib(self, var, expr, kind, K):
        """Statements adding ``expr`` into the adjoint of ``var``.  For a variable
        that holds values with and without gradients at different times (a
        non-differentiated parameter rebound in a loop), only while it holds one
        with: the gradient of the input data is never computed."""
        if var not in self.mixed:
            return [self.accumulate(var, expr, kind, K)]
        skipped = dict(K)
        stmt = self.accumulate(var, expr, kind, K)
        merged, fix_live, fix_skip = merge(K, skipped)
        K.clear()
        K.update(merged)
        return [ast.If(test=_name(self.mixed[var]), body=[stmt] + fix_live, orelse=fix_skip)]

    def accumulate(self, var, expr, kind, K):
        """The statement adding ``expr`` into the adjoint of ``var``."""
        d = self.adj(var)
        k = K.get(d, ZERO)
        if k == ZERO:
            K[d] = kind
            return _assign(d, expr)
        if k == DENSE and kind == DENSE:
            return _assign(d, ast.BinOp(left=_name(d), op=ast.Add(), right=expr))
        K[d] = ANY
        return _assign(d, _call(self.helper("add"), _name(d), expr))

    def is_active(self, node):
        return isinstance(node, ast.Name) and node.id in self.active

    # -- blocks -----------------------------------------------------------------
    # The forward pass over the whole tree runs first and annotates statements
    # (positions, saved tapes); the backward pass reads those annotations.  Only
    # the backward pass is re-run while a loop's adjoint state settles.

    def block_fwd(self, stmts, depth):
        out = []
        for stmt in stmts:
            out += getattr(self, "fwd_" + type(stmt).__name__)(stmt, depth)
        return out

    def block_bwd(self, stmts, K, depth):
        out = []
        for stmt in reversed(stmts):
            out += getattr(self, "bwd_" + type(stmt).__name__)(stmt, K, depth)
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
            return self.contrib(value.id, _name(self.dout), DENSE if self.is_top else ANY, K)
        return []

    # -- assignments ---------------------------------------------------------------

    def fwd_Assign(self, stmt, depth):
        target = stmt.targets[0]
        if isinstance(target, ast.Subscript):
            return self.fwd_setitem(stmt)
        value = stmt.value
        if isinstance(value, ast.Call) and fact(value, "target").kind in ("user", "local"):
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
        if isinstance(value, ast.Call) and fact(value, "target").kind in ("user", "local"):
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
        definition = self.unit.single_defs.get(name)
        if self.unit.uses.get(name) != 1 or not isinstance(definition, ast.BinOp) or \
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

    def index_value(self, index):
        """The run-time value of a subscript's index as an expression."""
        if isinstance(index, ast.Slice):
            parts = [p if p is not None else _none() for p in (index.lower, index.upper,
                                                               index.step)]
            return _call(self.helper("slice", slice), *[copy.deepcopy(p) for p in parts])
        if isinstance(index, ast.Tuple):
            return ast.Tuple(elts=[self.index_value(e) for e in index.elts], ctx=ast.Load())
        return copy.deepcopy(index)

    def key_for(self, subscript, depth, stmt):
        """For lists that grow (``append``), a negative or computed index is
        turned into a position in the forward pass, where the length is right."""
        base = subscript.value.id
        index = subscript.slice
        if base not in self.unit.may_grow or \
                isinstance(index, ast.Constant) and isinstance(index.value, int) \
                and index.value >= 0:
            return []
        key = self.names.fresh("key")
        self.extra_sites[key] = depth
        set_fact(subscript, "key", _name(key))
        return [Marker("push", key, stmt),
                _assign(key, _call(self.helper("seqkey", rt.seqkey), _name(base),
                                   self.index_value(index)))]

    # -- primitives: inlined adjoint templates ------------------------------------------

    def inline(self, rule, args, keywords, var, dy, K, stmt):
        try:
            bound = rule.bind(args, keywords)
        except TypeError as exc:
            raise self.error(f"cannot differentiate this call: {exc}", stmt) from None
        wanted = [p for p in rule.params + rule.kwonly
                  if p in bound and self.is_active(bound[p])]
        if not wanted:
            return []
        body = rule.statements(wanted)
        assigned = {n.id for s in body for n in ast.walk(s)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        outputs = {"d" + p: p for p in wanted}
        renames = {}
        for s in body:
            for node in ast.walk(s):
                if not isinstance(node, ast.Name) or node.id in renames:
                    continue
                name = node.id
                if name == "dy":
                    renames[name] = dy
                elif name == "y":
                    renames[name] = _name(var)
                elif name in bound and name not in assigned:
                    renames[name] = bound[name]
                elif name in assigned:
                    renames[name] = _name(self.names.fresh(name if name not in outputs
                                                           else "g"))
                else:
                    obj = rule.globals.get(name, getattr(builtins, name, None))
                    renames[name] = bound_name(self.compiler.ns.bind(name, obj, self.names))
        out = []
        for s in body:
            s = _Fold().visit(_Rename(renames).visit(s))
            target = s.targets[0].id if isinstance(s, ast.Assign) and \
                isinstance(s.targets[0], ast.Name) else None
            original = next((o for o, r in renames.items()
                             if isinstance(r, ast.Name) and r.id == target), None)
            if original in outputs:
                arg = bound[outputs[original]]
                kind = ANY if _calls(s.value, CONTAINER_GRADS) else DENSE
                out += self.contrib(arg.id, s.value, kind, K)
            else:
                out.append(s)
        return out

    # -- containers ------------------------------------------------------------------

    def fwd_setitem(self, stmt):
        target = stmt.targets[0]
        base = target.value
        out = []
        if self.is_active(base) or self.is_active(stmt.value):
            out.append(self.run_check("check_container", base.id, stmt))
            if base.id in self.unit.may_grow:
                out += self.key_for(target, 1, stmt)
        return out + [stmt]

    def bwd_setitem(self, stmt, K):
        out = self.setitem_adjoint(stmt, K)
        key = fact(stmt.targets[0], "key", None)
        if key is not None:
            out.append(Marker("restore", key.id, stmt))
        return out

    def setitem_adjoint(self, stmt, K):
        target = stmt.targets[0]
        base = target.value.id
        if base not in self.active:
            return []
        d = self.adj(base)
        if K.get(d, ZERO) == ZERO:
            return []
        key = fact(target, "key") if has_fact(target, "key") else self.index_value(target.slice)
        grad = _call(self.helper("setitem_grad"), _name(d), _name(base), key)
        if self.is_active(stmt.value):
            part = self.names.fresh("g")
            return [_assign(ast.Tuple(elts=[_name(d, True), _name(part, True)],
                                      ctx=ast.Store()), grad)] + \
                self.contrib(stmt.value.id, _name(part), ANY, K)
        return [_assign(d, ast.Subscript(value=grad, slice=ast.Constant(0), ctx=ast.Load()))]

    def fwd_AugAssign(self, stmt, depth):
        return [stmt]

    def bwd_AugAssign(self, stmt, K, depth):
        return []

    def fwd_Expr(self, stmt, depth):
        call = stmt.value
        if fact(stmt, "check", False):
            return [stmt]
        func = call.func
        receiver = func.value.id if isinstance(func, ast.Attribute) and \
            isinstance(func.value, ast.Name) else None
        if receiver is None or not (receiver in self.active or
                                    names_in(call) & self.active):
            return [stmt]
        if func.attr != "append":
            raise self.error(f"cannot differentiate '{func.attr}' on a list that carries "
                             "gradients; build lists with append", stmt)
        position = self.names.fresh("position")
        self.extra_sites[position] = depth
        set_fact(stmt, "position", position)
        return [Marker("push", position, stmt),
                _assign(position, _call(self.helper("len"), _name(receiver))), stmt]

    def bwd_Expr(self, stmt, K, depth):
        position = fact(stmt, "position", None)
        if position is None:
            return []
        receiver = stmt.value.func.value.id
        d = self.adj(receiver)
        out = []
        if K.get(d, ZERO) != ZERO:
            grad = _call(self.helper("append_grad"), _name(d), _name(position))
            (value,) = stmt.value.args
            if self.is_active(value):
                part = self.names.fresh("g")
                out.append(_assign(ast.Tuple(elts=[_name(d, True), _name(part, True)],
                                             ctx=ast.Store()), grad))
                out += self.contrib(value.id, _name(part), ANY, K)
            else:
                out.append(_assign(d, ast.Subscript(value=grad, slice=ast.Constant(0),
                                                    ctx=ast.Load())))
        out.append(Marker("restore", position, stmt))
        return out

    # -- calls of user functions ---------------------------------------------------

    def fwd_user_call(self, stmt, depth):
        var = stmt.targets[0].id
        call = stmt.value
        bound = self.compiler.bind_call(call, self)
        set_fact(stmt, "args", bound)
        active = [i for i, a in enumerate(bound) if self.is_active(a)]
        set_fact(stmt, "active_args", active)
        target = fact(call, "target")
        if not active and target.kind == "user":
            return [Marker("push", var, stmt), stmt]
        fwd, bwd = self.compiler.request(target, tuple(active), self)
        set_fact(stmt, "callee_bwd", bwd)
        fwd_call = _call(bound_name(fwd), *copy.deepcopy(bound))
        if not active:
            return [Marker("push", var, stmt),
                    _assign(var, ast.Subscript(value=fwd_call, slice=ast.Constant(0),
                                               ctx=ast.Load()))]
        saved = self.names.fresh(f"{target.name.split('.')[-1]}_saved")
        self.extra_sites[saved] = depth
        set_fact(stmt, "saved", saved)
        pair = ast.Tuple(elts=[_name(var, True), _name(saved, True)], ctx=ast.Store())
        return [Marker("push", var, stmt), Marker("push", saved, stmt), _assign(pair, fwd_call)]

    def bwd_user_call(self, stmt, K):
        var = stmt.targets[0].id
        saved = fact(stmt, "saved", None)
        out = []
        if saved is not None:
            d = self.adj(var) if var in self.active else None
            kinds = [K.get(self.adj(fact(stmt, "args")[i].id), ZERO) for i in fact(stmt, "active_args")]
            dout_kind = K.get(d, ZERO) if d else ZERO
            if dout_kind != ZERO or any(k != ZERO for k in kinds):
                args = [_name(saved), _name(d) if dout_kind != ZERO else _none()]
                targets, extra, seen = [], [], set()
                for i in fact(stmt, "active_args"):
                    name = fact(stmt, "args")[i].id
                    da = self.adj(name)
                    if name in seen:
                        args.append(_none())
                        part = self.names.fresh("g")
                        targets.append(_name(part, True))
                        extra.append((name, part))
                    else:
                        seen.add(name)
                        args.append(_name(da) if K.get(da, ZERO) != ZERO else _none())
                        targets.append(_name(da, True))
                        K[da] = ANY
                target = targets[0] if len(targets) == 1 else \
                    ast.Tuple(elts=targets, ctx=ast.Store())
                out.append(_assign(target, _call(bound_name(fact(stmt, "callee_bwd")), *args)))
                for name, part in extra:
                    out += self.contrib(name, _name(part), ANY, K)
            if d:
                K[d] = ZERO
            out.append(Marker("restore", saved, stmt))
        elif var in self.active:
            K[self.adj(var)] = ZERO
        out.append(Marker("restore", var, stmt))
        return out

    # -- validation -------------------------------------------------------------

    def check(self, stmt):
        """Refuses operations that would silently drop a gradient."""
        value = stmt.value
        if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Mult)) and \
                names_in(value) & self.active:
            for operand in (value.left, value.right):
                definition = self.unit.single_defs.get(getattr(operand, "id", None))
                if isinstance(definition, (ast.List, ast.Tuple, ast.ListComp)):
                    raise self.error("cannot differentiate '+' or '*' on lists or tuples "
                                     "(concatenation, repetition): build the list with "
                                     "append or a display instead", stmt)
        if isinstance(value, ast.Call):
            target = fact(value, "target")
            active = [a for a in call_operands(value) if names_in(a) & self.active]
            if not active:
                return
            if target.kind in ("opaque", "dynamic"):
                raise self.error(f"no gradient is defined for {target.name!r}; declare one "
                                 "with knet_st.adjoint (see the README)", stmt)
            if target.kind == "method" and target.name not in METHODS and \
                    target.name not in NONDIFFERENTIABLE_METHODS:
                raise self.error(f"no gradient is defined for the method "
                                 f"'.{target.name}()'", stmt)
        elif isinstance(value, ast.Attribute) and self.is_active(value.value):
            if value.attr != "T" and value.attr not in NONDIFFERENTIABLE_ATTRIBUTES:
                raise self.error(f"no gradient is defined for the attribute "
                                 f"'.{value.attr}'", stmt)

    # -- control flow -------------------------------------------------------------

    def fwd_If(self, stmt, depth):
        body = self.block_fwd(stmt.body, depth) or [ast.Pass()]
        orelse = self.block_fwd(stmt.orelse, depth)
        return [ast.If(test=stmt.test, body=body, orelse=orelse)]

    def bwd_If(self, stmt, K, depth):
        K_body, K_else = dict(K), dict(K)
        body = self.block_bwd(stmt.body, K_body, depth)
        orelse = self.block_bwd(stmt.orelse, K_else, depth)
        merged, fix_body, fix_else = merge(K_body, K_else)
        K.clear()
        K.update(merged)
        body, orelse = body + fix_body, orelse + fix_else
        if not body and not orelse:
            return []
        return [ast.If(test=copy.deepcopy(stmt.test), body=body or [ast.Pass()],
                       orelse=orelse)]

    def is_range(self, it):
        if fact(it, "sequence", False):
            return True
        if not isinstance(it, ast.Call):
            return False
        if fact(it, "runtime", None) == "range":
            return True
        target = fact(it, "target", None)
        return target is not None and target.obj is range

    def fwd_For(self, stmt, depth):
        target = stmt.target.id
        before = []
        if self.is_active(stmt.iter):
            # A loop over a sequence that carries gradients reads it by position
            # (a dict: by key, and the loop variable is the key).  The positions
            # are taken once, before the loop: the backward loop must replay
            # them even if the list grows afterwards.
            seq = stmt.iter.id
            k = self.names.fresh("k")
            where = self.names.fresh("positions")
            read_value = _call(self.helper("element"), _name(seq), _name(k))
            set_fact(read_value, "target", Target("primitive", rt.element, "element"))
            read = ast.Assign(targets=[_name(target, True)], value=read_value,
                              lineno=stmt.lineno)
            before = [Marker("push", where, stmt),
                      _assign(where, _call(self.helper("positions"), _name(seq)))]
            self.extra_sites[where] = depth
            set_fact(stmt, "positions", where)
            stmt.iter = _name(where)
            set_fact(stmt.iter, "sequence", True)
            stmt.target = _name(k, True)
            stmt.body = [read] + stmt.body
            self.unit.sites[k] = 2       # bound by a loop: once per iteration
            target = k
        breaks = any(isinstance(s, ast.If) and s.body and isinstance(s.body[0], ast.Break)
                     for s in stmt.body)
        if self.is_range(stmt.iter) and not breaks and self.unit.sites.get(target, 0) <= 2:
            set_fact(stmt, "form", "range")
            body = self.block_fwd(stmt.body, depth + 1)
            return before + [ast.For(target=stmt.target, iter=stmt.iter,
                                     body=body or [ast.Pass()], orelse=[])]
        set_fact(stmt, "form", "count")
        self.unit.sites[target] = max(self.unit.sites.get(target, 0), 2)
        item = self.names.fresh("item")
        stmt.body.insert(0, ast.Assign(targets=[_name(target, True)], value=_name(item),
                                       lineno=stmt.lineno))
        loop = ast.For(target=_name(item, True), iter=stmt.iter, body=[], orelse=[])
        self.loop_copies.append((loop, target, item))
        return before + self.counted(stmt, loop, depth)

    def fwd_While(self, stmt, depth):
        set_fact(stmt, "form", "count")
        return self.counted(stmt, ast.While(test=stmt.test, body=[], orelse=[]), depth)

    def counted(self, stmt, loop, depth):
        """A loop whose adjoint runs as many times as it did (a counter)."""
        count = self.names.fresh("count")
        self.special.add(count)
        set_fact(stmt, "count", count)
        set_fact(stmt, "depth", depth)
        increment = ast.AugAssign(target=_name(count, True), op=ast.Add(),
                                  value=ast.Constant(1))
        loop.body = [increment] + self.block_fwd(stmt.body, depth + 1)
        out = [_assign(count, ast.Constant(0)), loop]
        if depth > 0:
            out.append(ast.Expr(_call(ast.Attribute(value=_name(self.stack_name()),
                                                    attr="append", ctx=ast.Load()),
                                      _name(count))))
            set_fact(out[-1], "counter", count)
        for node in (out[0], increment):
            set_fact(node, "counter", count)
        return out

    def bwd_For(self, stmt, K, depth):
        body, before, end = self.loop_adjoint(stmt.body, K, depth)
        where = fact(stmt, "positions", None)
        after = [Marker("restore", where, stmt)] if where else []
        if fact(stmt, "form") == "range":
            if not body and not before and not end:
                return after
            iterable = _call(self.helper("reversed", reversed), copy.deepcopy(stmt.iter))
            return before + [ast.For(target=copy.deepcopy(stmt.target), iter=iterable,
                                     body=body + end or [ast.Pass()], orelse=[])] + after
        return self.counted_adjoint(stmt, body, before, end) + after

    def bwd_While(self, stmt, K, depth):
        body, before, end = self.loop_adjoint(stmt.body, K, depth)
        return self.counted_adjoint(stmt, body, before, end)

    def counted_adjoint(self, stmt, body, before, end):
        count = fact(stmt, "count")
        loop = ast.For(target=_name(self.names.fresh("_"), True),
                       iter=_call(self.helper("range", range), _name(count)),
                       body=body + end or [ast.Pass()], orelse=[])
        out = []
        if fact(stmt, "depth") > 0:
            pop = _assign(count, _call(ast.Attribute(value=_name(self.stack_name()),
                                                     attr="pop", ctx=ast.Load())))
            set_fact(pop, "counter", count)
            out.append(pop)
        return out + before + [loop]

    def loop_adjoint(self, stmts, K, depth):
        """The adjoint of a loop body, once the adjoint kinds at the top of the
        body agree with those at its end (a fixed point; two or three rounds)."""
        entry = _nonzero(K)
        start = dict(entry)
        while True:
            state = self.checkpoint()
            K_body = dict(start)
            body = self.block_bwd(stmts, K_body, depth + 1)
            end = _nonzero(K_body)
            following = {d: join(entry.get(d, ZERO), end.get(d, ZERO))
                         for d in set(entry) | set(end)}
            if following == start:
                break
            self.restore(state)
            start = following
        before = [_assign(d, _none()) for d in sorted(start) if d not in entry]
        reset = [_assign(d, _none()) for d in sorted(start) if d not in end]
        K.clear()
        K.update(start)
        return body, before, reset


def _nonzero(K):
    return {d: k for d, k in K.items() if k != ZERO}


def merge(K1, K2):
    """Joins the adjoint kinds of two branches; returns ``(K, fix1, fix2)`` where
    the fixes set to None what one branch left untouched and the other did not."""
    merged, fix1, fix2 = {}, [], []
    for d in sorted(set(K1) | set(K2)):
        k1, k2 = K1.get(d, ZERO), K2.get(d, ZERO)
        if k1 == k2:
            merged[d] = k1
            continue
        if k1 == ZERO:
            fix1.append(_assign(d, _none()))
        elif k2 == ZERO:
            fix2.append(_assign(d, _none()))
        merged[d] = ANY
    return merged, fix1, fix2


class _Rename(ast.NodeTransformer):
    def __init__(self, renames):
        self.renames = renames

    def visit_Name(self, node):
        new = self.renames.get(node.id)
        if new is None:
            return node
        new = copy.deepcopy(new)
        if isinstance(new, ast.Name):
            new.ctx = node.ctx
        return new


class _Fold(ast.NodeTransformer):
    """Constant folding in inlined rules: ``2 - 1`` is ``1``; ``x ** 1`` is ``x``."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        left, right = node.left, node.right
        if isinstance(left, ast.Constant) and isinstance(right, ast.Constant) and \
                isinstance(left.value, (int, float)) and isinstance(right.value, (int, float)):
            try:
                return ast.Constant(eval(compile(ast.Expression(node), "<fold>", "eval")))
            except Exception:
                return node
        if isinstance(node.op, ast.Pow) and isinstance(right, ast.Constant) and \
                right.value == 1:
            return left
        return node


def _calls(expr, names):
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and \
        expr.func.id in names
