"""The error of :mod:`knet_st.distributed`."""


class DistributedError(ValueError):
    """A data-parallel run that cannot work as asked (MPI missing under
    ``mpiexec``, a batch that does not split over the processes, models
    that differ between processes...): printed as one message."""
