"""Lists and tuples that carry gradients: concatenation (``a + b``), repetition
(``[x] * n``) and copies (``list(xs)``), with the helpers of their adjoints.
A sequence's adjoint is a dict ``{position: adjoint}`` (missing: zero)."""

from .gradients import add, as_container


def seq_concat(a, b):
    """``a + b`` of two lists or tuples."""
    return a + b


def seq_repeat(a, n):
    """``a * n`` of a list or tuple."""
    return a * n


def seq_part(g, start, stop):
    """The adjoint of ``seq[start:stop]`` taken from the adjoint ``g`` of ``seq``,
    renumbered from 0."""
    g = as_container(g)
    if g is None:
        return None
    return {i - start: v for i, v in g.items() if start <= i < stop}


def seq_fold(g, n):
    """The adjoint of ``a`` from the adjoint ``g`` of ``a * k`` (``len(a) == n``):
    the copies' adjoints added up."""
    g = as_container(g)
    if g is None:
        return None
    out = {}
    for i, v in g.items():
        out[i % n] = add(out.get(i % n), v)
    return out


def seq_copy(xs):
    """The adjoint of ``list(xs)`` or ``tuple(xs)`` (the same positions)."""
    return as_container(xs)


def dict_get(d, key, default=None):
    """``d.get(key, default)``, as a function."""
    return d.get(key, default)


def dict_get_grad(g, d, key):
    """The adjoint of ``d`` in ``d.get(key, default)``: ``g`` at ``key`` when
    ``d`` has it."""
    return {key: g} if key in d and g is not None else None


def default_grad(g, d, key):
    """The adjoint of ``default`` in ``d.get(key, default)``."""
    return None if key in d else g
