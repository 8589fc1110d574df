"""Adjoint templates inlined: a rule from the registry, its parameters bound to
a call's arguments and its names renamed into the generated code."""

import ast
import builtins
import copy
import operator

from .accumulate import ANY, DENSE
from .trees import name as _name



class Inlining:
    """Part of :class:`~knet_st.transform.reverse.Reverse`: inlines adjoint rules."""

    def inline(self, rule, args, keywords, var, dy, K, stmt):
        """The statements of ``rule`` inlined for the call ``var = f(args)``."""
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
                    renames[name] = self.ctx.constant(name, obj)
        out = []
        for s in body:
            s = _Fold().visit(_Rename(renames).visit(s))
            target = s.targets[0].id if isinstance(s, ast.Assign) and \
                isinstance(s.targets[0], ast.Name) else None
            original = next((o for o, r in renames.items()
                             if isinstance(r, ast.Name) and r.id == target), None)
            if original in outputs:
                arg = bound[outputs[original]]
                kind = ANY if outputs[original] in rule.containers else DENSE
                out += self.contrib(arg.id, s.value, kind, K)
            else:
                out.append(s)
        return out


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


_FOLDABLE = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv, ast.Pow: operator.pow}


class _Fold(ast.NodeTransformer):
    """Constant folding in inlined rules: ``2 - 1`` is ``1``; ``x ** 1`` is ``x``."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        left, right = node.left, node.right
        if isinstance(left, ast.Constant) and isinstance(right, ast.Constant) and \
                isinstance(left.value, (int, float)) and isinstance(right.value, (int, float)):
            fold = _FOLDABLE.get(type(node.op))
            try:
                return ast.Constant(fold(left.value, right.value)) if fold else node
            except (ArithmeticError, ValueError):
                return node
        if isinstance(node.op, ast.Pow) and isinstance(right, ast.Constant) and \
                right.value == 1:
            return left
        return node
