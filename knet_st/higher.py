"""Forward mode and second order: ``kt.jvp``, ``kt.hvp``, ``kt.hessian``, and
``kt.grad(kt.grad(f))`` for a function of one number.

Forward mode is its own transformer (:mod:`knet_st.transform.forward`), with
tangent rules in :mod:`knet_st.transform.tangents`.  Hessian-vector products
are forward over reverse: the forward transformer applied to the gradient
code that ``kt.grad`` generated.
"""

import functools
import inspect
import linecache

import numpy as np

from .api import (GradFunction, _note_generated, _raise_at_user_line, _underlying,
                  check_wrt)
from .errors import TransformError
from .runtime.gradients import materialize
from .runtime.nn import _TRAINING
from .transform.compiler import deps_valid


def _bind_all(signature, args, kwargs=None):
    bound = signature.bind(*args, **(kwargs or {}))
    bound.apply_defaults()
    return tuple(bound.arguments.values())


class JvpFunction:
    """Forward mode, as returned by :func:`jvp`: ``(f(*args), derivative along
    tangent)``.  ``source()`` shows the generated tangent functions."""

    def __init__(self, fn, wrt=0):
        if not callable(fn) or isinstance(fn, GradFunction):
            raise TransformError("jvp() needs a Python function (the jvp of a gradient is "
                                 "kt.hvp)", getattr(getattr(fn, "__code__", None),
                                                    "co_filename", None))
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.wrt = check_wrt(fn, self.signature, wrt)[0]
        self.target, self.prefix, self.keywords = _underlying(fn)
        self.target_signature = inspect.signature(self.target)
        self.target_wrt = list(self.target_signature.parameters).index(
            list(self.signature.parameters)[self.wrt])
        self._compiled = None
        functools.update_wrapper(self, fn, updated=())

    def compiled(self):
        """``(function, source, dependencies, lines)``, transformed on first use."""
        from .transform.forward_compiler import ForwardCompiler
        from .transform.resolve import Target
        if self._compiled is None or not deps_valid(self._compiled[2]):
            compiler = ForwardCompiler()
            try:
                name = compiler.request(Target("user", self.target, self.target.__name__),
                                        (self.target_wrt,))
            except TransformError as e:
                exec(*_raise_at_user_line(e, self.target))
                raise
            function, source, lines = compiler.compile(name)
            self._compiled = (function, source, compiler.deps, lines)
        return self._compiled

    def source(self):
        """The generated Python source of the tangent functions."""
        return self.compiled()[1]

    def __call__(self, *args):
        if not args:
            raise TypeError("jvp: pass the function's arguments, then the tangent")
        *args, tangent = args
        bound = self.signature.bind(*args)
        full = _bind_all(self.target_signature, self.prefix,
                         {**self.keywords, **bound.arguments})
        function, _, _, lines = self.compiled()
        try:
            value, tan = function(*full, tangent)
        except Exception as exc:
            _note_generated(exc, lines)
            raise
        return value, (materialize(tan, value) if tan is None else tan)


def jvp(fn, wrt=0):
    """Forward mode: ``kt.jvp(f, wrt)(*args, tangent)`` is ``(f(*args), J @ tangent)``,
    the derivative of ``f`` at ``args`` along ``tangent`` (which has the
    structure of ``args[wrt]``); ``f`` may return any value, lists and tuples
    included (the derivative has its structure)."""
    return JvpFunction(fn, wrt)


class HvpFunction:
    """Hessian-vector products, as returned by :func:`hvp`: forward mode applied
    to the generated gradient code of ``kt.grad(fn, wrt)``."""

    def __init__(self, fn, wrt=0):
        self.grad = GradFunction(fn, wrt)
        if not self.grad.single:
            raise ValueError("hvp() takes one parameter position as wrt")
        self._compiled, self._base = None, None
        functools.update_wrapper(self, fn, updated=())

    def compiled(self):
        """``(function, source, lines)``: the tangent of the gradient."""
        base = self.grad.compiled()
        if self._compiled is None or self._base is not base:
            self._compiled, self._base = _forward_over_reverse(self.grad, base), base
        return self._compiled

    def source(self):
        """The generated second-order source (the gradient's tangent functions)."""
        return self.compiled()[1]

    def both(self, *args):
        """``(gradient, Hessian @ vector)``."""
        *args, vector = args
        g = self.grad
        if g.target is not g.fn:
            bound = g.signature.bind(*args)
            full = _bind_all(g.target_signature, g.prefix, {**g.keywords, **bound.arguments})
        else:
            full = _bind_all(g.signature, args)
        function, _, lines = self.compiled()
        token = _TRAINING.set(True)
        try:
            return function(*full, vector)
        except Exception as exc:
            _note_generated(exc, lines)
            raise
        finally:
            _TRAINING.reset(token)

    def __call__(self, *args):
        return self.both(*args)[1]


