"""Walking nested parameters and gradients: lists, tuples (namedtuples too)
and dicts of arrays and scalars, in the order :mod:`knet_st.optim` walks
them (list and tuple positions, then dict keys in insertion order).

One walker serves every operation: :func:`walk` calls ``visit(leaf)`` for
each leaf and puts what it returns back in the structure.  Lists and dicts
are changed in place; a tuple whose item changed is rebuilt (tuples cannot
change), so callers use the returned structure.
"""

from collections.abc import Mapping, MutableMapping

import numpy as np

from .errors import DistributedError


def is_array(x):
    """True for NumPy-like arrays (ndarray, cupy.ndarray...), not scalars."""
    return (hasattr(x, "shape") and hasattr(x, "dtype")
            and not isinstance(x, np.generic))


def is_float_scalar(x):
    """True for Python and NumPy floats (not bools, not ints)."""
    return isinstance(x, (float, np.floating)) and not isinstance(x, bool)


def is_float_array(x):
    """True for arrays of a floating (or complex) dtype."""
    return is_array(x) and np.dtype(x.dtype).kind in "fc"


def walk(tree, visit, path=""):
    """``tree`` with every leaf ``x`` replaced by ``visit(x, path)``.

    Lists and dicts are modified in place (only where the leaf changed);
    tuples are rebuilt when one of their items changed.  Returns the tree
    (the same object unless it is a leaf or a rebuilt tuple)."""
    if isinstance(tree, Mapping):
        for k in list(tree):
            old = tree[k]
            new = walk(old, visit, f"{path}[{k!r}]")
            if new is not old:
                if not isinstance(tree, MutableMapping):
                    raise DistributedError(
                        f"cannot replace {path or 'w'}[{k!r}]: "
                        f"{type(tree).__name__} is read-only")
                tree[k] = new
        return tree
    if isinstance(tree, list):
        for i, old in enumerate(tree):
            new = walk(old, visit, f"{path}[{i}]")
            if new is not old:
                tree[i] = new
        return tree
    if isinstance(tree, tuple):
        items = [walk(v, visit, f"{path}[{i}]") for i, v in enumerate(tree)]
        if all(a is b for a, b in zip(items, tree)):
            return tree
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    return visit(tree, path)


def collect(tree, keep):
    """The leaves ``x`` of ``tree`` with ``keep(x)``, in walking order."""
    found = []

    def visit(x, path):
        if keep(x):
            found.append(x)
        return x

    walk(tree, visit)
    return found


def paths(tree, keep, prefix=()):
    """The paths (tuples of list positions and dict keys from the root) of
    the leaves with ``keep(x)``, in walking order."""
    if isinstance(tree, Mapping):
        return [p for k in tree for p in paths(tree[k], keep, prefix + (k,))]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in paths(v, keep, prefix + (i,))]
    return [prefix] if keep(tree) else []


def replace(tree, keep, values):
    """``tree`` with the leaves selected by ``keep`` (as :func:`collect`
    found them) replaced by ``values``, in order; arrays given for array
    leaves are copied into them in place."""
    it = iter(values)

    def visit(x, path):
        if not keep(x):
            return x
        v = next(it)
        if v is x:
            return x
        if is_array(x):
            x[...] = v
            return x
        return v

    return walk(tree, visit)


def describe(leaves):
    """A short, comparable signature of a list of leaves: kind, shape and
    dtype of each, for checking that every process holds the same model."""
    out = []
    for x in leaves:
        if is_array(x):
            out.append((type(x).__module__.split(".")[0], tuple(x.shape),
                        np.dtype(x.dtype).str))
        else:
            out.append((type(x).__name__,))
    return tuple(out)
