"""Tangent expressions of forward mode: rules' names substituted, and zero
tangents simplified away (rules are linear in their tangents)."""

import ast
import builtins
import copy

from .tangents import CONSTANT
from .trees import name as _name


class Zero(ast.expr):
    """A zero tangent in a rule being inlined: simplified away, or written as
    ``zero_tangent(primal)``."""
    _fields = ()

    def __init__(self, primal):
        super().__init__()
        self.primal = primal
        self._tan = True


def _is_constant(obj):
    try:
        return obj in CONSTANT
    except TypeError:
        return False


class _Substitute(ast.NodeTransformer):
    """A rule's names replaced: parameters by argument (and tangent) nodes,
    locals by fresh names, globals marked with the rule's module."""

    def __init__(self, subst, renames, env):
        self.subst, self.renames, self.env = subst, renames, env

    def visit_Name(self, node):
        if node.id in self.renames:
            return _name(self.renames[node.id], isinstance(node.ctx, ast.Store))
        if node.id in self.subst:
            new = self.subst[node.id]
            if isinstance(new, Zero):
                return Zero(new.primal)
            out = copy.deepcopy(new)
            if getattr(new, "_tan", False):
                for n in ast.walk(out):
                    n._tan = True
            return out
        node._env = self.env
        return node


def _carries(node):
    return any(getattr(n, "_tan", False) for n in ast.walk(node))


def _simplify(node):
    """Zero tangents propagated: ``0 * a``, ``a + 0``, ``f(0)`` (every tangent
    argument zero: rules are linear in tangents)."""
    if isinstance(node, ast.BinOp):
        left, right = _simplify(node.left), _simplify(node.right)
        lz, rz = isinstance(left, Zero), isinstance(right, Zero)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            if lz and rz:
                return left
            if rz:
                return left
            if lz:
                return right if isinstance(node.op, ast.Add) else \
                    _mark(ast.UnaryOp(ast.USub(), right))
        elif lz or rz:
            return left if lz else right
        return _mark(ast.BinOp(left, node.op, right))
    if isinstance(node, ast.UnaryOp):
        operand = _simplify(node.operand)
        return operand if isinstance(operand, Zero) else _mark(ast.UnaryOp(node.op, operand))
    if isinstance(node, ast.Call):
        carrying = [i for i, a in enumerate(node.args) if _carries(a)]
        node.args = [_simplify(a) for a in node.args]
        if carrying and all(isinstance(node.args[i], Zero) for i in carrying):
            return Zero(None)
        return _mark(node) if carrying else node
    if isinstance(node, (ast.Subscript, ast.Attribute)):
        node.value = _simplify(node.value)
        return node.value if isinstance(node.value, Zero) else node
    return node


def _mark(node):
    node._tan = True
    return node


def _builtin(id):
    node = _name(id)
    node._env = vars(builtins)
    return node
