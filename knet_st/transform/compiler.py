"""The compiler: runs the pipeline (:mod:`.pipeline`) over a function and every
user function it calls with values that carry gradients (each once per
pattern of active arguments), and emits all their forward and backward
functions as one module, compiled.
"""

import ast
import builtins
import copy
import inspect
from typing import NamedTuple

from ..runtime import gradients as rt
from ..runtime import sequences
from . import adjoints, adjoints_python  # noqa: F401  (register the rules)
from .context import Context
from .effects import mutated_parameters, stored_parameters
from .facts import fact, set_fact
from .closures import siblings_of
from .pipeline import back_end, front_end, local_unit, parse_and_fence
from .varargs import spread_parameters
from .resolve import Environment, Target
from .trees import bound_name

_ABSENT = object()
_SIMPLE = (bool, int, float, str, type(None))


class Namespace:
    """The generated module's globals: each key bound to one object."""

    def __init__(self):
        self.values = {}

    def bind(self, name, obj, names):
        """A key for ``obj`` (``name`` if free), that is no local of ``names``'
        function."""
        for n in range(1, 1000):
            key = name if n == 1 else f"{name}_{n}"
            if key in self.values and self.values[key] is not obj:
                continue
            if key in names.taken and key not in names.globals:
                continue
            self.values[key] = obj
            names.taken.add(key)
            names.globals.add(key)
            return key
        raise RuntimeError(f"no free name for {name}")


class TrackingEnvironment(Environment):
    """An :class:`Environment` that records what it resolved, so that a cached
    gradient notices when a function it depends on is redefined."""

    def __init__(self, fn, classes=None, functions=None):
        env = Environment.of(fn)
        super().__init__(env.globals, env.closure, classes, functions)
        self.cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        self.deps = []

    def lookup(self, name):
        """The object ``name`` means, recorded as a dependency."""
        if name in self.imports:
            return self.imports[name]
        if name in self.closure:
            self.deps.append((self.cells[name], None, self.closure[name]))
            return self.closure[name]
        value = self.globals.get(name, _ABSENT)
        self.deps.append((self.globals, name, value))
        if value is _ABSENT:
            return super().lookup(name)
        return value


def signature_of(tree):
    """The parameters of a function tree as an :class:`inspect.Signature`."""
    args = tree.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + \
        list(args.defaults)
    params = [inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
              for a, d in zip(positional, defaults)]
    params += [inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY,
                                 default=d if d is not None else inspect.Parameter.empty)
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return inspect.Signature(params)


def _with_hidden(signature, tree):
    """A user function's signature with the hidden keyword-only parameters
    its tree was given (see :mod:`.closures`)."""
    known = set(signature.parameters)
    hidden = [inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY)
              for a in tree.args.kwonlyargs if a.arg not in known]
    if not hidden:
        return signature
    params = list(signature.parameters.values())
    last = [p for p in params if p.kind == p.VAR_KEYWORD]
    rest = [p for p in params if p.kind != p.VAR_KEYWORD]
    return signature.replace(parameters=rest + hidden + last)


class _Caller:
    """What the reverse pass of one function may ask about the user functions
    it calls: the callee's functions (``request``), the argument nodes
    (``bind``), the arguments the callee changes in place (``mutated``) or
    stores values into (``stored``)."""

    def __init__(self, compiler, unit, names):
        self.compiler = compiler
        self.unit = unit
        self.source = unit.source
        self.names = names

    def request(self, target, pattern, volatile=frozenset()):
        """The forward and backward function names of a called function."""
        return self.compiler.request(target, pattern, self, volatile)

    def parameters(self, call):
        """The names of the parameters of the user function ``call`` calls."""
        return self.compiler.unit_for(fact(call, "target")).params

    def bind(self, call):
        return self.compiler.bind_call(call, self)

    def mutated(self, call):
        """The argument names the called function changes in place."""
        return self.compiler.mutated_args(call, self)

    def stored(self, call):
        """The argument names the called function stores values into."""
        return self.compiler.stored_args(call, self)


