"""The adjoint registry: how a primitive's gradient is declared and inlined.

A rule is a small Python function that is parsed, never run.  Its first two
parameters are the output's adjoint ``dy`` and the output ``y``; the rest
mirror the primitive's parameters.  The body assigns ``d<param>`` for each
parameter that has a gradient::

    @adjoint(np.tanh)
    def tanh(dy, y, x):
        dx = dy * (1 - y * y)

The compiler binds a call's arguments to these parameters, keeps only the
statements that compute the gradients it needs, renames everything to the
names of the generated code and inlines the result.  Names the body reads
from its module (``np``, ``unbroadcast``) are bound into the generated
module's namespace.
"""

import ast
import copy
import inspect
import textwrap

from .trees import forget_positions

_RULES = {}
_NONDIFFERENTIABLE = set()
_REFUSED = {}


class Rule:
    """One primitive's adjoint template, parsed."""

    def __init__(self, fn, template, containers=(), scalar_when=None):
        self.fn = fn
        self.containers = frozenset(containers)
        self.scalar_when = scalar_when
        self.name = getattr(fn, "__name__", repr(fn))
        self.template = template
        tree = ast.parse(textwrap.dedent(inspect.getsource(template)))
        func = tree.body[0]
        func.decorator_list = []
        # Inlined statements take the position of the user's statement.
        self.body = [forget_positions(stmt) for stmt in func.body]
        self.reads_output = any(isinstance(n, ast.Name) and n.id == "y"
                                for stmt in self.body for n in ast.walk(stmt))
        args = func.args
        names = [a.arg for a in args.posonlyargs + args.args]
        if names[:2] != ["dy", "y"]:
            raise ValueError(f"adjoint rule for {self.name} must start with (dy, y, ...)")
        self.params = names[2:]
        self.kwonly = [a.arg for a in args.kwonlyargs]
        self.varargs = args.vararg.arg if args.vararg else None
        self.varkw = args.kwarg.arg if args.kwarg else None
        defaults = [None] * (len(names) - len(args.defaults)) + list(args.defaults)
        self.defaults = {n: d for n, d in zip(names, defaults) if d is not None}
        self.defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults)
                              if d is not None})
        self.globals = template.__globals__

    def bind(self, args, keywords):
        """Maps parameter names to argument nodes; raises ``TypeError`` on a mismatch."""
        bound = {}
        positional = list(args)
        for name in self.params:
            if positional:
                bound[name] = positional.pop(0)
        if positional:
            if not self.varargs:
                raise TypeError(f"{self.name}() given {len(args)} positional arguments")
            bound[self.varargs] = ast.Tuple(elts=positional, ctx=ast.Load())
        extra = {}
        for key, value in keywords.items():
            if key in bound or key not in self.params + self.kwonly and not self.varkw:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {key!r}")
            if key in self.params + self.kwonly:
                bound[key] = value
            else:
                extra[key] = value
        if self.varkw:
            bound[self.varkw] = ast.Dict(keys=[ast.Constant(k) for k in extra],
                                         values=list(extra.values()))
        for name in self.params + self.kwonly:
            if name not in bound:
                if name not in self.defaults:
                    raise TypeError(f"{self.name}() missing argument {name!r}")
                bound[name] = copy.deepcopy(self.defaults[name])
        if self.varargs and self.varargs not in bound:
            bound[self.varargs] = ast.Tuple(elts=[], ctx=ast.Load())
        return bound

    def statements(self, wanted):
        """The template statements needed for the gradients of ``wanted``
        parameters, in order (a backward slice over assigned names)."""
        needed = {"d" + p for p in wanted}
        keep = []
        for stmt in reversed(self.body):
            targets = {n.id for t in _targets(stmt) for n in ast.walk(t)
                       if isinstance(n, ast.Name)}
            if targets & needed:
                keep.append(stmt)
                needed |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
                           and isinstance(n.ctx, ast.Load)}
        return [copy.deepcopy(s) for s in reversed(keep)]


