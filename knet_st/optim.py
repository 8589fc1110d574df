"""Optimizers: update model parameters in place from their gradients.

The update rules are those of Knet.jl (``src/update.jl``).  Each optimizer
object holds the state of ONE parameter array (velocity, moment estimates,
...), as in Knet, so a model with several arrays needs one optimizer per
array: :func:`optimizers` builds them with the same nesting as the model,
and :func:`update` walks the model, its gradient and the optimizers together::

    import numpy as np
    import knet_st as kt

    w = [kt.xavier(10, 784), kt.zeros(10, 1)]
    opts = kt.optimizers(w, kt.Adam, lr=0.001)
    for x, y in kt.minibatch(xtrn, ytrn, 100):
        dw = lossgradient(w, x, y)
        kt.update(w, dw, opts)          # w[0] and w[1] change in place

Every step works in place on the arrays the caller holds, and the state of
each optimizer is created once (``np.zeros_like(w)``), so a steady-state step
allocates no new parameter-sized arrays.  Only NumPy functions that dispatch
on their arguments (ufuncs with ``out=``, ``np.zeros_like``,
``np.linalg.norm``) are used, so CuPy arrays work unchanged.

Common options of every optimizer:

* ``gclip`` (default 0): when ``> 0`` and the L2 norm of the whole gradient
  array is larger than ``gclip``, the gradient is scaled so its norm equals
  ``gclip`` (Knet's ``gclip!``).  ``update(..., gclip=c)`` instead clips the
  norm of all gradients of the model taken together.
* ``weight_decay`` (default 0): L2 penalty; ``weight_decay * w`` is added to
  the (clipped) gradient before the rule is applied, as in PyTorch.

The caller's gradient arrays are never modified.
"""

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["Optimizer", "SGD", "Momentum", "Nesterov", "Adagrad", "Adadelta",
           "Rmsprop", "Adam", "optimizers", "update"]


def _is_array(x):
    """True for NumPy-like arrays (ndarray, cupy.ndarray, ...), not scalars."""
    return (hasattr(x, "shape") and hasattr(x, "dtype")
            and not isinstance(x, np.generic))


def _is_float_scalar(x):
    return (isinstance(x, (float, np.floating))
            and not isinstance(x, bool))


def _is_float_array(x):
    return _is_array(x) and np.dtype(x.dtype).kind == "f"


