"""Forward mode's compiler: the tangent functions of a function and of the
user functions it calls (each written by :class:`.forward.TangentWriter`),
compiled as one module under the users' file names."""

import ast
import copy

from .compiler import TrackingEnvironment, compile_function, fill_positions, lines_of
from .forward import TangentWriter
from .closures import siblings_of
from .pipeline import front_end, local_unit, parse_and_fence
from .resolve import Environment

class ForwardCompiler:
    """Transforms one function, and the user functions it calls, into tangent
    functions; ``generated`` maps function objects whose source is generated
    (gradient code) to ``(tree, Source)``."""

    def __init__(self, generated=None):
        self.ns, self.units, self.jobs, self.functions, self.deps = {}, {}, {}, [], []
        self.generated = generated or {}

    # -- units and requests ----------------------------------------------------
    def unit_for(self, target):
        """The front end's :class:`Unit` of a called function."""
        if target.kind == "local":
            return local_unit(target, self.units)
        fn = target.obj
        functions = dict(target.functions)        # parameters holding known functions
        key = (fn, tuple(sorted((k, id(v)) for k, v in functions.items())))
        if key not in self.units:
            if fn in self.generated:
                tree, source = self.generated[fn]
                tree, env = copy.deepcopy(tree), Environment(fn.__globals__, None, None,
                                                             functions)
            else:
                tree, source = parse_and_fence(fn)
                env = TrackingEnvironment(fn, None, functions)
                self.deps += env.deps
            self.units[key] = front_end(fn.__name__, fn.__qualname__, tree, source, env,
                                        siblings_of(fn))
        return self.units[key]

    def request(self, target, pattern):
        """The name of ``target``'s tangent function for the active parameter
        positions ``pattern`` (generated on first request)."""
        unit = self.unit_for(target)
        key = (id(unit), pattern)
        if key not in self.jobs:
            name, n = f"{unit.name}_jvp", 1
            while name in self.ns:
                n += 1
                name = f"{unit.name}_jvp{n}"
            self.ns[name] = None
            self.jobs[key] = name
            TangentWriter(self, unit, pattern, name).run()
        return self.jobs[key]

    def bind(self, name, obj, local):
        """A key of the module for ``obj``, no local of ``local``."""
        for n in range(1, 1000):
            key = name if n == 1 else f"{name}_{n}"
            if key in local or (key in self.ns and self.ns[key] is not obj):
                continue
            self.ns[key] = obj
            return key
        raise RuntimeError(f"no free name for {name}")

    def compile(self, top_name):
        """Executes every generated function; returns the top one, the source and
        each function's lines (as :class:`.compiler.Compiled` does)."""
        for function, origin in self.functions:
            fill_positions(function, origin)
        source = ast.unparse(ast.Module(body=[f for f, _ in self.functions],
                                        type_ignores=[])) + "\n"
        namespace, lines = dict(self.ns), {}
        for function, origin in self.functions:
            exec(compile_function(function, origin), namespace)
            lines[function.name] = (origin.filename, lines_of(function))
        return namespace[top_name], source, lines
