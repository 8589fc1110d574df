"""Neural-network primitives of the Knet tutorial, with gradient helpers.

Layout: knet_st follows the tutorial's dense layout, *features x instances*
(a minibatch is a matrix whose columns are instances), so class scores are
``(classes, instances)`` and the class axis defaults to ``axis=0``.
Convolutional data is NCHW (see :mod:`knet_st.runtime.conv`); :func:`mat`
turns it into features x instances.

Forward functions and their gradients (for the compiler's adjoint registry;
``y`` is the forward output, ``dy`` the incoming gradient):

=====================================  ==========================================
forward                                gradient
=====================================  ==========================================
``y = sigm(x)``                        ``dx = sigm_dx(dy, y)``
``y = relu(x)``                        ``dx = relu_dx(dy, y)``
``y = numpy.tanh(x)``                  ``dx = tanh_dx(dy, y)``
``y = logp(x, axis)``                  ``dx = logp_dx(dy, y, axis)``
``y = softmax(x, axis)``               ``dx = softmax_dx(dy, y, axis)``
``y = logsumexp(x, axis, keepdims)``   ``dx = logsumexp_dx(dy, y, x, axis, keepdims)``
``y = mat(x)``                         ``dx = mat_dx(dy, x)``
``y = nll(scores, labels, axis, avg)``  ``dscores = nll_dscores(dy, scores, labels, axis, avg)``
``y = dropout(x, p)``                  plain Python: ``x * dropout_mask(x, p)``;
                                       ``dropout_mask`` is not differentiable
``accuracy(scores, labels, axis)``     none (a metric)
=====================================  ==========================================

Training mode
-------------
:func:`dropout` is active only in training mode, as in Knet (where it is
active inside ``@diff``).  Training mode is off by default; switch it with
the :func:`training` context manager (also usable as a decorator), or
:func:`set_training`; :func:`is_training` reads it.  The flag is held in a
``contextvars.ContextVar``, so threads and asyncio tasks each see their own::

    with kt.training():                 # dropout on
        loss_value = loss(w, x, y)
    with kt.training(False):            # dropout off, e.g. inside a training loop
        acc = kt.accuracy(predict(w, xtst), ytst)

Every function here works on NumPy and on CuPy arrays; on CuPy, ``sigm``,
``logp``, ``logsumexp`` and the activation gradients run fused kernels from
:mod:`knet_st.runtime.kernels`.
"""

import contextlib
import contextvars

import numpy as np

from .backend import get_array_module
from .kernels import fused, _reduced_shape

__all__ = ["training", "set_training", "is_training",
           "dropout", "dropout_mask",
           "sigm", "sigm_dx", "relu", "relu_dx", "tanh_dx",
           "logsumexp", "logsumexp_dx", "logp", "logp_dx", "softmax", "softmax_dx",
           "mat", "mat_dx", "nll", "nll_dscores", "accuracy"]


# -------------------------------------------------------------- training mode

_TRAINING = contextvars.ContextVar("knet_st_training", default=False)


def is_training():
    """True inside ``with training():`` (or after ``set_training(True)``).

    Example::

        with kt.training():
            assert kt.is_training()
    """
    return _TRAINING.get()


def set_training(mode=True):
    """Switch training mode on or off for the current thread/context.

    Args:
        mode: ``True`` (dropout active) or ``False``.

    Returns:
        The previous mode, so it can be restored.

    Example::

        old = kt.set_training(True)
        ...
        kt.set_training(old)
    """
    old = _TRAINING.get()
    _TRAINING.set(bool(mode))
    return old


@contextlib.contextmanager
def training(mode=True):
    """Context manager (or decorator) that sets training mode, then restores it.

    Args:
        mode: ``True`` to enable dropout (the default), ``False`` to disable.

    Example::

        with kt.training():
            l = loss(w, x, y)               # dropout active
        @kt.training(False)
        def evaluate(w, data): ...          # dropout never active inside
    """
    token = _TRAINING.set(bool(mode))
    try:
        yield
    finally:
        _TRAINING.reset(token)


# -------------------------------------------------------------------- dropout