class Optimizer:
    """Base class: the state and the update rule of one parameter array.

    Subclasses implement ``_rule(w, g)`` and name their state arrays
    ``_s_*`` (``None`` until the first step, then ``np.zeros_like(w)``);
    ``step`` takes care of gradient clipping, weight decay and float leaves.

    Arguments:
        lr: learning rate.
        gclip: clip the gradient to this L2 norm when ``> 0``.
        weight_decay: add ``weight_decay * w`` to the gradient.

    Example::

        opt = SGD(0.1)
        w = np.ones(3); opt.step(w, np.ones(3))   # w is now 0.9
    """

    def __init__(self, lr, gclip=0.0, weight_decay=0.0):
        lr, gclip, weight_decay = float(lr), float(gclip), float(weight_decay)
        if not lr >= 0:
            raise ValueError(f"invalid learning rate lr={lr}")
        if not gclip >= 0:
            raise ValueError(f"invalid gclip={gclip} (must be >= 0)")
        if not weight_decay >= 0:
            raise ValueError(f"invalid weight_decay={weight_decay}")
        self.lr = lr
        self.gclip = gclip
        self.weight_decay = weight_decay
        self._shape = None      # shape the state was built for
        self._tmp = None        # scratch array, same shape and dtype as w
        self._geff = None       # scratch for the clipped/decayed gradient

    # -- helpers ------------------------------------------------------------
    def _hyper(self):
        names = [k for k in vars(self) if not k.startswith("_")]
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in names)

    def __repr__(self):
        return f"{type(self).__name__}({self._hyper()})"

    def _init_state(self, w):
        """Create the rule's state arrays (every ``_s_*``) for parameter ``w``;
        those already there (restored from a checkpoint) are kept."""
        for k in list(vars(self)):
            if not k.startswith("_s_"):
                continue
            s = getattr(self, k)
            if s is None:
                setattr(self, k, np.zeros_like(w))
            elif tuple(s.shape) != tuple(w.shape):
                raise ValueError(
                    f"{type(self).__name__}: its saved state has shape "
                    f"{tuple(s.shape)} but the parameter has shape "
                    f"{tuple(w.shape)}")
            elif type(s) is not type(w):        # loaded on the CPU, w on the GPU
                z = np.zeros_like(w)
                z[...] = s.get() if hasattr(s, "get") and not isinstance(
                    s, np.ndarray) else s
                setattr(self, k, z)

    def _rule(self, w, g):
        raise NotImplementedError

    def _prepare(self, w):
        if self._shape is None:
            self._shape = tuple(w.shape)
            self._tmp = np.zeros_like(w)
            self._init_state(w)
        elif tuple(w.shape) != self._shape:
            raise ValueError(
                f"{type(self).__name__} was used with a parameter of shape "
                f"{self._shape} and now gets shape {tuple(w.shape)}; "
                "use one optimizer per parameter array (see optimizers())")

    def _effective_grad(self, w, g, scale):
        """Return g * scale, clipped to self.gclip, plus weight decay."""
        factor = float(scale)
        if self.gclip > 0:
            gnorm = float(np.linalg.norm(g)) * factor
            if gnorm > self.gclip:
                factor *= self.gclip / gnorm
        if factor == 1.0 and self.weight_decay == 0:
            return g
        if self._geff is None:
            self._geff = np.zeros_like(w)
        ge = self._geff
        np.multiply(g, factor, out=ge)
        if self.weight_decay != 0:
            np.multiply(w, self.weight_decay, out=self._tmp)
            np.add(ge, self._tmp, out=ge)
        return ge

    # -- public -------------------------------------------------------------
    def step(self, w, g, scale=1.0):
        """Apply one update to parameter ``w`` with gradient ``g``.

        Arguments:
            w: a floating point array (updated in place and returned) or a
                Python/NumPy float (the updated float is returned).
            g: gradient, same shape as ``w``; ``None`` means no gradient
                (``w`` is returned unchanged).
            scale: extra factor applied to ``g`` first (used by
                ``update(..., gclip=)`` for clipping over a whole model).

        Returns:
            ``w`` itself for arrays, the new value for floats.

        Example::

            opt = Momentum(0.1, gamma=0.9)
            w = np.zeros(2); opt.step(w, np.ones(2))   # w == [-0.1, -0.1]
        """
        if g is None:
            return w
        if _is_float_scalar(w):
            wa = np.array(w, dtype=np.float64)
            ga = np.asarray(g, dtype=np.float64)
            if ga.shape != ():
                raise ValueError(
                    f"gradient of a float parameter must be a scalar, got "
                    f"shape {ga.shape}")
            self.step(wa, ga, scale)
            new = float(wa)
            return type(w)(new) if isinstance(w, np.floating) else new
        if not _is_float_array(w):
            raise TypeError(
                f"can only update floating point arrays or floats, got "
                f"{type(w).__name__}"
                + (f" of dtype {w.dtype}" if hasattr(w, "dtype") else ""))
        if not _is_array(g):
            if _is_float_scalar(g) or isinstance(g, int):
                raise ValueError(
                    f"gradient is a scalar but the parameter has shape "
                    f"{tuple(w.shape)}")
            raise TypeError(f"gradient must be an array, got "
                            f"{type(g).__name__}")
        if tuple(g.shape) != tuple(w.shape):
            raise ValueError(f"gradient shape {tuple(g.shape)} does not match "
                             f"parameter shape {tuple(w.shape)}")
        self._prepare(w)
        self._rule(w, self._effective_grad(w, g, scale))
        return w

    def reset(self):
        """Forget the state (moments, step count); the next step starts fresh.

        Example::

            opt.reset()
        """
        self._shape = None
        self._tmp = None
        self._geff = None
        for k in list(vars(self)):
            if k.startswith("_s_"):
                setattr(self, k, None)
        if hasattr(self, "t"):
            self.t = 0


# In-place steps of the rules below; ``tmp`` is a scratch array like ``w``.

def _descend(w, d, lr, tmp):
    """w = w - lr * d (``d`` may be ``tmp`` itself)."""
    np.multiply(d, lr, out=tmp)
    np.subtract(w, tmp, out=w)


def _average(avg, x, rho, tmp):
    """avg = rho * avg + (1 - rho) * x (``x`` may be ``tmp`` itself)."""
    np.multiply(avg, rho, out=avg)
    np.multiply(x, 1.0 - rho, out=tmp)
    np.add(avg, tmp, out=avg)


