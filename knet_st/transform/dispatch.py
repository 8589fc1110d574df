"""Pass 3c, dispatch: calls of a function held in a local variable whose
possible values are known.

``act = np.tanh if deep else kt.relu``, ``for f in [np.sin, np.cos]``, or
``acts = {"relu": kt.relu, "tanh": np.tanh}; act = acts[name]``: every
definition of ``act`` names a known function (a global, a dotted name such as
``np.tanh``, or a function defined inside, given its enclosing variables as
the lift pass does for its calls), directly or through a list, tuple or dict display that nothing
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

from .facts import fact, has_fact, set_fact
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
        if isinstance(value, ast.Constant) and has_fact(value, "local_function"):
            return [value]
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


def _replace(stmt, site, candidate, local_functions):
    """``stmt`` with the variable at ``site`` (``('func',)``, ``('arg', i)`` or
    ``('keyword', i)`` of its call) replaced by ``candidate``; a local
    function's marker called becomes the lifted function, given its enclosing
    variables."""
    new = copy.deepcopy(stmt)
    call = new.value
    if site[0] == "arg":
        call.args[site[1]] = copy.deepcopy(candidate)
    elif site[0] == "keyword":
        call.keywords[site[1]].value = copy.deepcopy(candidate)
    elif isinstance(candidate, ast.Constant):
        local = fact(candidate, "local_function")
        call.func = set_fact(name(local), "lifted", True)
        tree = local_functions[local][0]
        call.args = call.args + [name(v) for v in fact(tree, "free_variables")]
    else:
        call.func = copy.deepcopy(candidate)
    return new


def _site(call, local_names, candidates):
    """The variable of ``call`` to dispatch on, the callee first, then an
    argument that holds one of several known functions: ``(site, variable,
    candidates)``, or ``None``."""
    places = [(("func",), call.func)] + [(("arg", i), a) for i, a in enumerate(call.args)] + \
        [(("keyword", i), k.value) for i, k in enumerate(call.keywords)]
    for site, node in places:
        if isinstance(node, ast.Name) and node.id in local_names:
            found = candidates.of_name(node.id)
            if found:
                return site, node.id, _unique(found)
    return None


def dispatch_calls(func, names, known_functions=(), local_functions=None):
    """Rewrites the calls of local variables that hold one of several known
    functions, and the calls that pass such a variable on (see the module
    doc), in place."""
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    local_names = params | {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
                            and isinstance(n.ctx, ast.Store)}
    candidates = _Candidates(func, local_names, set(known_functions))

    def one(stmt):
        call = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
        found = _site(call, local_names, candidates) if isinstance(call, ast.Call) else None
        if found is None:
            return [stmt]
        site, var, found = found
        out = []
        tail = one(_replace(stmt, site, found[-1], local_functions))
        branches = []
        for candidate in found[:-1]:
            key = names.fresh("fn")
            test = names.fresh("is_fn")
            same = ast.Eq() if isinstance(candidate, ast.Constant) else ast.Is()
            out += [assign(key, copy.deepcopy(candidate), stmt),
                    assign(test, ast.Compare(left=name(var), ops=[same],
                                             comparators=[name(key)]), stmt)]
            branches.append((test, one(_replace(stmt, site, candidate, local_functions))))
        for test, branch in reversed(branches):
            tail = [ast.copy_location(ast.If(test=name(test), body=branch, orelse=tail),
                                      stmt)]
        return out + tail

    func.body = rewrite(func.body, one)
    return func
