"""Facts that passes attach to tree nodes, declared in one place.

Each fact has one name, the kind of node it goes on, the pass that sets it
and one meaning.  Passes read and write facts only through :func:`fact`,
:func:`has_fact` and :func:`set_fact`, which refuse an undeclared name, and
:func:`set_fact` a node of the wrong kind (a compiler bug, caught where it
happens).  Facts are
stored on the node, so they survive ``copy.deepcopy`` of a tree.
"""

import ast

FACTS = {
    # name: (node types, set by, meaning)
    "imports": (ast.FunctionDef, "scopes",
                "(name, module, attribute, level) of each import inside the function"),
    "guard": (ast.Name, "handlers",
              "the test of an if standing for a try: (exception types, caught name, "
              "the handler's name, the name holding the tape's depth)"),
    "target": (ast.Call, "resolve", "what the call refers to (a resolve.Target)"),
    "runtime": (ast.Call, "normalize",
                "the name of the runtime helper or builtin the normalizer called"),
    "bound": (ast.Name, "compiler",
              "a key of the generated module's namespace: never a user's global"),
    "helper": (ast.Name, "context",
               "the name of the runtime helper (or builtin) a bound name refers to"),
    "lifted": (ast.Name, "lift", "a call of a function lifted out of its parent"),
    "local_function": (ast.Constant, "lift",
                       "the name of the local function this value stands for"),
    "free_variables": (ast.FunctionDef, "lift",
                       "the enclosing variables a lifted function takes last"),
    "check": (ast.Expr, "prepare", "a run-time check the compiler inserted"),
    "element_of": (ast.AugAssign, "normalize",
                   "t += v made of x[i] += v: the name of x (t is x[i], written back)"),
    "array_write": (ast.Assign, "in place",
                    "x[i] = v into an array that is one for certain (kept in place)"),
    "key": ((ast.Subscript,), "reverse",
            "the name holding a list position fixed in the forward pass"),
    "position": (ast.Expr, "reverse", "the name holding a list's length before append"),
    "args": (ast.Assign, "reverse", "a user call's argument nodes, one per parameter"),
    "volatile": (ast.Assign, "in place",
                 "a user call's parameters whose objects change in place after it"),
    "active_args": (ast.Assign, "reverse", "positions of the user call's active arguments"),
    "callee_bwd": (ast.Assign, "reverse", "the name of the called function's backward"),
    "saved": (ast.Assign, "reverse", "the name holding the callee's saved values"),
    "positions": (ast.For, "reverse", "the name holding the positions a loop visits"),
    "sequence": (ast.expr, "reverse", "a loop iterable of positions (a range's stand-in)"),
    "form": ((ast.For, ast.While), "reverse",
             "'range' (the adjoint runs the range backwards) or 'count'"),
    "count": ((ast.For, ast.While), "reverse", "the name counting the loop's iterations"),
    "depth": ((ast.For, ast.While), "reverse", "how many loops enclose the loop"),
    "counter": (ast.stmt, "reverse",
                "the loop counter this statement maintains (dropped when unused)"),
    "adjoint_loop": ((ast.For, ast.While), "assemble", "a loop of the backward function"),
}
_MISSING = object()


def _check(node, name):
    if name not in FACTS:
        raise KeyError(f"undeclared node fact {name!r}")
    types = FACTS[name][0]
    if not isinstance(node, types):
        raise TypeError(f"node fact {name!r} is not for {type(node).__name__} nodes")


def fact(node, name, default=_MISSING):
    """The fact ``name`` of ``node``; ``default`` (if given) when it has none
    (also for a node of a kind that never has it)."""
    if default is not _MISSING and name in FACTS:
        return getattr(node, "kt_" + name, default)
    _check(node, name)
    value = getattr(node, "kt_" + name, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise AttributeError(f"{type(node).__name__} node has no fact {name!r}")
        return default
    return value


def has_fact(node, name):
    """Whether ``node`` has the fact ``name``."""
    if name not in FACTS:
        raise KeyError(f"undeclared node fact {name!r}")
    return hasattr(node, "kt_" + name)


def set_fact(node, name, value):
    """Sets the fact ``name`` of ``node``; returns the node."""
    _check(node, name)
    setattr(node, "kt_" + name, value)
    return node
