"""Calls of user functions: the callee's forward and backward functions are
requested through an injected callback (``calls.request``), the arguments
bound through another (``calls.bind``)."""

import ast
import copy

from .accumulate import ANY, SOME, ZERO
from .facts import fact, set_fact
from .trees import Marker, assign as _assign, bound_name, call as _call, name as _name, \
    none as _none


class UserCalls:
    """Part of :class:`~knet_st.transform.reverse.Reverse`: user-function calls."""

    def fwd_user_call(self, stmt, depth):
        var = stmt.targets[0].id
        call = stmt.value
        bound = self.calls.bind(call)
        set_fact(stmt, "args", bound)
        active = [i for i, a in enumerate(bound) if self.is_active(a)]
        set_fact(stmt, "active_args", active)
        target = fact(call, "target")
        if not active and target.kind in ("user", "gradient"):
            return [Marker("push", var, stmt), stmt]
        fwd, bwd = self.calls.request(target, tuple(active),
                                      fact(stmt, "volatile", frozenset()))
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
            kinds = [K.get(self.adj(fact(stmt, "args")[i].id), ZERO)
                     for i in fact(stmt, "active_args")]
            dout_kind = K.get(d, ZERO) if d else ZERO
            if dout_kind != ZERO or any(k != ZERO for k in kinds):
                # The callee is always given a real output adjoint: zeros where
                # the result has none (its arguments' adjoints still pass through).
                if dout_kind == ZERO:
                    dout = _call(self.helper("zeros_like_tree"), _name(var))
                elif dout_kind == ANY:
                    dout = _call(self.helper("present"), _name(d), _name(var))
                else:
                    dout = _name(d)
                if dout_kind in (ANY, SOME) and var in self.sparse:
                    dout = _call(self.helper("dense"), dout)     # h = f(x); h[0]
                args = [_name(saved), dout]
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
