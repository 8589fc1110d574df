"""Forward mode: a function's Jacobian-vector product, as generated Python.

The front end (:func:`.pipeline.front_end`) gives one operation per statement;
this pass writes one tangent statement beside each statement whose value
carries a tangent (``tan_<name>``), inlining the rules of :mod:`.tangents`.
Control flow stays as it is; a user function called with tangents is
transformed in turn into ``<name>_jvp(params..., tangents...)``, returning
``(value, tangent)``.  Lists, tuples and dicts have tangents of the same
structure, changed by the same ``append``, ``pop`` and item assignments.

Applied to the code ``kt.grad`` generates, it gives Hessian-vector products
(forward over reverse): the runtime helpers gradient code calls have tangent
rules too.
"""

import ast
import copy
import inspect

from .adjoints import METHODS, NONDIFFERENTIABLE_ATTRIBUTES, NONDIFFERENTIABLE_METHODS
from .compiler import signature_of
from .effects import STORING_METHODS, mutated_parameters
from .facts import fact
from .tangent_exprs import Zero, _builtin, _is_constant, _simplify, _Substitute
from .reverse import BINOPS, UNARYOPS
from . import tangents
from .tangents import tangent_rule
from .trees import call as _call, name as _name, statements as _statements, stored_names

import builtins
import operator

from ..runtime import gradients, sequences


# The list methods whose tangent forward mode replays on the tangent list.
_LIST_METHODS = {"append", "insert", "extend", "pop"}


