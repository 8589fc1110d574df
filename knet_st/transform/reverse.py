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

from ..runtime import gradients as rt
from .activity import MUTATING_METHODS, call_operands, names_in
from .adjoints import METHODS, NONDIFFERENTIABLE_ATTRIBUTES, NONDIFFERENTIABLE_METHODS
from .registry import rule_for
from .resolve import Target

ZERO, DENSE, ANY = "zero", "dense", "any"

BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
          ast.Pow: "pow", ast.MatMult: "matmul", ast.Mod: "mod"}
UNARYOPS = {ast.USub: "neg", ast.UAdd: "pos"}
CONTAINER_GRADS = {"split_grad", "vstack_grad", "array_grad", "seq", "builtin_sum_grad",
                   "element_grad"}


def _name(id, store=False):
    return ast.Name(id, ast.Store() if store else ast.Load())


def bound_name(key):
    """A Name of the generated module's namespace (not a user's global)."""
    node = _name(key)
    node.kt_bound = True
    return node


def _assign(target, value):
    if isinstance(target, str):
        target = _name(target, True)
    return ast.Assign(targets=[target], value=value)


def _call(func, *args):
    return ast.Call(func=func, args=list(args), keywords=[])


def _none():
    return ast.Constant(None)


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
        self.index_read = set()
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
        if isinstance(value, ast.Call) and value.kt_target.kind in ("user", "local"):
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
        if isinstance(value, ast.Call) and value.kt_target.kind in ("user", "local"):
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
                    if var in self.unit.index_read:
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
        if hasattr(value, "kt_key"):
            out.append(Marker("restore", value.kt_key.id, stmt))
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
            import operator
            return self.inline(rule_for(getattr(operator, op)), [value.left, value.right], {},
                               var, dy, K, stmt)
        if isinstance(value, ast.UnaryOp):
            op = UNARYOPS.get(type(value.op))
            if op is None:
                return []
            import operator
            return self.inline(rule_for(getattr(operator, op)), [value.operand], {}, var, dy,
                               K, stmt)
        if isinstance(value, ast.Call):
            target = value.kt_target
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
            key = value.kt_key if hasattr(value, "kt_key") else self.index_value(value.slice)
            return [_assign(d, _call(self.helper("getitem_grad"), current, _name(base.id),
                                     key, dy))]
        if isinstance(value, ast.Attribute):
            if value.attr == "T":
                return self.inline(rule_for(__import__("numpy").transpose), [value.value], {},
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
        comes from ``+ - * / **``: the name ``t``.  Its adjoint can stay the scalar
        ``ds``: the rules of those operators broadcast it (``unbroadcast`` sums
        or spreads to each operand's shape), so no array of copies is built."""
        import numpy as np
        target = value.kt_target
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
                not isinstance(definition.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)) \
                or name in self.mixed:
            return None
        return name

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
        if base not in self.unit.appended or \
                isinstance(index, ast.Constant) and isinstance(index.value, int) \
                and index.value >= 0:
            return []
        key = self.names.fresh("key")
        self.extra_sites[key] = depth
        subscript.kt_key = _name(key)
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
            where = ast.Tuple(elts=[ast.Constant(self.source.filename),
                                    ast.Constant(stmt.lineno),
                                    ast.Constant(self.source.line(stmt.lineno))],
                              ctx=ast.Load())
            out.append(ast.Expr(_call(self.helper("check_container"), _name(base.id), where)))
            if base.id in self.unit.appended:
                out += self.key_for(target, 1, stmt)
        return out + [stmt]

    def bwd_setitem(self, stmt, K):
        out = self.setitem_adjoint(stmt, K)
        key = getattr(stmt.targets[0], "kt_key", None)
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
        key = target.kt_key if hasattr(target, "kt_key") else self.index_value(target.slice)
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
        if getattr(call.func, "kt_bound", False):
            return [stmt]            # a check inserted by the compiler
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
        stmt.kt_position = position
        return [Marker("push", position, stmt),
                _assign(position, _call(self.helper("len"), _name(receiver))), stmt]

    def bwd_Expr(self, stmt, K, depth):
        position = getattr(stmt, "kt_position", None)
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
        stmt.kt_bound = bound
        active = [i for i, a in enumerate(bound) if self.is_active(a)]
        stmt.kt_active = active
        target = call.kt_target
        if not active and target.kind == "user":
            return [Marker("push", var, stmt), stmt]
        fwd, bwd = self.compiler.request(target, tuple(active), self)
        stmt.kt_bwd = bwd
        fwd_call = _call(bound_name(fwd), *copy.deepcopy(bound))
        if not active:
            return [Marker("push", var, stmt),
                    _assign(var, ast.Subscript(value=fwd_call, slice=ast.Constant(0),
                                               ctx=ast.Load()))]
        saved = self.names.fresh(f"{target.name.split('.')[-1]}_saved")
        self.extra_sites[saved] = depth
        stmt.kt_saved = saved
        pair = ast.Tuple(elts=[_name(var, True), _name(saved, True)], ctx=ast.Store())
        return [Marker("push", var, stmt), Marker("push", saved, stmt), _assign(pair, fwd_call)]

    def bwd_user_call(self, stmt, K):
        var = stmt.targets[0].id
        saved = getattr(stmt, "kt_saved", None)
        out = []
        if saved is not None:
            d = self.adj(var) if var in self.active else None
            kinds = [K.get(self.adj(stmt.kt_bound[i].id), ZERO) for i in stmt.kt_active]
            dout_kind = K.get(d, ZERO) if d else ZERO
            if dout_kind != ZERO or any(k != ZERO for k in kinds):
                args = [_name(saved), _name(d) if dout_kind != ZERO else _none()]
                targets, extra, seen = [], [], set()
                for i in stmt.kt_active:
                    name = stmt.kt_bound[i].id
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
                out.append(_assign(target, _call(bound_name(stmt.kt_bwd), *args)))
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
        if isinstance(value, ast.Call):
            target = value.kt_target
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
        if not isinstance(it, ast.Call):
            return False
        if getattr(it, "kt_runtime", None) in ("range", "positions"):
            return True
        target = getattr(it, "kt_target", None)
        return target is not None and target.obj is range

    def fwd_For(self, stmt, depth):
        target = stmt.target.id
        if self.is_active(stmt.iter):
            # A loop over a sequence that carries gradients reads it by position
            # (a dict: by key, and the loop variable is the key).
            seq = stmt.iter.id
            k = self.names.fresh("k")
            read_value = _call(self.helper("element"), _name(seq), _name(k))
            read_value.kt_target = Target("primitive", rt.element, "element")
            read = ast.Assign(targets=[_name(target, True)], value=read_value,
                              lineno=stmt.lineno)
            stmt.iter = _call(_name("positions"), _name(seq))
            stmt.iter.kt_runtime = "positions"
            stmt.target = _name(k, True)
            stmt.body = [read] + stmt.body
            self.unit.sites[k] = 2       # bound by a loop: once per iteration
            target = k
        breaks = any(isinstance(s, ast.If) and s.body and isinstance(s.body[0], ast.Break)
                     for s in stmt.body)
        if self.is_range(stmt.iter) and not breaks and self.unit.sites.get(target, 0) <= 2:
            stmt.kt_form = "range"
            body = self.block_fwd(stmt.body, depth + 1)
            return [ast.For(target=stmt.target, iter=stmt.iter, body=body or [ast.Pass()],
                            orelse=[])]
        stmt.kt_form = "count"
        self.unit.sites[target] = max(self.unit.sites.get(target, 0), 2)
        item = self.names.fresh("item")
        stmt.body.insert(0, ast.Assign(targets=[_name(target, True)], value=_name(item),
                                       lineno=stmt.lineno))
        loop = ast.For(target=_name(item, True), iter=stmt.iter, body=[], orelse=[])
        self.loop_copies.append((loop, target, item))
        return self.counted(stmt, loop, depth)

    def fwd_While(self, stmt, depth):
        stmt.kt_form = "count"
        return self.counted(stmt, ast.While(test=stmt.test, body=[], orelse=[]), depth)

    def counted(self, stmt, loop, depth):
        """A loop whose adjoint runs as many times as it did (a counter)."""
        count = self.names.fresh("count")
        self.special.add(count)
        stmt.kt_count = count
        stmt.kt_depth = depth
        increment = ast.AugAssign(target=_name(count, True), op=ast.Add(),
                                  value=ast.Constant(1))
        loop.body = [increment] + self.block_fwd(stmt.body, depth + 1)
        out = [_assign(count, ast.Constant(0)), loop]
        if depth > 0:
            out.append(ast.Expr(_call(ast.Attribute(value=_name(self.stack_name()),
                                                    attr="append", ctx=ast.Load()),
                                      _name(count))))
            out[-1].kt_counter = count
        for node in (out[0], increment):
            node.kt_counter = count
        return out

    def bwd_For(self, stmt, K, depth):
        body, before, end = self.loop_adjoint(stmt.body, K, depth)
        if stmt.kt_form == "range":
            if not body and not before and not end:
                return []
            iterable = _call(self.helper("reversed", reversed), copy.deepcopy(stmt.iter))
            return before + [ast.For(target=copy.deepcopy(stmt.target), iter=iterable,
                                     body=body + end or [ast.Pass()], orelse=[])]
        return self.counted_adjoint(stmt, body, before, end)

    def bwd_While(self, stmt, K, depth):
        body, before, end = self.loop_adjoint(stmt.body, K, depth)
        return self.counted_adjoint(stmt, body, before, end)

    def counted_adjoint(self, stmt, body, before, end):
        count = stmt.kt_count
        loop = ast.For(target=_name(self.names.fresh("_"), True),
                       iter=_call(self.helper("range", range), _name(count)),
                       body=body + end or [ast.Pass()], orelse=[])
        out = []
        if stmt.kt_depth > 0:
            pop = _assign(count, _call(ast.Attribute(value=_name(self.stack_name()),
                                                     attr="pop", ctx=ast.Load())))
            pop.kt_counter = count
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


class _Finisher:
    """Turns push/restore markers into stack operations (or nothing) and cleans up."""

    def __init__(self, rev, pushed, counters, first=frozenset()):
        self.rev = rev
        self.first = first
        self.pushed = pushed
        self.counters = counters
        self.stack = rev.stack

    def stmts(self, stmts):
        out = []
        for stmt in stmts:
            out += self.stmt(stmt)
        return out

    def stmt(self, stmt):
        if isinstance(stmt, Marker):
            if stmt.var not in self.pushed or (id(stmt.origin), stmt.var) in self.first:
                return []
            stack = _name(self.rev.stack_name())
            if stmt.kind == "push":
                return [ast.Expr(_call(ast.Attribute(value=stack, attr="append",
                                                     ctx=ast.Load()), _name(stmt.var)))]
            return [_assign(stmt.var, _call(ast.Attribute(value=stack, attr="pop",
                                                          ctx=ast.Load())))]
        counter = getattr(stmt, "kt_counter", None)
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
            if not [s for s in body if not getattr(s, "kt_counter", None)] \
                    and getattr(stmt, "kt_adjoint", False):
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
                node.kt_adjoint = True


def build(rev, func):
    """Runs the reverse pass over the normalized ``func``; returns the forward
    and backward ``FunctionDef`` trees."""
    names = rev.names
    params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
    _check_aliasing(rev, func, params)
    _lower_augmented(rev, func)
    _insert_live_flags(rev, func, params)
    rev.unit.sites = _sites(func, params)
    primal = rev.block_fwd(func.body, 0)
    rev.dout = names.fresh("dout")
    K = {}
    incoming, late = [], []
    if not rev.is_top:
        # The caller passes the adjoint it holds for each argument.  A parameter
        # that keeps its value throughout starts from it; one that is rebound gets
        # it added where it held the caller's value: at the end of the sweep.
        for p in rev.active_params:
            if rev.unit.sites.get(p, 1) > 1:
                name = names.fresh(f"d{p}_in")
                incoming.append(name)
                late.append((p, name))
            else:
                K[rev.adj(p)] = ANY
                incoming.append(rev.adj(p))
    adjoint = rev.block_bwd(func.body, K, 0)
    for p, name in late:
        adjoint += rev.contrib(p, _name(name), ANY, K)
    _mark_adjoint_loops(adjoint)
    grads = [_name(rev.adj(p)) if K.get(rev.adj(p), ZERO) != ZERO else _none()
             for p in rev.active_params]

    ret = rev.ret if rev.ret is not None else ast.Constant(None)
    locals_ = set(params) | _stores(primal) | {rev.stack_name()} | rev.special
    adjoint_body = adjoint + [ast.Return(_tuple(grads))]
    pushed = None
    counters = set(rev.special)
    while True:
        needed = _loads(_Finisher(rev, pushed or set(), counters).stmts(adjoint_body)) & locals_
        candidates = {v for v in needed if rev.unit.sites.get(v, 0) +
                      (2 if rev.extra_sites.get(v, 0) else (1 if v in rev.extra_sites else 0))
                      > 1} - rev.special
        new_counters = counters & needed
        if candidates == pushed and new_counters == counters:
            break
        pushed, counters = candidates, new_counters
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
                     and n.value.id == rev.stack_name() for s in fwd_body + bwd_body
                     for n in ast.walk(s))
    top_level = set(params) | _stores([s for s in fwd_body if not isinstance(
        s, (ast.If, ast.For, ast.While))])
    saved = [v for v in _ordered(params, fwd_body) if v in needed]
    if uses_stack and rev.stack_name() not in saved:
        saved.append(rev.stack_name())
    init = [_assign(v, _none()) for v in _ordered(params, fwd_body)
            if v not in params and (v in pushed or v in saved and v not in top_level)]
    if uses_stack:
        init.insert(0, _assign(rev.stack_name(), ast.List(elts=[], ctx=ast.Load())))
    saved_name = names.fresh("saved")
    fwd_return = ast.Return(ast.Tuple(elts=[copy.deepcopy(ret),
                                            _tuple([_name(v) for v in saved])],
                                      ctx=ast.Load()))
    fwd = ast.FunctionDef(name=rev.fwd_name, args=copy.deepcopy(func.args),
                          body=init + fwd_body + [fwd_return], decorator_list=[],
                          returns=None, type_comment=None, type_params=[])
    unpack = []
    if saved:
        unpack = [_assign(ast.Tuple(elts=[_name(v, True) for v in saved], ctx=ast.Store()),
                          _name(saved_name))]
    bwd_args = ast.arguments(posonlyargs=[], args=[ast.arg(a) for a in
                                                   [saved_name, rev.dout] + incoming],
                             vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                             defaults=[])
    grads_value = grads[0] if len(grads) == 1 else _tuple(grads)
    bwd = ast.FunctionDef(name=rev.bwd_name, args=bwd_args,
                          body=unpack + bwd_body + [ast.Return(grads_value)],
                          decorator_list=[], returns=None, type_comment=None, type_params=[])
    return fwd, bwd


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


