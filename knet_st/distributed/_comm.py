"""The processes of a data-parallel run and how they talk: MPI (mpi4py) for
NumPy arrays and for setting things up, NCCL (``cupy.cuda.nccl``) for CuPy
arrays, with NCCL's unique id sent over MPI.

A plain process (not started by ``mpiexec``/``srun``) never imports mpi4py:
it is rank 0 of 1 and every collective is a no-op.
"""

import os
import sys

import numpy as np

from .errors import DistributedError

# Variables that MPI launchers set in the processes they start (not Slurm's
# SLURM_NTASKS: a batch script has it, and runs plain Python too).
_LAUNCH_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE",
                "MPI_LOCALNRANKS")
_LAUNCH_OTHER = ("PMI_RANK", "PMI_FD", "PMI_PORT", "PMIX_RANK",
                 "OMPI_COMM_WORLD_RANK", "HYDI_CONTROL_FD")


class World:
    """This process's place in the run: ``rank``, ``size``, the MPI
    communicator (None in a plain process) and, once CuPy arrays were
    reduced, the NCCL communicator."""

    def __init__(self, rank=0, size=1, comm=None, MPI=None):
        self.rank, self.size, self.comm, self.MPI = rank, size, comm, MPI
        self.local_rank, self.local_size = 0, 1
        self.nccl = None
        self.gpu = None

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"


_world = None


def launched_size():
    """The number of processes an MPI launcher says it started, or None
    when this process was not started by one."""
    for var in _LAUNCH_SIZE:
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                continue
    if any(var in os.environ for var in _LAUNCH_OTHER):
        return 0                # launched, size unknown
    return None


def init(gpu=False):
    """Sets up (once) and returns the :class:`World`; see
    :func:`knet_st.distributed.init`."""
    global _world
    if _world is None:
        _world = _make_world()
    if gpu and _world.gpu is None:
        _world.gpu = _select_gpu(_world)
    return _world


def world():
    """The :class:`World`, set up by :func:`init` on first use."""
    return _world if _world is not None else init()


def _make_world():
    size = launched_size()
    if size is None:
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        if size == 1:
            return World()
        what = f"{size} processes" if size else "several processes"
        raise DistributedError(
            f"started by an MPI launcher ({what}) but mpi4py is not "
            "installed: pip install 'knet_st[mpi]'") from None
    except RuntimeError as e:           # mpi4py without an MPI library
        raise DistributedError(f"mpi4py cannot start MPI: {e}") from None
    comm = MPI.COMM_WORLD
    w = World(comm.Get_rank(), comm.Get_size(), comm, MPI)
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=w.rank)
    w.local_rank, w.local_size = local.Get_rank(), local.Get_size()
    local.Free()
    _abort_on_uncaught(w)
    from .. import _mpi_threads as _threads
    if _threads.numpy_first and w.local_rank == 0:
        import warnings
        warnings.warn(
            f"numpy was imported before knet_st: each of the {w.local_size} "
            "processes on this host may run one BLAS thread per core, which "
            "is slow; import knet_st first or set OMP_NUM_THREADS",
            RuntimeWarning, stacklevel=4)
    return w


def _abort_on_uncaught(w):
    """An uncaught exception in one process ends them all (MPI_Abort) after
    its traceback, instead of leaving the others waiting forever in their
    next collective.  Only with several processes."""
    if w.size == 1:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        abort(1)
    sys.excepthook = hook


def abort(status=1):
    """Ends every process of a multi-process run now (MPI_Abort with
    ``status``), after flushing this one's output; does nothing in one
    process, so callers still exit the usual way after it."""
    w = _world
    if w is None or w.size == 1:
        return
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (AttributeError, ValueError, OSError):
            pass
    w.comm.Abort(status)


