"""Helpers for the adjoints of ``np.einsum``, ``np.tensordot`` and ``np.linalg``.

Matrices may be stacked (batched over leading axes): every helper works on
the last two axes.  Symmetric factorizations (``cholesky``, ``eigh``) read
only the lower triangle of their argument, as NumPy does, so their gradient
is the exact derivative of what NumPy computes: zero above the diagonal.

Everything here reaches arrays only through NumPy's dispatch (and
:func:`~knet_st.runtime.backend.get_array_module` for new constants), so it
runs unchanged on CuPy arrays.
"""

import string

import numpy as np

from .backend import get_array_module
from .gradients import _expand, matmul_grad_a, matmul_grad_b, unbroadcast

_LETTERS = string.ascii_letters


def _T(x):
    """The transpose of each matrix of a stack."""
    return np.swapaxes(x, -1, -2)


def _eye(n, like):
    return get_array_module(like).eye(n, dtype=like.dtype)


def _transform_error(message):
    from ..errors import TransformError
    return TransformError(message)


# ---- einsum and tensordot ------------------------------------------------------------

def _interleaved(args):
    """``einsum(x0, [0, 1], x1, [1, 2], [0, 2])`` as ``('ab,bc->ac', x0, x1)``."""
    out = args[-1] if len(args) % 2 else None
    pairs = args[:len(args) - len(args) % 2]

    def term(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)
    subscripts = ",".join(term(s) for s in pairs[1::2])
    if out is not None:
        subscripts += "->" + term(out)
    return subscripts, list(pairs[0::2])


def _einsum_terms(subscripts, operands):
    """The labels of each operand and of the output, with ``...`` spelled out
    as letters (right-aligned, as it broadcasts) and an implicit output made
    explicit (the ellipsis, then the labels used once, in order)."""
    s = subscripts.replace(" ", "")
    inputs, arrow, output = s.partition("->")
    inputs = inputs.split(",")
    free = [c for c in _LETTERS if c not in s]
    widths = [np.ndim(x) - len(t.replace("...", "")) for t, x in zip(inputs, operands)]
    width = max([w for t, w in zip(inputs, widths) if "..." in t], default=0)
    ellipsis = free[:width]
    terms = []
    for t, w in zip(inputs, widths):
        left, dots, right = t.partition("...")
        terms.append(list(left) + (ellipsis[width - w:] if dots else []) + list(right))
    if arrow:
        left, dots, right = output.partition("...")
        out = list(left) + (ellipsis if dots else []) + list(right)
    else:
        labels = "".join(inputs).replace(".", "")
        out = ellipsis + sorted(c for c in set(labels) if labels.count(c) == 1)
    return terms, out, free[width:]


def einsum_grad(g, args, k):
    """Adjoint of ``np.einsum(*args)`` with respect to ``args[k]``.

    The adjoint of one operand is the einsum of the output's adjoint with the
    other operands, into that operand's labels.  A label repeated in the
    operand (a diagonal) gets a new label tied to it by an identity matrix;
    a label summed away by this operand alone meets a vector of ones; axes
    the operand broadcast are summed back."""
    args = list(args)
    while args and args[-1] is None:
        args.pop()
    if isinstance(args[0], str):
        subscripts, operands, k = args[0], args[1:], k - 1
    else:
        (subscripts, operands), k = _interleaved(args), k // 2
    terms, out, fresh = _einsum_terms(subscripts, operands)
    x = operands[k]
    sizes = {}
    for t, op in zip(terms, operands):
        for label, n in zip(t, np.shape(op)):
            sizes[label] = max(sizes.get(label, 1), n)
    others = [(t, op) for i, (t, op) in enumerate(zip(terms, operands)) if i != k]
    in_terms = ["".join(t) for t, _ in others]
    in_ops = [op for _, op in others]
    target = []
    for label in terms[k]:
        if label in target:                   # a diagonal: x[i, i] as r[i, j] * eye[i, j]
            new = fresh.pop(0)
            in_terms.append(label + new)
            in_ops.append(_eye(sizes[label], x))
            target.append(new)
        else:
            target.append(label)
    named = set(out).union(*[t for t, _ in others])
    naked = [label for label in dict.fromkeys(terms[k]) if label not in named]
    if naked:                                 # summed by x alone: against ones
        in_terms.append("".join(naked))
        in_ops.append(np.ones_like(x, shape=tuple(sizes[label] for label in naked)))
    scalar = np.ndim(g) == 0 and not out
    if not scalar:
        in_terms.insert(0, "".join(out))
        in_ops.insert(0, g)
    if in_ops:
        r = np.einsum(",".join(in_terms) + "->" + "".join(target), *in_ops)
    else:
        r = np.ones_like(x)
    if scalar:
        r = r * g
    return unbroadcast(r, x)


