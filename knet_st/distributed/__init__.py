"""Data-parallel training over processes and machines: MPI (mpi4py) on the
CPU, NCCL (``cupy.cuda.nccl``) for CuPy arrays.

Every process holds the whole model, reads its own slice of each global
batch, and the gradients are averaged before each update, so P processes
take the same steps as one process on the same global batches::

    import knet_st as kt
    from knet_st import distributed as dist

    rank, size = dist.init()               # (0, 1) in a plain process
    w = dist.broadcast(init_weights())      # everyone starts from rank 0's
    opts = kt.optimizers(w, kt.SGD, lr=0.1)
    for x, y in kt.minibatch(xtrn, ytrn, 100, shard=True):   # 100 in all
        dw = lossgradient(w, x, y)
        dist.update(w, dw, opts)           # allreduce_mean(dw), then kt.update
    if rank == 0:
        kt.save("model.npz", w=w)

Run it with ``mpiexec -n 4 python train.py``; install the engine with
``pip install 'knet_st[mpi]'`` (mpi4py and the MPICH wheel).  In a plain
process nothing here imports mpi4py and every call is free.
"""

from . import _comm
from ._buckets import DEFAULT_BUCKET_BYTES, Pending, Reducer, Stream
from ._tree import collect, is_array, replace
from .errors import DistributedError
from .train import update, shard, shard_range

__all__ = ["init", "rank", "size", "is_root", "abort", "barrier", "broadcast",
           "allreduce_mean", "update", "shard", "shard_range", "Reducer",
           "Pending", "Stream", "DistributedError", "DEFAULT_BUCKET_BYTES"]

_reducer = None


def init(gpu=False):
    """Joins the run this process was started in and returns ``(rank,
    size)``.

    Under ``mpiexec``/``srun`` (an MPI launcher's variables in the
    environment) it initializes MPI through mpi4py; in a plain process it is
    a no-op returning ``(0, 1)`` and mpi4py is not imported.  With ``gpu``
    each process makes its own GPU current (its rank on the host, modulo
    the number of GPUs), before any CuPy array exists.  Calling it again
    returns the same answer.  Raises :class:`DistributedError` when a
    launcher started several processes but mpi4py is not installed.

    Example::

        rank, size = kt.distributed.init()
    """
    w = _comm.init(gpu=gpu)
    return w.rank, w.size


def rank():
    """This process's rank, 0 to ``size() - 1`` (calls :func:`init`)."""
    return _comm.world().rank


def size():
    """The number of processes in the run (1 in a plain process)."""
    return _comm.world().size


def is_root():
    """True on rank 0, the process that prints, plots and saves."""
    return _comm.world().rank == 0


def abort(status=1):
    """Ends every process of the run (MPI_Abort), so that none waits forever
    for one that failed; a no-op in one process.  An uncaught exception
    does this by itself once :func:`init` found several processes.

    Example::

        except ValueError as e:
            print(e); kt.distributed.abort(1); raise SystemExit(1)
    """
    _comm.abort(status)


def barrier():
    """Waits until every process got here (nothing in one process)."""
    w = _comm.world()
    if w.size > 1:
        w.comm.Barrier()


def broadcast(w):
    """Rank 0's values of ``w`` on every process, in place; returns ``w``.

    ``w`` is any nesting of lists, tuples and dicts whose leaves are arrays
    (NumPy or CuPy, any dtype: overwritten in place) or other values such
    as floats and ints (replaced in their list or dict; a tuple holding one
    is rebuilt, so use the returned structure).  The structure, shapes and
    dtypes must be the same everywhere; if they are not, every process
    raises :class:`DistributedError` instead of hanging.

    Example::

        w = kt.distributed.broadcast(init_weights())
    """
    world = _comm.world()
    if world.size == 1:
        return w
    arrays = collect(w, is_array)
    others = collect(w, lambda x: not is_array(x))
    from ._tree import describe
    sig = describe(arrays)
    root_sig = _comm.broadcast_object(sig)
    if root_sig != sig:
        raise DistributedError(
            f"broadcast: process {world.rank}'s structure differs from rank "
            f"0's ({len(arrays)} arrays against {len(root_sig)}, or other "
            "shapes or dtypes)")
    for a in arrays:
        if a.flags.c_contiguous:
            _comm.broadcast_buffer(a)
        else:
            tmp = a.copy()                    # C-contiguous
            _comm.broadcast_buffer(tmp)
            a[...] = tmp
    values = _comm.broadcast_object(others)
    return replace(w, lambda x: not is_array(x), values)


def reducer():
    """The :class:`Reducer` that :func:`allreduce_mean` and :func:`update`
    use (buckets of ``DEFAULT_BUCKET_BYTES``); its ``messages`` and
    ``bytes`` count what was sent."""
    global _reducer
    if _reducer is None:
        _reducer = Reducer()
    return _reducer


def allreduce_mean(dw, weight=None):
    """Replaces the gradients ``dw`` by their mean over the processes, in
    place, and returns ``dw``.

    ``dw`` is nested like the parameters (lists, tuples, dicts); its float
    arrays are averaged in place, float leaves replaced (a tuple holding
    one is rebuilt: use the returned value); ``None`` and other leaves are
    left alone.  The arrays travel in a few large flat buffers (buckets of
    ``DEFAULT_BUCKET_BYTES``, by dtype and device), not one message each:
    MPI ``Iallreduce`` for NumPy, NCCL for CuPy.  With ``weight`` (this
    process's instance count) the result is ``sum(weight_r * dw_r) /
    sum(weight_r)``, exact for batches that split unevenly.  In one process
    it returns ``dw`` untouched (with or without ``weight``).

    Example::

        dw = kt.distributed.allreduce_mean(lossgradient(w, x, y))
    """
    if _comm.world().size == 1:
        return dw
    return reducer().allreduce_mean(dw, weight)
