"""The number of threads of the BLAS library that NumPy uses (``--threads``).

NumPy is already imported when the command line is read, so the environment
variables (``OMP_NUM_THREADS``...) come too late; the library's own call is
used instead: through ``threadpoolctl`` when it is installed, else by
finding the OpenBLAS, MKL or BLIS library loaded in the process (Linux).
"""

import ctypes
import os

# (set, get) functions of the libraries, by the names their builds export
_CALLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
    ("bli_thread_set_num_threads", "bli_thread_get_num_threads"),
)
_NAMES = ("openblas", "mkl_rt", "libblis")


def _loaded_libraries():
    """Paths of the BLAS libraries mapped into this process (Linux only)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths
                  if any(n in os.path.basename(p).lower() for n in _NAMES))


def _functions():
    """``(set, get)`` ctypes functions of every loaded BLAS library found."""
    import numpy  # noqa: F401  (loads NumPy's BLAS)
    found = []
    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _CALLS:
            setter = getattr(lib, set_name, None)
            if setter is not None:
                found.append((setter, getattr(lib, get_name, None)))
                break
    return found


def set_blas_threads(n):
    """Makes NumPy's BLAS use ``n`` threads.  Returns ``False`` when no way
    to do it was found (then nothing changed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        threadpool_limits(limits=n, user_api="blas")
        return True
    functions = _functions()
    for setter, _ in functions:
        setter(ctypes.c_int(n))
    return bool(functions)


def blas_threads():
    """The number of threads NumPy's BLAS uses now (``None`` if unknown)."""
    for _, getter in _functions():
        if getter is not None:
            getter.restype = ctypes.c_int
            return int(getter())
    return None
