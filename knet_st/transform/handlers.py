"""``try`` with ``except``: the body as one call that either happens or not.

Desugar (:func:`try_except`) writes ::

    try:                                   caught1 = None
        y = f(x)                           ok1 = True
    except ValueError as e:       ->       if ok1:           # guarded
        y = g(x, e)                            result1 = try1(x)
                                           if ok1:
                                               y, = result1
                                           else:
                                               e = caught1
                                               y = g(x, e)

with ``def try1(x): y = f(x); return (y,)`` a nested function (lifted like
any other).  The call either returns, and its forward and backward pass are
the body's, or raises, and nothing it would have rebound is rebound: the
backward pass replays ``if ok1`` as it replays any ``if``.  After the reverse
pass (:func:`guard_forward`) the guarded ``if`` of the forward function
becomes the real ``try``, which sets ``ok1 = False`` and drops what the
failed statement pushed on the stack.

What Python keeps and the call would lose is refused: a body that rebinds a
name and may raise after that (a later statement, a loop) where some handler
does not set the name first, a body that
changes objects in place (``xs.append(v)``, ``a[i] = v``, a helper that
changes an argument that carries gradients), and ``break`` or ``continue``
in the body.  A ``return v`` in the body returns ``(True, v, ...)`` from the
call, and the caller returns ``v``.
"""

import ast
import copy

from .facts import fact, has_fact, set_fact
from .registry import is_mutating_method
from .trees import assign, bound_name, name, rewrite

_SIMPLE = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)


def _stores(body):
    """Names bound in ``body`` (not inside nested functions), in order."""
    found = []
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and \
                    node.id not in found:
                found.append(node.id)
    return found


def _loads(body):
    return {n.id for s in body for n in ast.walk(s) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}


def _first_problem(body):
    """A node of the ``try`` body the call could not keep as Python does."""
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Break, ast.Continue, ast.Yield, ast.YieldFrom,
                                 ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal,
                                 ast.FunctionDef, ast.Lambda)):
                return node, "'break', 'continue', imports, 'global' or functions " \
                    "inside a 'try' block with 'except'"
            if isinstance(node, (ast.Subscript, ast.Attribute)) and \
                    isinstance(node.ctx, ast.Store) or \
                    isinstance(node, ast.AugAssign) and not isinstance(node.target, ast.Name) \
                    or isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and is_mutating_method(node.func.attr):
                return node, "in-place changes inside a 'try' block with 'except' (if " \
                    "it raises after the change, the change stays): make the change " \
                    "after the block"
    return None


def _sets_first(handler_body, var):
    """Whether ``var`` is assigned at the top level of a handler before any read."""
    for stmt in handler_body:
        if var in _loads([stmt]):
            return False
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == var for t in stmt.targets):
            return True
    return False