def _forward_over_reverse(grad, base, tangent_position=None):
    """Forward mode over the module ``kt.grad`` generated (``base``): parsed
    again, with a function calling its forward and backward functions at top;
    the tangent is on the parameter at ``tangent_position`` (by default the
    one the gradient is taken with respect to)."""
    import ast
    from .transform.forward_compiler import ForwardCompiler
    from .transform.fusion import unfuse
    from .transform.parse import Source
    from .transform.resolve import Target
    fwd, bwd, text = base[0], base[1], unfuse(base[2])
    namespace = fwd.__globals__
    params = list(grad.target_signature.parameters)
    top = f"{grad.target.__name__}_grad"
    while top in namespace:
        top += "_"
    keep = "materialize"
    while keep in namespace and namespace[keep] is not materialize:
        keep += "_"
    wrt = params[grad.target_wrt[0]]
    wrapper = (f"\ndef {top}({', '.join(params)}):\n"
               f"    value, saved = {fwd.__name__}({', '.join(params)})\n"
               f"    grads = {bwd.__name__}(saved, 1.0)\n"
               f"    return {keep}(grads, {wrt})\n")
    full = text + wrapper
    filename = f"<knet_st gradient of {grad.target.__qualname__}>"
    lines = full.splitlines(True)
    linecache.cache[filename] = (len(full), None, lines, filename)
    source = Source(filename, 1, lines)
    module = ast.parse(full)
    env = dict(namespace)
    env[keep] = materialize
    exec(compile(ast.Module(body=[module.body[-1]], type_ignores=[]), filename, "exec"), env)
    generated = {env[f.name]: (f, source) for f in module.body
                 if isinstance(f, ast.FunctionDef)}
    compiler = ForwardCompiler(generated)
    position = grad.target_wrt[0] if tangent_position is None else tangent_position
    name = compiler.request(Target("user", env[top], top), (position,))
    return compiler.compile(name)


def hvp(fn, wrt=0):
    """Hessian-vector products: ``kt.hvp(f, wrt)(*args, vector)`` is the Hessian of
    the scalar ``f`` with respect to ``args[wrt]`` times ``vector``, with the
    structure of ``args[wrt]`` (forward mode over the generated gradient)::

        hv = kt.hvp(loss)(w, x, y, v)       # v: a list of arrays like w
    """
    return HvpFunction(fn, wrt)


def hessian(fn, wrt=0):
    """The Hessian of the scalar ``f`` with respect to the array (or float)
    ``args[wrt]``: ``kt.hessian(f)(*args)`` has shape ``x.shape + x.shape``
    (one Hessian-vector product per element of ``x``)."""
    products = HvpFunction(fn, wrt)

    def hessian_of(*args):
        bound = products.grad.signature.bind(*args)
        x = list(bound.arguments.values())[products.grad.wrt[0]]
        if not isinstance(x, (float, int)) and not hasattr(x, "shape"):
            raise TypeError("hessian() needs an array or float argument; use kt.hvp for "
                            "lists and dicts")
        x = np.asarray(x, dtype=float) if not hasattr(x, "dtype") else x
        if x.ndim == 0:
            return products(*args, np.ones_like(x)[()] if hasattr(x, "dtype") else 1.0)
        columns = []
        for j in range(x.size):
            e = np.zeros(x.size, dtype=x.dtype)
            e[j] = 1
            columns.append(np.asarray(products(*args, e.reshape(x.shape))).ravel())
        return np.stack(columns, axis=1).reshape(x.shape + x.shape)
    functools.update_wrapper(hessian_of, fn, updated=())
    hessian_of.source, hessian_of.kt_hessian = products.source, True
    return hessian_of


