"""Pass 4b, varargs: calls of user functions with ``*args`` or ``**kwargs``,
and the differentiated function's own (:func:`spread_parameters`).

At each such call the arguments that the callee collects are packed first,
``t = (a, b)`` and ``d = {'k': v}``, and passed as ``f(*t, **d)``: the same
call in Python, and a tuple and a dict whose adjoints are ordinary container
adjoints.  In the callee (:func:`regular_parameters`) ``*args`` and
``**kwargs`` become ordinary parameters holding that tuple and that dict.
"""

import ast
import copy
import inspect

from .trees import rewrite
from .facts import fact, set_fact
from .registry import rule_for
from .resolve import Target


def spread_parameters(func, count, keys=None):
    """The differentiated function's ``*args`` as ``count`` named parameters
    (``args_0``, ``args_1``...; the gradient's positions then are the call's)
    and ``args = (args_0, args_1, ...)`` first thing in its body; its
    ``**kwargs`` as one keyword parameter per key the call gives (``keys``, in
    the call's order: ``kwargs_0``...) and ``kwargs = {'k': kwargs_0, ...}``
    after that.  The generated function then takes the call's values one by
    one, the keywords' last.  Returns ``func``."""
    args = func.args
    taken = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)} | \
        {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    packs = []
    if args.vararg is not None and count is not None:
        base = args.vararg.arg
        names = _fresh_names(base, count, taken)
        args.args = args.args + [ast.arg(n) for n in names]
        args.vararg = None
        packs.append(ast.Assign(
            targets=[ast.Name(base, ast.Store())],
            value=ast.Tuple(elts=[ast.Name(n, ast.Load()) for n in names], ctx=ast.Load())))
    if args.kwarg is not None and keys is not None:
        base = args.kwarg.arg
        names = _fresh_names(base, len(keys), taken)
        args.kwonlyargs = args.kwonlyargs + [ast.arg(n) for n in names]
        args.kw_defaults = args.kw_defaults + [None] * len(names)
        args.kwarg = None
        packs.append(ast.Assign(
            targets=[ast.Name(base, ast.Store())],
            value=ast.Dict(keys=[ast.Constant(k) for k in keys],
                           values=[ast.Name(n, ast.Load()) for n in names])))
    func.body[:0] = [ast.copy_location(p, func.body[0]) for p in packs]
    return func


def _fresh_names(base, count, taken):
    """``base_0``, ``base_1``... (``count`` of them), each made longer until
    it is none of the names ``taken``; adds them to ``taken``."""
    names = []
    for i in range(count):
        candidate = f"{base}_{i}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        names.append(candidate)
    return names


def regular_parameters(func):
    """``def f(a, *args, k=1, **kw)`` as ``def f(a, args, k=1, kw)`` (in the
    generated code every parameter is positional); returns ``func``."""
    args = func.args
    if args.vararg is not None:
        args.args.append(ast.arg(args.vararg.arg))
        args.defaults = list(args.defaults) + [ast.Tuple(elts=[], ctx=ast.Load())]
        args.vararg = None
    if args.kwarg is not None:
        args.kwonlyargs.append(ast.arg(args.kwarg.arg))
        args.kw_defaults.append(ast.Dict(keys=[], values=[]))
        args.kwarg = None
    return func


def pack_arguments(func, names, source):
    """Packs the collected arguments of every call of a user function with
    ``*args`` or ``**kwargs`` in ``func`` (see the module doc); spreads the
    ``*xs`` of a primitive's call (:func:`spread_starred`)."""

    displays = _read_only_dicts(func)

    def one(stmt):
        out = []
        call = stmt.value if isinstance(stmt, (ast.Assign, ast.Expr)) else None
        if isinstance(call, ast.Call):
            target = fact(call, "target", None)
            out += _spread_keywords(call, target, displays, names, stmt)
            if target is not None and any(isinstance(a, ast.Starred) for a in call.args) \
                    and (target.kind == "primitive" or target.kind == "local" and
                         target.obj[0].args.vararg is None):
                return spread_starred(stmt, call, names, source)
            out += _pack(call, names, stmt, source)
        out.append(stmt)
        return out

    func.body = rewrite(func.body, one)


_MOST_SPREAD = 8        # values a *xs given to a primitive with *args may hold
_READING_METHODS = frozenset({"get", "items", "keys", "values"})


def _read_only_dicts(func):
    """The names bound once, to a dict display with string keys, that are only
    read (``d[k]``, ``d.get(k)``, ``d.items()``, ``k in d``, ``len(d)``,
    ``f(**d)``): ``{name: display}``.  The differentiated function's own
    ``**kwargs`` is one (see :func:`spread_parameters`)."""
    bound = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound[node.id] = bound.get(node.id, 0) + 1
    for node in ast.walk(func.args):
        if isinstance(node, ast.arg):
            bound[node.arg] = bound.get(node.arg, 0) + 2
    displays = {s.targets[0].id: s.value for s in ast.walk(func)
                if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
                and isinstance(s.value, ast.Dict) and bound.get(s.targets[0].id) == 1
                and all(isinstance(k, ast.Constant) and isinstance(k.value, str) and
                        k.value.isidentifier() for k in s.value.keys)}
    if not displays:
        return {}
    allowed = set()                    # the Name nodes read in one of the ways above
    for node in ast.walk(func):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) or \
                isinstance(node, ast.Attribute) and node.attr in _READING_METHODS:
            allowed.add(id(node.value))
        elif isinstance(node, ast.keyword) and node.arg is None:
            allowed.add(id(node.value))
        elif isinstance(node, ast.Compare):
            allowed |= {id(c) for c in node.comparators}
        elif isinstance(node, ast.Call) and fact(node, "runtime", None) == "len" or \
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "len":
            allowed |= {id(a) for a in node.args}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                node.id in displays and id(node) not in allowed:
            del displays[node.id]
    return displays


