"""The fusion stage: chains of element-wise statements become one kernel each.

The last stage of the back end.  In every statement list of a generated
forward or backward function (never across an ``if``, a loop or any other
statement that is not element-wise) it finds the maximal runs of statements
``name = expression`` whose expressions are element-wise: arithmetic
operators, comparisons, ``np.exp``/``log``/``tanh``/``sin``/``cos``/``sqrt``/
``abs``/``maximum``/``minimum``/``where``, ``kt.sigm``, ``kt.relu`` and the
backward helpers ``relu_dx``, ``sigm_dx``, ``tanh_dx``, over names and
numbers.  A push onto the saved-values stack (``stack.append(x)``) between
two of them moves before the run when it reads nothing the run wrote
before it.  A run of two operations or more becomes a
:class:`~knet_st.runtime.fusion.Kernel` and the statements become::

    'fused k_3fa2c1d0e9: t3 = t4 + t5; x = kt.relu(t3)'
    _f = fused(k_3fa2c1d0e9, t4, t5)
    if _f is not None:
        (x,) = _f
    else:
        t3 = t4 + t5
        x = kt.relu(t3)

The kernel writes the names the rest of the function reads (its outputs),
not the temporaries it alone reads; a temporary the function reads only as
``shape_of(t)`` (a saved shape for the backward) comes back as a
:class:`~knet_st.runtime.fusion.ShapeStub`.  :func:`~knet_st.runtime.fusion.fused`
answers ``None`` on NumPy arrays, so the CPU runs the original statements.
"""

import ast

import numpy as np

from ..runtime import fusion as rt_fusion
from ..runtime import nn, sequences
from .facts import fact, has_fact
from .trees import BODIES, name

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_UNARY = {ast.USub: "neg", ast.UAdd: "pos"}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
            ast.NotEq: "ne"}
_ARITY = {"where": 3, "maximum": 2, "minimum": 2, "relu_dx": 2, "sigm_dx": 2, "tanh_dx": 2,
          "add": 2, "mul": 2}
# the functions a primitive call may be (by identity), and the runtime helpers;
# plus and times (+ and * where an operand may be a list) are fused as + and *:
# a kernel runs only on arrays and numbers
_PRIMITIVES = {np.exp: "exp", np.log: "log", np.tanh: "tanh", np.sin: "sin", np.cos: "cos",
               np.sqrt: "sqrt", np.abs: "abs", np.maximum: "maximum", np.minimum: "minimum",
               np.where: "where", nn.sigm: "sigm", nn.relu: "relu", sequences.plus: "add",
               sequences.times: "mul"}
_HELPERS = {"relu_dx", "sigm_dx", "tanh_dx"}


def fuse(ctx, *functions):
    """Rewrites each ``FunctionDef`` in ``functions`` in place: every run of
    element-wise statements of two operations or more becomes a fused kernel
    call with the original statements as its fallback."""
    if not rt_fusion.generating():
        return
    for function in functions:
        _Fuser(ctx, function).run()


class _Chain:
    """A run being gathered: its statements, the pushes moved before it, the
    graph nodes, the input names, the name of each value so far."""

    def __init__(self):
        self.stmts, self.moved, self.order = [], [], []
        self.nodes, self.inputs, self.env, self.ops = [], [], {}, 0
        self.written = set()

    def node(self, op, args):
        key = (op, args)
        for i, n in enumerate(self.nodes):     # the same input or constant once
            if n == key and op in ("in", "const"):
                return i
        self.nodes.append(key)
        return len(self.nodes) - 1

    def leaf(self, var):
        if var in self.env:
            return self.env[var]
        if var not in self.inputs:
            self.inputs.append(var)
        return self.node("in", self.inputs.index(var))