def dropout_mask(x, p, training=None, rng=None):
    """The scaled random mask of inverted dropout (not differentiable).

    Each element is ``1/(1-p)`` with probability ``1-p`` and ``0`` with
    probability ``p``, with ``x``'s shape, dtype and array module.  Outside
    training mode (or for ``p == 0``) the mask is the scalar ``1.0``.

    Args:
        x: the array to be masked (its shape, dtype and device are used).
        p: drop probability, ``0 <= p < 1``.
        training: ``None`` (default) follows :func:`is_training`;
            ``True``/``False`` overrides it.
        rng: NumPy arrays: ``None`` (knet_st's default generator, reseeded by
            ``kt.seed``), an int seed or a ``numpy.random.Generator``.  CuPy
            arrays: ``None`` uses CuPy's global generator (``cupy.random.seed``);
            a seed or Generator draws on the host and copies (reproducible).

    Example::

        m = dropout_mask(x, 0.5, training=True)     # values in {0, 2}
    """
    if not 0 <= p < 1:
        raise ValueError("dropout probability must be in [0, 1), got %r" % (p,))
    active = is_training() if training is None else bool(training)
    if not active or p == 0:
        return 1.0
    xp = get_array_module(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    udtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if xp is not np and rng is None:
        u = xp.random.random_sample(x.shape, dtype=udtype)
    else:
        from ..init import get_rng          # the package's default generator
        u = xp.asarray(get_rng(rng).random(x.shape, dtype=udtype))
    return (u >= p).astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout(x, p, training=None, rng=None):
    """Inverted dropout, Knet's ``dropout(x, p)``.

    In training mode (see :func:`training`) each element of ``x`` is zeroed
    with probability ``p`` and the survivors are scaled by ``1/(1-p)``, so the
    expected value is unchanged; otherwise ``x`` passes through (times 1).
    It is written as ordinary code, ``x * dropout_mask(x, p, ...)``, so the
    compiler differentiates it as a multiply: the gradient is exactly
    ``dy * mask``, with the very mask drawn in the forward pass.

    Args:
        x: array.
        p: drop probability in ``[0, 1)``.
        training, rng: see :func:`dropout_mask`.

    Example::

        with kt.training():
            h = kt.dropout(kt.relu(w[0] @ x + w[1]), 0.5)
    """
    mask = dropout_mask(x, p, training, rng)
    return x * mask


# ---------------------------------------------------------------- activations

_sigm = fused("sigm")
_sigm_dx = fused("sigm_dx")
_relu_dx = fused("relu_dx")
_tanh_dx = fused("tanh_dx")
_logsumexp = fused("logsumexp")
_logp = fused("logp")


def sigm(x):
    """Logistic sigmoid ``1/(1+exp(-x))``, Knet's ``sigm``; stable for any ``x``.

    Gradient: ``sigm_dx(dy, y)``.

    Example::

        sigm(np.array([0.0]))      # [0.5]
    """
    return _sigm(x)


def sigm_dx(dy, y):
    """Gradient of ``y = sigm(x)``: ``dy * y * (1 - y)`` (fused on CuPy).

    Example::

        y = sigm(x); dx = sigm_dx(np.ones_like(y), y)
    """
    return _sigm_dx(dy, y)


def relu(x):
    """Rectified linear unit ``max(x, 0)``, Knet's ``relu``.

    Gradient: ``relu_dx(dy, y)`` (zero at ``x == 0``, as in Knet).

    Example::

        relu(np.array([-1.0, 2.0]))    # [0., 2.]
    """
    xp = get_array_module(x)
    return xp.maximum(x, 0)


def relu_dx(dy, y):
    """Gradient of ``y = relu(x)`` from the output: ``dy`` where ``y > 0``, else 0.

    Example::

        y = relu(x); dx = relu_dx(dy, y)
    """
    return _relu_dx(dy, y)


def tanh_dx(dy, y):
    """Gradient of ``y = tanh(x)``: ``dy * (1 - y**2)`` (fused on CuPy).

    Example::

        y = np.tanh(x); dx = tanh_dx(dy, y)
    """
    return _tanh_dx(dy, y)


# ------------------------------------------------------ log-sum-exp, softmax

def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))`` computed without overflow (Knet's ``logsumexp``).

    Args:
        x: array.
        axis: int, tuple of ints, or ``None`` (default: all elements, as
            Knet's ``dims=:``).
        keepdims: keep the reduced axes with length 1.

    Gradient: ``logsumexp_dx(dy, y, x, axis, keepdims)``.

    Example::

        logsumexp(np.array([1000.0, 1000.0]))     # 1000.693...
    """
    return _logsumexp(x, axis=axis, keepdims=keepdims)


def logsumexp_dx(dy, y, x, axis=None, keepdims=False):
    """Gradient of ``y = logsumexp(x, axis, keepdims)``: ``dy * exp(x - y)``.

    ``dy`` and ``y`` have the reduced shape; they are broadcast back over the
    reduced axes.

    Example::

        y = logsumexp(x, 0); dx = logsumexp_dx(np.ones_like(y), y, x, 0)
    """
    xp = get_array_module(dy, y, x)
    if not keepdims:
        shape = _keepdims_shape(x.shape, axis)
        y = xp.reshape(y, shape)
        dy = xp.reshape(dy, shape) if getattr(dy, "ndim", 0) else dy
    return dy * xp.exp(x - y)


def _keepdims_shape(shape, axis):
    if axis is None:
        return (1,) * len(shape)
    ax = axis if isinstance(axis, (tuple, list)) else (axis,)
    ax = {a % len(shape) for a in ax}
    return tuple(1 if k in ax else n for k, n in enumerate(shape))


def logp(x, axis=0):
    """Log-probabilities (log-softmax) along ``axis``, Knet's ``logp``.

    ``logp(x, axis) = x - logsumexp(x, axis, keepdims=True)``; with the
    tutorial's classes x instances scores, ``axis=0`` (the default) is
    Knet's ``logp(x, dims=1)``.

    Gradient: ``logp_dx(dy, y, axis)``.

    Example::

        lp = logp(np.random.randn(10, 100))     # each column sums to 1 in exp
    """
    return _logp(x, axis=axis)


def logp_dx(dy, y, axis=0):
    """Gradient of ``y = logp(x, axis)``: ``dy - exp(y) * sum(dy, axis)``.

    Example::

        y = logp(x); dx = logp_dx(dy, y)
    """
    xp = get_array_module(dy, y)
    return dy - xp.exp(y) * xp.sum(dy, axis=axis, keepdims=True)


def softmax(x, axis=0):
    """Softmax probabilities along ``axis`` (default 0, the class axis).

    Gradient: ``softmax_dx(dy, y, axis)``.

    Example::

        p = softmax(np.random.randn(10, 100))   # columns sum to 1
    """
    xp = get_array_module(x)
    m = xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(x - xp.where(xp.isfinite(m), m, 0))
    return e / xp.sum(e, axis=axis, keepdims=True)


def softmax_dx(dy, y, axis=0):
    """Gradient of ``y = softmax(x, axis)``: ``y * (dy - sum(dy * y, axis))``.

    Example::

        y = softmax(x); dx = softmax_dx(dy, y)
    """
    xp = get_array_module(dy, y)
    return y * (dy - xp.sum(dy * y, axis=axis, keepdims=True))


# ------------------------------------------------------------------------ mat

def mat(x):
    """Flatten NCHW data to features x instances, Knet's ``mat``.

    Knet's ``mat`` keeps the last (instance) axis of a column-major
    ``W x H x C x N`` array and joins the others, giving ``(W*H*C) x N``.
    In knet_st's row-major NCHW layout the instances are axis 0, so
    ``mat(x) = x.reshape(x.shape[0], -1).T``: shape ``(C*H*W, N)``, ready for
    the tutorial's dense layers ``w @ mat(x) .+ b``.  (A 2-D ``(N, F)`` array
    becomes ``(F, N)``.)  The result is a view where possible: of a
    C-contiguous ``x``, and of an ``x`` stored instances-last, as
    ``conv4`` and ``pool`` return them (:mod:`knet_st.runtime.layout`).

    Gradient: ``mat_dx(dy, x)``.

    Example::

        mat(np.zeros((100, 50, 4, 4))).shape     # (800, 100)
    """
    n = x.shape[0]
    if x.ndim < 3 or x.flags.c_contiguous:
        return x.reshape(n, -1).T
    return x.transpose(tuple(range(1, x.ndim)) + (0,)).reshape(-1, n)


def mat_dx(dy, x):
    """Gradient of ``y = mat(x)``: ``dy.T`` reshaped to ``x``'s shape.

    Example::

        y = mat(x); dx = mat_dx(np.ones_like(y), x)
    """
    return dy.T.reshape(x.shape)


# ------------------------------------------------------------ loss, accuracy

def _labels(xp, labels, scores, axis):
    """Integer labels, shaped like ``scores`` without ``axis``."""
    shape = _reduced_shape(scores.shape, axis)
    labels = xp.asarray(labels)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and xp is np and not np.all(labels == np.round(labels)):
            raise ValueError("labels must be integer class indices")
        labels = labels.astype(np.int64)
    if tuple(labels.shape) != shape:
        if labels.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("labels of shape %s do not match scores %s with classes on axis %d"
                             % (tuple(labels.shape), tuple(scores.shape), axis))
        labels = labels.reshape(shape)
    if xp is np and labels.size:
        K = scores.shape[axis]
        lo, hi = labels.min(), labels.max()
        if lo < 0 or hi >= K:
            raise ValueError("labels must be 0-based class indices in [0, %d); got values in "
                             "[%d, %d] (Knet's labels are 1-based: subtract 1)" % (K, lo, hi))
    return labels


def _fast_nll_case(scores, labels, axis):
    """For the common case (NumPy, classes × instances or the transpose, a
    vector of integer labels): the index of the correct scores and the count."""
    if type(scores) is not np.ndarray or type(labels) is not np.ndarray or \
            scores.ndim != 2 or labels.ndim != 1 or labels.dtype.kind not in "iu" or \
            scores.dtype.kind != "f" or axis not in (0, 1, -1, -2):
        return None
    axis %= 2
    n = labels.shape[0]
    if scores.shape[1 - axis] != n:
        return None
    columns = np.arange(n)
    return ((labels, columns) if axis == 0 else (columns, labels)), n


def nll(scores, labels, axis=0, average=True):
    """Negative log-likelihood of the correct classes, Knet's ``nll``.

    Args:
        scores: unnormalized log-probabilities, classes along ``axis``
            (default 0: the tutorial's classes x instances layout).
        labels: integer class indices, **0-based** (Knet's are 1-based),
            shaped like ``scores`` without ``axis`` (any array of that many
            elements is reshaped).
        axis: the class axis.
        average: ``True`` (default): mean over instances; ``False``: sum.

    Returns:
        A 0-d array / NumPy scalar of ``scores``' dtype.
        Gradient: ``nll_dscores(dy, scores, labels, axis, average)``.

    Example::

        scores = w[0] @ x + w[1]                # (10, 100)
        loss = nll(scores, y)                   # y: 100 ints in 0..9
    """
    fast = _fast_nll_case(scores, labels, axis)
    if fast is not None:
        index, n = fast
        if n and (labels.min() < 0 or labels.max() >= scores.shape[axis % 2]):
            _labels(np, labels, scores, axis % 2)      # raises the clear error
        m = scores.max(axis=axis, keepdims=True)
        lse = np.log(np.exp(scores - m).sum(axis=axis, keepdims=True)) + m
        total = lse.sum() - scores[index].sum()
        return total / max(n, 1) if average else total
    xp = get_array_module(scores, labels)
    axis = int(axis) % scores.ndim
    labels = _labels(xp, labels, scores, axis)
    lp = logp(scores, axis=axis)
    picked = xp.take_along_axis(lp, xp.expand_dims(labels, axis), axis=axis)
    total = -xp.sum(picked)
    return total / max(labels.size, 1) if average else total


def nll_dscores(dy, scores, labels, axis=0, average=True):
    """Gradient of ``nll(scores, labels, axis, average)`` w.r.t. ``scores``.

    ``(softmax(scores, axis) - onehot(labels)) * dy``, divided by the
    number of instances when ``average``.

    Example::

        ds = nll_dscores(1.0, scores, y)
    """
    fast = _fast_nll_case(scores, labels, axis)
    if fast is not None:
        index, n = fast
        e = np.exp(scores - scores.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True)
        e[index] -= 1
        e *= dy / max(n, 1) if average else dy
        return e
    xp = get_array_module(dy, scores, labels)
    axis = int(axis) % scores.ndim
    labels = _labels(xp, labels, scores, axis)
    shape = [1] * scores.ndim
    shape[axis] = scores.shape[axis]
    onehot = xp.arange(scores.shape[axis]).reshape(shape) == xp.expand_dims(labels, axis)
    g = softmax(scores, axis=axis) - onehot
    scale = dy / max(labels.size, 1) if average else dy
    g = g * scale
    if scores.dtype.kind == "f":
        g = g.astype(scores.dtype, copy=False)
    return g


def accuracy(scores, labels, axis=0):
    """Fraction of instances whose highest score is the correct class.

    Args:
        scores: class scores, classes along ``axis`` (default 0).
        labels: 0-based integer class indices (see :func:`nll`).

    Returns:
        A Python float in [0, 1].  Not differentiable.

    Example::

        acc = accuracy(predict(w, xtst), ytst)
    """
    xp = get_array_module(scores, labels)
    axis = int(axis) % scores.ndim
    labels = _labels(xp, labels, scores, axis)
    if labels.size == 0:
        return 0.0
    return float(xp.mean(xp.argmax(scores, axis=axis) == labels))
