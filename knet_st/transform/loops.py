"""Control flow: ``if`` replays its test; a loop over ``range`` runs backwards
over the same range, any other loop counts its iterations (pushed when it is
nested) and the adjoint runs as many times."""

import ast
import copy

from ..runtime import gradients as rt
from .accumulate import ZERO, join, merge, nonzero
from .facts import fact, set_fact
from .resolve import Target
from .trees import Marker, assign as _assign, call as _call, name as _name, none as _none


class ControlFlow:
    """Part of :class:`~knet_st.transform.reverse.Reverse`: if, for, while."""

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
        """Whether a loop iterates over ``range`` (its adjoint runs it backwards)."""
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
            self.sites[k] = 2       # bound by a loop: once per iteration
            target = k
        breaks = any(isinstance(s, ast.If) and s.body and isinstance(s.body[0], ast.Break)
                     for s in stmt.body)
        if self.is_range(stmt.iter) and not breaks and self.sites.get(target, 0) <= 2:
            set_fact(stmt, "form", "range")
            body = self.block_fwd(stmt.body, depth + 1)
            return before + [ast.For(target=stmt.target, iter=stmt.iter,
                                     body=body or [ast.Pass()], orelse=[])]
        set_fact(stmt, "form", "count")
        self.sites[target] = max(self.sites.get(target, 0), 2)
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
        """The adjoint loop of a counted loop: as many rounds as it ran."""
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
        entry = nonzero(K)
        start = dict(entry)
        while True:
            state = self.checkpoint()
            K_body = dict(start)
            body = self.block_bwd(stmts, K_body, depth + 1)
            end = nonzero(K_body)
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