def tensordot_subscripts(a, b, axes=2):
    """The einsum subscripts of ``np.tensordot(a, b, axes)``."""
    na, nb = np.ndim(a), np.ndim(b)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(na - axes, na)), list(range(axes))
    else:
        axes_a, axes_b = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
    axes_a = [i % na for i in axes_a]
    axes_b = [i % nb for i in axes_b]
    la = list(_LETTERS[:na])
    lb = list(_LETTERS[na:na + nb])
    for i, j in zip(axes_a, axes_b):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in axes_a] + \
        [c for j, c in enumerate(lb) if j not in axes_b]
    return "".join(la) + "," + "".join(lb) + "->" + "".join(out)


def dot_subscripts(a, b):
    """The einsum subscripts of ``np.dot(a, b)`` for operands of any rank."""
    na, nb = np.ndim(a), np.ndim(b)
    if na == 0 or nb == 0:
        return tensordot_subscripts(a, b, 0)
    return tensordot_subscripts(a, b, ([na - 1], [max(nb - 2, 0)]))


def dot_grad(g, a, b, k):
    """Adjoint of ``np.dot(a, b)`` with respect to operand ``k`` (1 or 2): the
    matrix product's for vectors and matrices, a contraction otherwise
    (an operand may be a list, as NumPy takes it)."""
    a, b = (np.asarray(v) if isinstance(v, (list, tuple)) else v for v in (a, b))
    if np.ndim(a) in (1, 2) and np.ndim(b) in (1, 2):
        return matmul_grad_a(g, a, b) if k == 1 else matmul_grad_b(g, a, b)
    return einsum_grad(g, (dot_subscripts(a, b), a, b), k)


def kron_grads(g, a, b):
    """Adjoints ``(da, db)`` of ``np.kron(a, b)`` for operands of any rank: ``g``
    read as blocks ``g[i, k, j, l] = g[i * p + k, j * q + l]`` and contracted
    with the other operand."""
    ndim = max(np.ndim(a), np.ndim(b))
    sa = (1,) * (ndim - np.ndim(a)) + tuple(np.shape(a))
    sb = (1,) * (ndim - np.ndim(b)) + tuple(np.shape(b))
    la, lb = _LETTERS[:ndim], _LETTERS[ndim:2 * ndim]
    blocks = np.reshape(g, tuple(n for pair in zip(sa, sb) for n in pair))
    lg = "".join(i + j for i, j in zip(la, lb))
    da = np.einsum(f"{lg},{lb}->{la}", blocks, np.reshape(b, sb))
    db = np.einsum(f"{lg},{la}->{lb}", blocks, np.reshape(a, sa))
    return da.reshape(np.shape(a)), db.reshape(np.shape(b))


def vecdot_grad(g, other, x, axis=-1):
    """Adjoint of ``np.vecdot(x1, x2, axis)`` (real) for the operand ``x``."""
    return unbroadcast(np.expand_dims(g, axis) * other, x)


def multi_dot_grads(g, arrays):
    """Adjoints of ``np.linalg.multi_dot(arrays)``, a container adjoint: for each
    factor, the transposed product of what is left of it, ``g``, and the
    transposed product of what is right of it."""
    mats = list(arrays)
    if np.ndim(mats[0]) == 1:
        mats[0] = mats[0][None, :]
    if np.ndim(mats[-1]) == 1:
        mats[-1] = mats[-1][:, None]
    g = np.reshape(g, (mats[0].shape[0], mats[-1].shape[1]))
    left = [None] * len(mats)
    right = [None] * len(mats)
    for i in range(1, len(mats)):
        left[i] = mats[i - 1] if i == 1 else left[i - 1] @ mats[i - 1]
    for i in range(len(mats) - 2, -1, -1):
        right[i] = mats[i + 1] if i == len(mats) - 2 else mats[i + 1] @ right[i + 1]
    out = {}
    for i, x in enumerate(arrays):
        d = g if left[i] is None else left[i].T @ g
        d = d if right[i] is None else d @ right[i].T
        out[i] = d.reshape(np.shape(x))
    return out


