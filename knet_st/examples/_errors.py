"""The errors of the examples that the command line prints as one line."""

import math


class ExampleError(Exception):
    """A problem the user can fix (an option, a file): printed as one message."""


class Diverged(ExampleError):
    """The training loss became nan or infinite."""


def diverged(value, epoch, step):
    """The :class:`Diverged` error for loss ``value`` at ``epoch``, ``step``."""
    where = f"epoch {epoch}, step {step}" if epoch is not None else f"step {step}"
    return Diverged(f"loss is {value} at {where}: try a smaller --lr")


def check_finite(values, epoch):
    """Raises :class:`Diverged` if a number of the reported ``values``
    (``("loss", 29.7)``) is nan or infinite after ``epoch``."""
    for name, v in zip(values[::2], values[1::2]):
        if not math.isfinite(float(v)):
            raise Diverged(f"{name} is {float(v)} after epoch {epoch}: try a "
                           f"smaller --lr")