def _average_square(avg, g, rho, tmp):
    """avg = rho * avg + (1 - rho) * g .^ 2."""
    np.multiply(g, g, out=tmp)
    _average(avg, tmp, rho, tmp)


def _descend_rms(w, g, G, lr, eps, tmp):
    """w = w - lr * g ./ sqrt(G + eps)."""
    np.add(G, eps, out=tmp)
    np.sqrt(tmp, out=tmp)
    np.divide(g, tmp, out=tmp)
    _descend(w, tmp, lr, tmp)


class SGD(Optimizer):
    """Stochastic gradient descent (Knet's ``SGD``)::

        w = w - lr * g

    Arguments:
        lr: learning rate (default 0.001, as in Knet).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = SGD(0.1)
        w = np.array([1.0, 2.0]); opt.step(w, np.array([1.0, 1.0]))
        # w == [0.9, 1.9]
    """

    def __init__(self, lr=0.001, gclip=0.0, weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)

    def _rule(self, w, g):
        _descend(w, g, self.lr, self._tmp)


class _Velocity(Optimizer):
    """The state and options of Momentum and Nesterov: a velocity array and
    the momentum ``gamma``."""

    def __init__(self, lr=0.001, gamma=0.9, gclip=0.0, weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)
        self.gamma = float(gamma)
        self._s_velocity = None


class Momentum(_Velocity):
    """SGD with momentum (Knet's ``Momentum``, Qian 1999)::

        velocity = gamma * velocity + lr * g
        w = w - velocity

    Arguments:
        lr: learning rate (default 0.001).
        gamma: momentum (default 0.9).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = Momentum(0.1, gamma=0.9)
    """

    def _rule(self, w, g):
        v, t = self._s_velocity, self._tmp
        np.multiply(v, self.gamma, out=v)
        np.multiply(g, self.lr, out=t)
        np.add(v, t, out=v)
        np.subtract(w, v, out=w)


class Nesterov(_Velocity):
    """Nesterov momentum (Knet's ``Nesterov``; Bengio, Boulanger-Lewandowski
    and Pascanu 2012, eq. 7)::

        velocity_new = gamma * velocity - lr * g
        w = w - gamma * velocity + (1 + gamma) * velocity_new

    Arguments:
        lr: learning rate (default 0.001).
        gamma: momentum (default 0.9).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = Nesterov(0.01, gamma=0.9)
    """

    def _rule(self, w, g):
        v, t = self._s_velocity, self._tmp
        np.multiply(v, self.gamma, out=v)          # v = gamma * v_old
        np.subtract(w, v, out=w)                   # w -= gamma * v_old
        np.multiply(g, self.lr, out=t)
        np.subtract(v, t, out=v)                   # v = gamma*v_old - lr*g
        np.multiply(v, 1.0 + self.gamma, out=t)
        np.add(w, t, out=w)                        # w += (1+gamma) * v


class Adagrad(Optimizer):
    """Adagrad (Knet's ``Adagrad``, Duchi et al. 2011)::

        G = G + g .^ 2
        w = w - lr * g ./ sqrt(G + eps)

    Arguments:
        lr: learning rate (default 0.1, as in Knet).
        eps: added under the square root (default 1e-6).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = Adagrad(0.1)
    """

    def __init__(self, lr=0.1, eps=1e-6, gclip=0.0, weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)
        self.eps = float(eps)
        self._s_G = None

    def _rule(self, w, g):
        G, t = self._s_G, self._tmp
        np.multiply(g, g, out=t)
        np.add(G, t, out=G)
        _descend_rms(w, g, G, self.lr, self.eps, t)


class Adadelta(Optimizer):
    """Adadelta (Knet's ``Adadelta`` and PyTorch's, Zeiler 2012)::

        G = rho * G + (1 - rho) * g .^ 2
        update = g .* sqrt(delta + eps) ./ sqrt(G + eps)
        w = w - lr * update
        delta = rho * delta + (1 - rho) * update .^ 2

    Arguments:
        lr: learning rate (default 1.0, as in PyTorch and the paper; Knet
            uses 0.01).
        rho: decay of the running averages (default 0.9).
        eps: added under the square roots (default 1e-6).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = Adadelta()
    """

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, gclip=0.0, weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)
        self.rho = float(rho)
        self.eps = float(eps)
        self._s_G = None
        self._s_delta = None
        self._s_u = None        # second scratch array


    def _rule(self, w, g):
        G, d, t, u = self._s_G, self._s_delta, self._tmp, self._s_u
        _average_square(G, g, self.rho, t)
        np.add(d, self.eps, out=t)
        np.sqrt(t, out=t)
        np.multiply(t, g, out=t)
        np.add(G, self.eps, out=u)
        np.sqrt(u, out=u)
        np.divide(t, u, out=t)              # t = update
        _average_square(d, t, self.rho, u)
        _descend(w, t, self.lr, t)