def _diagonal_index(x, offset):
    xp = get_array_module(x)
    rows, cols = x.shape[-2:]
    n = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    i = xp.arange(n)
    return i + max(0, -offset), i + max(0, offset)


def diagonal_grad(g, x, offset=0):
    """Adjoint of ``np.linalg.diagonal(x, offset)`` (the last two axes)."""
    out = np.zeros_like(x)
    rows, cols = _diagonal_index(x, offset)
    out[..., rows, cols] = g
    return out


def trace_grad(g, x, offset=0):
    """Adjoint of ``np.linalg.trace(x, offset)`` (the last two axes)."""
    rows, cols = _diagonal_index(x, offset)
    return diagonal_grad(np.expand_dims(g, -1) * np.ones_like(x, shape=rows.shape), x, offset)


# ---- solving, factorizations ---------------------------------------------------------

def solve_grads(g, x, a, b):
    """Adjoints ``(da, db)`` of ``x = np.linalg.solve(a, b)``:
    ``db = a^-T g`` and ``da = -db x^T`` (``b`` a vector or a stack of matrices)."""
    vector = np.ndim(b) == 1
    if vector:
        g, x = g[..., None], x[..., None]
    db = np.linalg.solve(_T(a), g)
    da = -(db @ _T(x))
    if vector:
        db = db[..., 0]
    return unbroadcast(da, a), unbroadcast(db, b)


def _lower(s):
    """A gradient ``s`` with respect to a symmetric matrix, as the gradient with
    respect to its lower triangle (what NumPy's symmetric routines read)."""
    return np.tril(s + _T(s)) - s * _eye(s.shape[-1], s)


def cholesky_grad(g, L, upper=False):
    """Adjoint of ``L = np.linalg.cholesky(a)`` (Murray 2016, arXiv:1602.07527):
    ``S = L^-T Φ(L^T g) L^-1``, Φ taking the lower triangle with half its diagonal."""
    if upper:
        L, g = _T(L), _T(g)
    phi = np.tril(_T(L) @ g)
    phi = phi - 0.5 * phi * _eye(L.shape[-1], L)
    s = np.linalg.solve(_T(L), _T(np.linalg.solve(_T(L), _T(phi))))
    s = 0.5 * (s + _T(s))
    return _T(_lower(s)) if upper else _lower(s)


def slogdet_grad(g, a):
    """Adjoint of ``(sign, logabsdet) = np.linalg.slogdet(a)`` for the adjoint ``g``
    of ``logabsdet`` (the sign has none): ``g a^-T``."""
    if g is None:
        return np.zeros_like(a)
    return _expand2(g) * _T(np.linalg.inv(a))


def _expand2(g):
    return g[..., None, None] if np.ndim(g) else g


def _upper_name(uplo):
    return str(uplo).upper() == "U"


def _sym_grad(s, uplo):
    """``_lower`` for a routine that reads the lower (``'L'``) or upper triangle."""
    return _T(_lower(_T(s))) if _upper_name(uplo) else _lower(s)


def eigh_grad(g, y, a, uplo="L"):
    """Adjoint of ``(w, v) = np.linalg.eigh(a)``: ``v (diag(gw) + F ∘ (v^T gv)) v^T``,
    ``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal.  Either part of ``g``
    may be absent; eigenvalues alone need no gap between them."""
    gw, gv = _parts(g, 2)
    w, v = y[0], y[1]
    inner = 0
    if gw is not None:
        inner = gw[..., :, None] * _eye(w.shape[-1], w)
    if gv is not None:
        eye = _eye(w.shape[-1], w)
        gap = w[..., None, :] - w[..., :, None] + eye
        inner = inner + (1 - eye) / gap * (_T(v) @ gv)
    if gw is None and gv is None:
        return np.zeros_like(a)
    return _sym_grad(v @ inner @ _T(v), uplo)


def eigvalsh_grad(g, a, uplo="L"):
    """Adjoint of ``w = np.linalg.eigvalsh(a)``: ``v diag(g) v^T``."""
    w, v = np.linalg.eigh(a, uplo)
    return _sym_grad((v * g[..., None, :]) @ _T(v), uplo)