def _check_aliasing(rev, func, params):
    """A list or dict that is modified (``s[i] = v``, ``s.append(v)``) while it
    carries gradients must be reachable under one name only: its adjoint is
    kept per name.  Refuses the programs where that does not hold."""
    mutated = {v for v in rev.unit.mutated if v in rev.active}
    if not mutated:
        return
    for p in params:
        if p in mutated and rev.unit.sites.get(p, 1) > 1:
            raise rev.error(f"cannot differentiate: the parameter {p!r} is modified in "
                            "place and also rebound; use another name for the new value",
                            _mutation_site(func, p) or func)

    def refuse(var, node, why):
        raise rev.error(f"cannot differentiate: the list or dict {var!r} is modified "
                        f"and {why}; keep one name for it", node)

    for stmt in ast.walk(ast.Module(body=func.body, type_ignores=[])):
        if isinstance(stmt, ast.Assign):
            target, value = stmt.targets[0], stmt.value
            fresh_call = isinstance(value, ast.Call) and not value.args and \
                not value.keywords and value.kt_target.obj in (list, dict)
            if isinstance(target, ast.Name) and target.id in mutated and not fresh_call:
                if isinstance(value, ast.Name):
                    refuse(target.id, stmt, f"is also named {value.id!r}")
                if not isinstance(value, (ast.List, ast.Dict, ast.Tuple)):
                    site = _mutation_site(func, target.id) or stmt
                    raise rev.error(
                        f"cannot differentiate this in-place change of {target.id!r}: only a "
                        "list or dict made in this function (or passed in) may be modified "
                        "while it carries gradients; arrays never (build a new array)", site)
            if isinstance(value, ast.Name) and value.id in mutated:
                refuse(value.id, stmt, f"also copied to {ast.unparse(target)!r}")
            elements = value.elts if isinstance(value, (ast.List, ast.Tuple)) else \
                value.values if isinstance(value, ast.Dict) else []
            stored = [value] if isinstance(target, ast.Subscript) else []
            for node in list(elements) + stored:
                if isinstance(node, ast.Name) and node.id in mutated:
                    refuse(node.id, stmt, "also stored inside another list, tuple or dict")
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            for arg in stmt.value.args:
                if isinstance(arg, ast.Name) and arg.id in mutated:
                    refuse(arg.id, stmt, "also stored inside another list")
        elif isinstance(stmt, ast.For) and stmt.target.id in mutated:
            refuse(stmt.target.id, stmt, "is a loop variable")