def _spread_keywords(call, target, displays, names, stmt):
    """``f(w, **d)`` where ``d`` is a dict display that is only read and ``f``
    takes no ``**kwargs`` (a primitive, a function defined inside, a function
    with named parameters): ``t = d['k']`` first, then ``f(w, k=t)`` (the
    keys are known).  Returns the statements to put before the call."""
    if target is None or target.kind not in ("primitive", "local", "user") or \
            target.kind == "user" and any(
                p.kind == p.VAR_KEYWORD
                for p in inspect.signature(target.obj).parameters.values()):
        return []
    before, keywords = [], []
    for k in call.keywords:
        display = displays.get(k.value.id) if k.arg is None and \
            isinstance(k.value, ast.Name) else None
        if display is None:
            keywords.append(k)
            continue
        for key in display.keys:
            value = names.fresh(key.value)
            before.append(ast.copy_location(ast.Assign(
                targets=[ast.Name(value, ast.Store())],
                value=ast.Subscript(value=ast.Name(k.value.id, ast.Load()),
                                    slice=ast.Constant(key.value), ctx=ast.Load())), stmt))
            keywords.append(ast.keyword(arg=key.value, value=ast.Name(value, ast.Load())))
    call.keywords = keywords
    return before


def spread_starred(stmt, call, names, source):
    """``y = np.add(a, *xs)`` as a test of ``len(xs)``: one branch per count
    the primitive's adjoint rule takes (or a function defined inside the
    differentiated one its parameters), each an ordinary call of ``xs[0]``,
    ``xs[1]``... (whose adjoints are the container's); another count is
    refused when the code runs, at the user's line.  Returns the statements
    that replace ``stmt``."""
    target = fact(call, "target")
    starred = [i for i, a in enumerate(call.args) if isinstance(a, ast.Starred)]
    if len(starred) > 1 or any(k.arg is None for k in call.keywords):
        raise source.error(f"cannot differentiate several '*' or '**' arguments of "
                           f"{target.name}: pass one *xs, the others one by one", stmt)
    where = starred[0]
    before, after = call.args[:where], call.args[where + 1:]
    spread = call.args[where].value
    if target.kind == "primitive":
        binds = rule_for(target.obj).bind
    else:
        signature = _signature(target.obj[0])
        binds = lambda args, keywords: signature.bind(*args, **keywords)    # noqa: E731
    counts = _counts(binds, len(before) + len(after), {k.arg for k in call.keywords},
                     target.kind == "primitive" and rule_for(target.obj).varargs)
    if not counts:
        raise source.error(f"cannot differentiate this call of {target.name}: no number "
                           "of values from '*' fits its parameters", stmt)
    # the values as Python unpacks them (any iterable: a dict's keys, a range)
    values = names.fresh("values")
    unpacked = set_fact(ast.Call(func=ast.Name("tuple", ast.Load()), args=[spread],
                                 keywords=[]), "runtime", "tuple")
    set_fact(unpacked, "target", Target("primitive", tuple, "tuple"))
    spread = ast.Name(values, ast.Load())
    count = names.fresh("count")
    length = set_fact(ast.Call(func=ast.Name("len", ast.Load()), args=[_copy(spread)],
                               keywords=[]), "runtime", "len")
    set_fact(length, "target", Target("nondiff", None, "len"))
    refused = set_fact(ast.Call(func=ast.Name("star_count_refused", ast.Load()), args=[
        ast.Name(count, ast.Load()), ast.Constant(target.name),
        ast.Constant(tuple(counts))], keywords=[]), "runtime", "star_count_refused")
    set_fact(refused, "target", Target("nondiff", None, "star_count_refused"))
    orelse = [ast.Expr(refused)]
    for k in reversed(counts):
        items = [names.fresh("item") for _ in range(k)]
        body = [ast.Assign(targets=[ast.Name(n, ast.Store())], value=ast.Subscript(
            value=_copy(spread), slice=ast.Constant(i), ctx=ast.Load()))
            for i, n in enumerate(items)]
        one = ast.Call(func=_copy(call.func), args=[_copy(a) for a in before] +
                       [ast.Name(n, ast.Load()) for n in items] +
                       [_copy(a) for a in after],
                       keywords=[_copy(k) for k in call.keywords])
        set_fact(one, "target", target)
        replaced = _copy(stmt)
        replaced.value = one
        test = names.fresh("fits")
        orelse = [ast.Assign(targets=[ast.Name(test, ast.Store())], value=ast.Compare(
                      left=ast.Name(count, ast.Load()), ops=[ast.Eq()],
                      comparators=[ast.Constant(k)])),
                  ast.If(test=ast.Name(test, ast.Load()), body=body + [replaced],
                         orelse=orelse)]
    out = [ast.Assign(targets=[ast.Name(values, ast.Store())], value=unpacked),
           ast.Assign(targets=[ast.Name(count, ast.Store())], value=length)] + orelse
    return [ast.fix_missing_locations(ast.copy_location(s, stmt)) for s in out]


