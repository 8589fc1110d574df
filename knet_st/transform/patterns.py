"""``match`` statements as ``if`` statements (part of desugar).

::

    match kind:                          subject1 = kind
        case "relu" | "elu":             matched1 = False
            h = kt.relu(h)               (tests of "relu" | "elu"):
        case [a, b] if a > 0:                matched1 = True
            h = h * b                        h = kt.relu(h)
        case _:                          if not matched1:
            h = np.tanh(h)                   (tests of [a, b], binding a and b):
                                                 if a > 0:
                                                     matched1 = True
                                                     h = h * b
                                         if not matched1:
                                             matched1 = True
                                             h = np.tanh(h)

Values, ``None``/``True``/``False``, captures, ``_``, ``as``, alternatives
without captures, and fixed-length sequences are supported; class, mapping
and starred patterns are refused.
"""

import ast

from .trees import assign, name, rewrite


def _if(test, body):
    return ast.If(test=test, body=body, orelse=[])


def _code(pattern, subject, then, fresh, source):
    """Statements that run ``then`` if ``subject`` (a name) matches ``pattern``,
    binding its captures first."""
    if isinstance(pattern, ast.MatchValue):
        return [_if(ast.Compare(left=name(subject), ops=[ast.Eq()],
                                comparators=[pattern.value]), then)]
    if isinstance(pattern, ast.MatchSingleton):
        return [_if(ast.Compare(left=name(subject), ops=[ast.Is()],
                                comparators=[ast.Constant(pattern.value)]), then)]
    if isinstance(pattern, ast.MatchAs):
        bind = [assign(pattern.name, name(subject))] if pattern.name else []
        if pattern.pattern is None:
            return bind + then
        return bind + _code(pattern.pattern, subject, then, fresh, source)
    if isinstance(pattern, ast.MatchOr):
        if any(isinstance(n, ast.MatchAs) and n.name for p in pattern.patterns
               for n in ast.walk(p)):
            raise source.error("cannot differentiate alternatives that capture names in "
                               "'case' patterns", pattern)
        hit = fresh("alternative")
        out = [assign(hit, ast.Constant(False))]
        for alternative in pattern.patterns:
            out.append(_if(ast.UnaryOp(op=ast.Not(), operand=name(hit)), _code(
                alternative, subject, [assign(hit, ast.Constant(True))], fresh, source)))
        return out + [_if(name(hit), then)]
    if isinstance(pattern, ast.MatchSequence) and \
            not any(isinstance(p, ast.MatchStar) for p in pattern.patterns):
        is_sequence = ast.Call(func=name("isinstance"), args=[name(subject), ast.Tuple(
            elts=[name("list"), name("tuple")], ctx=ast.Load())], keywords=[])
        length = ast.Compare(left=ast.Call(func=name("len"), args=[name(subject)],
                                           keywords=[]),
                             ops=[ast.Eq()], comparators=[ast.Constant(len(pattern.patterns))])
        inner = then
        for i, part in reversed(list(enumerate(pattern.patterns))):
            element = fresh(f"{subject}_")
            inner = [assign(element, ast.Subscript(value=name(subject), slice=ast.Constant(i),
                                                   ctx=ast.Load()))] + \
                _code(part, element, inner, fresh, source)
        return [_if(is_sequence, [_if(length, inner)])]
    raise source.error(f"cannot differentiate {type(pattern).__name__} patterns in 'case' "
                       "(values, captures, '_', alternatives and fixed-length sequences "
                       "work)", pattern)


def match_statements(func, source, fresh):
    """Rewrites the ``match`` statements of ``func`` (see the module doc)."""

    def one(stmt):
        if not isinstance(stmt, ast.Match):
            return [stmt]
        subject, matched = fresh("subject"), fresh("matched")
        out = [assign(subject, stmt.subject), assign(matched, ast.Constant(False))]
        for case in stmt.cases:
            body = [assign(matched, ast.Constant(True))] + rewrite(case.body, one)
            if case.guard is not None:
                body = [_if(case.guard, body)]
            out.append(_if(ast.UnaryOp(op=ast.Not(), operand=name(matched)),
                           _code(case.pattern, subject, body, fresh, source)))
        for node in out:
            for part in ast.walk(node):
                if isinstance(part, (ast.stmt, ast.expr)) and not hasattr(part, "lineno"):
                    ast.copy_location(part, stmt)
        return out

    func.body = rewrite(func.body, one)
    return func
