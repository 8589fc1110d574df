"""The adjoints of containers: ``x[i]`` reads, ``x[i] = v`` stores and
``xs.append(v)``, ``del x[k]``; list positions fixed in the forward pass where a
list grows or shrinks."""

import ast
import copy

from ..runtime import gradients as rt
from ..runtime import sequences
from .accumulate import ANY, ZERO
from .activity import names_in
from .facts import fact, has_fact, set_fact
from .trees import Marker, assign as _assign, call as _call, name as _name, none as _none


class Containers:
    """Part of :class:`~knet_st.transform.reverse.Reverse`: container statements."""

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
        if base not in self.bindings.may_grow or \
                isinstance(index, ast.Constant) and isinstance(index.value, int) \
                and index.value >= 0:
            return []
        key = self.names.fresh("key")
        self.extra_sites[key] = depth
        set_fact(subscript, "key", _name(key))
        return [Marker("push", key, stmt),
                _assign(key, _call(self.helper("seqkey", rt.seqkey), _name(base),
                                   self.index_value(index)))]

    def fwd_setitem(self, stmt):
        target = stmt.targets[0]
        base = target.value
        out = []
        if (self.is_active(base) or self.is_active(stmt.value)) and \
                not fact(stmt, "array_write", False):
            out.append(self.run_check("check_container", base.id, stmt))
            if base.id in self.bindings.may_grow:
                out += self.key_for(target, 1, stmt)
        return out + [stmt]

    def bwd_setitem(self, stmt, K):
        out = self.setitem_adjoint(stmt, K)
        key = fact(stmt.targets[0], "key", None)
        if key is not None:
            out.append(Marker("restore", key.id, stmt))
        return out

    def setitem_adjoint(self, stmt, K):
        """The adjoint of ``x[i] = v``: the region's adjoint goes to ``v``."""
        target = stmt.targets[0]
        base = target.value.id
        if base not in self.active:
            return []
        d = self.adj(base)
        if K.get(d, ZERO) == ZERO:
            return []
        key = fact(target, "key") if has_fact(target, "key") else self.index_value(target.slice)
        value = _name(stmt.value.id) if self.is_active(stmt.value) else _none()
        grad = _call(self.helper("setitem_grad"), _name(d), _name(base), key, value)
        if self.is_active(stmt.value):
            part = self.names.fresh("g")
            return [_assign(ast.Tuple(elts=[_name(d, True), _name(part, True)],
                                      ctx=ast.Store()), grad)] + \
                self.contrib(stmt.value.id, _name(part), ANY, K)
        return [_assign(d, ast.Subscript(value=grad, slice=ast.Constant(0), ctx=ast.Load()))]

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
        if func.attr == "__delitem__":             # del x[k]: what it removes, kept
            removed = self.names.fresh("removed")
            self.extra_sites[removed] = depth
            set_fact(stmt, "position", removed)
            (index,) = call.args
            return [Marker("push", removed, stmt),
                    _assign(removed, _call(self.helper("deletion", sequences.deletion),
                                           _name(receiver), copy.deepcopy(index))), stmt]
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
        if stmt.value.func.attr == "__delitem__":
            if K.get(d, ZERO) != ZERO:
                out.append(_assign(d, _call(self.helper("deletion_grad",
                                                        sequences.deletion_grad),
                                            _name(d), _name(position))))
        elif K.get(d, ZERO) != ZERO:
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