def _lower_augmented(rev, func):
    """``x += v`` on a value with a gradient becomes ``t = x + v; x = t``, after a
    run-time check that ``x`` is no array (an array would change in place, and
    the backward pass needs its old value); elsewhere it stays as written."""

    private = _private_arrays(rev, func)

    def lower(stmts):
        out = []
        for stmt in stmts:
            for field in ("body", "orelse"):
                if hasattr(stmt, field):
                    setattr(stmt, field, lower(getattr(stmt, field)))
            if isinstance(stmt, ast.AugAssign) and stmt.target.id in rev.active:
                var = stmt.target.id
                if var in private:
                    temp = rev.names.fresh("t")
                    rev.active.add(temp)
                    out += [ast.Assign(targets=[_name(temp, True)],
                                       value=ast.BinOp(left=_name(var), op=stmt.op,
                                                       right=stmt.value), lineno=stmt.lineno),
                            ast.Assign(targets=[_name(var, True)], value=_name(temp),
                                       lineno=stmt.lineno)]
                    continue
                where = ast.Tuple(elts=[ast.Constant(rev.source.filename),
                                        ast.Constant(stmt.lineno),
                                        ast.Constant(rev.source.line(stmt.lineno))],
                                  ctx=ast.Load())
                check = ast.Expr(_call(rev.helper("check_not_array"), _name(var), where))
                temp = rev.names.fresh("t")
                compute = ast.Assign(targets=[_name(temp, True)],
                                     value=ast.BinOp(left=_name(var), op=stmt.op,
                                                     right=stmt.value), lineno=stmt.lineno)
                rebind = ast.Assign(targets=[_name(var, True)], value=_name(temp),
                                    lineno=stmt.lineno)
                rev.active.add(temp)
                out += [check, compute, rebind]
            else:
                out.append(stmt)
        return out

    func.body = lower(func.body)