def _parts(g, n):
    """The adjoints of the ``n`` outputs of a tuple-valued function (``None``: zero)."""
    from .gradients import item
    return [item(g, i) for i in range(n)]


def qr_grad(g, y, a, mode="reduced"):
    """Adjoint of ``np.linalg.qr(a, mode)`` (``'reduced'``, ``'r'``, or ``'complete'``
    when ``a`` has no more rows than columns).  For ``m >= n``:
    ``(gq + q copyltu(M)) r^-T`` with ``M = r gr^T - gq^T q`` (Walter & Lehmann;
    Liao et al. 2019); for ``m < n`` the first ``m`` columns are that square
    case and the rest follow ``y = q r[:, m:]``."""
    m, n = a.shape[-2:]
    if mode == "complete" and m > n or mode not in ("reduced", "complete", "r"):
        raise _transform_error(
            f"no gradient is defined for np.linalg.qr with mode={mode!r} on a matrix "
            f"with more rows than columns: use mode='reduced'")
    if mode == "r":
        q, r = np.linalg.qr(a)
        gq, gr = None, g
    else:
        q, r = y[0], y[1]
        gq, gr = _parts(g, 2)
    gq = np.zeros_like(q) if gq is None else gq
    gr = np.zeros_like(r) if gr is None else gr
    if m >= n:
        return _qr_square_grad(gq, gr, q, r)
    x_grad = _qr_square_grad(gq + a[..., :, m:] @ _T(gr[..., :, m:]), gr[..., :, :m],
                             q, r[..., :, :m])
    return np.concatenate([x_grad, q @ gr[..., :, m:]], axis=-1)


def _qr_square_grad(gq, gr, q, r):
    m = r @ _T(gr) - _T(gq) @ q
    low = np.tril(m, -1)
    copyltu = low + _T(low) + m * _eye(m.shape[-1], m)
    b = gq + q @ copyltu
    return _T(np.linalg.solve(r, _T(b)))


def pinv_grad(g, p, a, hermitian=False):
    """Adjoint of ``p = np.linalg.pinv(a, hermitian=hermitian)`` (Golub & Pereyra
    1973), where the rank does not change: ``-p^T g p^T + (1 - a p) g^T p p^T +
    p^T p g^T (1 - p a)``.  A Hermitian ``a`` is read by its lower triangle."""
    if hermitian:
        a = np.tril(a) + _T(np.tril(a, -1))       # the matrix NumPy inverted
    gt = _T(g)
    out = (-_T(p) @ g @ _T(p) + (gt - a @ (p @ gt)) @ (p @ _T(p))
           + (_T(p) @ p) @ (gt - (gt @ p) @ a))
    return _lower(out) if hermitian else out


def svd_grad(g, y, a, full_matrices=True, compute_uv=True, hermitian=False):
    """Adjoint of ``np.linalg.svd(a, full_matrices, compute_uv, hermitian)``
    (Townsend 2016), for distinct nonzero singular values; ``full_matrices``
    only when ``a`` is square (otherwise the extra vectors are not determined
    by ``a``).  A Hermitian ``a`` is read by its lower triangle, as NumPy does."""
    if hermitian:
        return _lower(svd_grad(g, y, a, full_matrices, compute_uv))
    m, n = a.shape[-2:]
    if not compute_uv:
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        return (u * g[..., None, :]) @ vt
    if full_matrices and m != n:
        raise _transform_error("no gradient is defined for np.linalg.svd with "
                               "full_matrices=True on a matrix that is not square: "
                               "pass full_matrices=False")
    u, s, vt = y[0], y[1], y[2]
    gu, gs, gvt = _parts(g, 3)
    v = _T(vt)
    k = s.shape[-1]
    eye = _eye(k, s)
    f = (1 - eye) / (s[..., None, :] ** 2 - s[..., :, None] ** 2 + eye)
    inner = 0 * eye
    if gs is not None:
        inner = inner + eye * gs[..., :, None]
    if gu is not None:
        utgu = _T(u) @ gu
        inner = inner + f * (utgu - _T(utgu)) * s[..., None, :]
    if gvt is not None:
        gv = _T(gvt)
        vtgv = _T(v) @ gv
        inner = inner + s[..., :, None] * (f * (vtgv - _T(vtgv)))
    out = u @ inner @ vt
    if gu is not None and m > n:
        out = out + (gu - u @ (_T(u) @ gu)) / s[..., None, :] @ vt
    if gvt is not None and m < n:
        out = out + (u / s[..., None, :]) @ (_T(gv) - (_T(gv) @ v) @ vt)
    return out