def try_except(func, source, fresh):
    """Rewrites the ``try`` statements with handlers of ``func`` (see the
    module doc); ``fresh(prefix)`` gives new names.  A ``finally`` part is
    left for :func:`~.desugar.try_finally`."""

    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    local_names = params | {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
                            and isinstance(n.ctx, ast.Store)}

    def one(stmt):
        if not (isinstance(stmt, ast.Try) and stmt.handlers):
            return [stmt]
        problem = _first_problem(stmt.body)
        if problem:
            raise source.error(f"cannot differentiate {problem[1]}", problem[0])
        outputs = _stores(stmt.body)
        # names set before a statement that may still raise (in the last
        # statement too, if it is a loop or an if)
        last = stmt.body[-1]
        exposed = _stores(stmt.body[:-1] + ([] if isinstance(last, _SIMPLE) else [last]))
        for handler in stmt.handlers:
            for var in exposed:
                if not _sets_first(handler.body, var):
                    raise source.error(
                        f"cannot differentiate this 'try' block: it sets {var!r} and "
                        "may raise after that, and an 'except' block does not set "
                        f"{var!r} first; keep one statement in the 'try' block",
                        handler)
        for handler in stmt.handlers:
            if handler.type is not None and not all(
                    isinstance(n, (ast.Name, ast.Attribute, ast.Tuple, ast.Load))
                    for n in ast.walk(handler.type)):
                raise source.error("the exception types of 'except' must be names",
                                   handler)
        ok, caught, result, body_name = fresh("ok"), fresh("caught"), fresh("result"), \
            fresh("try")
        # what the body reads, and what it may leave as it was (set only
        # under a condition), from the enclosing function
        settled = set(_stores([s for s in stmt.body if isinstance(s, _SIMPLE)]))
        inputs = sorted((_loads(stmt.body) | set(outputs) - settled) & local_names)
        params = ast.arguments(posonlyargs=[], args=[ast.arg(v) for v in inputs],
                               vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                               defaults=[])
        returns = [n for n in ast.walk(ast.Module(body=stmt.body, type_ignores=[]))
                   if isinstance(n, ast.Return)]
        if returns:          # return v in the body: (True, v, ...) from the call
            for node in returns:
                node.value = ast.Tuple(elts=[ast.Constant(True), node.value or
                                             ast.Constant(None)] +
                                       [ast.Constant(None)] * len(outputs), ctx=ast.Load())
            returned, value = fresh("returned"), fresh("value")
            outputs = [returned, value] + outputs
        ret = ast.Return(ast.Tuple(elts=[name(v) for v in outputs], ctx=ast.Load()))
        if returns:
            ret.value.elts[:2] = [ast.Constant(False), ast.Constant(None)]
        lifted = ast.FunctionDef(name=body_name, args=params, body=stmt.body + [ret],
                                 decorator_list=[], returns=None, type_comment=None,
                                 type_params=[])
        types = [h.type for h in stmt.handlers]
        flat = [e for t in types if t is not None
                for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
        guard_types = name("BaseException") if any(t is None for t in types) else \
            ast.Tuple(elts=copy.deepcopy(flat), ctx=ast.Load())
        test = name(ok)
        set_fact(test, "guard", (guard_types, caught, fresh("exception"), fresh("depth")))
        call = ast.Call(func=name(body_name), args=[name(v) for v in inputs], keywords=[])
        success = ([assign(ast.Tuple(elts=[name(v, True) for v in outputs], ctx=ast.Store()),
                           name(result))] if outputs else [])
        if returns:
            success.append(ast.If(test=name(returned), body=[ast.Return(name(value))],
                                  orelse=stmt.orelse or [ast.Pass()]))
        else:
            success += stmt.orelse
        failure = []
        for handler in reversed(stmt.handlers):
            body = ([assign(handler.name, name(caught))] if handler.name else []) + \
                _reraise(handler.body, caught)
            if not failure or handler.type is None:
                failure = body
            else:
                check = ast.Call(func=name("isinstance"), args=[name(caught), handler.type],
                                 keywords=[])
                failure = [ast.If(test=check, body=body, orelse=failure)]
        guarded = assign(result, call, stmt.body[0])        # errors point into the body
        out = [assign(caught, ast.Constant(None)), assign(ok, ast.Constant(True)), lifted,
               ast.copy_location(ast.If(test=test, body=[guarded], orelse=[]), guarded),
               ast.If(test=name(ok), body=success or [ast.Pass()], orelse=failure)]
        for node in out:
            for part in ast.walk(node):
                if isinstance(part, (ast.stmt, ast.expr)) and not hasattr(part, "lineno"):
                    ast.copy_location(part, stmt)
        if stmt.finalbody:
            return [ast.copy_location(ast.Try(body=out, handlers=[], orelse=[],
                                              finalbody=stmt.finalbody), stmt)]
        return out

    func.body = rewrite(func.body, one)
    return func


def _reraise(body, caught):
    """A handler's bare ``raise`` as ``raise caught`` (it runs outside the
    ``except`` block)."""

    class Reraise(ast.NodeTransformer):
        def visit_FunctionDef(self, node):
            return node

        def visit_Raise(self, node):
            if node.exc is None:
                node.exc = name(caught)
            return node

    return [Reraise().visit(s) for s in body]


def check_guarded(ctx, func, active, mutated):
    """Refuses a guarded call (the body of a ``try``) that changes an argument
    carrying gradients in place: if it raised after the change, the change
    would stay while its adjoint would not be replayed.  ``mutated(call)``
    gives the argument names a user function changes."""
    for node in ast.walk(func):
        if isinstance(node, ast.If) and has_fact(node.test, "guard"):
            for stmt in node.body:
                if isinstance(stmt.value, ast.Call) and mutated(stmt.value) & active:
                    raise ctx.error("cannot differentiate a 'try' block that changes a "
                                    "value with gradients in place: make the change "
                                    "after the block", stmt)


def guard_forward(fwd, stack):
    """The guarded ``if`` statements of a generated forward function as the
    ``try`` they stand for (see the module doc); ``stack`` is the name of the
    function's stack."""

    def one(stmt):
        if not (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name) and
                has_fact(stmt.test, "guard")):
            return [stmt]
        types, caught, exc, mark = fact(stmt.test, "guard")
        uses_stack = any(isinstance(n, ast.Name) and n.id == stack
                         for s in stmt.body for n in ast.walk(s))
        handler = [assign(stmt.test.id, ast.Constant(False)), assign(caught, bound_name(exc))]
        before = []
        if uses_stack:
            before = [assign(mark, ast.Call(func=name("len"), args=[name(stack)],
                                            keywords=[]))]
            handler.insert(0, ast.Delete(targets=[ast.Subscript(
                value=name(stack), slice=ast.Slice(lower=name(mark), upper=None, step=None),
                ctx=ast.Del())]))
        return before + [ast.Try(body=stmt.body, handlers=[ast.ExceptHandler(
            type=types, name=exc, body=handler)], orelse=[], finalbody=[])]

    fwd.body = rewrite(fwd.body, one)
    return fwd