class TangentWriter:
    """The tangent function of one unit for one pattern of active parameters."""

    def __init__(self, compiler, unit, pattern, name):
        self.c, self.unit, self.pattern, self.name = compiler, unit, pattern, name
        self.names = unit.names.copy()
        self.tan = {}

    def error(self, message, node):
        """A :class:`TransformError` at ``node``'s line."""
        return self.unit.source.error(message, node)

    def tname(self, var):
        """The name of the tangent of ``var``."""
        if var not in self.tan:
            self.tan[var] = self.names.fresh("tan_" + var)
        return self.tan[var]

    def run(self):
        """Writes the tangent function."""
        tree = copy.deepcopy(self.unit.tree)
        params = self.unit.params
        seeds = {params[i] for i in self.pattern}
        self.active = self.analyze(tree.body, seeds)
        head = [self.zero_assign(p, tree) for p in params
                if p in self.active and p not in seeds]
        body = head + self.block(tree.body)
        if not body or not isinstance(body[-1], ast.Return):
            body.append(ast.Return(ast.Tuple([ast.Constant(None)] * 2, ast.Load())))
        args = copy.deepcopy(tree.args)
        args.args = args.posonlyargs + args.args + args.kwonlyargs + \
            [ast.arg(self.tname(params[i])) for i in self.pattern]
        args.posonlyargs, args.kwonlyargs, args.kw_defaults, args.defaults = [], [], [], []
        fn = ast.FunctionDef(name=self.name, args=args, body=body, decorator_list=[],
                             returns=None, type_params=[], lineno=tree.lineno)
        self.bind_globals(fn)
        self.c.functions.append((fn, self.unit.source))

    # -- activity: the names that may carry a tangent (flow-insensitive) --------
    def analyze(self, body, seeds):
        """The names that carry a tangent (a fixed point over the body)."""
        active, before = set(seeds), None
        while active != before:
            before = set(active)
            for stmt in _statements(body):
                self.mark(stmt, active)
        return active

    def mark(self, stmt, active):
        """Adds to ``active`` the names ``stmt`` gives a tangent."""
        self.active = active
        if isinstance(stmt, ast.Assign):
            target, value = stmt.targets[0], stmt.value
            if self.value_active(value):
                active.add(target.id if isinstance(target, ast.Name) else target.value.id)
            if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                self.mark_call(value, active)
        elif isinstance(stmt, ast.AugAssign) and self.value_active(stmt.value):
            active.add(stmt.target.id)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            if fact(call, "target").kind == "method" and \
                    call.func.attr in STORING_METHODS and \
                    any(self.is_active(a) for a in call.args):
                active.add(call.func.value.id)
            self.mark_call(call, active)
        elif isinstance(stmt, ast.For) and self.value_active(stmt.iter):
            active.add(stmt.target.id)

    def mark_call(self, call, active):
        """Lists a user function changes in place become active with the call."""
        target = fact(call, "target")
        if target.kind in ("user", "local") and self.kind(call)[0] == "user" and \
                any(self.is_active(a) for a in call.args + [k.value for k in call.keywords]):
            unit = self.c.unit_for(target)
            changed = _changed_parameters(unit.tree)
            for arg, param in zip(self.bind_args(call, unit), unit.params):
                if param in changed and isinstance(arg, ast.Name):
                    active.add(arg.id)

    def is_active(self, node):
        """Whether ``node`` is a name with a tangent."""
        return any(n.id in self.active for n in ast.walk(node)
                   if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))

    def value_active(self, value):
        """Whether ``value`` has a tangent."""
        if isinstance(value, (ast.Name, ast.Tuple, ast.List)):
            return self.is_active(value)
        if isinstance(value, ast.Dict):
            return any(self.is_active(v) for v in value.values)
        if isinstance(value, ast.BinOp):
            return type(value.op) in BINOPS and self.is_active(value)
        if isinstance(value, ast.UnaryOp):
            return type(value.op) in UNARYOPS and self.is_active(value)
        if isinstance(value, ast.Subscript):
            return self.is_active(value.value)
        if isinstance(value, ast.Attribute):
            return value.attr not in NONDIFFERENTIABLE_ATTRIBUTES and self.is_active(value)
        if isinstance(value, ast.Call):
            operands = value.args + [k.value for k in value.keywords]
            if isinstance(value.func, ast.Attribute) and \
                    fact(value, "target").kind == "method":
                operands = operands + [value.func.value]
            return self.kind(value)[0] != "constant" and \
                any(self.is_active(a) for a in operands)
        return False

    def kind(self, call):
        """``(kind, detail)`` of a call: ``constant``, ``rule`` (the rule, the
        receiver for a method), ``user``, ``list`` (a list method), ``unknown``."""
        target = fact(call, "target")
        obj = target.obj
        if target.kind == "nondiff" or _is_constant(obj):
            return "constant", None
        if target.kind in ("primitive", "user", "opaque") and tangent_rule(obj):
            return "rule", (tangent_rule(obj), None)
        if target.kind == "method":
            name = target.name
            if name in NONDIFFERENTIABLE_METHODS:
                return "constant", None
            if name in _LIST_METHODS:           # what list_method() replays
                return "list", None
            if name in METHODS and tangent_rule(METHODS[name]):
                return "rule", (tangent_rule(METHODS[name]), call.func.value)
        if target.kind == "local" or target.kind == "user" and not \
                (getattr(obj, "__module__", None) or "").startswith("knet_st.runtime"):
            return "user", None
        what = "runtime helper " if target.kind == "user" else ""
        return "unknown", (f"forward mode (kt.jvp, kt.hvp) has no tangent rule for "
                           f"{what}{target.name or ast.unparse(call.func)}")

    # -- statements -----------------------------------------------------------
    def block(self, stmts):
        """A body with the tangent statements beside it."""
        out = []
        for stmt in stmts:
            new = getattr(self, "s_" + type(stmt).__name__, None)
            if new is None:
                raise self.error(f"forward mode cannot transform "
                                 f"{type(stmt).__name__} statements", stmt)
            for s in new(stmt):
                out.append(ast.copy_location(s, stmt) if not hasattr(s, "lineno") else s)
        return out

    def s_Pass(self, stmt):
        return [stmt]

    s_Break = s_Continue = s_Assert = s_Raise = s_Pass

    def s_If(self, stmt):
        stmt.body, stmt.orelse = self.block(stmt.body), self.block(stmt.orelse)
        return [stmt]

    def s_While(self, stmt):
        stmt.body = self.block(stmt.body)
        return [stmt]

    def s_For(self, stmt):
        stmt.body = self.block(stmt.body)
        if self.value_active(stmt.iter):
            tan = self.tangent(stmt.iter)
            stmt.target = ast.Tuple([stmt.target, _name(self.tname(stmt.target.id), True)],
                                    ast.Store())
            stmt.iter = _call(_builtin("zip"), stmt.iter, self.materialize(tan))
        return [stmt]

    def s_Return(self, stmt):
        tan = self.materialize(self.tangent(stmt.value))
        return [ast.Return(ast.Tuple([stmt.value, tan], ast.Load()))]

    def s_AugAssign(self, stmt):
        var = stmt.target.id
        if var not in self.active:
            return [stmt]
        if not isinstance(stmt.op, (ast.Add, ast.Sub)):
            raise self.error("forward mode: write 'x = x * v' instead of 'x *= v'", stmt)
        if not self.is_active(stmt.value):
            return [stmt]
        return [stmt, ast.AugAssign(_name(self.tname(var), True), stmt.op,
                                    self.materialize(self.tangent(stmt.value)))]

    def s_Expr(self, stmt):
        call = stmt.value
        if not isinstance(call, ast.Call) or not self.value_active(call) and \
                not (fact(call, "target").kind == "method" and self.is_active(call.func)):
            return [stmt]
        kind, detail = self.kind(call)
        if kind == "list":
            return [stmt, ast.Expr(self.list_method(call))]
        if kind == "user":
            return self.user_call(call, None)
        if kind == "unknown":
            raise self.error(detail, stmt)
        return [stmt]     # a result nobody reads

    def s_Assign(self, stmt):
        target, value = stmt.targets[0], stmt.value
        if isinstance(target, ast.Subscript):
            if target.value.id not in self.active:
                return [stmt]
            tan = ast.Subscript(_name(self.tname(target.value.id)), copy.deepcopy(target.slice),
                                ast.Store())
            return [stmt, ast.Assign([tan], self.materialize(self.tangent(value)))]
        if not isinstance(target, ast.Name):
            raise self.error("forward mode cannot assign to this target", stmt)
        var = target.id
        if var not in self.active:
            return [stmt]
        if not self.value_active(value):
            return [stmt, self.zero_assign(var, stmt)]
        if isinstance(value, ast.Call):
            kind, detail = self.kind(value)
            if kind == "user":
                return self.user_call(value, var)
            if kind == "list":
                return [stmt, _assign(self.tname(var), self.list_method(value))]
            if kind == "unknown":
                raise self.error(detail, stmt)
            rule, receiver = detail
            args = ([receiver] if receiver is not None else []) + value.args
            keywords = {k.arg: k.value for k in value.keywords}
            return [stmt] + self.inline(rule, args, keywords, var, stmt)
        if isinstance(value, (ast.BinOp, ast.UnaryOp)):
            ops = BINOPS if isinstance(value, ast.BinOp) else UNARYOPS
            rule = tangent_rule(getattr(operator, ops[type(value.op)]))
            if rule is None:
                raise self.error(f"forward mode has no tangent rule for "
                                 f"{ops[type(value.op)]}", stmt)
            args = [value.left, value.right] if isinstance(value, ast.BinOp) else \
                [value.operand]
            return [stmt] + self.inline(rule, args, {}, var, stmt)
        return [stmt, _assign(self.tname(var), self.materialize(self.tangent(value)))]

    def zero_assign(self, var, like):
        """A zero tangent for ``var``."""
        return ast.copy_location(_assign(self.tname(var), self.zero(_name(var))), like)

    def list_method(self, call):
        """The tangent of a list method (the same call on the tangent list)."""
        method = call.func.attr
        args = [self.materialize(self.tangent(a)) if method != "insert" or i == 1 else
                copy.deepcopy(a) for i, a in enumerate(call.args)]
        if method == "pop":
            args = copy.deepcopy(call.args)
        return _call(ast.Attribute(_name(self.tname(call.func.value.id)), method, ast.Load()),
                     *args)

    def user_call(self, call, var):
        """``var, tan_var = f_jvp(args..., tangents...)`` for a user function."""
        target = fact(call, "target")
        unit = self.c.unit_for(target)
        args = self.bind_args(call, unit)
        pattern = tuple(i for i, a in enumerate(args) if self.is_active(a))
        name = self.c.request(target, pattern)
        func = _name(name)
        func._key = True
        new = _call(func, *args, *[self.materialize(self.tangent(args[i])) for i in pattern])
        if var is None:
            return [ast.Expr(new)]
        return [ast.Assign([ast.Tuple([_name(var, True), _name(self.tname(var), True)],
                                      ast.Store())], new)]

    def bind_args(self, call, unit):
        """The argument nodes of a user call, one per parameter."""
        target = fact(call, "target")
        if any(isinstance(a, ast.Starred) for a in call.args) or \
                any(k.arg is None for k in call.keywords):
            if getattr(target.obj, "__qualname__", "").startswith("gradient_call_pair."):
                raise self.error("cannot differentiate a gradient taken inside the "
                                 "function (kt.grad(f)(x)) a second time (a kt.grad, "
                                 "kt.hvp or kt.jvp of a function that calls kt.grad)", call)
            raise self.error("forward mode cannot call a function with *args or **kwargs",
                             call)
        args = list(call.args)
        if target.receiver is not None:
            args.insert(0, _name(target.receiver))
        signature = inspect.signature(target.obj) if target.kind == "user" and \
            target.obj not in self.c.generated else signature_of(unit.tree)
        try:
            bound = signature.bind(*args, **{k.arg: k.value for k in call.keywords})
        except TypeError as exc:
            raise self.error(f"{unit.name}(): {exc}", call) from None
        nodes = []
        for name, param in signature.parameters.items():
            if name in bound.arguments:
                nodes.append(bound.arguments[name])
            elif isinstance(param.default, ast.AST):
                nodes.append(copy.deepcopy(param.default))
            elif isinstance(param.default, (bool, int, float, str, type(None))):
                nodes.append(ast.Constant(param.default))
            else:                               # an object: bound into the module
                node = _name(self.c.bind(f"{unit.name}_{name}", param.default, set()))
                node._key = True
                nodes.append(node)
        return nodes

    # -- tangent expressions and rules ----------------------------------------------
    def tangent(self, node):
        """The tangent of an operand: a Name, ``Zero``, or the same structure."""
        if isinstance(node, ast.Name):
            if node.id not in self.active:
                return Zero(node)
            tan = _name(self.tname(node.id))
            tan._tan = True
            return tan
        if isinstance(node, (ast.Tuple, ast.List)) and self.is_active(node):
            return type(node)([self.materialize(self.tangent(e)) for e in node.elts],
                              ast.Load())
        if isinstance(node, ast.Dict) and self.is_active(node):
            return ast.Dict([copy.deepcopy(k) for k in node.keys],
                            [self.materialize(self.tangent(v)) for v in node.values])
        if isinstance(node, (ast.Subscript, ast.Attribute)) and self.is_active(node.value):
            tan = copy.deepcopy(node)
            tan.value = self.tangent(node.value)
            return tan
        return Zero(node)

    def zero(self, primal):
        """The zero tangent of ``primal``, as an expression."""
        func = _name("zero_tangent")
        func._env = vars(tangents)
        return _call(func, copy.deepcopy(primal))

    def materialize(self, node):
        """A zero tangent written out (``zero_tangent(x)``)."""
        if isinstance(node, Zero):
            return self.zero(node.primal)
        for parent in ast.walk(node):
            for field, value in ast.iter_fields(parent):
                if isinstance(value, Zero):
                    setattr(parent, field, self.zero(value.primal))
                elif isinstance(value, list):
                    value[:] = [self.zero(v.primal) if isinstance(v, Zero) else v
                                for v in value]
        return node

    def inline(self, rule, args, keywords, var, stmt):
        """The tangent statements of a rule inlined for ``var = f(args)``."""
        try:
            bound = rule.bind(args, keywords)
        except TypeError as exc:
            raise self.error(str(exc), stmt) from None
        subst = dict(bound)
        for param, dname in rule.tangents.items():
            subst[dname] = self.tangent(bound[param])
        subst[rule.output] = _name(var)
        result = "d" + rule.output
        local = {n for s in rule.body for n in stored_names(s)} - {result}
        renames = {n: self.names.fresh(n) for n in local}
        out = []
        for template in rule.body:
            stmt_ = copy.deepcopy(template)
            stmt_ = _Substitute(subst, renames, rule.globals).visit(stmt_)
            value = _simplify(stmt_.value)
            if stmt_.targets[0].id == result:
                value = self.zero(_name(var)) if isinstance(value, Zero) else \
                    self.materialize(value)
                out.append(_assign(self.tname(var), value))
            else:
                out.append(_assign(stmt_.targets[0].id, self.materialize(value)))
        return [ast.copy_location(s, stmt) for s in out]

    def bind_globals(self, fn):
        """Points global names at the generated module's keys."""
        local = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)} | stored_names(fn)
        for node in ast.walk(fn):             # runtime helpers an earlier pass called
            helper = fact(node, "runtime", None) if isinstance(node, ast.Call) else None
            if helper and isinstance(node.func, ast.Name) and \
                    not getattr(node.func, "_key", False):
                obj = getattr(gradients, helper, None) or getattr(sequences, helper, None) \
                    or getattr(builtins, helper)
                node.func.id = self.c.bind(helper, obj, local)
                node.func._key = True
        for node in ast.walk(fn):
            if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load) or \
                    node.id in local or getattr(node, "_key", False):
                continue
            env = getattr(node, "_env", None)
            if env is not None:
                obj = env[node.id] if node.id in env else getattr(builtins, node.id)
            else:
                try:
                    obj = self.unit.env.lookup(node.id)
                except (KeyError, AttributeError):
                    raise self.error(f"name {node.id!r} is not defined", node) from None
            node.id = self.c.bind(node.id, obj, local)


def _changed_parameters(tree):
    """Parameters a function may change in place (the effects analysis, with
    every argument passed on to a user function counted as changed)."""
    def passed(call):
        return {a.id for a in call.args if isinstance(a, ast.Name)}
    return mutated_parameters(tree, passed)


def _assign(target, value):
    return ast.Assign([_name(target, True)], value)
