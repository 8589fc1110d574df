"""Parameter initialization: xavier, gaussian, uniform, zeros, ones, seed.

Random values are drawn on the CPU from a ``numpy.random.Generator`` and
then handed to the array module ``xp`` (``numpy`` by default, or ``cupy``),
so a given seed gives the same weights on CPU and GPU.  ``seed(n)`` reseeds
the module's default generator, which every function here (and
``knet_st.minibatch(shuffle=True)``) uses when no ``rng`` is given::

    import knet_st as kt
    kt.seed(1)
    w = [kt.xavier(10, 784), kt.zeros(10, 1)]     # float32, 10x784 and 10x1

Shapes can be given as separate integers, ``xavier(10, 784)``, or as one
tuple, ``xavier((10, 784))``.
"""

import math
import numbers
import operator

import numpy as np

__all__ = ["seed", "xavier", "gaussian", "uniform", "zeros", "ones"]

_default_rng = np.random.default_rng()


def seed(n=None):
    """Reseed the default random generator of knet_st.

    Arguments:
        n: an integer seed, or ``None`` for fresh entropy from the OS.

    Returns:
        The new ``numpy.random.Generator``.

    Example::

        kt.seed(42)
        a = kt.gaussian(3, 3)
        kt.seed(42)
        assert (kt.gaussian(3, 3) == a).all()
    """
    global _default_rng
    _default_rng = np.random.default_rng(n)
    return _default_rng


def get_rng(rng=None):
    """Resolve an ``rng`` argument to a ``numpy.random.Generator``.

    Arguments:
        rng: ``None`` (the default generator set by :func:`seed`), an
            integer seed, or a ``numpy.random.Generator``.

    Example::

        g = get_rng(0)          # a new Generator seeded with 0
    """
    if rng is None:
        return _default_rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a "
                    f"numpy.random.Generator, got {type(rng).__name__}")


def _shape(args):
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        args = tuple(args[0])
    try:
        shape = tuple(operator.index(d) for d in args)
    except TypeError:
        raise TypeError(f"shape must be integers, got {args!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return shape


def _to_xp(a, xp):
    return a if xp is np else xp.asarray(a)


def _float_dtype(dtype):
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating point type, got {dt}")
    return dt


def fans(shape):
    """Fan-in and fan-out of a weight array, computed as Knet's ``xavier``.

    knet_st stores a dense weight as (outputs, inputs) and a convolution
    filter in NCHW layout as (out_channels, in_channels, kh, kw), the
    row-major mirror of Knet's (inputs..., outputs) Julia arrays.  So:

    * 1-D ``(n,)``: fan-in ``n``, fan-out 1;
    * 2-D ``(out, in)``: fan-in ``in``, fan-out ``out``;
    * N-D ``(out, in, k...)``: fan-out ``out`` and fan-in ``in * prod(k)``
      (Knet divides the size by the output count; Caffe differs).

    Arguments:
        shape: a tuple of integers.

    Returns:
        ``(fanin, fanout)``.

    Example::

        fans((20, 1, 5, 5))     # (25, 20)
    """
    shape = tuple(shape)
    if len(shape) == 0:
        raise ValueError("xavier needs at least one dimension")
    if len(shape) == 1:
        return shape[0], 1
    fanout = shape[0]
    fanin = math.prod(shape[1:])
    return fanin, fanout


def xavier(*shape, gain=1.0, dtype=np.float32, xp=np, rng=None):
    """Xavier/Glorot uniform initialization (Knet's ``xavier``).

    Draws from U(-s, s) with ``s = gain * sqrt(6 / (fanin + fanout))``; the
    fans are computed by :func:`fans` (2-D dense weights (out, in), 4-D
    NCHW conv filters (out, in, kh, kw)).

    Arguments:
        *shape: dimensions, as integers or one tuple.
        gain: scale factor (default 1).
        dtype: floating point type (default float32).
        xp: array module for the result (numpy or cupy).
        rng: None (default generator, see :func:`seed`), a seed or a
            ``numpy.random.Generator``.

    Example::

        w1 = xavier(64, 784)          # dense layer 784 -> 64
        k1 = xavier(20, 1, 5, 5)      # 20 conv filters over 1 channel
    """
    shape = _shape(shape)
    dt = _float_dtype(dtype)
    fanin, fanout = fans(shape)
    s = gain * math.sqrt(6.0 / (fanin + fanout)) if fanin + fanout else 0.0
    r = get_rng(rng).random(shape)                 # [0, 1), float64
    a = (r * (2.0 * s) - s).astype(dt)
    return _to_xp(a, xp)


def gaussian(*shape, std=0.01, mean=0.0, dtype=np.float32, xp=np, rng=None):
    """Normally distributed values (Knet's ``gaussian``).

    Arguments:
        *shape: dimensions, as integers or one tuple.
        std: standard deviation (default 0.01).
        mean: mean (default 0).
        dtype: floating point type (default float32).
        xp: array module for the result (numpy or cupy).
        rng: None, a seed or a ``numpy.random.Generator``.

    Example::

        w = gaussian(10, 784, std=0.1)
    """
    shape = _shape(shape)
    dt = _float_dtype(dtype)
    a = get_rng(rng).standard_normal(shape) * std + mean
    return _to_xp(np.asarray(a, dtype=dt), xp)


def uniform(*shape, low=0.0, high=1.0, dtype=np.float32, xp=np, rng=None):
    """Uniformly distributed values in [low, high).

    Arguments:
        *shape: dimensions, as integers or one tuple.
        low, high: the interval (default [0, 1)).
        dtype: floating point type (default float32).
        xp: array module for the result (numpy or cupy).
        rng: None, a seed or a ``numpy.random.Generator``.

    Example::

        w = uniform(10, 5, low=-0.1, high=0.1)
    """
    shape = _shape(shape)
    dt = _float_dtype(dtype)
    if not high >= low:
        raise ValueError(f"need low <= high, got low={low}, high={high}")
    a = get_rng(rng).random(shape) * (high - low) + low
    a = np.asarray(a, dtype=dt)
    if dt != np.float64:
        # rounding to a narrower type may reach `high`; keep it half-open
        np.minimum(a, np.nextafter(dt.type(high), dt.type(low)), out=a)
    return _to_xp(a, xp)


def zeros(*shape, dtype=np.float32, xp=np):
    """An array of zeros, e.g. for biases.

    Arguments:
        *shape: dimensions, as integers or one tuple.
        dtype: element type (default float32).
        xp: array module for the result (numpy or cupy).

    Example::

        b = zeros(10, 1)          # a column bias for 10 outputs
    """
    return xp.zeros(_shape(shape), dtype=dtype)


def ones(*shape, dtype=np.float32, xp=np):
    """An array of ones.

    Arguments:
        *shape: dimensions, as integers or one tuple.
        dtype: element type (default float32).
        xp: array module for the result (numpy or cupy).

    Example::

        g = ones(64, 1)           # e.g. a batchnorm scale
    """
    return xp.ones(_shape(shape), dtype=dtype)
