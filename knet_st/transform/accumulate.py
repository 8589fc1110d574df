"""Adjoint accumulation: the kinds of adjoint variables and how contributions add up.

Adjoint variables start as "zero" (no code); the first contribution assigns,
later ones add.  Each adjoint variable is tracked as one of ``ZERO`` (treat
as zero, never read), ``DENSE`` (an array or number), ``SOME`` (never
``None``, but maybe a sparse container adjoint or an index gradient) or
``ANY`` (also maybe ``None``).  The kinds of a
point in the backward code are a dict ``K``: adjoint name to kind.
"""

import ast

from .trees import assign as _assign, call as _call, name as _name, none as _none

ZERO, DENSE, SOME, ANY = "zero", "dense", "some", "any"
_PRESENT = (DENSE, SOME)


def join(k1, k2):
    """The adjoint kind after two paths meet: the same kind, ``SOME`` for two
    kinds that are never ``None``, else ``ANY``."""
    if k1 == k2:
        return k1
    if k1 in _PRESENT and k2 in _PRESENT:
        return SOME
    return ANY


def nonzero(K):
    """The adjoints ``K`` holds that are not known to be zero."""
    return {d: k for d, k in K.items() if k != ZERO}


def merge(K1, K2):
    """Joins the adjoint kinds of two branches; returns ``(K, fix1, fix2)`` where
    the fixes set to None what one branch left untouched and the other did not."""
    merged, fix1, fix2 = {}, [], []
    for d in sorted(set(K1) | set(K2)):
        k1, k2 = K1.get(d, ZERO), K2.get(d, ZERO)
        if k1 == k2:
            merged[d] = k1
            continue
        if k1 == ZERO:
            fix1.append(_assign(d, _none()))
        elif k2 == ZERO:
            fix2.append(_assign(d, _none()))
        merged[d] = ANY
    return merged, fix1, fix2


class Accumulation:
    """Part of :class:`~knet_st.transform.reverse.Reverse`: adjoint names and
    the statements that add contributions into them."""

    def adj(self, var):
        """The name of the adjoint of ``var`` (made on first use)."""
        if var not in self.adjnames:
            self.adjnames[var] = self.names.fresh("d" + var)
        return self.adjnames[var]

    def contrib(self, var, expr, kind, K):
        """Statements adding ``expr`` into the adjoint of ``var``.  For a variable
        that holds values with and without gradients at different times (a
        non-differentiated parameter rebound in a loop), only while it holds one
        with: the gradient of the input data is never computed."""
        if var not in self.mixed:
            return [self.accumulate(var, expr, kind, K)]
        skipped = dict(K)
        stmt = self.accumulate(var, expr, kind, K)
        merged, fix_live, fix_skip = merge(K, skipped)
        K.clear()
        K.update(merged)
        return [ast.If(test=_name(self.mixed[var]), body=[stmt] + fix_live, orelse=fix_skip)]

    def accumulate(self, var, expr, kind, K):
        """The statement adding ``expr`` into the adjoint of ``var``."""
        d = self.adj(var)
        k = K.get(d, ZERO)
        if k == ZERO:
            K[d] = kind
            return _assign(d, expr)
        if k == DENSE and kind == DENSE:
            return _assign(d, ast.BinOp(left=_name(d), op=ast.Add(), right=expr))
        # add() of two adjoints is None only when both are.
        K[d] = SOME if k in _PRESENT or kind in _PRESENT else ANY
        return _assign(d, _call(self.helper("add"), _name(d), expr))
