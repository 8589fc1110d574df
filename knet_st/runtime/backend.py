"""Array backend selection: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every runtime function in :mod:`knet_st.runtime` is written against the
NumPy API and picks its array module with :func:`get_array_module`, so the
same code runs on ``numpy.ndarray`` and on ``cupy.ndarray`` inputs.

CuPy is optional.  This module never imports it at import time: it is
imported lazily by :func:`gpu`, :func:`to_gpu` and :func:`KnetArray`, and
:func:`get_array_module` only looks at ``sys.modules`` (an array cannot be a
CuPy array unless CuPy has already been imported).

Example::

    import numpy as np
    import knet_st as kt

    w = [np.random.randn(10, 784).astype(np.float32), np.zeros((10, 1), np.float32)]
    if kt.gpu():
        w = kt.to_gpu(w)          # a list of cupy arrays
    ...
    w = kt.to_cpu(w)              # back to numpy, e.g. for saving
"""

import sys

import numpy as np

__all__ = ["get_array_module", "gpu", "to_gpu", "to_cpu", "KnetArray",
           "is_cupy_array", "cupy_module"]

_NO_GPU_MESSAGE = (
    "no usable GPU: install cupy for your CUDA version, "
    "`pip install 'knet_st[gpu]'` (cupy-cuda12x) or "
    "`pip install 'knet_st[gpu-cuda13]'` (cupy-cuda13x), on a machine with an "
    "NVIDIA GPU and driver; knet_st.gpu() returns False here")

# None: not probed yet; False: no usable GPU; True: cupy imports and a CUDA
# device answered.  Tests may reset it to None.
_gpu_state = None
_gpu_reason = None


def cupy_module():
    """Return the ``cupy`` module if it is already imported, else ``None``.

    Never imports CuPy: use :func:`gpu` for that.

    Example::

        cp = cupy_module()
        if cp is not None and isinstance(x, cp.ndarray): ...
    """
    return sys.modules.get("cupy")


def is_cupy_array(x):
    """True if ``x`` is a ``cupy.ndarray`` (without importing CuPy).

    Example::

        is_cupy_array(np.zeros(3))   # False
    """
    cp = sys.modules.get("cupy")
    return cp is not None and isinstance(x, cp.ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``.

    Arguments that are not arrays (``None``, Python numbers) are ignored, so
    gradient helpers can pass optional arguments straight through.

    Args:
        *arrays: arrays (NumPy or CuPy), scalars or ``None``.

    Returns:
        The ``numpy`` or ``cupy`` module.

    Example::

        xp = get_array_module(x)
        y = xp.maximum(x, 0)
    """
    cp = sys.modules.get("cupy")
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def _probe_gpu():
    global _gpu_reason
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install
        _gpu_reason = "cupy does not import: %s" % (e,)
        return False
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            _gpu_reason = "no CUDA device found"
            return False
        # A device can be listed and still unusable (driver mismatch,
        # exclusive mode held by another process): touch it once.
        a = cupy.arange(4, dtype=cupy.float32)
        if float((a * 2).sum()) != 12.0:
            _gpu_reason = "CUDA device gave a wrong answer"
            return False
    except Exception as e:
        _gpu_reason = "CUDA device not usable: %s" % (e,)
        return False
    _gpu_reason = None
    return True


def gpu():
    """True if CuPy imports and a CUDA device is usable.

    The first call imports CuPy and runs a tiny computation on device 0; the
    answer is cached for the rest of the process.

    Example::

        atype = kt.to_gpu if kt.gpu() else (lambda a: a)
    """
    global _gpu_state
    if _gpu_state is None:
        _gpu_state = _probe_gpu()
    return _gpu_state


def _require_gpu():
    if not gpu():
        msg = _NO_GPU_MESSAGE
        if _gpu_reason:
            msg += " (%s)" % _gpu_reason
        raise RuntimeError(msg)
    import cupy
    return cupy


def _map_nested(f, x):
    """Apply ``f`` to the leaves of nested lists, tuples and dicts."""
    if isinstance(x, list):
        return [_map_nested(f, v) for v in x]
    if isinstance(x, tuple):
        items = [_map_nested(f, v) for v in x]
        if hasattr(x, "_fields"):          # namedtuple
            return type(x)(*items)
        return type(x)(items) if type(x) is not tuple else tuple(items)
    if isinstance(x, dict):
        out = type(x)() if type(x) is not dict else {}
        for k, v in x.items():
            out[k] = _map_nested(f, v)
        return out
    return f(x)


def to_gpu(x):
    """Copy arrays to the GPU as ``cupy.ndarray``, keeping their dtype.

    ``x`` may be an array or nested lists / tuples / dicts of arrays (a
    model's weights, a minibatch); the structure is rebuilt with every
    ``numpy.ndarray`` replaced by a CuPy array.  CuPy arrays are returned as
    they are; other leaves (numbers, strings, ``None``) pass through.

    Raises:
        RuntimeError: "no usable GPU: install cupy ..." when CuPy or a CUDA
            device is not available.

    Example::

        w = kt.to_gpu([np.zeros((10, 784), np.float32), np.zeros((10, 1), np.float32)])
    """
    cp = _require_gpu()

    def leaf(a):
        if isinstance(a, np.ndarray):
            return cp.asarray(a)
        if isinstance(a, np.generic):
            return cp.asarray(a)
        return a

    return _map_nested(leaf, x)


def to_cpu(x):
    """Copy CuPy arrays back to host memory as ``numpy.ndarray``.

    ``x`` may be an array or nested lists / tuples / dicts of arrays.
    NumPy arrays and other leaves pass through unchanged, so ``to_cpu`` is
    safe to call on data that never left the CPU (and works without CuPy).

    Example::

        np.save("w0.npy", kt.to_cpu(w)[0])
    """
    cp = sys.modules.get("cupy")
    if cp is None:
        return _map_nested(lambda a: a, x)

    def leaf(a):
        if isinstance(a, cp.ndarray):
            return cp.asnumpy(a)
        return a

    return _map_nested(leaf, x)


def KnetArray(x):
    """Knet's name for a GPU array: copy the array ``x`` to the GPU.

    In Knet.jl, ``KnetArray(a)`` moves a Julia ``Array`` to GPU memory; here
    it returns a ``cupy.ndarray`` with ``x``'s values and dtype.  ``x`` may
    be anything ``numpy.asarray`` accepts (an array, a nested list of
    numbers); use :func:`to_gpu` for nested containers of arrays.

    Raises:
        RuntimeError: "no usable GPU: install cupy ..." without a GPU.

    Example::

        xg = kt.KnetArray(np.random.rand(784, 100).astype(np.float32))
    """
    cp = _require_gpu()
    if isinstance(x, cp.ndarray):
        return x
    return cp.asarray(np.asarray(x))
