"""Expressions in one-operation form: the part of the normalize pass that
turns an expression into atoms (names and constants) and one operation,
binding temporaries (``t3 = t1 + t2``); conditional expressions and
comprehensions become statements."""

import ast

from .facts import fact, set_fact
from .trees import assign as _assign, name as _name

ATOMS = (ast.Name, ast.Constant)
_INDEX_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)


def _concatenation(display):
    """``[*a, x, *b]`` as ``list(a) + [x] + list(b)`` (a tuple display as
    ``tuple(...)`` of that)."""
    parts, run = [], []
    for elt in display.elts:
        if isinstance(elt, ast.Starred):
            if run:
                parts.append(ast.List(elts=run, ctx=ast.Load()))
                run = []
            parts.append(ast.Call(func=_name("list"), args=[elt.value], keywords=[]))
        else:
            run.append(elt)
    if run:
        parts.append(ast.List(elts=run, ctx=ast.Load()))
    expr = parts[0]
    for part in parts[1:]:
        expr = ast.BinOp(left=expr, op=ast.Add(), right=part)
    if isinstance(display, ast.Tuple):
        expr = ast.Call(func=_name("tuple"), args=[expr], keywords=[])
    return expr


class Expressions:
    """Part of :class:`~knet_st.transform.normalize.Normalizer`: expressions."""

    def assign_name(self, name, value):
        """``name = value`` in one-operation form, emitted."""
        if isinstance(value, (ast.BoolOp, ast.IfExp)):
            self.conditional(name, value)
            return
        if isinstance(value, (ast.ListComp, ast.GeneratorExp, ast.DictComp)):
            self.comprehension(name, value)
            return
        if isinstance(value, ast.Dict) and None in value.keys:
            self.merged_dict(value, name)
            return
        simple = self.simple(value)
        reads = {n.id for n in ast.walk(simple) if isinstance(n, ast.Name)}
        if name in reads and not isinstance(simple, ast.Name):
            temp = self.names.fresh("t")
            self.emit(_assign(temp, simple))
            simple = _name(temp)
        self.emit(_assign(name, simple))

    def store(self, target, value):
        """Stores the atom ``value`` into an assignment target."""
        if isinstance(target, ast.Name):
            self.emit(_assign(target.id, value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, ast.Name):
                temp = self.names.fresh("t")
                self.emit(_assign(temp, value))
                value = _name(temp)
            starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
            after = len(target.elts) - starred[0] - 1 if starred else 0
            for i, elt in enumerate(target.elts):
                read = ast.Subscript(value=_name(value.id), slice=ast.Constant(i),
                                     ctx=ast.Load())
                if starred and i > starred[0]:            # a, *b, c = xs: c is xs[-1]
                    read.slice = ast.Constant(i - len(target.elts))
                if isinstance(elt, ast.Starred):          # b is list(xs[1:-1])
                    upper = ast.Constant(-after) if after else None
                    part = self.atom(ast.Subscript(value=_name(value.id), slice=ast.Slice(
                        lower=ast.Constant(i), upper=upper, step=None), ctx=ast.Load()))
                    read = ast.Call(func=_name("list"), args=[part], keywords=[])
                    elt = elt.value
                part = self.names.fresh(f"{value.id}{i}") if not isinstance(elt, ast.Name) \
                    else None
                if part is None:
                    self.assign_name(elt.id, read)
                else:
                    self.emit(_assign(part, read))
                    self.store(elt, _name(part))
        elif isinstance(target, ast.Subscript):
            base = self.atom(target.value)
            index = self.index(target.slice)
            self.emit(ast.Assign(targets=[ast.Subscript(value=base, slice=index,
                                                        ctx=ast.Store())],
                                 value=value, lineno=self.lineno))
        else:
            raise self.source.error("cannot differentiate assignment to "
                                    f"{type(target).__name__.lower()}s", target)

    # -- expressions -------------------------------------------------------

    def atom(self, expr):
        """``expr`` as a name or constant, emitting the statements computing it."""
        if isinstance(expr, ATOMS):
            return expr
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub) and \
                isinstance(expr.operand, ast.Constant) and \
                isinstance(expr.operand.value, (int, float)):
            return ast.Constant(-expr.operand.value)
        if isinstance(expr, ast.Name):
            return _name(expr.id)
        name = self.names.fresh(self.suggest(expr))
        self.assign_name(name, expr)
        return _name(name)

    def suggest(self, expr):
        """A readable name for a temporary: ``w0`` for ``w[0]``, ``t3`` otherwise."""
        if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
            index = expr.slice
            if isinstance(index, ast.Constant) and isinstance(index.value, (int, str)) \
                    and str(index.value).isidentifier() or \
                    isinstance(index, ast.Constant) and isinstance(index.value, int) \
                    and index.value >= 0:
                return f"{expr.value.id}{index.value}" if isinstance(index.value, int) \
                    else f"{expr.value.id}_{index.value}"
            if isinstance(index, ast.Name):
                return f"{expr.value.id}_{index.id}"
        return "t"

    def index(self, node):
        """A subscript's index with atoms (``i + 1`` kept whole)."""
        if isinstance(node, ast.Slice):
            return ast.Slice(lower=node.lower and self.atom(node.lower),
                             upper=node.upper and self.atom(node.upper),
                             step=node.step and self.atom(node.step))
        if isinstance(node, ast.Tuple):
            return ast.Tuple(elts=[self.index(e) for e in node.elts], ctx=ast.Load())
        if isinstance(node, ast.BinOp) and isinstance(node.op, _INDEX_OPS) and \
                all(isinstance(o, ast.Name) or isinstance(o, ast.Constant) and
                    type(o.value) is int for o in (node.left, node.right)):
            return node       # w[i + 1] stays one read: the backward recomputes i + 1
        return self.atom(node)

    def simple(self, expr):
        """``expr`` with atoms for operands (one operation)."""
        if isinstance(expr, ATOMS):
            return expr
        if isinstance(expr, ast.BinOp):
            return ast.BinOp(left=self.atom(expr.left), op=expr.op, right=self.atom(expr.right))
        if isinstance(expr, ast.UnaryOp):
            return ast.UnaryOp(op=expr.op, operand=self.atom(expr.operand))
        if isinstance(expr, ast.Compare):
            return ast.Compare(left=self.atom(expr.left), ops=expr.ops,
                               comparators=[self.atom(c) for c in expr.comparators])
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Name) and func.id in ("max", "min") and \
                    func.id in self.global_names and len(expr.args) == 1 and \
                    isinstance(expr.args[0], (ast.List, ast.Tuple)) and \
                    len(expr.args[0].elts) >= 2 and not expr.keywords:
                expr = ast.Call(func=func, args=expr.args[0].elts, keywords=[])  # max([a, b])
            if isinstance(func, ast.Name) and func.id in ("max", "min") and \
                    func.id in self.global_names and len(expr.args) > 2 and \
                    not expr.keywords and not any(isinstance(a, ast.Starred)
                                                  for a in expr.args):
                # max(a, b, c) is max(max(a, b), c): the rule takes two values
                inner = ast.Call(func=func, args=expr.args[:-1], keywords=[])
                return ast.Call(func=func, args=[self.atom(inner), self.atom(expr.args[-1])],
                                keywords=[])
            if isinstance(func, ast.Attribute) and not self.dotted(func):
                func = ast.Attribute(value=self.atom(func.value), attr=func.attr,
                                     ctx=ast.Load())
            elif not isinstance(func, (ast.Name, ast.Attribute)):
                func = self.atom(func)
            call = ast.Call(func=func, args=[ast.Starred(self.atom(a.value), ast.Load())
                                             if isinstance(a, ast.Starred) else self.atom(a)
                                             for a in expr.args],
                            keywords=[ast.keyword(arg=k.arg, value=self.atom(k.value))
                                      for k in expr.keywords])
            if fact(expr, "runtime", None):        # a runtime helper an earlier pass called
                set_fact(call, "runtime", fact(expr, "runtime"))
            return call
        if isinstance(expr, ast.Subscript):
            return ast.Subscript(value=self.atom(expr.value), slice=self.index(expr.slice),
                                 ctx=ast.Load())
        if isinstance(expr, ast.Attribute):
            if self.dotted(expr):
                return expr
            return ast.Attribute(value=self.atom(expr.value), attr=expr.attr, ctx=ast.Load())
        if isinstance(expr, (ast.Tuple, ast.List)):
            if any(isinstance(e, ast.Starred) for e in expr.elts):
                return self.simple(_concatenation(expr))
            return type(expr)(elts=[self.atom(e) for e in expr.elts], ctx=ast.Load())
        if isinstance(expr, ast.Dict):
            if any(k is None for k in expr.keys):
                return self.merged_dict(expr, self.names.fresh("t"))
            return ast.Dict(keys=[self.atom(k) for k in expr.keys],
                            values=[self.atom(v) for v in expr.values])
        if isinstance(expr, ast.Set):         # no gradient passes through a set
            return self.simple(ast.Call(func=_name("set"), args=[
                ast.List(elts=expr.elts, ctx=ast.Load())], keywords=[]))
        if isinstance(expr, ast.SetComp):
            return self.simple(ast.Call(func=_name("set"), args=[
                ast.ListComp(elt=expr.elt, generators=expr.generators)], keywords=[]))
        if isinstance(expr, ast.NamedExpr):    # (y := v): y = v, then y
            self.assign_name(expr.target.id, expr.value)
            return _name(expr.target.id)
        if isinstance(expr, (ast.BoolOp, ast.IfExp, ast.ListComp, ast.GeneratorExp,
                             ast.DictComp)):
            return self.atom(expr)
        if isinstance(expr, ast.JoinedStr):
            return expr
        raise self.source.error(f"cannot differentiate {type(expr).__name__} expressions",
                                expr)

    def conditional(self, name, expr):
        """``and``/``or``/``if-else`` expressions as ``if`` statements."""
        if isinstance(expr, ast.IfExp):
            test = self.atom(expr.test)
            body = self.block([_assign(name, expr.body)])
            orelse = self.block([_assign(name, expr.orelse)])
            self.emit(ast.If(test=self.stable(test, body + orelse), body=body, orelse=orelse))
            return
        first, *rest = expr.values
        self.assign_name(name, first)
        if not rest:
            return
        remaining = ast.BoolOp(op=expr.op, values=rest) if len(rest) > 1 else rest[0]
        body = self.block([_assign(name, remaining)])
        test = _name(name) if isinstance(expr.op, ast.And) else \
            ast.UnaryOp(op=ast.Not(), operand=_name(name))
        if isinstance(expr.op, ast.Or):
            flag = self.names.fresh("t")
            self.emit(_assign(flag, test))
            test = _name(flag)
        self.emit(ast.If(test=self.stable(test, body), body=body, orelse=[]))

    def comprehension(self, name, expr):
        """``[f(x) for x in xs if c]`` as a loop appending to a new list (nested
        loops for several ``for`` clauses); ``{k: v for ...}`` as a loop storing
        into a new dict."""
        if isinstance(expr, ast.DictComp):
            self.emit(_assign(name, ast.Dict(keys=[], values=[])))
            body = [ast.Assign(targets=[ast.Subscript(value=_name(name), slice=expr.key,
                                                      ctx=ast.Store())],
                               value=expr.value, lineno=self.lineno)]
        else:
            self.emit(_assign(name, ast.List(elts=[], ctx=ast.Load())))
            elt = expr.elt
            if isinstance(elt, (ast.ListComp, ast.DictComp)):
                # an inner list, finished before it is stored: stored as a copy,
                # so that the list built by appends has one name
                elt = ast.Call(func=_name("list" if isinstance(elt, ast.ListComp)
                                          else "dict"), args=[elt], keywords=[])
            body = [ast.Expr(ast.Call(func=ast.Attribute(value=_name(name), attr="append",
                                                         ctx=ast.Load()),
                                      args=[elt], keywords=[]))]
        for gen in reversed(expr.generators):
            for cond in reversed(gen.ifs):
                body = [ast.If(test=cond, body=body, orelse=[])]
            body = [ast.For(target=gen.target, iter=gen.iter, body=body, orelse=[],
                            lineno=self.lineno)]
        self.stmt_For(body[0])

    def merged_dict(self, expr, result):
        """``result = {**a, k: v}`` as a new dict filled key by key
        (``for key in a: result[key] = a[key]``)."""
        self.emit(_assign(result, ast.Dict(keys=[], values=[])))
        for key, value in zip(expr.keys, expr.values):
            if key is None:
                mapping = self.atom(value)
                key_name = self.names.fresh("key")
                read = ast.Subscript(value=mapping, slice=_name(key_name), ctx=ast.Load())
                self.stmt_For(ast.For(target=_name(key_name, True), iter=mapping, body=[
                    ast.Assign(targets=[ast.Subscript(value=_name(result),
                                                      slice=_name(key_name),
                                                      ctx=ast.Store())],
                               value=read, lineno=self.lineno)], orelse=[],
                    lineno=self.lineno))
            else:
                self.store(ast.Subscript(value=_name(result), slice=key, ctx=ast.Store()),
                           self.atom(value))
        return _name(result)

    def dotted(self, node):
        """``np.linalg.norm``-style attribute chains on a global name, or one
        attribute of a local (``x.T``, ``x.sum``)."""
        depth = 0
        while isinstance(node, ast.Attribute):
            node = node.value
            depth += 1
        return isinstance(node, ast.Name) and (depth == 1 or node.id in self.global_names)