class _Fuser:
    def __init__(self, ctx, function):
        self.ctx = ctx
        self.function = function
        self.stores, self.loads, self.shape_loads = {}, {}, {}
        for node in ast.walk(function):
            if isinstance(node, ast.Name):
                table = self.stores if isinstance(node.ctx, ast.Store) else self.loads
                table[node.id] = table.get(node.id, 0) + 1
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and fact(node.func, "helper", None) == "shape_of"
                  and len(node.args) == 1 and isinstance(node.args[0], ast.Name)):
                v = node.args[0].id
                self.shape_loads[v] = self.shape_loads.get(v, 0) + 1
        for arg in ast.walk(function.args):
            if isinstance(arg, ast.arg):
                self.stores[arg.arg] = self.stores.get(arg.arg, 0) + 1

    def run(self):
        self.function.body = self.body(self.function.body)

    def body(self, stmts):
        out, chain = [], _Chain()
        for stmt in stmts:
            for field in BODIES:
                if isinstance(getattr(stmt, field, None), list) and not isinstance(
                        stmt, ast.FunctionDef):
                    setattr(stmt, field, self.body(getattr(stmt, field)))
            if self.add(chain, stmt):
                continue
            if chain.stmts and self.movable(chain, stmt):
                chain.moved.append(stmt)
                chain.order.append(stmt)
                continue
            out += self.flush(chain)
            chain = _Chain()
            if self.add(chain, stmt):
                continue
            out.append(stmt)
        out += self.flush(chain)
        return out

    # ------------------------------------------------------------ gathering
    def add(self, chain, stmt):
        """Adds ``stmt`` to ``chain`` if it is ``name = element-wise``; else False."""
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            return False
        saved = (len(chain.nodes), list(chain.inputs), chain.ops)
        try:
            top = self.expr(chain, stmt.value)
        except _NotElementwise:
            del chain.nodes[saved[0]:]
            chain.inputs[:], chain.ops = saved[1], saved[2]
            return False
        if chain.nodes[top][0] in ("in", "const"):     # a copy: not an operation
            del chain.nodes[saved[0]:]
            chain.inputs[:], chain.ops = saved[1], saved[2]
            return False
        target = stmt.targets[0].id
        chain.env[target] = top
        chain.written.add(target)
        chain.stmts.append(stmt)
        chain.order.append(stmt)
        return True

    def expr(self, chain, node):
        """The graph node of the element-wise expression ``node``."""
        if isinstance(node, ast.Name):
            if has_fact(node, "bound"):
                raise _NotElementwise
            return chain.leaf(node.id)
        if isinstance(node, ast.Constant):
            v = node.value
            if type(v) not in (int, float) or not np.isfinite(v) or abs(v) > 2 ** 62:
                raise _NotElementwise
            return chain.node("const", v)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            op = _BINOPS[type(node.op)]
            args = (self.expr(chain, node.left), self.expr(chain, node.right))
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            op, args = _UNARY[type(node.op)], (self.expr(chain, node.operand),)
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1
              and type(node.ops[0]) in _COMPARE):
            op = _COMPARE[type(node.ops[0])]
            args = (self.expr(chain, node.left), self.expr(chain, node.comparators[0]))
        elif isinstance(node, ast.Call) and not node.keywords:
            op = _call_op(node)
            if op is None or len(node.args) != _ARITY.get(op, 1) or any(
                    isinstance(a, ast.Starred) for a in node.args):
                raise _NotElementwise
            args = tuple(self.expr(chain, a) for a in node.args)
        else:
            raise _NotElementwise
        chain.ops += 1
        return chain.node(op, args)

    def movable(self, chain, stmt):
        """Whether ``stmt`` is a push (``s.append(x)``) that can run before the
        chain: it reads no name the chain wrote so far."""
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Attribute)
                and stmt.value.func.attr == "append"
                and isinstance(stmt.value.func.value, ast.Name)):
            return False
        reads = _loaded(stmt)
        return not reads & chain.written and stmt.value.func.value.id not in chain.inputs

    # ------------------------------------------------------------- emitting
    def flush(self, chain):
        """The statements that replace a gathered chain: the pushes moved
        before it, then a kernel for each part of it that shares no name with
        the others (``2 * h`` stays apart from ``kt.sigm(t5)``)."""
        if chain.ops < 2:
            return chain.order
        out = list(chain.moved)
        for part in _components(chain.stmts):
            sub = _Chain()
            for stmt in part:
                self.add(sub, stmt)
            out += self.emit(sub)
        return out

    def emit(self, chain):
        """The fused block of a chain (its statements if it is too short)."""
        if chain.ops < 2 or not chain.inputs:
            return chain.stmts
        inside = {}
        for stmt in chain.stmts:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                    inside[n.id] = inside.get(n.id, 0) + 1
        outputs = []
        for stmt in chain.stmts:
            var = stmt.targets[0].id
            if any(o[0] == var for o in outputs):
                outputs = [o for o in outputs if o[0] != var]
            outputs.append((var, chain.env[var]))
        kept = []
        for var, node in outputs:
            outside = self.loads.get(var, 0) - inside.get(var, 0)
            single = self.stores.get(var, 0) == 1 and var not in chain.inputs
            if single and outside == 0:
                continue                                   # a temporary
            kind = "shape" if single and outside == self.shape_loads.get(var, 0) else "array"
            kept.append((var, node, kind))
        if not kept:
            return chain.stmts
        text = "; ".join(ast.unparse(s) for s in chain.stmts)
        kernel = rt_fusion.kernel(chain.nodes, chain.inputs, kept, text)
        first = chain.stmts[0]
        k = self.ctx.constant(kernel.id, kernel)
        f = self.ctx.fresh("fv")
        note = ast.Expr(ast.Constant("fused %s: %s" % (kernel.id, text)))
        call = ast.Call(self.ctx.helper("fused", rt_fusion.fused),
                        [k] + [name(v) for v in chain.inputs], [])
        unpack = ast.Assign([ast.Tuple([name(v, True) for v, _, _ in kept], ast.Store())],
                            name(f))
        test = ast.Compare(name(f), [ast.IsNot()], [ast.Constant(None)])
        block = ast.If(test, [unpack], list(chain.stmts))
        stmts = [note, ast.Assign([name(f, True)], call), block]
        for s in stmts + [unpack]:
            ast.copy_location(s, first)
        return stmts


