"""The Knet tutorial's models as runnable examples.

Each module has the model code of the tutorial (``predict``, ``loss``,
``lossgradient``, ``train``) and a ``main(argv=None)`` for the command line::

    knet-st list
    knet-st run housing
    knet-st run mnist --model mlp --epochs 10
    python -m knet_st.examples.lenet --help

The same files are at the top of the source tree as ``examples/*.py``.
"""

import importlib

# name: (module, the options it fixes, one-line description)
EXAMPLES = {
    "housing": ("housing", {}, "linear regression on the UCI Boston housing data "
                "(loss 591 at the start; tutorial: 366.0 after the first step, "
                "29.6 after the tenth)"),
    "mnist": ("mnist", {}, "MNIST classifier, --model softmax (default) or mlp"),
    "softmax": ("mnist", {"model": "softmax"}, "mnist --model softmax: softmax "
                "classifier (tutorial: 91.5% test accuracy after 10 epochs)"),
    "mlp": ("mnist", {"model": "mlp"}, "mnist --model mlp: one hidden layer of 64 "
            "relu units (tutorial: 97.4% after 10 epochs)"),
    "lenet": ("lenet", {}, "LeNet convolutional network on MNIST "
              "(tutorial: 97.1% after 1 epoch, 98.8% after 10)"),
    "charlm": ("charlm", {}, "character-level LSTM language model on Hiawatha "
               "or Shakespeare; --generate N samples text"),
}


def names():
    """The names ``knet-st run`` accepts."""
    return list(EXAMPLES)


def module(name):
    """The module of example ``name`` (``KeyError`` if there is none)."""
    modname, _, _ = EXAMPLES[name]
    return importlib.import_module(f"{__name__}.{modname}")


def main(name, argv=None, prog=None):
    """Runs example ``name`` with the command-line arguments ``argv``."""
    _, fixed, _ = EXAMPLES[name]
    if fixed:
        return module(name).main(list(argv or []), prog=prog, fixed=fixed)
    return module(name).main(list(argv or []), prog=prog)
