"""Fused elementwise / reduction kernels, each with a NumPy reference.

On the GPU a chain like ``dy * y * (1 - y)`` costs one kernel launch and one
temporary per operator; Knet ships hand-written CUDA kernels for the common
ones.  This module does the same with CuPy (``cupy.ElementwiseKernel`` and
``cupy.RawKernel``), created lazily the first time they are called with CuPy
arrays (this module never imports CuPy by itself).  Each kernel is paired
with a reference function written against the NumPy API; the references are
what runs on NumPy arrays, they also run on CuPy arrays (unfused), and the
tests check the CuPy kernels against them.

:func:`fused` is the entry point::

    f = fused("sigm_dx")
    dx = f(dy, y)          # CuPy kernel for cupy arrays, NumPy code otherwise

Kernels (name: signature -> result):

=================  ==========================================  ========================
``sigm``           ``(x)``                                     ``1/(1+exp(-x))``, stable
``sigm_dx``        ``(dy, y)``  with ``y = sigm(x)``            ``dy*y*(1-y)``
``relu_dx``        ``(dy, y)``  with ``y = relu(x)``            ``dy*(y>0)``
``tanh_dx``        ``(dy, y)``  with ``y = tanh(x)``            ``dy*(1-y*y)``
``lstm``           ``(gates, c_prev)``                          ``(h, c)``
``lstm_dx``        ``(dh, dc, gates, c_prev, c)``               ``(dgates, dc_prev)``
``logsumexp``      ``(x, axis=None, keepdims=False)``           log-sum-exp
``logp``           ``(x, axis=0)``                              ``x - logsumexp(x, axis)``
=================  ==========================================  ========================

LSTM gate block: ``gates`` is the ``(4H, B)`` pre-activation (``W @ [x; h]
+ b`` in the tutorial's hidden x batch layout) with the blocks of H rows in
the order input ``i``, forget ``f``, output ``o``, candidate ``g``;
``c_prev`` is ``(H, B)``::

    i, f, o = sigm(gates[0:H]), sigm(gates[H:2H]), sigm(gates[2H:3H])
    g = tanh(gates[3H:4H])
    c = f * c_prev + i * g
    h = o * tanh(c)

(Knet's charlm example orders its blocks forget, input, output, change;
permute the rows of the weight matrix to use that order.)

The CuPy kernels are untested on this project's CPU-only CI; they are
checked against the references by ``tests/test_kernels.py -m gpu`` on a GPU
machine (``tests/gpu/check.sh``).
"""

import numpy as np

from .backend import get_array_module, is_cupy_array

__all__ = ["fused", "kernel_names",
           "sigm_ref", "sigm_dx_ref", "relu_dx_ref", "tanh_dx_ref",
           "lstm_ref", "lstm_dx_ref", "logsumexp_ref", "logp_ref"]


# ---------------------------------------------------------- NumPy references
# Written against the array API of NumPy, via get_array_module, so that each
# also runs (unfused) on CuPy arrays.

def sigm_ref(x):
    """Logistic sigmoid ``1/(1+exp(-x))``, stable for large ``|x|``.

    Example::

        sigm_ref(np.array([-800.0, 0.0, 800.0]))   # [0., 0.5, 1.]
    """
    xp = get_array_module(x)
    # 1/(1+exp(-x)) in place: exp(-x) may overflow to inf for x << 0, and
    # 1/inf is the right answer (0); relative precision is kept at both ends.
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f" or x.ndim == 0:
        x = xp.asarray(x, dtype=np.result_type(x, 1.0))
        return 1 / (1 + xp.exp(-xp.maximum(x, -80.0))) if x.ndim == 0 else sigm_ref(x)
    y = xp.negative(x)
    if xp is np:
        with np.errstate(over="ignore"):
            np.exp(y, out=y)
    else:
        xp.exp(y, out=y)
    y += 1
    xp.reciprocal(y, out=y)
    return y


def sigm_dx_ref(dy, y):
    """Gradient of ``y = sigm(x)``: ``dy * y * (1 - y)``.

    Example::

        sigm_dx_ref(np.ones(1), np.array([0.5]))    # [0.25]
    """
    return dy * y * (1 - y)


def relu_dx_ref(dy, y):
    """Gradient of ``y = relu(x)`` (from the output): ``dy`` where ``y > 0``, else 0.

    Example::

        relu_dx_ref(np.ones(3), np.array([0.0, 2.0, 0.0]))   # [0., 1., 0.]
    """
    return dy * (y > 0)          # half the time of where(y > 0, dy, 0) on the CPU


def tanh_dx_ref(dy, y):
    """Gradient of ``y = tanh(x)``: ``dy * (1 - y*y)``.

    Example::

        tanh_dx_ref(np.ones(1), np.tanh(np.zeros(1)))     # [1.]
    """
    return dy * (1 - y * y)


