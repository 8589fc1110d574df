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

# --- compiler (issue 3) ---
from .api import grad, value_and_grad, source
from .errors import TransformError
from .transform.registry import adjoint, nondifferentiable
# --- runtime (issue 4) ---
# --- training (issue 5) ---
from .optim import SGD, Momentum, Nesterov, Adagrad, Adadelta, Rmsprop, Adam, optimizers, update
from .init import xavier, gaussian, uniform, zeros, ones, seed
from .data import minibatch
from . import datasets
from .checkpoint import save, load