class Compiler:
    """Transforms one top-level function and everything it calls."""

    def __init__(self, verbose=False):
        self.ns = Namespace()
        self.units = {}
        self.jobs = {}
        self.functions = []
        self.deps = []
        self.summaries = {}
        self.top_function, self.top_classes, self.top_functions = None, {}, {}
        self.top_target, self.top_spread = None, None
        self.top_unit, self.top_kinds = None, ()
        self.verbose = verbose

    # -- units ------------------------------------------------------------------

    def unit_for(self, target):
        """The :class:`Unit` of a user function or a lifted local function."""
        if target.kind == "local":
            return local_unit(target, self.units)
        fn = target.obj
        classes = self._receiver_classes(target, fn)
        functions = dict(target.functions)
        if fn is self.top_function and not target.functions:
            functions = dict(self.top_functions)
        # the call's *args and **kwargs spread: only in the top request (its
        # own recursive calls pass a tuple and a dict, as to any helper)
        spread = self.top_spread if target is self.top_target else None
        key = ("user", fn, tuple(sorted(classes.items(), key=lambda kv: kv[0])),
               tuple(sorted(((k, id(v)) for k, v in functions.items()))), spread)
        if key not in self.units:
            tree, source = parse_and_fence(fn)
            if spread is not None:          # the top function's *args, **kwargs, as given
                spread_parameters(tree, *spread)
            env = TrackingEnvironment(fn, classes, functions)
            self.units[key] = front_end(tree.name, fn.__qualname__, tree, source, env,
                                        siblings_of(fn))
            self.deps.append(env.deps)
        return self.units[key]

    def _receiver_classes(self, target, fn):
        """The classes known for ``fn``'s parameters: its receiver's, when it is
        called as a method of a local of known class."""
        if target.receiver is None:
            return dict(self.top_classes) if fn is self.top_function else {}
        first = next(iter(inspect.signature(fn).parameters))
        return {first: target.receiver_class}

    def request(self, target, pattern, caller=None, volatile=frozenset()):
        """The (forward, backward) function names of ``target`` differentiated
        with respect to the parameters at positions ``pattern``; generates them
        on first request (a recursive request gets the names at once).
        ``volatile`` names the parameters whose objects the caller changes in
        place after the call: the callee keeps copies of what it reads of them."""
        if target.kind == "gradient":
            return self._gradient_pair(target, pattern, caller)
        unit = self.unit_for(target)
        # The top-level function has its own pair: its backward function takes no
        # incoming adjoints, unlike the one its recursive calls use.
        key = (id(unit), pattern, caller is None, frozenset(volatile))
        if key in self.jobs:
            fwd, bwd = self.jobs[key]
        else:
            fwd = self._reserve(f"{unit.name}_fwd")
            bwd = self._reserve(f"{unit.name}_bwd")
            self.jobs[key] = (fwd, bwd)
            self._generate(unit, pattern, fwd, bwd, caller is None, frozenset(volatile))
        if caller is not None:
            for name in (fwd, bwd):
                caller.names.taken.add(name)
                caller.names.globals.add(name)
        return fwd, bwd

    def _gradient_pair(self, target, pattern, caller):
        """The forward and backward functions of a call of a gradient function
        made inside a differentiated function (``kt.grad(f)(w, x)``): runtime
        functions of :mod:`knet_st.higher` (second order by forward over
        reverse), bound into the generated module."""
        from ..higher import gradient_call_pair
        key = ("gradient", id(target.obj), pattern)
        if key not in self.jobs:
            fwd, bwd = gradient_call_pair(target.obj, pattern)
            name = getattr(target.obj, "__name__", "gradient")
            self.jobs[key] = (self.ns.bind(f"{name}_grad_fwd", fwd, caller.names),
                              self.ns.bind(f"{name}_grad_bwd", bwd, caller.names))
        for key_name in self.jobs[key]:
            caller.names.taken.add(key_name)
            caller.names.globals.add(key_name)
        return self.jobs[key]

    def _reserve(self, name):
        key = name
        n = 1
        while key in self.ns.values:
            n += 1
            key = f"{name}{n}"
        self.ns.values[key] = None
        return key

    def _generate(self, unit, pattern, fwd_name, bwd_name, is_top, volatile):
        names = unit.names.copy()
        ctx = Context(unit.source, names, self.ns.bind)
        kinds = dict(zip(unit.params, self.top_kinds)) \
            if is_top and self.top_kinds and unit is self.top_unit else None
        fwd, bwd = back_end(unit, pattern, is_top, ctx, _Caller(self, unit, names),
                            fwd_name, bwd_name, volatile, kinds)
        for fn in (fwd, bwd):
            self._bind_globals(fn, unit, names)
            fn.lineno = unit.tree.lineno
        _positional(fwd)
        self.functions += [(fwd, unit.source), (bwd, unit.source)]

    def _bind_globals(self, fn, unit, names):
        """Points the user's global names at namespace keys, renaming on clashes."""
        local = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Store)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and fact(node, "runtime", None):
                name = fact(node, "runtime")
                obj = getattr(rt, name, None) or getattr(sequences, name, None) or \
                    getattr(builtins, name)
                node.func = bound_name(self.ns.bind(name, obj, names))
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                    node.id not in local and not fact(node, "bound", False):
                try:
                    obj = unit.env.lookup(node.id)
                except (KeyError, AttributeError):
                    raise unit.source.error(f"name {node.id!r} is not defined",
                                            node) from None
                node.id = self.ns.bind(node.id, obj, names)
                set_fact(node, "bound", True)

    def mutated_args(self, call, caller):
        """Names passed to a user function that the callee may change in place."""
        return self._args_in(call, caller, "mutated")

    def stored_args(self, call, caller):
        """Names passed to a user function that the callee may store values into."""
        return self._args_in(call, caller, "stored")

    def _args_in(self, call, caller, kind):
        unit = self.unit_for(fact(call, "target"))
        params = self._summary(unit, kind)
        bound = self.bind_call(call, caller)
        return {a.id for a, p in zip(bound, unit.params)
                if p in params and isinstance(a, ast.Name)}

    def _summary(self, unit, kind):
        """The parameters ``unit`` changes in place (``kind='mutated'``) or stores
        values into (``'stored'``): a fixed point through recursion, which
        starts from none."""
        key = (kind, id(unit))
        if key in self.summaries:
            return self.summaries[key]
        self.summaries[key] = set()
        analysis = mutated_parameters if kind == "mutated" else stored_parameters
        while True:
            caller = _Caller(self, unit, unit.names)
            found = analysis(unit.tree, getattr(caller, kind))
            if found == self.summaries[key]:
                return found
            self.summaries[key] = found

    def bind_call(self, call, caller):
        """The argument nodes of a user-function call, one per parameter in order
        (defaults filled in)."""
        target = fact(call, "target")
        if target.kind == "gradient":
            unit = None
            signature = inspect.signature(target.obj)
        else:
            unit = self.unit_for(target)
            signature = _with_hidden(inspect.signature(target.obj), unit.tree) \
                if target.kind == "user" else signature_of(unit.tree)
        unit_name = unit.name if unit is not None else target.name
        args = [a for a in call.args if not isinstance(a, ast.Starred)]
        keywords = [k for k in call.keywords if k.arg is not None]
        if target.receiver is not None:          # self.method(x): method(self, x)
            args.insert(0, ast.Name(target.receiver, ast.Load()))
        # f(*t, **d) from the varargs pass: t and d go to *args and **kwargs.
        packed = {ast.Starred: [a.value for a in call.args if isinstance(a, ast.Starred)],
                  ast.Dict: [k.value for k in call.keywords if k.arg is None]}
        try:
            bound = signature.bind(*range(len(args)),
                                   **{k.arg: i for i, k in enumerate(keywords)})
        except TypeError as exc:
            raise caller.source.error(f"{unit_name}(): {exc}", call) from None
        nodes = []
        for name, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                kind = ast.Starred if param.kind == param.VAR_POSITIONAL else ast.Dict
                nodes.append(packed[kind][0] if packed[kind] else
                             ast.Tuple(elts=[], ctx=ast.Load()) if kind is ast.Starred
                             else ast.Dict(keys=[], values=[]))
            elif name in bound.arguments:
                i = bound.arguments[name]
                keyword = [k for k in keywords if k.arg == name]
                nodes.append(keyword[0].value if keyword else args[i])
            elif isinstance(param.default, ast.AST):
                nodes.append(copy.deepcopy(param.default))
            elif isinstance(param.default, _SIMPLE):
                nodes.append(ast.Constant(param.default))
            else:
                nodes.append(bound_name(self.ns.bind(f"{unit_name}_{name}", param.default,
                                                     caller.names)))
        return nodes

    # -- the module ------------------------------------------------------------

    def compile_top(self, fn, wrt, classes=None, functions=None, count=None, keys=None,
                    kinds=()):
        """Compiles ``fn``'s gradient with respect to parameter positions ``wrt``:
        returns the forward and backward functions, the generated source and
        the names the code resolved (to notice redefinitions).  ``classes``
        maps parameters of a known class (a method's ``self``) to it,
        ``functions`` parameters that hold a function to it; ``count`` the
        number of values its ``*args`` receives in the call, ``keys`` the
        keys its ``**kwargs`` receives (in the call's order); ``kinds`` those
        of the values it is called with (:func:`.operands.argument_kind`, in
        the order of the generated function's parameters)."""
        self.top_function, self.top_classes = fn, dict(classes or {})
        self.top_functions = dict(functions or {})
        target = Target("user", fn, fn.__name__)
        self.top_target = target
        self.top_spread = (count, None if keys is None else tuple(keys)) \
            if count is not None or keys is not None else None
        if fn.__code__.co_flags & inspect.CO_VARKEYWORDS and keys is None or \
                fn.__code__.co_flags & inspect.CO_VARARGS and count is None:
            self.top_spread = None
            unit = self.unit_for(target)
            raise unit.source.error("the differentiated function's *args and **kwargs are "
                                    "spread only when kt.grad gets the function itself (not "
                                    "a method or a functools.partial of it): differentiate "
                                    "a def with named parameters that calls it", unit.tree)
        self.top_unit, self.top_kinds = self.unit_for(target), tuple(kinds)
        fwd, bwd = self.request(target, tuple(wrt))
        for function, origin in self.functions:
            fill_positions(function, origin)
        unique = {}
        for env_deps in self.deps:
            for where, name, expected in env_deps:
                unique[(id(where), name)] = (where, name, expected)
        module = Module(self.functions, {k: v for k, v in self.ns.values.items()
                                         if v is not None},
                        fwd, bwd, [p for p in self.jobs.values()])
        return emit(module, list(unique.values()))


