"""The pipeline: from a Python function to compiled forward and backward functions.

``compile_grad(fn, wrt)`` runs the passes over ``fn`` and over every user
function it calls with values that carry gradients (each once per pattern
of active arguments), writes all their forward and backward functions into
one module, and compiles it.
"""

import ast
import builtins
import copy
import inspect
import linecache

from .facts import fact, set_fact
from . import adjoints  # noqa: F401  (registers the rules)
from .activity import analyze
from .effects import function_effects, mutated_parameters
from .fence import check
from .jumps import lower
from .lift import lift
from .names import Names
from .normalize import global_names, normalize
from .optimize import propagate_copies
from .parse import parse_function
from .resolve import Environment, Target, resolve_calls
from .assemble import build
from .prepare import assignment_sites
from .reverse import Reverse
from .trees import bound_name
from ..runtime import gradients as rt

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

    def __init__(self, fn):
        env = Environment.of(fn)
        super().__init__(env.globals, env.closure)
        self.cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        self.deps = []

    def lookup(self, name):
        if name in self.closure:
            self.deps.append((self.cells[name], None, self.closure[name]))
            return self.closure[name]
        value = self.globals.get(name, _ABSENT)
        self.deps.append((self.globals, name, value))
        if value is _ABSENT:
            return super().lookup(name)
        return value


class Unit:
    """One function, normalized and resolved, ready for the reverse pass."""

    def __init__(self, name, tree, source, env, local_functions, qualname):
        self.name = name
        self.qualname = qualname
        self.tree = tree
        self.source = source
        self.env = env
        self.globals = global_names(tree)
        self.names = Names.of(tree)
        self.names.globals |= self.globals
        lifted = lift(tree, source)
        self.local_functions = dict(local_functions)
        self.local_functions.update({n: (d, self) for n, d in lifted.items()})
        lower(tree, self.names)
        normalize(tree, self.names, source)
        self.params = [a.arg for a in tree.args.posonlyargs + tree.args.args +
                       tree.args.kwonlyargs]
        resolve_calls(tree, env, self.local_functions, source)
        self.sites = assignment_sites(tree, self.params)
        self.uses = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.uses[node.id] = self.uses.get(node.id, 0) + 1
        self.single_defs = {
            n.targets[0].id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
            and isinstance(n.targets[0], ast.Name) and self.sites.get(n.targets[0].id) == 1}
        self.appended = {n.func.value.id for n in ast.walk(tree) if isinstance(n, ast.Call)
                         and isinstance(n.func, ast.Attribute) and n.func.attr == "append"
                         and isinstance(n.func.value, ast.Name)}
        passed = {a.id for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and fact(n, "target").kind in ("user", "local")
                  for a in list(n.args) + [k.value for k in n.keywords]
                  if isinstance(a, ast.Name)}
        # Lists that may grow while the function runs (here or in a callee):
        # their negative or computed indices are fixed in the forward pass.
        self.may_grow = self.appended | passed
        self.mutated = self.appended | {
            n.value.id for n in ast.walk(tree) if isinstance(n, ast.Subscript)
            and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)}
        self.index_read = {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Subscript)
                           and isinstance(n.value, ast.Name) and isinstance(n.ctx, ast.Load)}

    def signature(self):
        """The parameters as an :class:`inspect.Signature` (defaults as given)."""
        return _signature(self.tree)


def _signature(tree):
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


