"""The state of knet_st's optimizers as plain values, for checkpoints.

:func:`checkpoint.save <knet_st.checkpoint.save>` stores an optimizer as
its class name, its hyperparameters (``lr``, ``gamma``, ``beta1``, ...),
its step count (Adam's ``t``) and its state arrays (velocity, moments, ...)
as ordinary checkpoint members; :func:`restore` builds the optimizer back.
Only knet_st's own optimizer classes are accepted, by name, so loading never
runs code named by the file.  Scratch arrays are not saved: they are made
again, like the parameter, on the first step after loading, so the next
update is bit-identical to the one the saved optimizer would have made.
"""

import numbers

from . import optim

# the classes a checkpoint may name
CLASSES = {cls.__name__: cls for cls in (
    optim.SGD, optim.Momentum, optim.Nesterov, optim.Adagrad, optim.Adadelta,
    optim.Rmsprop, optim.Adam)}

# attributes made again on the first step, never saved
_SCRATCH = ("_shape", "_tmp", "_geff")


def is_optimizer(v):
    """True for an :class:`~knet_st.optim.Optimizer` (of any class)."""
    return isinstance(v, optim.Optimizer)


def state(opt):
    """``(class name, {attribute: value})`` of optimizer ``opt``: its
    hyperparameters, step count and state arrays (``None`` before the first
    step).  Raises ``TypeError`` for a class that is not knet_st's own."""
    name = type(opt).__name__
    if CLASSES.get(name) is not type(opt):
        raise TypeError(f"cannot save an optimizer of class {name}: a "
                        f"checkpoint holds knet_st's optimizers "
                        f"({', '.join(CLASSES)})")
    values = {k: v for k, v in vars(opt).items() if k not in _SCRATCH}
    return name, values


def restore(name, values, where="optimizer"):
    """The optimizer of class ``name`` with the attributes ``values`` (as
    :func:`state` gave them).  Raises ``ValueError`` naming ``where`` for an
    unknown class, an unknown attribute or a value of the wrong kind."""
    cls = CLASSES.get(name)
    if cls is None:
        raise ValueError(f"{where}: unknown optimizer class {name!r}")
    opt = cls()
    known = vars(opt)
    for key, value in values.items():
        if key not in known or key in _SCRATCH:
            raise ValueError(f"{where}: {name} has no attribute {key!r}")
        if key.startswith("_s_"):
            if value is not None and not (hasattr(value, "shape")
                                          and hasattr(value, "dtype")):
                raise ValueError(f"{where}: {name}.{key} is not an array")
        elif (isinstance(value, bool)
              or not isinstance(value, numbers.Real)):
            raise ValueError(f"{where}: {name}.{key} is not a number: "
                             f"{value!r}")
        setattr(opt, key, value)
    return opt