def _private_arrays(rev, func):
    """Variables that only ever hold new values no other name can see (results
    of arithmetic and of NumPy's element-wise functions and reductions, never
    copied, stored or passed on): for them ``x += v`` and ``x = x + v`` agree."""
    import numpy as np
    from .activity import names_in
    fresh_calls = (np.ufunc,)
    defs, escaped = {}, set()
    for node in ast.walk(ast.Module(body=func.body, type_ignores=[])):
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name):
                ok = isinstance(value, (ast.BinOp, ast.UnaryOp)) or (
                    isinstance(value, ast.Call) and value.kt_target.kind == "primitive" and
                    (isinstance(value.kt_target.obj, fresh_calls) or
                     value.kt_target.obj in (np.sum, np.mean, np.dot, np.matmul)))
                defs[target.id] = defs.get(target.id, True) and ok
                if isinstance(value, ast.Name):
                    escaped.add(value.id)
            if isinstance(value, (ast.Tuple, ast.List, ast.Dict)) or \
                    isinstance(target, ast.Subscript):
                escaped |= names_in(value)
            if isinstance(value, ast.Call) and value.kt_target.kind in ("user", "local",
                                                                         "opaque", "dynamic"):
                escaped |= {a.id for a in value.args if isinstance(a, ast.Name)}
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            escaped |= names_in(node.value)
        elif isinstance(node, ast.For):
            defs[node.target.id] = False
        elif isinstance(node, ast.AugAssign):
            defs.setdefault(node.target.id, False)
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    return {v for v, ok in defs.items() if ok and v not in escaped and v not in params}


