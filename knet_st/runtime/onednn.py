"""oneDNN convolutions for float32 NumPy arrays: an optional extra.

:func:`~knet_st.runtime.conv.conv4` and its gradients call this module when
oneDNN's CPU library is installed (``pip install knet_st[onednn]``: the
``onednn-cpu-gomp`` wheel, oneDNN 3.2 with GNU OpenMP threads, puts
``libdnnl.so.3`` in the environment's ``lib``), the arrays are float32 NumPy
arrays, and the environment variable ``KNET_ST_ONEDNN`` is ``on`` (the
default is ``off``: measured on a 2-core Xeon, oneDNN's OpenMP threads and
OpenBLAS's compete with 2 threads, and the NumPy path trains LeNet faster
there, 11.1 s against 14.7 s; with 1 thread oneDNN is faster, 12.5 s against
14.6 s).  Anything else -- no
library, another major version, a library whose CPU engine cannot start (the
``onednn`` wheel of 2026 is built for SYCL and finds no SYCL CPU device
without Intel's OpenCL setup), float64, CuPy, a case oneDNN does not
implement -- takes the NumPy path, which stays the reference in the tests.

The binding is ``ctypes`` over oneDNN's v3 C API (``dnnl.h``): one CPU engine
and one stream, created at the first call, and for every case (direction,
shapes, memory strides, padding, stride) one cached *plan*: the convolution
primitive with data and results in channels-last (NHWC) memory, where this
oneDNN runs its fastest kernels, weights in the layout oneDNN chooses
(``format_tag_any``), and reorder primitives from and to the arrays' own
memory, described by their actual strides, where those differ.  Results are
NHWC, so a conv4 -> relu -> pool -> conv4 chain reorders nothing; pooling
(:func:`pool`, :func:`pool_dx`) runs here for such NHWC arrays.  oneDNN
computes cross-correlation; conv4's mode 0 flips the filter.
"""

import ctypes
import ctypes.util
import os
import sys
import threading

import numpy as np

__all__ = ["available", "version", "enabled", "conv_fwd", "conv_bwd_data", "conv_bwd_weights",
           "pool", "pool_dx", "nhwc_empty", "clear", "OneDNNError"]

_MAJOR = 3
_F32 = 3                  # dnnl_f32
_ANY = 1                  # dnnl_format_tag_any
_CPU = 1                  # dnnl_cpu
_FWD_TRAINING = 64        # dnnl_forward_training
_FWD_INFERENCE = 96       # dnnl_forward_inference
_POOL_ALGS = {"max": 0x1ff, "avg": 0x2ff, "avg_nopad": 0x3ff}   # dnnl_pooling_*
_Q_WORKSPACE = 135        # dnnl_query_workspace_md
_ARG_WORKSPACE = 64
_CONV_DIRECT = 1          # dnnl_convolution_direct
_Q_SRC, _Q_DIFF_SRC, _Q_WEI, _Q_DIFF_WEI, _Q_DST, _Q_DIFF_DST = 129, 130, 131, 132, 133, 134
_ARG_SRC, _ARG_DST, _ARG_WEI = 1, 17, 33
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEI = 129, 145, 161
_ARG_FROM, _ARG_TO = _ARG_SRC, _ARG_DST

_p = ctypes.c_void_p
_Dims = ctypes.c_int64 * 12   # dnnl_dims_t


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint),
                ("gpu_runtime", ctypes.c_uint)]


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _p)]


class OneDNNError(RuntimeError):
    """A oneDNN call returned a status other than success."""


_lock = threading.RLock()
_state = {"tried": False, "lib": None, "engine": None, "stream": None, "version": None,
          "error": None}
_plans = {}               # key -> _Plan
MAX_PLANS = 256