class _NotElementwise(Exception):
    pass


def _call_op(node):
    """The op name of an element-wise call, or ``None``."""
    func = node.func
    if isinstance(func, ast.Name) and fact(func, "helper", None) in _HELPERS:
        return fact(func, "helper")
    target = fact(node, "target", None)
    if target is not None and target.kind == "primitive":
        try:
            return _PRIMITIVES.get(target.obj)
        except TypeError:                  # an unhashable object
            return None
    return None


def _loaded(stmt):
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _components(stmts):
    """``stmts`` split into the groups that share no name, each in order."""
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    names = [_loaded(s) | {s.targets[0].id} for s in stmts]
    for ns in names:
        first = next(iter(ns))
        for n in ns:
            parent[find(n)] = find(first)
    groups = {}
    for stmt, ns in zip(stmts, names):
        groups.setdefault(find(next(iter(ns))), []).append(stmt)
    return list(groups.values())


def unfuse(text):
    """Generated source ``text`` with each fused block replaced by the
    statements it stands for (for forward mode over generated code, which
    has no tangent rule for a fused kernel)."""
    if "fused k_" not in text:
        return text
    module = ast.parse(text)

    def strip(stmts):
        out, i = [], 0
        while i < len(stmts):
            s = stmts[i]
            for field in BODIES:
                if isinstance(getattr(s, field, None), list):
                    setattr(s, field, strip(getattr(s, field)))
            if (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                    and isinstance(s.value.value, str) and s.value.value.startswith("fused k_")
                    and i + 2 < len(stmts) and isinstance(stmts[i + 2], ast.If)):
                out += strip(stmts[i + 2].orelse)
                i += 3
                continue
            out.append(s)
            i += 1
        return out

    for f in module.body:
        if isinstance(f, ast.FunctionDef):
            f.body = strip(f.body)
    return ast.unparse(module) + "\n"