def _select_gpu(w):
    """Makes GPU ``local_rank`` (modulo the device count) current, before
    any array is allocated; returns its number."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:                   # no CuPy or no driver: --gpu says why
        return -1
    if count == 0:
        return -1
    device = w.local_rank % count
    cupy.cuda.Device(device).use()
    return device


def reset():
    """Forgets the world (tests only: the next call to :func:`init` looks
    at the environment again; MPI itself stays initialized)."""
    global _world
    _world = None


# ---------------------------------------------------------------------------
# collectives on one contiguous buffer
# ---------------------------------------------------------------------------

def is_cupy(a):
    """True for a CuPy array."""
    return type(a).__module__.split(".")[0] == "cupy"


def _nccl(w):
    """The NCCL communicator of the run, created on first use: rank 0 makes
    the unique id, MPI broadcasts it, every rank joins."""
    if w.nccl is None:
        from cupy.cuda import nccl
        import cupy
        if w.local_size > cupy.cuda.runtime.getDeviceCount():
            raise DistributedError(
                f"{w.local_size} processes on this host but only "
                f"{cupy.cuda.runtime.getDeviceCount()} GPUs: NCCL needs one "
                "GPU per process")
        uid = nccl.get_unique_id() if w.rank == 0 else None
        uid = w.comm.bcast(uid, root=0)
        w.nccl = nccl.NcclCommunicator(w.size, uid, w.rank)
    return w.nccl


_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32",
               "float64": "NCCL_FLOAT64", "int32": "NCCL_INT32",
               "int64": "NCCL_INT64", "uint8": "NCCL_UINT8",
               "int8": "NCCL_INT8"}


def _nccl_type(dtype):
    from cupy.cuda import nccl
    name = _NCCL_TYPES.get(np.dtype(dtype).name)
    if name is None:
        raise DistributedError(f"NCCL cannot send arrays of {np.dtype(dtype)}")
    return getattr(nccl, name)


def _has_nccl():
    try:
        from cupy.cuda import nccl
        return nccl.available if hasattr(nccl, "available") else True
    except ImportError:
        return False


class _Event:
    """A NCCL reduction running on the communication stream: ``Wait()``
    makes the current stream wait for it (the host does not block)."""

    def __init__(self, event):
        self.event = event

    def Wait(self):
        import cupy
        cupy.cuda.get_current_stream().wait_event(self.event)

    def Test(self):
        return self.event.done


def _comm_stream(w):
    """The CUDA stream NCCL runs on, apart from the computation, so that a
    bucket's reduction overlaps the kernels that follow it."""
    if getattr(w, "stream", None) is None:
        import cupy
        w.stream = cupy.cuda.Stream(non_blocking=True)
    return w.stream


class _Done:
    """A finished request (NCCL work is ordered on the CUDA stream)."""

    def Wait(self):
        pass

    def Test(self):
        return True


class _Staged:
    """A reduction of a CuPy buffer through host memory (no NCCL)."""

    def __init__(self, w, buf):
        self.buf, self.host = buf, buf.get()
        self.req = w.comm.Iallreduce(w.MPI.IN_PLACE, self.host, op=w.MPI.SUM)

    def Wait(self):
        self.req.Wait()
        self.buf.set(self.host)

    def Test(self):
        return self.req.Test()


def start_allreduce_sum(buf, blocking=False):
    """Starts summing the contiguous array ``buf`` over all processes, in
    place; returns a request whose ``Wait()`` finishes it.  With
    ``blocking`` MPI's ``Allreduce`` runs to the end at once (MPICH's
    blocking algorithms are faster than its non-blocking ones)."""
    w = world()
    if is_cupy(buf):
        if _has_nccl():
            import cupy
            from cupy.cuda import nccl
            comm, stream = _nccl(w), _comm_stream(w)
            stream.wait_event(cupy.cuda.get_current_stream().record())
            comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size,
                           _nccl_type(buf.dtype), nccl.NCCL_SUM, stream.ptr)
            return _Event(stream.record())
        return _Staged(w, buf)
    if blocking:
        w.comm.Allreduce(w.MPI.IN_PLACE, buf, op=w.MPI.SUM)
        return _Done()
    return w.comm.Iallreduce(w.MPI.IN_PLACE, buf, op=w.MPI.SUM)


def broadcast_buffer(buf):
    """Overwrites the contiguous array ``buf`` with rank 0's."""
    w = world()
    if is_cupy(buf):
        if _has_nccl():
            import cupy
            stream = cupy.cuda.get_current_stream().ptr
            _nccl(w).bcast(buf.data.ptr, buf.size, _nccl_type(buf.dtype), 0,
                           stream)
            return
        host = buf.get()
        w.comm.Bcast(host, root=0)
        buf.set(host)
        return
    w.comm.Bcast(buf, root=0)


def broadcast_object(obj):
    """Rank 0's ``obj`` (pickled), on every process."""
    w = world()
    return obj if w.size == 1 else w.comm.bcast(obj, root=0)


def allgather_object(obj):
    """Every process's ``obj``, as a list indexed by rank."""
    w = world()
    return [obj] if w.size == 1 else w.comm.allgather(obj)
