"""A function defined inside the differentiated one, passed to a helper.

``apply(lambda v: W @ v, x)``: the lifted function needs ``W``, its enclosing
variable, which ``apply`` does not have.  As CPython passes a closure with its
cells, the call passes the function (a :class:`LocalFunction`, which the
resolve pass gives ``apply``'s parameter ``f`` at transform time, as it gives
``act=np.tanh``) and its enclosing variables as hidden keyword arguments,
``apply(f, x, f__W=W)``.  ``apply`` is transformed with the keyword-only
parameter ``f__W`` added, and its call ``f(v)`` becomes the lifted function's
``lambda1(v, f__W)``.  Gradients flow back through the keyword arguments
like through any other.
"""

import ast


class LocalFunction:
    """A lifted function (``tree``, from ``unit``) used as a value; ``free``
    its enclosing variables, in the order the lifted function takes them."""

    def __init__(self, tree, unit, free):
        self.tree = tree
        self.unit = unit
        self.free = tuple(free)
        self.__name__ = tree.name

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"<local function {self.tree.name}>"


_VALUES = {}


def local_value(tree, unit, free):
    """The one :class:`LocalFunction` of a lifted function tree (the same object
    each time, so that the helpers it is passed to are transformed once)."""
    key = id(tree)
    if key not in _VALUES or _VALUES[key].tree is not tree:
        _VALUES[key] = LocalFunction(tree, unit, free)
    return _VALUES[key]


def hidden_name(param, var):
    """The hidden parameter of a helper that holds ``var`` of the function
    its parameter ``param`` receives."""
    return f"{param}__{var}"


def closure_parameters(tree, functions):
    """Adds the hidden keyword-only parameters of ``tree`` for the local
    functions its parameters receive (``functions``: parameter -> value)."""
    for param, value in functions.items():
        if isinstance(value, LocalFunction):
            for var in value.free:
                tree.args.kwonlyargs.append(ast.arg(hidden_name(param, var)))
                tree.args.kw_defaults.append(None)
    return tree


def environment_names(value, holder):
    """The names holding ``value``'s enclosing variables where it is passed
    on: the variables themselves in the function that defines it (``holder``
    None), the hidden parameters in a helper whose parameter ``holder``
    received it."""
    if holder is None:
        return list(value.free)
    return [hidden_name(holder, v) for v in value.free]
