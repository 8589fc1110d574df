"""Pass 2b, lift: functions defined inside the differentiated function become
functions of their own, with the enclosing variables they read as extra
parameters passed at each call (late binding, as a closure has it).

``def layer(h): return np.tanh(w[0] @ h)`` inside ``loss(w, x)`` becomes
``layer(h, w)``, and ``layer(x)`` becomes ``layer(x, w)``: the gradient
then flows to ``w`` through an ordinary call.  Where the function is used as
a value (``f = layer``), the value becomes a marker constant
``'<local function layer>'`` that the dispatch pass follows to the calls.
"""

import ast

from .facts import fact, set_fact
from .trees import BODIES


def _assigned(func):
    names = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef) and node is not func:
            names.add(node.name)
    return names


def _loaded(func):
    return {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _nested_defs(stmts):
    """Nested FunctionDef statements of a body (not those inside them)."""
    found = []
    for stmt in stmts:
        if isinstance(stmt, ast.FunctionDef):
            found.append(stmt)
        else:
            for field in BODIES:
                found += _nested_defs(getattr(stmt, field, []))
    return found


def _remove_defs(stmts):
    out = []
    for stmt in stmts:
        if isinstance(stmt, ast.FunctionDef):
            continue
        for field in BODIES:
            if hasattr(stmt, field):
                setattr(stmt, field, _remove_defs(getattr(stmt, field)))
                if field == "body" and not stmt.body:
                    stmt.body = [ast.Pass()]
        out.append(stmt)
    return out


class _CallRewriter(ast.NodeTransformer):
    def __init__(self, free, source):
        self.free = free
        self.source = source

    def visit_Call(self, node):
        lifted = isinstance(node.func, ast.Name) and node.func.id in self.free
        if lifted:
            set_fact(node.func, "lifted", True)
        self.generic_visit(node)
        if lifted:
            node.args = node.args + [ast.Name(v, ast.Load()) for v in self.free[node.func.id]]
        return node

    def visit_Name(self, node):
        if node.id in self.free and isinstance(node.ctx, ast.Load) and \
                not fact(node, "lifted", False):
            # a value standing for the function (see dispatch)
            marker = ast.copy_location(ast.Constant(f"<local function {node.id}>"), node)
            return set_fact(marker, "local_function", node.id)
        return node


def lift(func, source):
    """Removes the nested functions of ``func`` (in place) and returns them as
    ``{name: FunctionDef}``, each with its free variables as extra parameters."""
    defs = _nested_defs(func.body)
    if not defs:
        return {}
    outer_locals = _assigned(func) - {d.name for d in defs}
    by_name = {}
    for d in defs:
        if d.name in by_name:
            raise source.error(f"the nested function {d.name!r} is defined twice", d)
        by_name[d.name] = d
        for default in d.args.defaults + [x for x in d.args.kw_defaults if x]:
            if _loaded(ast.Expression(default)) & outer_locals:
                raise source.error("defaults of nested functions may not read local "
                                   "variables of the enclosing function", default)
    free = {name: sorted((_loaded(d) - _assigned(d)) & outer_locals)
            for name, d in by_name.items()}
    changed = True
    while changed:
        changed = False
        for name, d in by_name.items():
            # the functions it calls or names (kt.grad(g), map(g, xs), key=g)
            calls = {n.id for n in ast.walk(d) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Load) and n.id in by_name}
            extra = set().union(*(free[c] for c in calls)) - set(free[name]) - _assigned(d) \
                if calls else set()
            if extra:
                free[name] = sorted(set(free[name]) | extra)
                changed = True
    func.body = _remove_defs(func.body)
    rewriter = _CallRewriter(free, source)
    rewriter.visit(func)
    for name, d in by_name.items():
        d.args.args += [ast.arg(v) for v in free[name]]
        set_fact(d, "free_variables", tuple(free[name]))
        if d.args.kwonlyargs or d.args.defaults:
            if free[name]:
                raise source.error("nested functions with defaults or keyword-only "
                                   "arguments may not read enclosing variables", d)
        rewriter.visit(d)
    return by_name