def _candidates():
    """Paths where libdnnl.so.3 may be: the environment's lib folders, then the loader's."""
    out = []
    for prefix in (sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX")):
        path = prefix and os.path.join(prefix, "lib", "libdnnl.so.%d" % _MAJOR)
        if path and path not in out and os.path.exists(path):
            out.append(path)
    found = ctypes.util.find_library("dnnl")
    return out + [found] if found else out


def _open(path):
    """dlopen ``path``, first loading the libraries it needs from its own folder.

    oneDNN's wheels have no run path, so the loader would not find a
    neighbour the system lacks; each one it misses is loaded by full path,
    and then found by its name.  Loaded locally: a rejected library's symbols
    cannot take the place of another's."""
    folder = os.path.dirname(path)
    for _ in range(32):
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            name = str(e).split(":")[0].strip()
            dep = os.path.join(folder, name) if folder else ""
            if not name or os.path.basename(path) == name or not os.path.isfile(dep):
                raise
            _open(dep)
    raise OSError("too many dependencies for %s" % path)


def _open_passive(path):
    """:func:`_open` with OpenMP's idle threads sleeping (``OMP_WAIT_POLICY=PASSIVE``)
    unless the user chose a policy: GNU OpenMP's default spinning after each
    call takes the cores from OpenBLAS's threads and made LeNet's step several
    times slower on 2 shared cores.  libgomp reads the variable when it is
    loaded, so it is set for the load only."""
    if os.environ.get("OMP_WAIT_POLICY") or os.environ.get("GOMP_SPINCOUNT"):
        return _open(path)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return _open(path)
    finally:
        del os.environ["OMP_WAIT_POLICY"]


def _declare(lib):
    st = ctypes.c_int
    sig = {
        "dnnl_engine_create": (st, [ctypes.POINTER(_p), ctypes.c_int, ctypes.c_size_t]),
        "dnnl_stream_create": (st, [ctypes.POINTER(_p), _p, ctypes.c_uint]),
        "dnnl_stream_wait": (st, [_p]),
        "dnnl_memory_desc_create_with_strides": (
            st, [ctypes.POINTER(_p), ctypes.c_int, _Dims, ctypes.c_int, _Dims]),
        "dnnl_memory_desc_create_with_tag": (
            st, [ctypes.POINTER(_p), ctypes.c_int, _Dims, ctypes.c_int, ctypes.c_int]),
        "dnnl_memory_desc_equal": (ctypes.c_int, [_p, _p]),
        "dnnl_memory_desc_get_size": (ctypes.c_size_t, [_p]),
        "dnnl_memory_create": (st, [ctypes.POINTER(_p), _p, _p, _p]),
        "dnnl_memory_set_data_handle": (st, [_p, _p]),
        "dnnl_primitive_desc_query_md": (_p, [_p, ctypes.c_int, ctypes.c_int]),
        "dnnl_primitive_create": (st, [ctypes.POINTER(_p), _p]),
        "dnnl_primitive_execute": (st, [_p, _p, ctypes.c_int, ctypes.POINTER(_ExecArg)]),
        "dnnl_reorder_primitive_desc_create": (st, [ctypes.POINTER(_p), _p, _p, _p, _p, _p]),
        "dnnl_convolution_forward_primitive_desc_create": (
            st, [ctypes.POINTER(_p), _p, ctypes.c_int, ctypes.c_int, _p, _p, _p, _p,
                 _Dims, _Dims, _Dims, _Dims, _p]),
        "dnnl_convolution_backward_data_primitive_desc_create": (
            st, [ctypes.POINTER(_p), _p, ctypes.c_int, _p, _p, _p,
                 _Dims, _Dims, _Dims, _Dims, _p, _p]),
        "dnnl_convolution_backward_weights_primitive_desc_create": (
            st, [ctypes.POINTER(_p), _p, ctypes.c_int, _p, _p, _p, _p,
                 _Dims, _Dims, _Dims, _Dims, _p, _p]),
    }
    sig["dnnl_pooling_forward_primitive_desc_create"] = (
        st, [ctypes.POINTER(_p), _p, ctypes.c_int, ctypes.c_int, _p, _p,
             _Dims, _Dims, _Dims, _Dims, _Dims, _p])
    sig["dnnl_pooling_backward_primitive_desc_create"] = (
        st, [ctypes.POINTER(_p), _p, ctypes.c_int, _p, _p,
             _Dims, _Dims, _Dims, _Dims, _Dims, _p, _p])
    for name in ("dnnl_memory_destroy", "dnnl_memory_desc_destroy", "dnnl_primitive_destroy",
                 "dnnl_primitive_desc_destroy"):
        sig[name] = (st, [_p])
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    lib.dnnl_version.restype = ctypes.POINTER(_Version)
    lib.dnnl_version.argtypes = []


def _load():
    """Load the library and create the engine and stream, once; None if impossible."""
    with _lock:
        if _state["tried"]:
            return _state["lib"]
        _state["tried"] = True
        for path in _candidates():
            try:
                lib = _open_passive(path)
                lib.dnnl_version.restype = ctypes.POINTER(_Version)
                v = lib.dnnl_version().contents
                if v.major != _MAJOR:
                    _state["error"] = "%s is oneDNN %d.%d, not %d.x" % (path, v.major, v.minor,
                                                                         _MAJOR)
                    continue
                _declare(lib)
                engine, stream = _p(), _p()
                _check(lib.dnnl_engine_create(ctypes.byref(engine), _CPU, 0), "engine")
                _check(lib.dnnl_stream_create(ctypes.byref(stream), engine, 0x1), "stream")
            except (OSError, AttributeError, OneDNNError) as e:
                _state["error"] = "%s: %s" % (path, e)
                continue
            _state.update(lib=lib, engine=engine, stream=stream,
                          version="%d.%d.%d" % (v.major, v.minor, v.patch), error=None)
            return lib
        return None


def _check(status, what):
    if status != 0:
        raise OneDNNError("oneDNN %s failed with status %d" % (what, status))


def available():
    """Whether oneDNN's library is loaded (it is loaded at the first call).

    Example::

        from knet_st.runtime import onednn
        onednn.available()      # True with `pip install knet_st[onednn]`
    """
    return _load() is not None


def version():
    """The loaded library's version string (``"3.2.0"``), or None."""
    return _state["version"] if available() else None


def enabled(*arrays):
    """Whether conv4 on these arrays goes to oneDNN: all are float32 NumPy arrays
    of positive size, ``KNET_ST_ONEDNN=on``, and the library loads.

    Example::

        enabled(np.zeros((1, 1, 3, 3), np.float32))     # True where oneDNN is installed
    """
    mode = os.environ.get("KNET_ST_ONEDNN", "off").strip().lower()
    if mode in ("off", "0", "no", "false", ""):
        return False
    if mode not in ("on", "1", "yes", "true"):
        raise ValueError("KNET_ST_ONEDNN=%r: expected on or off" % mode)
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32 or a.size == 0:
            return False
    return available()


# ------------------------------------------------------------------ plans

def _md(shape, strides):
    """A float32 memory descriptor with these dims and element strides; 'any' for None."""
    lib = _state["lib"]
    md = _p()
    dims = _Dims(*shape)
    if strides is None:
        _check(lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(shape), dims, _F32,
                                                    _ANY), "memory desc")
    else:
        _check(lib.dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), dims, _F32, _Dims(*strides)), "memory desc")
    return md


