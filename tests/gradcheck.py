"""Finite-difference checking of ``kt.grad`` gradients.

``check_grad(f, args, wrt)`` computes ``kt.grad(f, wrt)(*args)`` and compares
it, leaf by leaf over nested lists/tuples/dicts, with central finite
differences of ``f`` evaluated in float64.  It also checks that the gradient
mirrors the parameter: same containers (type, length, keys), arrays of the
parameter's shape and dtype, Python numbers for Python-number leaves.

Every evaluation of ``f`` (the gradient's and each finite difference) gets
its own deep copy of ``args``, so a function that mutates its arguments (the
tutorial's LSTM state list) cannot corrupt the point of evaluation.
"""

import copy
import numbers

import numpy as np

import knet_st as kt

EPS = 1e-6
FULL_LIMIT = 40          # arrays up to this size: one difference per element
DIRECTIONS = 6           # larger arrays: this many random directions


# ---------------------------------------------------------------- tree helpers

def _is_array(x):
    return isinstance(x, np.ndarray)


def leaves(tree, path=()):
    """``(path, leaf)`` pairs of a nested list/tuple/dict, in order."""
    if isinstance(tree, dict):
        for k in tree:
            yield from leaves(tree[k], path + (k,))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from leaves(v, path + (i,))
    else:
        yield path, tree


def get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def set_path(tree, path, value):
    """Sets a leaf, rebuilding tuples on the way (returns the new tree)."""
    if not path:
        return value
    k, rest = path[0], path[1:]
    if isinstance(tree, tuple):
        items = list(tree)
        items[k] = set_path(items[k], rest, value)
        return type(tree)(items) if type(tree) is tuple else type(tree)(*items)
    tree[k] = set_path(tree[k], rest, value)
    return tree