class SecondDerivative:
    """``kt.grad(kt.grad(f, wrt=k), wrt=j)`` where argument ``k`` is a number:
    the derivative with respect to argument ``j`` of ``df/dx_k``, i.e. the
    derivative of the gradient with respect to ``x_j`` along ``x_k``
    (forward over reverse; the Hessian is symmetric)."""

    def __init__(self, inner, wrt=0):
        self.inner = inner
        self.k = inner.target_wrt[0]
        self.j = check_wrt(inner.fn, inner.signature, wrt)[0]
        functools.update_wrapper(self, inner.fn, updated=())

    def source(self):
        grad = GradFunction(self.inner.fn, self.j)
        return _forward_over_reverse(grad, grad.compiled(), self.k)[1]

    def __call__(self, *args, **kwargs):
        args = _bind_all(self.inner.signature, args, kwargs)
        x = args[self.k]
        if np.ndim(x) != 0:
            raise TypeError(f"grad: the gradient of {self.inner.fn.__name__} must return a "
                            f"real scalar to be differentiated; it returns the shape "
                            f"{np.shape(x)} of its argument (see kt.hvp, kt.hessian)")
        token = _TRAINING.set(True)
        try:
            h = _mixed(self.inner.fn, self.j, self.k)(*args, 1.0)[1]
        finally:
            _TRAINING.reset(token)
        return float(h) if isinstance(args[self.j], (float, int)) and np.ndim(h) == 0 else h


def second_order(fn):
    """Whether ``kt.grad`` of ``fn`` is a second derivative this module gives:
    ``fn`` is the plain gradient of a function with respect to one argument."""
    return isinstance(fn, GradFunction) and fn.single and not fn.value and \
        fn.target is fn.fn


# ---- gradients inside differentiated functions -------------------------------------

@functools.lru_cache(maxsize=256)
def _mixed(fn, j, k):
    """The compiled tangent of ``kt.grad(fn, wrt=j)`` along a tangent of the
    parameter at position ``k``: ``function(*args, tangent) -> (gradient,
    its derivative)``."""
    grad = GradFunction(fn, j)
    return _forward_over_reverse(grad, grad.compiled(), k)[0]


def _gradient_vjp(G, args, dout, j):
    """The adjoint of argument ``j`` of ``G(*args)`` (``G`` a gradient function,
    ``dout`` the adjoint of what it returned): the second derivatives of ``G``'s
    function times ``dout``, as derivatives of the gradient with respect to
    argument ``j`` along ``dout`` (the Hessian is symmetric), plus, for
    ``value_and_grad``, the value's adjoint times the gradient."""
    from .runtime.gradients import add, item
    fn = G.fn
    if dout is None:
        return None
    total = None
    grads = dout
    if G.value:
        dvalue, grads = item(dout, 0), item(dout, 1)
        if dvalue is not None:
            first = GradFunction(fn, j)(*args)
            total = _as_adjoint(_scale(first, dvalue))
    positions = G.target_wrt
    for m, k in enumerate(positions):
        dg = grads if G.single else item(grads, m)
        if dg is None:
            continue
        token = _TRAINING.set(True)
        try:
            _, term = _mixed(fn, j, k)(*args, materialize(dg, args[k]))
        finally:
            _TRAINING.reset(token)
        total = add(total, _as_adjoint(term))
    return total


def _as_adjoint(tree):
    """A gradient structure as an adjoint: lists and tuples as dicts of their
    positions (so that adding two adds leaf by leaf)."""
    if isinstance(tree, (list, tuple)):
        return {i: _as_adjoint(v) for i, v in enumerate(tree)}
    if isinstance(tree, dict):
        return {k: _as_adjoint(v) for k, v in tree.items()}
    return tree


def _scale(tree, factor):
    """Every leaf of a gradient structure times ``factor``."""
    if isinstance(tree, dict):
        return {key: _scale(v, factor) for key, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_scale(v, factor) for v in tree)
    return tree * factor


def gradient_call_pair(G, pattern):
    """The forward and backward functions of calling the gradient function
    ``G`` inside a differentiated function, differentiated with respect to the
    arguments at positions ``pattern``: ``fwd(*args) -> (G(*args), saved)``,
    ``bwd(saved, dout, *incoming) -> adjoints`` (``incoming``: the adjoints the
    caller holds for those arguments)."""
    from .runtime.gradients import add
    if G.target is not G.fn:
        raise TransformError("cannot differentiate a gradient of a bound method or a "
                             "functools.partial inside a differentiated function")

    def fwd(*args):
        return G(*args), args

    def bwd(saved, dout, *incoming):
        out = [add(incoming[i], _gradient_vjp(G, saved, dout, j))
               for i, j in enumerate(pattern)]
        return out[0] if len(out) == 1 else tuple(out)

    return fwd, bwd