class Module(NamedTuple):
    """A generated module before compilation: its functions (each with the
    user source it comes from), the namespace they run in, the names of the
    top-level forward and backward functions, and every (forward, backward)
    pair of names."""
    functions: list
    namespace: dict
    forward: str
    backward: str
    pairs: list


def emit(module, deps, variants=None):
    """A :class:`Compiled` gradient from a :class:`Module` (left untouched):
    its functions unparsed (the source) and compiled under their user's
    file names.  ``variants`` is the dictionary of shape-specialized
    versions, shared with the generic one (a new one by default)."""
    source = ast.unparse(ast.Module(body=[f for f, _ in module.functions],
                                    type_ignores=[])) + "\n"
    namespace = dict(module.namespace)
    lines = {}
    for function, origin in module.functions:
        exec(compile_function(function, origin), namespace)
        lines[function.name] = (origin.filename, lines_of(function))
    return Compiled(namespace[module.forward], namespace[module.backward], source, deps,
                    lines, module, {} if variants is None else variants)


class Compiled(NamedTuple):
    """A compiled gradient: the forward and backward functions, the generated
    source, the names it resolved (see :func:`deps_valid`), and for each
    generated function its user's file and the generated statements of
    each user line (``lines[name] = (filename, {line: [statement text]})``),
    the :class:`Module` it was compiled from and its shape-specialized
    versions (see :mod:`.specialize`) by argument signature."""
    forward: object
    backward: object
    source: str
    deps: list
    lines: dict
    module: Module = None
    variants: dict = None


