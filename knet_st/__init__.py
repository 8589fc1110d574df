"""knet_st: Knet's tutorial in Python, with gradients by source transformation.

A model is plain Python and NumPy.  ``kt.grad(loss)`` reads ``loss``'s source,
writes a forward and a backward function, compiles and caches them::

    import numpy as np
    import knet_st as kt

    def loss(w, x, y):
        return np.sum((y - (w[0] @ x + w[1])) ** 2) / y.shape[1]

    dw = kt.grad(loss)(w, x, y)
    print(kt.source(kt.grad(loss)))
"""

__version__ = "0.1.0"

# before NumPy: under mpiexec, BLAS threads per process, not per core (issue 16)
from ._mpi_threads import limit_blas_threads as _limit
_limit()

# --- compiler (issue 3) ---
from .api import grad, value_and_grad, source
from .higher import jvp, hvp, hessian
from .errors import TransformError
from .transform.registry import adjoint, nondifferentiable
# --- runtime (issue 4) ---
from .runtime.backend import gpu, to_gpu, to_cpu, KnetArray
from .runtime.conv import conv4, pool
from .runtime.nn import (dropout, nll, accuracy, logp, logsumexp, softmax, sigm, relu, mat,
                         training, set_training, is_training)
from .runtime.memory import set_pool, pool_stats
# --- training (issue 5) ---
from .optim import SGD, Momentum, Nesterov, Adagrad, Adadelta, Rmsprop, Adam, optimizers, update
from .init import xavier, gaussian, uniform, zeros, ones, seed
from .data import minibatch
from . import datasets
from .checkpoint import save, load
# --- data-parallel training (issue 16) ---
from . import distributed
