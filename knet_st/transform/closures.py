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
import copy


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


def function_of(tree, source, globals_, siblings):
    """A Python function standing for the lifted function ``tree`` (its
    enclosing variables are its last parameters), for ``kt.grad`` of a
    function defined inside: it has the lifted signature and the user's
    globals, and carries the tree and :class:`~.parse.Source` that
    :func:`~.parse.parse_function` returns for it instead of reading a file,
    and the other functions lifted with it, which it may call
    (:func:`siblings_of`)."""
    stub = ast.FunctionDef(name=tree.name, args=copy.deepcopy(tree.args), body=[ast.Pass()],
                           decorator_list=[], returns=None, type_comment=None,
                           type_params=[])
    module = ast.fix_missing_locations(ast.Module(body=[ast.copy_location(stub, tree)],
                                                  type_ignores=[]))
    namespace = {}
    exec(compile(module, source.filename, "exec"), globals_, namespace)
    fn = namespace[tree.name]
    fn.__knet_st_tree__ = (copy.deepcopy(tree), source, siblings)
    return fn


def siblings_of(fn):
    """The local functions a function made by :func:`function_of` may call
    (name -> (lifted tree, unit)); none for any other function."""
    given = getattr(fn, "__knet_st_tree__", None)
    return dict(given[2]) if given is not None else {}