def _mutation_site(func, var):
    for node in ast.walk(ast.Module(body=func.body, type_ignores=[])):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) and \
                node.targets[0].value.id == var:
            return node
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute) and \
                isinstance(node.value.func.value, ast.Name) and node.value.func.value.id == var:
            return node
    return None


def _insert_live_flags(rev, func, params):
    """For each active variable that also holds values without gradients (an
    input that a loop rebinds to a layer's output), a ``<name>_live`` flag
    set at every assignment; contributions to its adjoint test it."""
    from .activity import value_active
    active = rev.active
    inactive_defs = {p for p in params if p in active and p not in rev.active_params}

    def scan(stmts):
        for stmt in stmts:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                var = stmt.targets[0].id
                # A constant start (total = 0.0) costs nothing to differentiate through.
                if var in active and not value_active(stmt.value, active) and \
                        not isinstance(stmt.value, ast.Constant):
                    inactive_defs.add(var)
            elif isinstance(stmt, ast.For) and stmt.target.id in active and \
                    not rev.is_active(stmt.iter):
                inactive_defs.add(stmt.target.id)
            scan(getattr(stmt, "body", []))
            scan(getattr(stmt, "orelse", []))

    scan(func.body)
    inactive_defs -= rev.unit.mutated        # containers change by mutation, not binding
    if not inactive_defs:
        return
    rev.mixed = {v: rev.names.fresh(f"{v}_live") for v in sorted(inactive_defs)}

    def flag(var, value):
        return ast.Assign(targets=[_name(rev.mixed[var], True)], value=ast.Constant(value))

    def insert(stmts):
        out = []
        for stmt in stmts:
            out.append(stmt)
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                    stmt.targets[0].id in rev.mixed:
                out.append(flag(stmt.targets[0].id, value_active(stmt.value, active)))
            if isinstance(stmt, ast.For):
                body = insert(stmt.body)
                if stmt.target.id in rev.mixed:
                    body.insert(0, flag(stmt.target.id, rev.is_active(stmt.iter)))
                stmt.body = body
            elif isinstance(stmt, (ast.If, ast.While)):
                stmt.body = insert(stmt.body)
                stmt.orelse = insert(stmt.orelse)
        return out

    func.body = [flag(p, p in rev.active_params) for p in params if p in rev.mixed] + \
        insert(func.body)


def _sites(func, params):
    from .compiler import _assignment_sites
    return _assignment_sites(func, params)