class _Plan:
    """The primitives of one oneDNN call: reorders into the layouts oneDNN
    chose, the convolution, reorders out; the memory objects that are pointed
    at the caller's arrays at each call (``user``, by role); and everything
    the C objects need (buffers, descriptors), destroyed by :meth:`close`."""

    def __init__(self):
        self.steps = []        # (primitive, ExecArg array)
        self.user = {}         # role -> memory object for the caller's array
        self.buffers = []      # NumPy buffers of the intermediate layouts
        self.handles = []      # (destroy function name, handle), destroyed in reverse

    def own(self, kind, handle):
        self.handles.append((kind, handle))
        return handle

    def memory(self, md):
        m = _p()
        _check(_state["lib"].dnnl_memory_create(ctypes.byref(m), md, _state["engine"], None),
               "memory")
        return self.own("dnnl_memory_destroy", m)

    def primitive(self, pd):
        prim = _p()
        _check(_state["lib"].dnnl_primitive_create(ctypes.byref(prim), pd), "primitive")
        return self.own("dnnl_primitive_destroy", prim)

    def scratch(self, md):
        """A memory object on a buffer of the plan's own (64-byte aligned)."""
        size = _state["lib"].dnnl_memory_desc_get_size(md)
        raw = np.empty(size + 64, np.uint8)
        buf = raw[(-raw.ctypes.data) % 64:][:size]
        self.buffers.append(buf)
        mem = self.memory(md)
        _check(_state["lib"].dnnl_memory_set_data_handle(mem, ctypes.c_void_p(buf.ctypes.data)),
               "handle")
        return mem

    def bind(self, role, user_md, chosen_md, is_input, args, arg):
        """Point the convolution's ``arg`` at ``role``'s array; through a reorder
        (returned) when oneDNN chose another layout than the array's."""
        lib, eng = _state["lib"], _state["engine"]
        umem = self.user[role] = self.memory(user_md)
        if lib.dnnl_memory_desc_equal(user_md, chosen_md):
            args.append((arg, umem))
            return None
        imem = self.scratch(chosen_md)
        src, dst = (user_md, chosen_md) if is_input else (chosen_md, user_md)
        pd = _p()
        _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(pd), src, eng, dst, eng, None),
               "reorder")
        self.own("dnnl_primitive_desc_destroy", pd)
        a, b = (umem, imem) if is_input else (imem, umem)
        args.append((arg, imem))
        return (self.primitive(pd), _args([(_ARG_FROM, a), (_ARG_TO, b)]))

    def run(self, arrays):
        """Execute with ``arrays`` (role -> ndarray) as the caller's memory; the
        caller holds the arrays until this returns (after the stream's wait)."""
        lib, stream = _state["lib"], _state["stream"]
        for role, a in arrays.items():
            if role not in self.user:        # not read (average pooling's x)
                continue
            _check(lib.dnnl_memory_set_data_handle(self.user[role], ctypes.c_void_p(a.ctypes.data)),
                   "handle")
        for prim, args in self.steps:
            _check(lib.dnnl_primitive_execute(prim, stream, len(args), args), "execute")
        _check(lib.dnnl_stream_wait(stream), "wait")

    def close(self):
        """Destroy the C objects (the plan is unusable afterwards)."""
        lib = _state["lib"]
        for kind, h in reversed(self.handles):
            getattr(lib, kind)(h)
        self.handles, self.steps, self.user, self.buffers = [], [], {}, []