def has_scalar_result(rule, args, keywords):
    """Whether a call of ``rule``'s primitive with these argument nodes gives
    a 0-d result whatever the arguments' shapes (its ``scalar_when``)."""
    if rule is None or rule.scalar_when is None:
        return False
    try:
        bound = rule.bind(args, keywords)
    except TypeError:
        return False
    return all(isinstance(bound.get(name), ast.Constant) and bound[name].value is value
               for name, value in rule.scalar_when.items())


def _targets(stmt):
    if isinstance(stmt, ast.Assign):
        return stmt.targets
    if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        return [stmt.target]
    return []


def adjoint(*primitives, containers=(), scalar_when=None):
    """Declares the adjoint rule of one or more primitives (see the module doc).
    ``containers`` names the parameters whose adjoint the rule gives as a
    container adjoint (a dict of element adjoints: a list argument's).
    ``scalar_when`` declares that the result is 0-d whatever the arguments'
    shapes when the parameters it names have the given constant values, given
    or by default (``np.sum``: ``{"axis": None, "keepdims": False}``;
    ``np.vdot``: ``{}``): a backward that reads only the result's shape then
    needs nothing of the forward.

    Example::

        @adjoint(np.sin)
        def sin(dy, y, x):
            dx = dy * np.cos(x)
    """
    def register(template):
        for fn in primitives:
            _RULES[key_of(fn)] = Rule(fn, template, containers, scalar_when)
        return template
    return register


_MUTATING_METHODS = set()


def mutating_methods(*names):
    """Declares methods that change their receiver in place (``append``,
    ``fill``...): the effects analysis reads these."""
    _MUTATING_METHODS.update(names)


def is_mutating_method(name):
    """Whether the method ``name`` was declared to change its receiver."""
    return name in _MUTATING_METHODS


_MUTATING_FUNCTIONS = {}


def mutating_functions(positions):
    """Declares functions that change an argument in place, as a dict of the
    function to the position of that argument (``{np.copyto: 0}``)."""
    for fn, position in positions.items():
        _MUTATING_FUNCTIONS[key_of(fn)] = position


def mutated_argument(fn):
    """The position of the argument ``fn`` changes in place, or ``None``."""
    return _MUTATING_FUNCTIONS.get(key_of(fn))


def nondifferentiable(*functions):
    """Declares functions whose result carries no gradient (``len``, ``np.argmax``...)."""
    for fn in functions:
        _NONDIFFERENTIABLE.add(key_of(fn))


def refuse(why, *functions):
    """Declares functions that a differentiated function may not call, with the
    reason the compiler gives (``kt.grad`` inside a loss, until higher order)."""
    for fn in functions:
        _REFUSED[key_of(fn)] = why


def refusal(fn):
    """Why ``fn`` may not be called in a differentiated function, or ``None``."""
    return _REFUSED.get(key_of(fn))


_GRADIENT_MAKERS = set()


def gradient_makers(*functions):
    """Declares the functions that make gradient functions (``kt.grad``,
    ``kt.value_and_grad``): a gradient taken inside a differentiated function
    is differentiated in turn (forward over reverse)."""
    for fn in functions:
        _GRADIENT_MAKERS.add(key_of(fn))


def is_gradient_maker(fn):
    """Whether ``fn`` was declared with :func:`gradient_makers`."""
    return key_of(fn) in _GRADIENT_MAKERS


def key_of(fn):
    """The key of ``fn`` in a table of functions: itself, or its id when it
    cannot be hashed."""
    try:
        hash(fn)
        return fn
    except TypeError:
        return id(fn)


def rule_for(fn):
    """The :class:`Rule` of ``fn``, or ``None``."""
    return _RULES.get(key_of(fn))


def is_nondifferentiable(fn):
    """Whether ``fn`` was declared to have no gradient."""
    return key_of(fn) in _NONDIFFERENTIABLE


def primitives():
    """The functions that have adjoint rules, for documentation and tests."""
    return [rule.fn for rule in _RULES.values()]