class Compiler:
    """Transforms one top-level function and everything it calls."""

    def __init__(self, verbose=False):
        self.ns = Namespace()
        self.units = {}
        self.jobs = {}
        self.functions = []
        self.deps = []
        self.summaries = {}
        self.verbose = verbose

    # -- units ------------------------------------------------------------------

    def unit_for(self, target):
        """The :class:`Unit` of a user function or a lifted local function."""
        if target.kind == "local":
            tree, parent = target.obj
            key = ("local", id(parent), tree.name)
            if key not in self.units:
                self.units[key] = Unit(tree.name, copy.deepcopy(tree), parent.source,
                                       parent.env, parent.local_functions,
                                       f"{parent.qualname}.{tree.name}")
            return self.units[key]
        fn = target.obj
        key = ("user", fn)
        if key not in self.units:
            tree, source = parse_function(fn)
            check(tree, source)
            env = TrackingEnvironment(fn)
            self.units[key] = Unit(fn.__name__, tree, source, env, {}, fn.__qualname__)
            self.deps.append(env.deps)
        return self.units[key]

    def request(self, target, pattern, caller=None):
        """The (forward, backward) function names of ``target`` differentiated
        with respect to the parameters at positions ``pattern``; generates them
        on first request (a recursive request gets the names at once)."""
        unit = self.unit_for(target)
        # The top-level function has its own pair: its backward function takes no
        # incoming adjoints, unlike the one its recursive calls use.
        key = (id(unit), pattern, caller is None)
        if key in self.jobs:
            fwd, bwd = self.jobs[key]
        else:
            fwd = self._reserve(f"{unit.name}_fwd")
            bwd = self._reserve(f"{unit.name}_bwd")
            self.jobs[key] = (fwd, bwd)
            self._generate(unit, pattern, fwd, bwd, is_top=caller is None)
        if caller is not None:
            for name in (fwd, bwd):
                caller.names.taken.add(name)
                caller.names.globals.add(name)
        return fwd, bwd

    def _reserve(self, name):
        key = name
        n = 1
        while key in self.ns.values:
            n += 1
            key = f"{name}{n}"
        self.ns.values[key] = None
        return key

    def _generate(self, unit, pattern, fwd_name, bwd_name, is_top):
        tree = copy.deepcopy(unit.tree)
        params = [unit.params[i] for i in pattern]
        names = unit.names.copy()
        work = copy.copy(unit)
        work.names = names
        work.tree = tree
        work.sites = dict(unit.sites)

        def mutated(call):
            return self.mutated_args(call, work)

        effects = function_effects(tree, mutated)
        active = analyze(tree.body, params, mutated)
        rev = Reverse(work, active, params, self, is_top)
        rev.fwd_name, rev.bwd_name = fwd_name, bwd_name
        fwd, bwd = build(rev, tree, effects, mutated)
        propagate_copies(bwd)
        for fn in (fwd, bwd):
            self._bind_globals(fn, work)
        _positional(fwd)
        self.functions += [fwd, bwd]

    def _bind_globals(self, fn, unit):
        """Points the user's global names at namespace keys, renaming on clashes."""
        local = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Store)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and fact(node, "runtime", None):
                name = fact(node, "runtime")
                obj = getattr(rt, name, None) or getattr(builtins, name)
                node.func = bound_name(self.ns.bind(name, obj, unit.names))
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                    node.id not in local and not fact(node, "bound", False):
                try:
                    obj = unit.env.lookup(node.id)
                except (KeyError, AttributeError):
                    raise unit.source.error(f"name {node.id!r} is not defined",
                                            node) from None
                node.id = self.ns.bind(node.id, obj, unit.names)
                set_fact(node, "bound", True)

    def mutated_args(self, call, caller):
        """Names passed to a user function that the callee may change in place."""
        unit = self.unit_for(fact(call, "target"))
        params = self.mutated_params(unit)
        bound = self.bind_call(call, caller)
        return {a.id for a, p in zip(bound, unit.params)
                if p in params and isinstance(a, ast.Name)}

    def mutated_params(self, unit):
        """The parameters ``unit`` changes in place (a fixed point through
        recursion, which starts from none)."""
        key = id(unit)
        if key in self.summaries:
            return self.summaries[key]
        self.summaries[key] = set()
        while True:
            found = mutated_parameters(unit.tree, lambda c: self.mutated_args(c, unit))
            if found == self.summaries[key]:
                return found
            self.summaries[key] = found

    def bind_call(self, call, caller):
        """The argument nodes of a user-function call, one per parameter in order
        (defaults filled in)."""
        target = fact(call, "target")
        unit = self.unit_for(target)
        if target.kind == "user":
            signature = inspect.signature(target.obj)
        else:
            signature = unit.signature()
        try:
            bound = signature.bind(*range(len(call.args)),
                                   **{k.arg: i for i, k in enumerate(call.keywords)})
        except TypeError as exc:
            raise caller.source.error(f"{unit.name}(): {exc}", call) from None
        nodes = []
        for name, param in signature.parameters.items():
            if name in bound.arguments:
                i = bound.arguments[name]
                keyword = [k for k in call.keywords if k.arg == name]
                nodes.append(keyword[0].value if keyword else call.args[i])
            elif isinstance(param.default, ast.AST):
                nodes.append(copy.deepcopy(param.default))
            elif isinstance(param.default, _SIMPLE):
                nodes.append(ast.Constant(param.default))
            else:
                nodes.append(bound_name(self.ns.bind(f"{unit.name}_{name}", param.default,
                                                     caller.names)))
        return nodes

    # -- the module ------------------------------------------------------------

    def compile_top(self, fn, wrt):
        """Compiles ``fn``'s gradient with respect to parameter positions ``wrt``."""
        target = Target("user", fn, fn.__name__)
        fwd, bwd = self.request(target, tuple(wrt))
        module = ast.Module(body=self.functions, type_ignores=[])
        ast.fix_missing_locations(module)
        source = ast.unparse(module) + "\n"
        filename = f"<knet_st {fn.__module__}.{fn.__qualname__}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        namespace = {k: v for k, v in self.ns.values.items() if v is not None}
        exec(code, namespace)
        unique = {}
        for env_deps in self.deps:
            for where, name, expected in env_deps:
                unique[(id(where), name)] = (where, name, expected)
        deps = list(unique.values())
        return namespace[fwd], namespace[bwd], source, deps


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