def _args(pairs):
    arr = (_ExecArg * len(pairs))()
    for i, (k, m) in enumerate(pairs):
        arr[i].arg, arr[i].memory = k, m
    return arr


def _elem_strides(a):
    return tuple(s // a.itemsize for s in a.strides)


def _usable(a):
    """``a`` itself if oneDNN can read its memory (positive, element-aligned
    strides), else a contiguous copy."""
    if all(s > 0 and s % a.itemsize == 0 for s in a.strides):
        return a
    return np.ascontiguousarray(a)


def _new_plan(kind, x, w, y, g):
    """Build the plan for ``kind`` ('fwd', 'bwd_data', 'bwd_weights'); x, w, y
    are the src, weights and dst arrays (or their gradients)."""
    lib, eng = _state["lib"], _state["engine"]
    ph, pw, sh, sw = g
    strides, dil, pad_l = _Dims(sh, sw), _Dims(0, 0), _Dims(ph, pw)
    # oneDNN's right padding makes (H + pl + pr - KH) / sh + 1 == OH exactly
    # (negative when the last rows are dropped)
    pad_r = _Dims((y.shape[2] - 1) * sh + w.shape[2] - x.shape[2] - ph,
                  (y.shape[3] - 1) * sw + w.shape[3] - x.shape[3] - pw)
    plan = _Plan()
    try:
        def md(shape, strides):
            return plan.own("dnnl_memory_desc_destroy", _md(shape, strides))

        user = {r: md(a.shape, _elem_strides(a)) for r, a in (("x", x), ("w", w), ("y", y))}
        mx, mw, my = md(x.shape, _nhwc_md_strides(x.shape)), md(w.shape, None), \
            md(y.shape, _nhwc_md_strides(y.shape))
        fwd = _p()
        _check(lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(fwd), eng, _FWD_TRAINING, _CONV_DIRECT, mx, mw, None, my,
            strides, dil, pad_l, pad_r, None), "convolution forward")
        plan.own("dnnl_primitive_desc_destroy", fwd)
        if kind == "fwd":
            pd = fwd
            roles = (("x", _Q_SRC, True, _ARG_SRC), ("w", _Q_WEI, True, _ARG_WEI),
                     ("y", _Q_DST, False, _ARG_DST))
        elif kind == "bwd_data":
            pd = _p()
            _check(lib.dnnl_convolution_backward_data_primitive_desc_create(
                ctypes.byref(pd), eng, _CONV_DIRECT, mx, mw, my,
                strides, dil, pad_l, pad_r, fwd, None), "convolution backward data")
            plan.own("dnnl_primitive_desc_destroy", pd)
            roles = (("y", _Q_DIFF_DST, True, _ARG_DIFF_DST), ("w", _Q_WEI, True, _ARG_WEI),
                     ("x", _Q_DIFF_SRC, False, _ARG_DIFF_SRC))
        else:
            pd = _p()
            _check(lib.dnnl_convolution_backward_weights_primitive_desc_create(
                ctypes.byref(pd), eng, _CONV_DIRECT, mx, mw, None, my,
                strides, dil, pad_l, pad_r, fwd, None), "convolution backward weights")
            plan.own("dnnl_primitive_desc_destroy", pd)
            roles = (("x", _Q_SRC, True, _ARG_SRC), ("y", _Q_DIFF_DST, True, _ARG_DIFF_DST),
                     ("w", _Q_DIFF_WEI, False, _ARG_DIFF_WEI))
        prim = plan.primitive(pd)
        args, before, after = [], [], []
        for role, q, is_input, arg in roles:
            step = plan.bind(role, user[role], lib.dnnl_primitive_desc_query_md(pd, q, 0),
                             is_input, args, arg)
            if step is not None:
                (before if is_input else after).append(step)
        plan.steps = before + [(prim, _args(args))] + after
    except OneDNNError:
        plan.close()
        raise
    return plan