class Rmsprop(Optimizer):
    """RMSprop (Knet's ``Rmsprop``, Tieleman and Hinton 2012)::

        G = rho * G + (1 - rho) * g .^ 2
        w = w - lr * g ./ sqrt(G + eps)

    (PyTorch's RMSprop puts eps outside the square root; Knet's rule is used.)

    Arguments:
        lr: learning rate (default 0.001).
        rho: decay of the running average (default 0.9).
        eps: added under the square root (default 1e-6).
        gclip, weight_decay: see :class:`Optimizer`.

    Example::

        opt = Rmsprop(0.001)
    """

    def __init__(self, lr=0.001, rho=0.9, eps=1e-6, gclip=0.0,
                 weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)
        self.rho = float(rho)
        self.eps = float(eps)
        self._s_G = None

    def _rule(self, w, g):
        G, t = self._s_G, self._tmp
        _average_square(G, g, self.rho, t)
        _descend_rms(w, g, G, self.lr, self.eps, t)


class Adam(Optimizer):
    """Adam (Knet's ``Adam``, Kingma and Ba 2015)::

        t = t + 1
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g .^ 2
        mhat = m / (1 - beta1 ^ t)
        vhat = v / (1 - beta2 ^ t)
        w = w - lr * mhat ./ (sqrt(vhat) + eps)

    Arguments:
        lr: learning rate (default 0.001).
        beta1, beta2: decay of the moment estimates (0.9, 0.999).
        eps: added to the denominator (default 1e-8).
        gclip, weight_decay: see :class:`Optimizer` (weight decay is the
            classic L2 form added to the gradient, not AdamW).

    Example::

        opt = Adam(lr=0.001)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, gclip=0.0,
                 weight_decay=0.0):
        super().__init__(lr, gclip, weight_decay)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)
        self.t = 0
        self._s_m = None
        self._s_v = None

    def _rule(self, w, g):
        m, v, t = self._s_m, self._s_v, self._tmp
        b1, b2 = self.beta1, self.beta2
        self.t += 1
        _average(m, g, b1, t)
        _average_square(v, g, b2, t)
        c1 = 1.0 - b1 ** self.t
        c2 = 1.0 - b2 ** self.t
        np.multiply(v, 1.0 / c2, out=t)
        np.sqrt(t, out=t)
        np.add(t, self.eps, out=t)          # sqrt(vhat) + eps
        np.divide(m, t, out=t)
        _descend(w, t, self.lr / c1, t)     # lr * mhat / (...)


# ---------------------------------------------------------------------------
# Whole models: nested lists, tuples and dicts
# ---------------------------------------------------------------------------

def optimizers(w, optim, **kw):
    """One optimizer per parameter leaf of ``w``, nested like ``w``.

    Leaves are floating point arrays and floats; each gets ``optim(**kw)``.
    Lists, tuples (namedtuples too) and dicts are followed; any other leaf
    (integer arrays, strings, None, ...) gets ``None`` and is not trained.

    Arguments:
        w: the model parameters.
        optim: an optimizer class (``SGD``, ``Adam``, ...) or any callable
            returning an :class:`Optimizer`.
        **kw: passed to ``optim`` for every leaf.

    Returns:
        The structure of optimizers.

    Example::

        w = {"W": kt.xavier(10, 784), "b": kt.zeros(10, 1)}
        opts = kt.optimizers(w, kt.Adam, lr=0.001)  # {"W": Adam, "b": Adam}
    """
    if _is_float_array(w) or _is_float_scalar(w):
        return optim(**kw)
    if isinstance(w, Mapping):
        return {k: optimizers(v, optim, **kw) for k, v in w.items()}
    if isinstance(w, tuple):
        items = [optimizers(v, optim, **kw) for v in w]
        if hasattr(w, "_fields"):        # namedtuple
            return type(w)(*items)
        return tuple(items)
    if isinstance(w, list):
        return [optimizers(v, optim, **kw) for v in w]
    return None


def _pairs(w, g, o, path):
    """Yield (container, key, w_leaf, g_leaf, opt, path) for every leaf."""
    if isinstance(o, Optimizer) or o is None:
        yield None, None, w, g, o, path
        return
    if g is None:
        return
    if isinstance(o, Mapping):
        if not isinstance(w, Mapping) or not isinstance(g, Mapping):
            raise TypeError(f"at {path or 'w'}: optimizers are a dict but "
                            f"w is {type(w).__name__} and dw is "
                            f"{type(g).__name__}")
        for k in g:
            if k not in w:
                raise KeyError(f"gradient key {k!r} at {path or 'w'} is not "
                               "a parameter")
            if k not in o:
                raise KeyError(f"no optimizer for key {k!r} at "
                               f"{path or 'w'}")
            sub = f"{path}[{k!r}]"
            for leaf in _pairs(w[k], g[k], o[k], sub):
                if leaf[0] is None:
                    leaf = (w, k) + leaf[2:]
                yield leaf
        return
    if isinstance(o, (list, tuple)):
        if not isinstance(w, (list, tuple)) or isinstance(g, Mapping):
            raise TypeError(f"at {path or 'w'}: optimizers are a "
                            f"{type(o).__name__} but w is "
                            f"{type(w).__name__}")
        g = list(g)
        if not len(w) == len(g) == len(o):
            raise ValueError(f"at {path or 'w'}: lengths differ: w has "
                             f"{len(w)}, dw {len(g)}, opts {len(o)}")
        for i, (wi, gi, oi) in enumerate(zip(w, g, o)):
            sub = f"{path}[{i}]"
            for leaf in _pairs(wi, gi, oi, sub):
                if leaf[0] is None:
                    leaf = (w, i) + leaf[2:]
                yield leaf
        return
    raise TypeError(f"at {path or 'opts'}: expected an Optimizer, list, "
                    f"tuple or dict of them, got {type(o).__name__}")


def _global_norm(leaves):
    total = 0.0
    for _, _, wl, gl, ol, _ in leaves:
        if ol is None or gl is None:
            continue
        n = float(np.linalg.norm(gl)) if _is_array(gl) else abs(float(gl))
        total += n * n
    return math.sqrt(total)


def update(w, dw, opts, gclip=0.0):
    """Update the parameters ``w`` in place from their gradients ``dw``.

    ``w``, ``dw`` and ``opts`` have the same nesting (lists, tuples, dicts;
    ``opts`` as built by :func:`optimizers`), or ``opts`` is a single
    optimizer and ``w`` a single array or float.  Arrays are changed in
    place; a float leaf inside a list or dict is replaced in its container.
    A ``None`` gradient or a ``None`` optimizer leaves that parameter alone;
    for dicts only the keys present in ``dw`` are updated (as in Knet).

    Arguments:
        w: parameters.
        dw: gradients, same structure as ``w``.
        opts: optimizers, same structure as ``w``, or one optimizer.
        gclip: when ``> 0``, first scale all gradients together so that
            their joint L2 norm is at most ``gclip`` (PyTorch's
            ``clip_grad_norm_``); each optimizer's own ``gclip`` applies
            after that, to its own array.

    Returns:
        ``w`` (the same object; for a single float parameter, the new float).

    Example::

        w = [np.ones(3), 2.0]
        opts = kt.optimizers(w, kt.SGD, lr=0.1)
        kt.update(w, [np.ones(3), 1.0], opts)   # w == [[0.9]*3, 1.9]
    """
    gclip = float(gclip)
    if gclip < 0:
        raise ValueError(f"invalid gclip={gclip}")
    leaves = list(_pairs(w, dw, opts, ""))
    for container, _, wl, gl, ol, path in leaves:
        if (isinstance(container, tuple) and _is_float_scalar(wl)
                and ol is not None and gl is not None):
            raise TypeError(
                f"cannot update the float parameter at {path}: it is "
                "inside a tuple; use a list, or a 0-d array")
    scale = 1.0
    if gclip > 0:
        total = _global_norm(leaves)
        if total > gclip:
            scale = gclip / total
    result = w
    for container, key, wl, gl, ol, path in leaves:
        if ol is None or gl is None:
            continue
        if not isinstance(ol, Optimizer):
            raise TypeError(f"at {path or 'w'}: expected an Optimizer, got "
                            f"{type(ol).__name__}")
        new = ol.step(wl, gl, scale)
        if new is not wl:                      # a float leaf
            if container is None:
                result = new
            else:
                container[key] = new
    return result
