"""The public entry points: ``grad``, ``value_and_grad``, ``source``."""

import collections
import copy
import functools
import os
import inspect
import types

import numpy as np

from ._user_errors import _note_generated, _raise_at_user_line, check_wrt
from .errors import TransformError
from .runtime.gradients import materialize
from .runtime.host_memory import keep_freed_memory
from .runtime.nn import _TRAINING
from .runtime.observe import Record, signature
from .transform import specialize
from .transform.dead_value import NO_VALUE
from .transform.compiler import Compiled, Compiler, deps_valid, emit
from .transform.operands import argument_kind
from .transform.registry import gradient_makers, nondifferentiable

_CACHE_SIZE = 256
_cache = collections.OrderedDict()     # the most recently compiled gradients
# Shape specialization (transform/specialize.py): "on" (the default: from the
# second call with a signature on), "off", or "first" (tests: from the first).
_MODE = os.environ.get("KNET_ST_SPECIALIZE", "on")
_VARIANTS = 8          # argument signatures specialized per gradient; others run generic


class GradFunction:
    """The gradient of a function, as returned by :func:`grad`.

    Calling it runs the compiled forward and backward functions.  The
    transformation happens on the first call (or when ``verbose`` asks for the
    source) and is cached: by the function's code, ``wrt`` and every global
    name the code resolved, so that redefining a helper is noticed.
    """

    def __init__(self, fn, wrt=0, verbose=False, value=False):
        if not callable(fn):
            raise TypeError(f"grad() needs a function, got {fn!r}")
        if isinstance(fn, GradFunction):
            code = fn.fn.__code__
            raise TransformError("cannot differentiate a gradient function: derivatives of "
                                 "derivatives are not supported yet", code.co_filename,
                                 code.co_firstlineno)
        self.fn = fn
        try:
            self.signature = inspect.signature(fn)
        except (TypeError, ValueError):
            raise TypeError(f"grad() needs a Python function defined with def, "
                            f"got {fn!r}") from None
        self.nparams = len(self.signature.parameters)
        self.single = not isinstance(wrt, (tuple, list))
        self.wrt = check_wrt(fn, self.signature, wrt)
        # A bound method or functools.partial: the plain function underneath,
        # with the values already given (self, the partial's arguments).
        self.target, self.prefix, self.keywords = _underlying(fn)
        self.target_signature = inspect.signature(self.target)
        names = list(self.target_signature.parameters)
        given = list(self.signature.parameters)
        # def f(w, *xs, **opts): the call's positions, *xs and **opts spread
        # (transform.varargs: one parameter per value, the keywords' last)
        self.spread = next((p.name for p in self.signature.parameters.values()
                            if p.kind == p.VAR_POSITIONAL), None) \
            if self.target is fn else None
        self.spread_keywords = next((p.name for p in self.signature.parameters.values()
                                     if p.kind == p.VAR_KEYWORD), None) \
            if self.target is fn else None
        self.target_wrt = self.wrt if self.spread or self.spread_keywords else \
            tuple(names.index(given[i]) for i in self.wrt)
        self._count, self._keys = None, None    # of *args and **kwargs in the last call
        self._kinds = ()        # of the last call's values: lists or arrays (transform.operands)
        self.verbose = verbose
        self.value = value
        self._compiled, self._fkey = None, None
        self._shown = None          # the specialized code the last call ran
        self._variants = {}         # signature: (generic code, its specialized code)
        functools.update_wrapper(self, fn, updated=())
        if verbose:
            print(self.source())

    def compiled(self, functions=None):
        """The compiled ``(forward, backward, source, dependencies, lines)``:
        transformed on first use, and again whenever a name it resolved means
        something else, or a parameter holds another function (``functions``:
        parameter name to the function it holds in this call; by default the
        functions that are parameter defaults)."""
        if functions is None:
            functions = {name: p.default for name, p in self.target_signature.parameters.items()
                         if _is_function(p.default)}
        fkey = (tuple((k, id(v)) for k, v in functions.items()), self._count, self._keys,
                self._kinds)
        compiled = self._compiled
        if compiled is None or not deps_valid(compiled[3]) or self._fkey != fkey:
            target = self.target
            classes = self._classes()
            key = (target.__code__, self.target_wrt, _closure_key(target),
                   id(target.__globals__), tuple(classes.items()), fkey)
            compiled = _cache.get(key)
            if compiled is None or not deps_valid(compiled[3]):
                keep_freed_memory()
                try:
                    compiled = Compiler().compile_top(target, self.target_wrt, classes,
                                                      functions, self._count, self._keys,
                                                      self._kinds)
                except TransformError as e:     # ends the traceback at the user's line
                    exec(*_raise_at_user_line(e, target))
                    raise
                _cache[key] = compiled
                if len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
                if self.verbose and self._compiled is not None:
                    print(compiled[2])
            _cache.move_to_end(key)
            self._compiled, self._fkey = compiled, fkey
        return compiled

    def _classes(self):
        """A bound method's ``self`` parameter and its class: its own method
        calls (``self.predict(x)``) are then differentiated too."""
        if self.prefix and self.target is not self.fn and inspect.ismethod(
                self.fn if not isinstance(self.fn, functools.partial) else self.fn.func):
            first = next(iter(self.target_signature.parameters))
            return {first: type(self.prefix[0])}
        return {}

    def source(self):
        """The generated Python source of the forward and backward functions:
        after a call, the code specialized for that call's argument shapes."""
        compiled = self.compiled()
        shown = self._shown
        if shown is not None and compiled.variants is not None and \
                any(v is shown for v in compiled.variants.values()):
            return ("# specialized for the shapes of the last call's arguments\n"
                    + shown.source)
        return compiled.source

    @property
    def forward(self):
        """The generated forward (primal) function: it takes ``fn``'s arguments
        (all positional) and returns ``(value, saved)``, ``saved`` being what
        the backward function reads.  For measuring the cost of saving."""
        return self.compiled()[0]

    def __call__(self, *args, **kwargs):
        if self.target is not self.fn:
            bound = self.signature.bind(*args, **kwargs)
            full = self.target_signature.bind(*self.prefix,
                                              **{**self.keywords, **bound.arguments})
            full.apply_defaults()
            args = tuple(full.arguments.values())
        elif kwargs or len(args) != self.nparams or self.spread or self.spread_keywords:
            args = self._spread_call(args, kwargs)
        key = signature(args) if _MODE != "off" else None
        if key is not None and self._keys:          # f(w, a=1) and f(w, b=1) differ
            key = (key, self._keys)
        if key is not None:
            # The fast path: this signature ran last time with the same code
            # (a signature holds the ids of the functions passed, and the
            # types, which decide the kinds below).
            hit = self._variants.get(key)
            if hit is not None and hit[0] is self._compiled and deps_valid(hit[0].deps):
                return self._run(hit[1], args)
        self._kinds = tuple(argument_kind(a) for a in args)
        functions = {name: a for name, a in zip(self._parameter_names(), args)
                     if name is not None and type(a) in _FUNCTION_TYPES} if any(
                         type(a) in _FUNCTION_TYPES for a in args) else {}
        compiled = self.compiled(functions)
        variants = compiled.variants
        if key is not None and variants is not None:
            variant = variants.get((self.value, key))
            if variant is None and len(variants) < _VARIANTS:
                variant = self._specialize(compiled, key, args)
                if not isinstance(variant, Compiled):
                    return variant
            if variant is not None:
                self._shown = variant
                self._variants[key] = (compiled, variant)
                compiled = variant
        return self._run(compiled, args)

    def _parameter_names(self):
        """The parameter each value of the generated function's arguments goes
        to, ``None`` for a value spread from ``*args`` or ``**kwargs`` (a
        function there is not followed: calling it is refused)."""
        names = []
        for name, p in self.target_signature.parameters.items():
            if name == self.spread:
                names += [None] * self._count
            elif name != self.spread_keywords:
                names.append(name)
        return names + [None] * len(self._keys or ())

    def _spread_call(self, args, kwargs):
        """The call's arguments as the generated function takes them: one per
        parameter, ``*args`` and ``**kwargs`` spread into one per value (the
        keywords' values last); sets the count and the keys, which are part
        of the compiled code's key."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if not self.spread and not self.spread_keywords:
            return tuple(bound.arguments.values())
        keywords = bound.arguments.get(self.spread_keywords, {})
        values = tuple(v for k, value in bound.arguments.items() if k != self.spread_keywords
                       for v in (value if k == self.spread else (value,)))
        if any(i >= len(values) for i in self.target_wrt):
            besides = f" besides **{self.spread_keywords}" if self.spread_keywords else ""
            raise ValueError(f"grad({self.fn.__name__}, wrt={self.wrt}): the call gives "
                             f"{len(values)} arguments{besides}")
        if self.spread:
            self._count = len(bound.arguments[self.spread])
        if self.spread_keywords:
            self._keys = tuple(keywords)
        return values + tuple(keywords.values())

    def _specialize(self, compiled, key, args):
        """The first call with argument signature ``key``: runs code that records
        what its helper calls see, and keeps the code rewritten for it
        (:mod:`.transform.specialize`).  Returns this call's result, or with
        ``KNET_ST_SPECIALIZE=first`` (for tests) the specialized code, which
        then runs this call too (the recording run gets a copy of ``args``)."""
        record = Record()
        observing = emit(specialize.observing(compiled.module, record), compiled.deps, {})
        first = _MODE == "first"
        result = self._run(observing, copy.deepcopy(args) if first else args)
        variant = emit(specialize.specialized(compiled.module, record, self.value),
                       compiled.deps, compiled.variants)
        compiled.variants[(self.value, key)] = variant
        self._shown = variant
        return variant if first else result

    def _run(self, compiled, args):
        """Runs a compiled forward and backward function on ``args``: the result
        of a call."""
        # code that deletes from lists (del xs[i]) may shorten an argument: its
        # gradient has the structure the argument had before the call
        before = {i: _structure(args[i]) for i in self.target_wrt} \
            if "deletion" in compiled.source else None
        token = _TRAINING.set(True)   # dropout is on while differentiating, as in Knet
        try:
            out, saved = compiled.forward(*args)
        except Exception as exc:
            _note_generated(exc, compiled.lines)
            raise
        finally:
            _TRAINING.reset(token)
        if type(out) not in _REAL_SCALARS and out is not NO_VALUE and (
                not (isinstance(out, (float, int)) or getattr(out, "shape", None) == ()) or
                getattr(getattr(out, "dtype", None), "kind", "f") == "c"):
            raise TypeError(f"grad: {self.fn.__name__} must return a real scalar to be "
                            f"differentiated; it returned {type(out).__name__} with shape "
                            f"{np.shape(out)}")
        try:
            grads = compiled.backward(saved, 1.0)
        except Exception as exc:
            _note_generated(exc, compiled.lines)
            raise
        shaped = args if before is None else before
        if self.single:
            result = materialize(grads, shaped[self.target_wrt[0]])
        else:
            if len(self.wrt) == 1:
                grads = (grads,)
            result = tuple([materialize(g, shaped[i]) for g, i in zip(grads, self.target_wrt)])
        return (out, result) if self.value else result

    def __repr__(self):
        return f"<knet_st gradient of {self.fn.__qualname__} wrt {self.wrt}>"


_REAL_SCALARS = frozenset([float, int, np.float64, np.float32, np.float16])
_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType, np.ufunc)


def _structure(x):
    """``x`` with its lists, tuples and dicts copied (not their elements): what
    it holds now, whatever is deleted from it later."""
    if type(x) in (list, tuple):
        return type(x)([_structure(v) for v in x])
    if type(x) is dict:
        return {k: _structure(v) for k, v in x.items()}
    return x


def _is_function(obj):
    """Whether an argument is a function the differentiated code may call."""
    return isinstance(obj, _FUNCTION_TYPES)


def _underlying(fn):
    """``(function, leading arguments, keyword arguments)`` of a bound method or
    a ``functools.partial`` (nested ones too); a plain function is itself."""
    if isinstance(fn, functools.partial):
        target, prefix, keywords = _underlying(fn.func)
        return target, prefix + tuple(fn.args), {**keywords, **fn.keywords}
    if inspect.ismethod(fn):
        target, prefix, keywords = _underlying(fn.__func__)
        return target, (fn.__self__,) + prefix, keywords
    if not hasattr(fn, "__code__"):
        raise TypeError(f"grad() needs a Python function defined with def, got {fn!r}")
    return fn, (), {}


def _closure_key(fn):
    cells = fn.__closure__ or ()
    key = []
    for cell in cells:
        try:
            key.append(id(cell.cell_contents))
        except ValueError:
            key.append(None)
    return tuple(key)


def grad(fn=None, wrt=0, verbose=False):
    """The gradient of ``fn`` with respect to its argument number ``wrt``.

    Arguments:
        fn: a Python function returning a scalar, written with NumPy and
            ``knet_st`` operations; loops, conditionals, helper functions,
            recursion, lists, tuples and dicts are all fine.
        wrt: the position of the parameter to differentiate (default 0), or a
            tuple of positions (the gradient is then a tuple).
        verbose: print the generated source when it is created.

    Returns a function taking the same arguments as ``fn`` and returning the
    gradient, with the same nesting (lists, tuples, dicts) as the parameter.
    Usable as a decorator, with or without arguments::

        g = kt.grad(loss)
        dw = g(w, x, y)

        @kt.grad(wrt=1)
        def dloss_dx(w, x): ...
    """
    if fn is None:
        return lambda f: GradFunction(f, wrt, verbose)
    from .higher import SecondDerivative, second_order
    if second_order(fn) and isinstance(wrt, int):
        second = SecondDerivative(fn, wrt)
        if verbose:
            print(second.source())
        return second
    return GradFunction(fn, wrt, verbose)


def value_and_grad(fn=None, wrt=0, verbose=False):
    """Like :func:`grad`, but the returned function gives ``(value, gradient)``::

        loss_value, dw = kt.value_and_grad(loss)(w, x, y)
    """
    if fn is None:
        return lambda f: GradFunction(f, wrt, verbose, value=True)
    return GradFunction(fn, wrt, verbose, value=True)


# A gradient taken inside a differentiated function is differentiated in
# turn (knet_st.higher): making it has no gradient; calling it does.
nondifferentiable(grad, value_and_grad)
gradient_makers(grad, value_and_grad)


def source(g):
    """The generated source of a gradient function from :func:`grad`.

    Example::

        print(kt.source(kt.grad(loss)))
    """
    from . import higher
    if isinstance(g, (higher.JvpFunction, higher.HvpFunction, higher.SecondDerivative)) or \
            getattr(g, "kt_hessian", False):
        return g.source()
    if not isinstance(g, GradFunction):
        raise TypeError("source() takes a function returned by knet_st.grad")
    return g.source()