def lines_of(function):
    """The generated simple statements of ``function``, by the user line they
    come from."""
    lines = {}
    for node in ast.walk(function):
        if isinstance(node, ast.stmt) and not isinstance(
                node, (ast.FunctionDef, ast.If, ast.For, ast.While)):
            lines.setdefault(node.lineno, []).append(ast.unparse(node))
    return lines


def compile_function(function, origin):
    """A generated function compiled under its user's file name and lines, so
    that tracebacks, warnings and pdb show the user's code."""
    return compile(ast.Module(body=[function], type_ignores=[]), origin.filename, "exec")


def fill_positions(function, origin):
    """Positions for the nodes that have none or only a line: the whole line
    (the line of the function's ``def`` when there is none)."""
    for node in ast.walk(function):
        if "lineno" not in node._attributes:
            continue
        if getattr(node, "lineno", None) is None:
            node.lineno, node.col_offset = function.lineno, None
        if getattr(node, "col_offset", None) is None or \
                getattr(node, "end_lineno", None) is None or \
                (node.end_lineno, node.end_col_offset or 0) < (node.lineno, node.col_offset):
            text = origin.lines[node.lineno - origin.first_line] \
                if 0 <= node.lineno - origin.first_line < len(origin.lines) else ""
            body = text.rstrip()
            node.col_offset = len(body) - len(body.lstrip())
            node.end_lineno, node.end_col_offset = node.lineno, len(body)


def _positional(fn):
    """Makes every parameter of a generated forward function positional."""
    args = fn.args
    args.args = args.posonlyargs + args.args + args.kwonlyargs
    args.posonlyargs, args.kwonlyargs, args.kw_defaults, args.defaults = [], [], [], []


def deps_valid(deps):
    """Whether every name a compiled gradient resolved still means the same object."""
    for where, name, expected in deps:
        if name is None:
            try:
                if where.cell_contents is not expected:
                    return False
            except ValueError:
                return False
        elif where.get(name, _ABSENT) is not expected:
            return False
    return True