def _split4(gates):
    if gates.ndim < 1 or gates.shape[0] % 4:
        raise ValueError("lstm: gates must have 4H rows (axis 0), got shape %s"
                         % (tuple(gates.shape),))
    H = gates.shape[0] // 4
    return gates[:H], gates[H:2 * H], gates[2 * H:3 * H], gates[3 * H:]


def lstm_ref(gates, c_prev):
    """LSTM cell update from the ``(4H, B)`` gate pre-activations.

    Args:
        gates: pre-activations, blocks of H rows in the order i, f, o, g.
        c_prev: previous cell state, ``(H, B)``.

    Returns:
        ``(h, c)``: the new hidden and cell states, each ``(H, B)``.

    Example::

        h, c = lstm_ref(np.zeros((8, 3)), np.zeros((2, 3)))
    """
    xp = get_array_module(gates, c_prev)
    ai, af, ao, ag = _split4(gates)
    i, f, o = sigm_ref(ai), sigm_ref(af), sigm_ref(ao)
    g = xp.tanh(ag)
    c = f * c_prev + i * g
    h = o * xp.tanh(c)
    return h, c


def lstm_dx_ref(dh, dc, gates, c_prev, c):
    """Backward of :func:`lstm_ref`.

    Args:
        dh: gradient w.r.t. ``h`` (``(H, B)``, or ``None`` for zero).
        dc: gradient w.r.t. ``c`` from later time steps (or ``None``).
        gates, c_prev: the forward inputs.
        c: the forward output cell state.

    Returns:
        ``(dgates, dc_prev)`` with the shapes of ``gates`` and ``c_prev``.

    Example::

        dg, dcp = lstm_dx_ref(np.ones((2, 3)), None, g, cp, c)
    """
    xp = get_array_module(dh, dc, gates, c_prev, c)
    ai, af, ao, ag = _split4(gates)
    i, f, o = sigm_ref(ai), sigm_ref(af), sigm_ref(ao)
    g = xp.tanh(ag)
    tc = xp.tanh(c)
    dct = xp.zeros(c.shape, dtype=np.result_type(gates, c)) if dc is None else dc
    if dh is not None:
        dct = dct + dh * o * (1 - tc * tc)
        do = dh * tc
    else:
        do = xp.zeros_like(tc)
    dgates = xp.concatenate([
        dct * g * i * (1 - i),              # d ai
        dct * c_prev * f * (1 - f),         # d af
        do * o * (1 - o),                   # d ao
        dct * i * (1 - g * g),              # d ag
    ], axis=0)
    return dgates, dct * f


