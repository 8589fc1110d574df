"""Pass 3c, dispatch: calls of a function held in a local variable whose
possible values are known.

``act = np.tanh if deep else kt.relu``, ``for f in [np.sin, np.cos]``, or
``acts = {"relu": kt.relu, "tanh": np.tanh}; act = acts[name]``: every
definition of ``act`` names a known function (a global, a dotted name such as
``np.tanh``), directly or through a list, tuple or dict display that nothing
changes.  A call ``y = act(x)`` then becomes a test of which one it holds::

    fn1 = np.tanh
    is_fn1 = act is fn1
    if is_fn1:
        y = np.tanh(x)
    else:
        y = kt.relu(x)

and each branch is an ordinary call that the resolve pass classifies.  The
last candidate is taken without a test: every definition of ``act`` was one
of them.  A variable with any other definition stays a ``dynamic`` call
(refused where its result carries gradients).
"""

import ast
import copy

from .trees import assign, name, rewrite

_EDGE = "elements of"


def _definitions(func):
    """``name -> [value nodes]`` for every binding of a local name in the
    normalized ``func``; a loop target's value is ``(_EDGE, iterable)``."""
    defs = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defs.setdefault(target.id, []).append(node.value)
                else:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                            defs.setdefault(n.id, []).append(None)
        elif isinstance(node, (ast.For, ast.comprehension)):
            for n in ast.walk(node.target):
                if isinstance(n, ast.Name):
                    value = (_EDGE, node.iter) if isinstance(node.target, ast.Name) else None
                    defs.setdefault(n.id, []).append(value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            target = node.target
            if isinstance(target, ast.Name):
                defs.setdefault(target.id, []).append(None)
    return defs


def _unchanged_display(var, func, defs):
    """The display ``var`` is bound to, if bound once to one and only read by
    indexing or iteration."""
    values = defs.get(var, [])
    if len(values) != 1 or not isinstance(values[0], (ast.List, ast.Tuple, ast.Dict)):
        return None
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            if any(isinstance(a, ast.Name) and a.id == var for a in node.args) or \
                    isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == var:
                return None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id == var:
            return None
    return values[0]


class _Candidates:
    """The known functions each local name may hold (``None``: unknown)."""

    def __init__(self, func, local_names, known_functions):
        self.func = func
        self.defs = _definitions(func)
        self.local_names = local_names
        self.known = known_functions      # parameters known to hold a function
        self.memo = {}

    def of_name(self, var, seen=()):
        if var not in self.local_names:
            return [name(var)]                     # a global or builtin
        if var in self.known or var in seen or var not in self.defs:
            return None
        if var not in self.memo:
            found = []
            for value in self.defs[var]:
                more = self.of_value(value, seen + (var,))
                if more is None:
                    found = None
                    break
                found += more
            self.memo[var] = found
        return self.memo[var]

    def of_value(self, value, seen):
        if isinstance(value, ast.Name):
            return self.of_name(value.id, seen)
        if isinstance(value, ast.Attribute):
            root = value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id not in self.local_names:
                return [value]
            return None
        container = None
        if isinstance(value, tuple) and isinstance(value[1], ast.Name):
            container = value[1].id
        elif isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
            container = value.value.id
        if container is None:
            return None
        display = _unchanged_display(container, self.func, self.defs)
        if display is None:
            return None
        if isinstance(display, ast.Dict) and isinstance(value, tuple):
            return None                            # iterating a dict gives its keys
        elements = display.values if isinstance(display, ast.Dict) else display.elts
        found = []
        for element in elements:
            more = self.of_value(element, seen)
            if more is None:
                return None
            found += more
        return found


def _unique(nodes):
    seen, out = set(), []
    for node in nodes:
        key = ast.dump(node)
        if key not in seen:
            seen.add(key)
            out.append(node)
    return out


def _replace_callee(stmt, call, callee):
    new = copy.deepcopy(stmt)
    target = new.value
    assert isinstance(target, ast.Call) and ast.dump(target) == ast.dump(call)
    target.func = copy.deepcopy(callee)
    return new


def dispatch_calls(func, names, known_functions=()):
    """Rewrites the calls of local variables that hold one of several known
    functions (see the module doc), in place."""
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    local_names = params | {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
                            and isinstance(n.ctx, ast.Store)}
    candidates = _Candidates(func, local_names, set(known_functions))

    def one(stmt):
        call = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and
                call.func.id in local_names):
            return [stmt]
        found = candidates.of_name(call.func.id)
        if not found:
            return [stmt]
        found = _unique(found)
        out = []
        tail = [_replace_callee(stmt, call, found[-1])]
        branches = []
        for callee in found[:-1]:
            key = names.fresh("fn")
            test = names.fresh("is_fn")
            out += [assign(key, copy.deepcopy(callee), stmt),
                    assign(test, ast.Compare(left=name(call.func.id), ops=[ast.Is()],
                                             comparators=[name(key)]), stmt)]
            branches.append((test, _replace_callee(stmt, call, callee)))
        for test, branch in reversed(branches):
            tail = [ast.copy_location(ast.If(test=name(test), body=[branch], orelse=tail),
                                      stmt)]
        return out + tail

    func.body = rewrite(func.body, one)
    return func