def to_float64(tree):
    """A deep copy with every floating array (and float leaf) in float64."""
    if isinstance(tree, dict):
        return {k: to_float64(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_float64(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(to_float64(v) for v in tree)
    if _is_array(tree):
        if np.issubdtype(tree.dtype, np.floating):
            return tree.astype(np.float64)
        return tree.copy()
    return copy.deepcopy(tree)


def is_differentiable_leaf(x):
    if _is_array(x):
        return np.issubdtype(x.dtype, np.floating)
    return isinstance(x, float)


# ------------------------------------------------------------------ structure

def check_structure(g, x, where="grad"):
    """Asserts that the gradient ``g`` mirrors the parameter ``x``."""
    if isinstance(x, dict):
        assert isinstance(g, dict), f"{where}: expected a dict, got {type(g).__name__}"
        assert list(g.keys()) == list(x.keys()), \
            f"{where}: keys {list(g.keys())} != {list(x.keys())}"
        for k in x:
            check_structure(g[k], x[k], f"{where}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        assert type(g) is type(x), \
            f"{where}: expected a {type(x).__name__}, got {type(g).__name__}"
        assert len(g) == len(x), f"{where}: length {len(g)} != {len(x)}"
        for i, (gi, xi) in enumerate(zip(g, x)):
            check_structure(gi, xi, f"{where}[{i}]")
    elif _is_array(x):
        assert g is not None, f"{where}: gradient is None"
        assert _is_array(g), f"{where}: expected an ndarray, got {type(g).__name__}"
        assert g.shape == x.shape, f"{where}: shape {g.shape} != {x.shape}"
        assert g.dtype == x.dtype, f"{where}: dtype {g.dtype} != {x.dtype}"
    elif isinstance(x, float):
        assert g is not None, f"{where}: gradient is None"
        assert isinstance(g, numbers.Real) and np.ndim(g) == 0, \
            f"{where}: expected a real number, got {type(g).__name__}"


# --------------------------------------------------------- finite differences

def numgrad(f, x, eps=EPS):
    """Central finite differences of the scalar ``f()`` w.r.t. the array
    ``x``, element by element (``x`` is modified in place, then restored)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        k = it.multi_index
        old = x[k]
        x[k] = old + eps
        fp = f()
        x[k] = old - eps
        fm = f()
        x[k] = old
        g[k] = (fp - fm) / (2 * eps)
    return g


def _call(f, args):
    out = f(*copy.deepcopy(args))
    out = np.asarray(out)
    assert out.ndim == 0, f"f must return a scalar, got shape {out.shape}"
    return float(out)


def numeric_grad(f, args, wrt=0, eps=EPS, rng=None):
    """Central differences of ``f`` at float64 ``args`` for parameter(s) ``wrt``.

    Returns ``{(argnum, path): (kind, data)}`` where kind is ``"full"`` (data is
    an array of partial derivatives, or a float) or ``"dirs"`` (data is a list
    of ``(direction, directional derivative)``)."""
    rng = np.random.default_rng(0) if rng is None else rng
    base = to_float64(list(args))
    wrts = (wrt,) if isinstance(wrt, int) else tuple(wrt)
    result = {}
    for w in wrts:
        for path, leaf in leaves(base[w]):
            if not is_differentiable_leaf(leaf):
                continue
            key = (w, path)

            def evaluate(delta):
                shifted = copy.deepcopy(base)
                value = get_path(shifted[w], path)
                shifted[w] = set_path(shifted[w], path, value + delta)
                return _call(f, shifted)

            if isinstance(leaf, float):
                result[key] = ("full", (evaluate(eps) - evaluate(-eps)) / (2 * eps))
            elif leaf.size <= FULL_LIMIT:
                out = np.zeros(leaf.shape)
                for idx in np.ndindex(*leaf.shape):
                    e = np.zeros(leaf.shape)
                    e[idx] = eps
                    out[idx] = (evaluate(e) - evaluate(-e)) / (2 * eps)
                result[key] = ("full", out)
            else:
                dirs = []
                for _ in range(DIRECTIONS):
                    v = rng.standard_normal(leaf.shape)
                    v /= np.linalg.norm(v)
                    dirs.append((v, (evaluate(eps * v) - evaluate(-eps * v)) / (2 * eps)))
                result[key] = ("dirs", dirs)
    return result


def _tolerances(leaf, rtol, atol):
    if _is_array(leaf) and leaf.dtype == np.float32:
        return max(rtol, 2e-3), max(atol, 1e-4)
    return rtol, atol


def compare(grads, args, numeric, wrt=0, rtol=1e-5, atol=1e-7):
    """Asserts that analytic ``grads`` (as ``kt.grad`` returns them) match ``numeric``."""
    wrts = (wrt,) if isinstance(wrt, int) else tuple(wrt)
    grads = (grads,) if isinstance(wrt, int) else grads
    for (w, path), (kind, data) in numeric.items():
        g = get_path(grads[wrts.index(w)], path)
        leaf = get_path(args[w], path)
        r, a = _tolerances(leaf, rtol, atol)
        name = f"argument {w}, leaf {list(path)}"
        g64 = np.asarray(g, dtype=np.float64)
        if kind == "full":
            ok = np.allclose(g64, data, rtol=r, atol=a)
            assert ok, (f"{name}: gradient differs from finite differences\n"
                        f"kt.grad:\n{g64}\nnumeric:\n{np.asarray(data)}\n"
                        f"max abs error {np.max(np.abs(g64 - data)):.3g}")
        else:
            for v, dd in data:
                got = float(np.sum(g64 * v))
                assert abs(got - dd) <= a + r * abs(dd) + a * np.sqrt(v.size), \
                    (f"{name}: directional derivative {got!r} != numeric {dd!r}")


def check_grad(f, args, wrt=0, rtol=1e-5, atol=1e-7, eps=EPS):
    """Checks ``kt.grad(f, wrt)(*args)`` against central finite differences.

    Also checks that ``kt.value_and_grad`` returns ``f``'s value and the same
    gradient.  Returns the gradient (for further assertions)."""
    args = list(args)
    grads = kt.grad(f, wrt=wrt)(*copy.deepcopy(args))
    value, grads2 = kt.value_and_grad(f, wrt=wrt)(*copy.deepcopy(args))
    expected = f(*copy.deepcopy(args))
    low = any(_is_array(leaf) and leaf.dtype == np.float32 for _, leaf in leaves(args))
    assert np.allclose(value, expected, rtol=1e-5 if low else 1e-10, atol=0), \
        f"value_and_grad value {value!r} != f's value {expected!r}"
    for (_, a), (_, b) in zip(leaves(grads), leaves(grads2)):
        assert np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                           rtol=1e-12, atol=0), "grad and value_and_grad disagree"
    wrts = (wrt,) if isinstance(wrt, int) else tuple(wrt)
    if isinstance(wrt, int):
        check_structure(grads, args[wrt], f"grad wrt {wrt}")
    else:
        assert isinstance(grads, tuple) and len(grads) == len(wrts), \
            f"wrt={wrt!r}: expected a tuple of {len(wrts)} gradients, got {grads!r}"
        for g, w in zip(grads, wrts):
            check_structure(g, args[w], f"grad wrt {w}")
    numeric = numeric_grad(f, args, wrt, eps)
    compare(grads, args, numeric, wrt, rtol, atol)
    return grads
