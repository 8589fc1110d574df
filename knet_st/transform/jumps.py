"""Pass 3a, jumps: ``return``, ``break`` and ``continue`` made explicit.

After this pass a function has one ``return`` (its last statement) and every
loop has at most one ``break``, the last statement of its body: an early exit
sets a flag, and the statements it skips are guarded by ``if not flag``.
The backward sweep then only has to replay plain ``if``s and loops.

Flags: ``returned`` (the function returned), per loop ``stop`` (leave the
loop: a ``break`` or a ``return``) and ``skip`` (leave this iteration: any
jump).
"""

import ast

from .trees import assign as _assign


def _parse(text):
    return ast.parse(text).body


def _const(value):
    return ast.Constant(value)


def _jumps(stmts, top=True):
    """The jump kinds in ``stmts``: 'return' anywhere, 'break'/'continue' of this loop."""
    kinds = set()
    for stmt in stmts:
        if isinstance(stmt, ast.Return):
            kinds.add("return")
        elif isinstance(stmt, ast.Break):
            kinds.add("break")
        elif isinstance(stmt, ast.Continue):
            kinds.add("continue")
        elif isinstance(stmt, ast.If):
            kinds |= _jumps(stmt.body) | _jumps(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            kinds |= _jumps(stmt.body) | _jumps(stmt.finalbody)
        elif isinstance(stmt, (ast.For, ast.While)):
            kinds |= _jumps(stmt.body) & {"return"}
    return kinds


class _Loop:
    def __init__(self, names, kinds):
        self.stop = names.fresh("stop") if kinds & {"break", "return"} else None
        self.skip = names.fresh("skip") if kinds else None


class _Lowering:
    def __init__(self, names):
        self.names = names
        self.returned = None
        self.result = None

    def block(self, stmts, loop):
        out = []
        for i, stmt in enumerate(stmts):
            rest = stmts[i + 1:]
            if isinstance(stmt, ast.Return):
                value = stmt.value if stmt.value is not None else _const(None)
                out.append(ast.copy_location(_assign(self.result, value), stmt))
                out.append(_assign(self.returned, _const(True)))
                if loop:
                    out += [_assign(loop.stop, _const(True)), _assign(loop.skip, _const(True))]
                return out
            if isinstance(stmt, ast.Break):
                return out + [_assign(loop.stop, _const(True)), _assign(loop.skip, _const(True))]
            if isinstance(stmt, ast.Continue):
                return out + [_assign(loop.skip, _const(True))]
            if isinstance(stmt, ast.If):
                jumps = _jumps([stmt])
                stmt.body = self.block(stmt.body, loop) or [ast.Pass()]
                stmt.orelse = self.block(stmt.orelse, loop)
                out.append(stmt)
                if jumps and rest:
                    flag = loop.skip if loop else self.returned
                    guard = ast.If(test=ast.UnaryOp(ast.Not(), ast.Name(flag, ast.Load())),
                                   body=self.block(rest, loop), orelse=[])
                    out.append(guard)
                    return out
                continue
            if isinstance(stmt, ast.Try):     # body; finalbody, however body ends
                jumps = _jumps(stmt.body)
                out += self.block(stmt.body, loop)
                out += self.block(stmt.finalbody, loop)
                if jumps and rest:
                    flag = loop.skip if loop else self.returned
                    out.append(ast.If(test=ast.UnaryOp(ast.Not(), ast.Name(flag, ast.Load())),
                                      body=self.block(rest, loop), orelse=[]))
                    return out
                continue
            if isinstance(stmt, (ast.For, ast.While)):
                kinds = _jumps(stmt.body)
                inner = _Loop(self.names, kinds)
                body = self.block(stmt.body, inner)
                if inner.skip:
                    body.insert(0, _assign(inner.skip, _const(False)))
                if inner.stop:
                    out.append(_assign(inner.stop, _const(False)))
                    body.append(ast.If(test=ast.Name(inner.stop, ast.Load()),
                                       body=[ast.Break()], orelse=[]))
                stmt.body = body
                out.append(stmt)
                if "return" in kinds:
                    if loop:
                        out.append(ast.If(test=ast.Name(self.returned, ast.Load()),
                                          body=[_assign(loop.stop, _const(True)),
                                                _assign(loop.skip, _const(True))],
                                          orelse=[]))
                    if rest:
                        flag = loop.skip if loop else self.returned
                        out.append(ast.If(
                            test=ast.UnaryOp(ast.Not(), ast.Name(flag, ast.Load())),
                            body=self.block(rest, loop), orelse=[]))
                        return out
                continue
            out.append(stmt)
        return out


def lower(func, names):
    """Rewrites ``func``'s body in place so that it ends in its only ``return``."""
    body = func.body
    loops_jump = any(isinstance(n, (ast.Break, ast.Continue))
                     for stmt in body for n in ast.walk(stmt))
    ends_in_return = bool(body) and isinstance(body[-1], ast.Return)
    early_return = "return" in _jumps(body[:-1] if ends_in_return else body)
    if not loops_jump and not early_return:
        if not ends_in_return:
            body.append(ast.Return(_const(None)))
        return func
    low = _Lowering(names)
    if ends_in_return and not early_return:
        func.body = low.block(body[:-1], None) + [body[-1]]
        return func
    if "return" in _jumps(body):
        low.returned = names.fresh("returned")
        low.result = names.fresh("result")
        new = [_assign(low.returned, _const(False)), _assign(low.result, _const(None))]
        new += low.block(body, None)
        new.append(ast.Return(ast.Name(low.result, ast.Load())))
    else:
        new = low.block(body, None) + [ast.Return(_const(None))]
    func.body = new
    return func
