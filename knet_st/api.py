"""The public entry points: ``grad``, ``value_and_grad``, ``source``."""

import collections
import functools
import inspect

import numpy as np

from .errors import TransformError
from .runtime.gradients import materialize
from .runtime.nn import _TRAINING
from .transform.compiler import Compiler, deps_valid
from .transform.registry import refuse

_CACHE_SIZE = 256
_cache = collections.OrderedDict()     # the most recently compiled gradients


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
        self.single = isinstance(wrt, int)
        self.wrt = (wrt,) if self.single else tuple(wrt)
        self.verbose = verbose
        self.value = value
        self.signature = inspect.signature(fn)
        self.nparams = len(self.signature.parameters)
        self._compiled = None
        functools.update_wrapper(self, fn, updated=())
        if verbose:
            print(self.source())

    def compiled(self):
        """The compiled ``(forward, backward, source, dependencies)``: transformed
        on first use, and again whenever a name it resolved means something else."""
        compiled = self._compiled
        if compiled is None or not deps_valid(compiled[3]):
            key = (self.fn.__code__, self.wrt, _closure_key(self.fn), id(self.fn.__globals__))
            compiled = _cache.get(key)
            if compiled is None or not deps_valid(compiled[3]):
                compiled = Compiler().compile_top(self.fn, self.wrt)
                _cache[key] = compiled
                if len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
                if self.verbose and self._compiled is not None:
                    print(compiled[2])
            _cache.move_to_end(key)
            self._compiled = compiled
        return compiled

    def source(self):
        """The generated Python source of the forward and backward functions."""
        return self.compiled()[2]

    @property
    def forward(self):
        """The generated forward (primal) function: it takes ``fn``'s arguments
        (all positional) and returns ``(value, saved)``, ``saved`` being what
        the backward function reads.  For measuring the cost of saving."""
        return self.compiled()[0]

    def __call__(self, *args, **kwargs):
        fwd, bwd, _, _ = self.compiled()
        if kwargs or len(args) != self.nparams:
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            args = tuple(bound.arguments.values())
        token = _TRAINING.set(True)   # dropout is on while differentiating, as in Knet
        try:
            out, saved = fwd(*args)
        finally:
            _TRAINING.reset(token)
        if not (isinstance(out, (float, int)) or getattr(out, "shape", None) == ()) or \
                getattr(getattr(out, "dtype", None), "kind", "f") == "c":
            raise TypeError(f"grad: {self.fn.__name__} must return a real scalar to be "
                            f"differentiated; it returned {type(out).__name__} with shape "
                            f"{np.shape(out)}")
        grads = bwd(saved, 1.0)
        if self.single:
            result = materialize(grads, args[self.wrt[0]])
        else:
            if len(self.wrt) == 1:
                grads = (grads,)
            result = tuple([materialize(g, args[i]) for g, i in zip(grads, self.wrt)])
        return (out, result) if self.value else result

    def __repr__(self):
        return f"<knet_st gradient of {self.fn.__qualname__} wrt {self.wrt}>"


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
    return GradFunction(fn, wrt, verbose)


def value_and_grad(fn=None, wrt=0, verbose=False):
    """Like :func:`grad`, but the returned function gives ``(value, gradient)``::

        loss_value, dw = kt.value_and_grad(loss)(w, x, y)
    """
    if fn is None:
        return lambda f: GradFunction(f, wrt, verbose, value=True)
    return GradFunction(fn, wrt, verbose, value=True)


refuse("cannot call kt.grad or kt.value_and_grad inside a differentiated function: "
       "derivatives of derivatives are not supported yet", grad, value_and_grad)


def source(g):
    """The generated source of a gradient function from :func:`grad`.

    Example::

        print(kt.source(kt.grad(loss)))
    """
    if not isinstance(g, GradFunction):
        raise TypeError("source() takes a function returned by knet_st.grad")
    return g.source()
