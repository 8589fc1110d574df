"""Under an MPI launcher, one BLAS thread pool per process would oversubscribe
the cores: P processes each starting as many OpenBLAS threads as there are
cores.  On the project's 2-core machine, ``mpiexec -n 2 knet-st run mlp``
took 14 s per epoch that way against 0.4 s with one thread each.  Before
NumPy is imported, this sets the usual thread variables to the cores per
process on this host, unless the user set any of them.
"""

import os
import sys

numpy_first = False     # set when the variables came after NumPy's import

_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_LOCAL = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")   # MPICH, Open MPI


def local_processes():
    """The number of processes the MPI launcher started on this host (1
    when not launched, or when it does not say)."""
    for var in _LOCAL:
        try:
            return max(1, int(os.environ[var]))
        except (KeyError, ValueError):
            continue
    return 1


def limit_blas_threads():
    """Sets ``OMP/OPENBLAS/MKL_NUM_THREADS`` to ``cores // processes`` on
    this host when an MPI launcher started several processes here and
    none is set; returns the number set, or None."""
    global numpy_first
    n = local_processes()
    if n == 1 or any(v in os.environ for v in _VARS):
        return None
    numpy_first = "numpy" in sys.modules        # too late for NumPy's BLAS
    threads = max(1, (os.cpu_count() or 1) // n)
    for v in _VARS:
        os.environ[v] = str(threads)
    return threads