def _nhwc_md_strides(shape):
    """Element strides of NCHW ``shape`` stored channels-last (NHWC): the layout
    in which oneDNN runs its fastest (brgconv) kernels on this CPU without
    reorders (its blocked layouts measured slower; other strides get reference
    code, many times slower)."""
    n, c, h, w = shape
    return (h * w * c, 1, w * c, c)


def _check_shapes(x, w, y, g):
    """Refuse (ValueError) arrays whose shapes do not make a convolution with
    geometry ``g``, before any of them reaches C code."""
    ok = x.ndim == w.ndim == y.ndim == 4 and len(g) == 4 and min(g[2:]) >= 1 and min(g[:2]) >= 0
    if ok:
        (n, c, h, wd), (o, ci, kh, kw), ph, pw, sh, sw = x.shape, w.shape, *g
        ok = (ci == c and min(n, c, o, kh, kw) >= 1 and h + 2 * ph >= kh and wd + 2 * pw >= kw
              and y.shape == (n, o, 1 + (h + 2 * ph - kh) // sh, 1 + (wd + 2 * pw - kw) // sw))
    if not ok:
        raise ValueError("oneDNN convolution: inconsistent shapes x%s w%s y%s for "
                         "padding/stride %s" % (x.shape, w.shape, y.shape, tuple(g)))


def _run(kind, x, w, y, g):
    """Run convolution ``kind`` on x, w, y (one of them the output); False where
    oneDNN has no implementation for this case (the caller falls back)."""
    _require(x, w, y)
    _check_shapes(x, w, y, g)
    return _execute((kind, tuple(g)), {"x": x, "w": w, "y": y},
                    lambda: _new_plan(kind, x, w, y, g))


def _require(*arrays):
    if _load() is None:
        raise OneDNNError("oneDNN is not available: %s" % (_state["error"] or "no libdnnl.so.3"))
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != np.float32:
            raise TypeError("oneDNN: float32 NumPy arrays only, got %s %s"
                            % (type(a).__name__, getattr(a, "dtype", "")))


def _execute(key, arrays, build):
    """Run the plan cached for ``key`` and the arrays' shapes and strides (built
    by ``build()`` the first time) on ``arrays``; False where oneDNN refused."""
    key = key + tuple((r, a.shape, _elem_strides(a)) for r, a in sorted(arrays.items()))
    with _lock:           # the plans' memory objects are shared: one call at a time
        plan = _plans.get(key, 0)
        if plan == 0:
            try:
                plan = build()
            except OneDNNError as e:
                _state["error"] = str(e)
                plan = None                   # remembered: this case takes the NumPy path
            if len(_plans) >= MAX_PLANS:
                for old in _plans.values():
                    if old is not None:
                        old.close()
                _plans.clear()
            _plans[key] = plan
        if plan is None:
            return False
        plan.run(arrays)
    return True


def nhwc_empty(shape):
    """An uninitialized float32 array of NCHW ``shape`` stored channels-last (NHWC).

    Example::

        nhwc_empty((2, 3, 4, 4)).strides      # (192, 4, 48, 12)
    """
    n, c, h, w = shape
    return np.empty((n, h, w, c), np.float32).transpose(0, 3, 1, 2)


def conv_fwd(w, x, yshape, g):
    """``y = x (*) w``, cross-correlation, for float32 NumPy arrays: x NCHW,
    w OIHW, ``g = (ph, pw, sh, sw)`` (padding, stride), ``yshape`` the output's
    NCHW shape.  Returns ``y`` stored channels-last (NHWC, the layout oneDNN
    reads fastest as the next layer's input), or None where oneDNN has no
    implementation for the case.

    Example::

        y = conv_fwd(w, x, conv_out_shape(w.shape, x.shape), (0, 0, 1, 1))
    """
    x, w = _usable(x), _usable(w)
    y = nhwc_empty(yshape)
    return y if _run("fwd", x, w, y, g) else None


def conv_bwd_data(dy, w, xshape, g):
    """The gradient of a cross-correlation w.r.t. its input (shape ``xshape``),
    stored channels-last (NHWC); None where oneDNN cannot.

    Example::

        dx = conv_bwd_data(dy, w, x.shape, (0, 0, 1, 1))
    """
    dy, w = _usable(dy), _usable(w)
    dx = nhwc_empty(xshape)
    return dx if _run("bwd_data", dx, w, dy, g) else None


def conv_bwd_weights(dy, x, wshape, g):
    """The gradient of a cross-correlation w.r.t. its filter (shape ``wshape``),
    contiguous OIHW; None where oneDNN cannot.

    Example::

        dw = conv_bwd_weights(dy, x, w.shape, (0, 0, 1, 1))
    """
    dy, x = _usable(dy), _usable(x)
    dw = np.empty(wshape, np.float32)
    return dw if _run("bwd_weights", x, dw, dy, g) else None


def clear():
    """Destroy every cached plan (they are built again on demand)."""
    with _lock:
        for plan in _plans.values():
            if plan is not None:
                plan.close()
        _plans.clear()


# ---------------------------------------------------------------- pooling

def _new_pool_plan(kind, arrays, g):
    """Build the plan for ``kind``: 'pool' (x -> y) or 'pool_dx' (x, dy -> dx;
    max pooling runs the forward pass again for its workspace, the argmax)."""
    lib, eng = _state["lib"], _state["engine"]
    kh, kw, ph, pw, sh, sw, alg = g
    x = arrays["x"]
    n, c, h, w = x.shape
    yshape = (n, c, 1 + (h + 2 * ph - kh) // sh, 1 + (w + 2 * pw - kw) // sw)
    dims = _Dims(sh, sw), _Dims(kh, kw), _Dims(0, 0), _Dims(ph, pw), \
        _Dims((yshape[2] - 1) * sh + kh - h - ph, (yshape[3] - 1) * sw + kw - w - pw)
    training = kind == "pool_dx" and alg == "max"
    plan = _Plan()
    try:
        def md(shape, strides):
            return plan.own("dnnl_memory_desc_destroy", _md(shape, strides))

        xmd, ymd = md(x.shape, _elem_strides(x)), md(yshape, _nhwc_md_strides(yshape))
        fwd = _p()
        _check(lib.dnnl_pooling_forward_primitive_desc_create(
            ctypes.byref(fwd), eng, _FWD_TRAINING if kind == "pool_dx" else _FWD_INFERENCE,
            _POOL_ALGS[alg], xmd, ymd, *dims, None), "pooling forward")
        plan.own("dnnl_primitive_desc_destroy", fwd)
        if kind == "pool":
            args = []
            after = plan.bind("y", md(yshape, _elem_strides(arrays["y"])),
                              lib.dnnl_primitive_desc_query_md(fwd, _Q_DST, 0), False, args,
                              _ARG_DST)
            args.append((_ARG_SRC, plan.user.setdefault("x", plan.memory(xmd))))
            plan.steps = [(plan.primitive(fwd), _args(args))] + ([after] if after else [])
            return plan
        bwd = _p()
        dxmd = md(x.shape, _nhwc_md_strides(x.shape))
        _check(lib.dnnl_pooling_backward_primitive_desc_create(
            ctypes.byref(bwd), eng, _POOL_ALGS[alg], dxmd, ymd, *dims, fwd, None),
            "pooling backward")
        plan.own("dnnl_primitive_desc_destroy", bwd)
        args, steps = [], []
        if training:
            ws = plan.scratch(lib.dnnl_primitive_desc_query_md(fwd, _Q_WORKSPACE, 0))
            fargs = [(_ARG_SRC, plan.user.setdefault("x", plan.memory(xmd))),
                     (_ARG_DST, plan.scratch(lib.dnnl_primitive_desc_query_md(fwd, _Q_DST, 0))),
                     (_ARG_WORKSPACE, ws)]
            steps.append((plan.primitive(fwd), _args(fargs)))
            args.append((_ARG_WORKSPACE, ws))
        before = plan.bind("dy", md(yshape, _elem_strides(arrays["dy"])),
                           lib.dnnl_primitive_desc_query_md(bwd, _Q_DIFF_DST, 0), True, args,
                           _ARG_DIFF_DST)
        after = plan.bind("dx", md(x.shape, _elem_strides(arrays["dx"])),
                          lib.dnnl_primitive_desc_query_md(bwd, _Q_DIFF_SRC, 0), False, args,
                          _ARG_DIFF_SRC)
        plan.steps = ([before] if before else []) + steps + \
            [(plan.primitive(bwd), _args(args))] + ([after] if after else [])
    except OneDNNError:
        plan.close()
        raise
    return plan


def _check_pool(x, out, g):
    kh, kw, ph, pw, sh, sw, alg = g
    n, c, h, w = x.shape if x.ndim == 4 else (0, 0, 0, 0)
    ok = (x.ndim == out.ndim == 4 and alg in _POOL_ALGS and min(kh, kw, sh, sw, n, c) >= 1
          and min(ph, pw) >= 0 and h + 2 * ph >= kh and w + 2 * pw >= kw
          and out.shape == (n, c, 1 + (h + 2 * ph - kh) // sh, 1 + (w + 2 * pw - kw) // sw))
    if not ok:
        raise ValueError("oneDNN pooling: inconsistent shapes x%s, y%s for window/padding/"
                         "stride/mode %s" % (x.shape, out.shape, tuple(g)))


def pool(x, g):
    """Pooling of a float32 NCHW array by oneDNN; ``g = (kh, kw, ph, pw, sh, sw,
    mode)``, mode ``'max'``, ``'avg'`` or ``'avg_nopad'`` as in
    :func:`knet_st.runtime.conv.pool`.  Returns ``y`` stored NHWC, or None
    where oneDNN refuses the case.  Meant for NHWC ``x`` (conv4's results
    here); other strides are read too, maybe slowly.

    Example::

        y = pool(x, (2, 2, 0, 0, 2, 2, "max"))
    """
    n, c, h, w = x.shape
    kh, kw, ph, pw, sh, sw, alg = g
    y = nhwc_empty((n, c, 1 + (h + 2 * ph - kh) // sh, 1 + (w + 2 * pw - kw) // sw))
    _require(x)
    _check_pool(x, y, g)
    x = _usable(x)
    ok = _execute(("pool", tuple(g)), {"x": x, "y": y},
                  lambda: _new_pool_plan("pool", {"x": x, "y": y}, g))
    return y if ok else None


def pool_dx(dy, x, g):
    """The gradient of :func:`pool` w.r.t. ``x`` (stored NHWC), or None where
    oneDNN refuses.  Max pooling gives each window's gradient to one maximal
    element, the first in row-major window order (like the NumPy path).

    Example::

        dx = pool_dx(np.ones_like(y), x, (2, 2, 0, 0, 2, 2, "max"))
    """
    dx = nhwc_empty(x.shape)
    _require(dy, x)
    _check_pool(x, dy, g)
    dy, x = _usable(dy), _usable(x)
    arrays = {"x": x, "dy": dy, "dx": dx}
    ok = _execute(("pool_dx", tuple(g)), arrays, lambda: _new_pool_plan("pool_dx", arrays, g))
    return dx if ok else None