def _norm_axis(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        return tuple(sorted(a % ndim for a in axis))
    return int(axis) % ndim


def logsumexp_ref(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))`` without overflow.

    Args:
        x: array.
        axis: int, tuple of ints, or ``None`` (all elements).
        keepdims: keep the reduced axes with size 1.

    Example::

        logsumexp_ref(np.array([1000.0, 1000.0]))   # 1000.6931...
    """
    xp = get_array_module(x)
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)      # all -inf (or an inf): no shift
    if xp is np:
        with np.errstate(divide="ignore"):  # log(0) = -inf is the answer
            s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    else:
        s = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))
    out = s + m
    if not keepdims:
        out = out.reshape(_reduced_shape(x.shape, axis)) if axis is not None else out.reshape(())
    return out


def _reduced_shape(shape, axis):
    ax = _norm_axis(axis, len(shape))
    ax = ax if isinstance(ax, tuple) else (ax,)
    return tuple(n for k, n in enumerate(shape) if k not in ax)


def logp_ref(x, axis=0):
    """Log-probabilities ``x - logsumexp(x, axis, keepdims=True)`` (log-softmax).

    Example::

        np.exp(logp_ref(np.random.randn(10, 5))).sum(axis=0)   # ones
    """
    return x - logsumexp_ref(x, axis=axis, keepdims=True)


_REFERENCES = {
    "sigm": sigm_ref,
    "sigm_dx": sigm_dx_ref,
    "relu_dx": relu_dx_ref,
    "tanh_dx": tanh_dx_ref,
    "lstm": lstm_ref,
    "lstm_dx": lstm_dx_ref,
    "logsumexp": logsumexp_ref,
    "logp": logp_ref,
}


def kernel_names():
    """Names accepted by :func:`fused`.

    Example::

        assert "sigm_dx" in kernel_names()
    """
    return sorted(_REFERENCES)


# -------------------------------------------------------------- CuPy kernels
# Built lazily, once per process, only when called with CuPy arrays.

_cupy_impl = {}


def _ew(name, in_params, out_params, operation):
    import cupy
    return cupy.ElementwiseKernel(in_params, out_params, operation, "knet_st_" + name)


def _build_sigm():
    k = _ew("sigm", "T x", "T y",
            "y = x >= 0 ? T(1) / (T(1) + exp(-x)) : exp(x) / (T(1) + exp(x))")
    return lambda x: k(x)


def _build_sigm_dx():
    k = _ew("sigm_dx", "T dy, T y", "T dx", "dx = dy * y * (T(1) - y)")
    return lambda dy, y: k(dy, y)


def _build_relu_dx():
    k = _ew("relu_dx", "T dy, T y", "T dx", "dx = y > T(0) ? dy : T(0)")
    return lambda dy, y: k(dy, y)


def _build_tanh_dx():
    k = _ew("tanh_dx", "T dy, T y", "T dx", "dx = dy * (T(1) - y * y)")
    return lambda dy, y: k(dy, y)


def _build_lstm():
    import cupy
    k = _ew("lstm", "raw T gates, T c_prev, int64 HB", "T h, T c", """
        const T ai = gates[i], af = gates[i + HB], ao = gates[i + 2 * HB], ag = gates[i + 3 * HB];
        const T ig = T(1) / (T(1) + exp(-ai));
        const T fg = T(1) / (T(1) + exp(-af));
        const T og = T(1) / (T(1) + exp(-ao));
        const T gg = tanh(ag);
        const T cc = fg * c_prev + ig * gg;
        c = cc;
        h = og * tanh(cc);
    """)

    def run(gates, c_prev):
        _split4(gates)
        H = gates.shape[0] // 4
        if tuple(c_prev.shape) != (H,) + tuple(gates.shape[1:]):
            raise ValueError("lstm: c_prev shape %s does not match gates %s"
                             % (tuple(c_prev.shape), tuple(gates.shape)))
        dtype = np.result_type(gates.dtype, c_prev.dtype)
        gates = cupy.ascontiguousarray(gates, dtype=dtype)
        c_prev = cupy.ascontiguousarray(c_prev, dtype=dtype)
        return k(gates, c_prev, c_prev.size)
    return run


def _build_lstm_dx():
    import cupy
    k = _ew("lstm_dx", "raw T gates, T c_prev, T c, T dh, T dc, int64 HB",
            "raw T dgates, T dc_prev", """
        const T ai = gates[i], af = gates[i + HB], ao = gates[i + 2 * HB], ag = gates[i + 3 * HB];
        const T ig = T(1) / (T(1) + exp(-ai));
        const T fg = T(1) / (T(1) + exp(-af));
        const T og = T(1) / (T(1) + exp(-ao));
        const T gg = tanh(ag);
        const T tc = tanh(c);
        const T dct = dc + dh * og * (T(1) - tc * tc);
        dgates[i]          = dct * gg * ig * (T(1) - ig);
        dgates[i + HB]     = dct * c_prev * fg * (T(1) - fg);
        dgates[i + 2 * HB] = dh * tc * og * (T(1) - og);
        dgates[i + 3 * HB] = dct * ig * (T(1) - gg * gg);
        dc_prev = dct * fg;
    """)

    def run(dh, dc, gates, c_prev, c):
        _split4(gates)
        dtype = np.result_type(gates.dtype, c.dtype)
        gates = cupy.ascontiguousarray(gates, dtype=dtype)
        c_prev = cupy.ascontiguousarray(c_prev, dtype=dtype)
        c = cupy.ascontiguousarray(c, dtype=dtype)
        zero = cupy.zeros((), dtype=dtype)
        dh = zero if dh is None else cupy.asarray(dh, dtype=dtype)
        dc = zero if dc is None else cupy.asarray(dc, dtype=dtype)
        dgates = cupy.empty(gates.shape, dtype=dtype)
        dc_prev = cupy.empty(c_prev.shape, dtype=dtype)
        k(gates, c_prev, c, dh, dc, c_prev.size, dgates, dc_prev)
        return dgates, dc_prev
    return run


# One thread per reduced column: x is viewed as (pre, K, post), C-contiguous,
# and the thread for (a, b) walks x[a, :, b] (stride `post`: coalesced across
# threads when reducing over a leading axis, e.g. classes x instances).
_LSE_SRC = r"""
extern "C" __global__ void knet_st_%(name)s_%(T)s(
        const %(T)s* __restrict__ x, %(T)s* __restrict__ out,
        long long pre, long long K, long long post) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= pre * post) return;
    long long a = t / post, b = t - a * post;
    const %(T)s* p = x + a * K * post + b;
    %(T)s m = p[0];                                  /* K >= 1 (host checks) */
    for (long long k = 1; k < K; ++k) { %(T)s v = p[k * post]; m = v > m ? v : m; }
    %(T)s lse;
    if (!(m - m == 0)) {                             /* m is +-inf or nan */
        lse = m;
    } else {
        %(T)s s = 0;
        for (long long k = 0; k < K; ++k) s += exp(p[k * post] - m);
        lse = m + log(s);
    }