def _counts(binds, fixed, keywords, varargs):
    """The numbers of values a ``*xs`` may give to a call with ``fixed`` other
    positional arguments and the ``keywords``: those for which ``binds(args,
    keywords)`` raises no ``TypeError`` (at most ``_MOST_SPREAD``; up to that
    many more where the callee has ``varargs``)."""
    dummy = {k: ast.Constant(None) for k in keywords}
    fits = []
    for k in range(2 * _MOST_SPREAD if varargs else _MOST_SPREAD + 1):
        try:
            binds([ast.Constant(None)] * (fixed + k), dummy)
        except TypeError:
            continue
        fits.append(k)
    return fits[:_MOST_SPREAD]


def _signature(tree):
    """The parameters of a lifted function's tree as an ``inspect.Signature``
    (its defaults stand-ins: only which parameters have one matters)."""
    args = tree.args
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    kind = inspect.Parameter
    params = [kind(a.arg, kind.POSITIONAL_OR_KEYWORD,
                   default=None if i >= first_default else kind.empty)
              for i, a in enumerate(positional)]
    if args.vararg is not None:
        params.append(kind(args.vararg.arg, kind.VAR_POSITIONAL))
    params += [kind(a.arg, kind.KEYWORD_ONLY, default=kind.empty if d is None else None)
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg is not None:
        params.append(kind(args.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(params)


def _copy(node):
    """A copy of a node of the call (its facts go along)."""
    return copy.deepcopy(node)


def _pack(call, names, stmt, source):
    target = fact(call, "target", None)
    forwarded = [a for a in call.args if isinstance(a, ast.Starred)] + \
        [k for k in call.keywords if k.arg is None]
    if target is None or target.kind != "user":
        if forwarded and target is not None and target.kind in ("primitive", "local"):
            raise source.error("cannot differentiate '*' or '**' arguments of "
                               f"{target.name}: pass the arguments one by one", stmt)
        return []
    signature = inspect.signature(target.obj)
    params = list(signature.parameters.values())
    star = next((p for p in params if p.kind == p.VAR_POSITIONAL), None)
    stars = next((p for p in params if p.kind == p.VAR_KEYWORD), None)
    if any(isinstance(a, ast.Starred) for a in call.args) and star is None or \
            any(k.arg is None for k in call.keywords) and stars is None:
        raise source.error(f"cannot differentiate '*' or '**' arguments of {target.name}, "
                           "which has no *args or **kwargs: pass them one by one", stmt)
    if any(isinstance(a, ast.Starred) for a in call.args):
        star = None                              # forwarded as they are
    if any(k.arg is None for k in call.keywords):
        stars = None
    if star is None and stars is None:
        return []
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = {p.name for p in params if p.kind != p.VAR_POSITIONAL and p.kind != p.VAR_KEYWORD}
    before = []
    if star is not None:
        extra = call.args[len(fixed):]
        packed = names.fresh(star.name)
        before.append(ast.copy_location(ast.Assign(
            targets=[ast.Name(packed, ast.Store())],
            value=ast.Tuple(elts=extra, ctx=ast.Load())), stmt))
        call.args = call.args[:len(fixed)] + [ast.Starred(ast.Name(packed, ast.Load()),
                                                          ast.Load())]
    if stars is not None:
        extra = [k for k in call.keywords if k.arg not in named]
        packed = names.fresh(stars.name)
        before.append(ast.copy_location(ast.Assign(
            targets=[ast.Name(packed, ast.Store())],
            value=ast.Dict(keys=[ast.Constant(k.arg) for k in extra],
                           values=[k.value for k in extra])), stmt))
        call.keywords = [k for k in call.keywords if k.arg in named] + \
            [ast.keyword(arg=None, value=ast.Name(packed, ast.Load()))]
    set_fact(call, "target", Target(target.kind, target.obj, target.name, target.receiver,
                                    target.receiver_class, target.functions))
    return before