def matrix_power_grad(g, a, n):
    """Adjoint of ``np.linalg.matrix_power(a, n)``:
    ``sum_k (a^T)^k g (a^T)^(n-1-k)``; a negative ``n`` goes through the inverse."""
    if n < 0:
        b = np.linalg.inv(a)
        gb = matrix_power_grad(g, b, -n)
        return -(_T(b) @ gb @ _T(b))
    if n == 0:
        return np.zeros_like(a)
    at = _T(a)
    powers = [None] * n
    powers[0] = _eye(a.shape[-1], a) + 0 * at
    for k in range(1, n):
        powers[k] = powers[k - 1] @ at
    out = 0
    for k in range(n):
        out = out + powers[k] @ g @ powers[n - 1 - k]
    return out


# ---- norms ---------------------------------------------------------------------------

def norm_grad(g, y, x, ord=None, axis=None, keepdims=False):
    """Adjoint of ``np.linalg.norm(x, ord, axis, keepdims)``: every vector ``ord``
    (``p``, ``±inf``, 0) and every matrix ``ord`` (``'fro'``, ``'nuc'``, ±1,
    ±2, ±inf), on any axis or pair of axes."""
    ndim = np.ndim(x)
    if axis is None:
        if ord is None:
            return x * (g / y)
        axis = tuple(range(ndim))
    axes = tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    g, y = _expand(g, x, axes, keepdims), _expand(y, x, axes, keepdims)
    if len(axes) == 1:
        return vector_norm_grad(g, y, x, 2 if ord is None else ord, axes, True)
    return _matrix_norm_grad(g, y, x, "fro" if ord is None else ord, axes)


def vector_norm_grad(g, y, x, ord=2, axis=None, keepdims=False):
    """Adjoint of ``np.linalg.vector_norm(x, axis, keepdims, ord)`` (any axes)."""
    if axis is not None and not isinstance(axis, tuple):
        axis = (axis,)
    if not keepdims:
        g, y = _expand(g, x, axis, False), _expand(y, x, axis, False)
    if ord == 2:
        return x * (g / y)
    if ord == 1:
        return np.sign(x) * g
    if ord == 0:
        return np.zeros_like(x)
    if ord in (np.inf, -np.inf):
        hit = np.abs(x) == y
        return np.sign(x) * hit * (g / np.sum(hit, axis=axis, keepdims=True))
    return np.sign(x) * np.abs(x) ** (ord - 1) * (g / y ** (ord - 1))


def _matrix_norm_grad(g, y, x, ord, axes):
    if ord == "fro":
        return x * (g / y)
    last = (-2, -1)
    xm, gm = np.moveaxis(x, axes, last), np.moveaxis(g, axes, last)
    ym = np.moveaxis(y, axes, last)
    if ord == "nuc" or ord in (2, -2):
        u, s, vt = np.linalg.svd(xm, full_matrices=False)
        if ord == "nuc":
            out = u @ vt
        else:
            i = 0 if ord == 2 else -1
            out = u[..., :, i:i + 1 or None] @ vt[..., i:i + 1 or None, :]
    elif ord in (1, -1, np.inf, -np.inf):
        sums_axis = -2 if ord in (1, -1) else -1          # columns, or rows
        sums = np.sum(np.abs(xm), axis=sums_axis, keepdims=True)
        hit = sums == ym
        out = np.sign(xm) * hit / np.sum(hit, axis=(-2, -1), keepdims=True)
    else:
        raise _transform_error(f"no gradient is defined for np.linalg.norm with ord={ord!r} "
                               "over two axes")
    return np.moveaxis(out * gm, last, axes)


def matrix_norm_grad(g, y, x, ord="fro", keepdims=False):
    """Adjoint of ``np.linalg.matrix_norm(x, keepdims, ord)`` (the last two axes)."""
    return norm_grad(g, y, x, ord, (-2, -1), keepdims)