%(tail)s
}
"""
_LSE_TAIL = "    out[t] = lse;"
_LOGP_TAIL = ("    %(T)s* q = out + a * K * post + b;\n"
              "    for (long long k = 0; k < K; ++k) q[k * post] = p[k * post] - lse;")


def _raw_reduce(name, tail):
    import cupy
    kernels = {}

    def get(dtype):
        T = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}.get(np.dtype(dtype))
        if T is None:
            return None
        if T not in kernels:
            src = _LSE_SRC % {"name": name, "T": T, "tail": tail % {"T": T}}
            kernels[T] = cupy.RawKernel(src, "knet_st_%s_%s" % (name, T))
        return kernels[T]
    return get


def _launch(kernel, x, out, pre, K, post):
    n = pre * post
    if n == 0:
        return
    block = 256
    grid = (n + block - 1) // block
    kernel((grid,), (block,), (x, out, np.int64(pre), np.int64(K), np.int64(post)))


def _build_logsumexp():
    import cupy
    get = _raw_reduce("logsumexp", _LSE_TAIL)

    def run(x, axis=None, keepdims=False):
        k = get(x.dtype)
        if axis is None or isinstance(axis, (tuple, list)) or k is None or x.ndim == 0:
            return logsumexp_ref(x, axis=axis, keepdims=keepdims)   # unfused
        ax = int(axis) % x.ndim
        x = cupy.ascontiguousarray(x)
        pre = int(np.prod(x.shape[:ax], dtype=np.int64))
        K = x.shape[ax]
        post = int(np.prod(x.shape[ax + 1:], dtype=np.int64))
        out = cupy.empty(x.shape[:ax] + x.shape[ax + 1:], dtype=x.dtype)
        if K == 0:
            out.fill(-np.inf)
        else:
            _launch(k, x, out, pre, K, post)
        return cupy.expand_dims(out, ax) if keepdims else out
    return run


def _build_logp():
    import cupy
    get = _raw_reduce("logp", _LOGP_TAIL)

    def run(x, axis=0):
        k = get(x.dtype)
        if axis is None or isinstance(axis, (tuple, list)) or k is None or x.ndim == 0:
            return logp_ref(x, axis=axis)
        ax = int(axis) % x.ndim
        x = cupy.ascontiguousarray(x)
        pre = int(np.prod(x.shape[:ax], dtype=np.int64))
        K = x.shape[ax]
        post = int(np.prod(x.shape[ax + 1:], dtype=np.int64))
        out = cupy.empty_like(x)
        if x.size:
            _launch(k, x, out, pre, K, post)
        return out
    return run


_BUILDERS = {
    "sigm": _build_sigm,
    "sigm_dx": _build_sigm_dx,
    "relu_dx": _build_relu_dx,
    "tanh_dx": _build_tanh_dx,
    "lstm": _build_lstm,
    "lstm_dx": _build_lstm_dx,
    "logsumexp": _build_logsumexp,
    "logp": _build_logp,
}


def _cupy_kernel(name):
    f = _cupy_impl.get(name)
    if f is None:
        f = _cupy_impl[name] = _BUILDERS[name]()
    return f


_dispatchers = {}


def fused(name):
    """The fused kernel ``name`` as a function of arrays.

    The returned function runs the CuPy kernel when any argument is a CuPy
    array (compiling it on first use) and the NumPy reference otherwise, so
    code written once runs on both.  See the module docstring for the names
    and signatures.

    Raises:
        ValueError: unknown name.

    Example::

        dx = fused("tanh_dx")(dy, y)
        h, c = fused("lstm")(gates, c_prev)
    """
    f = _dispatchers.get(name)
    if f is not None:
        return f
    if name not in _REFERENCES:
        raise ValueError("unknown fused kernel %r; known: %s" % (name, ", ".join(kernel_names())))
    ref = _REFERENCES[name]

    def dispatch(*args, **kwargs):
        for a in args:
            if is_cupy_array(a):
                return _cupy_kernel(name)(*args, **kwargs)
        return ref(*args, **kwargs)

    dispatch.__name__ = "fused_" + name
    dispatch.__doc__ = "Fused %r: CuPy kernel on CuPy arrays, else %s.\n\n%s" % (
        name, ref.__name__, ref.__doc__ or "")
    dispatch.reference = ref
    _dispatchers[name] = dispatch
    return dispatch
