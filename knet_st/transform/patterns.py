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
without captures, sequences (with a star: ``[first, *rest]``), mappings
(``{"w": w, **rest}``) and classes with named attributes (``Point(x=a)``,
and ``float(v)``) are supported; positional sub-patterns of other classes
(which depend on ``__match_args__``) are refused.
"""

import ast
import copy

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
        # a capture is bound where the whole pattern has matched, as Python
        # does: a pattern that fails later leaves the name as it was
        then = ([assign(pattern.name, name(subject))] if pattern.name else []) + then
        return then if pattern.pattern is None else \
            _code(pattern.pattern, subject, then, fresh, source)
    if isinstance(pattern, ast.MatchOr):
        hit = fresh("alternative")
        out = [assign(hit, ast.Constant(False))]
        for alternative in pattern.patterns:
            out.append(_if(ast.UnaryOp(op=ast.Not(), operand=name(hit)), _code(
                alternative, subject, [assign(hit, ast.Constant(True))], fresh, source)))
        return out + [_if(name(hit), then)]
    if isinstance(pattern, ast.MatchSequence):
        return _sequence(pattern, subject, then, fresh, source)
    if isinstance(pattern, ast.MatchMapping):
        return _mapping(pattern, subject, then, fresh, source)
    if isinstance(pattern, ast.MatchClass):
        return _class(pattern, subject, then, fresh, source)
    raise source.error(f"cannot differentiate {type(pattern).__name__} patterns in 'case'",
                       pattern)


def _parts(parts, subject, then, fresh, source):
    """``then`` under the tests of ``(pattern, value)`` parts, each value
    bound to a fresh name first, in order."""
    inner = then
    for part, value in reversed(parts):
        element = fresh(f"{subject}_")
        inner = [assign(element, value)] + _code(part, element, inner, fresh, source)
    return inner


def _call(function, *args):
    return ast.Call(func=name(function), args=list(args), keywords=[])


def _item(subject, index):
    return ast.Subscript(value=name(subject), slice=index, ctx=ast.Load())


def _sequence(pattern, subject, then, fresh, source):
    """``[a, b]``, ``[first, *rest]``: a list or tuple of the length, its items
    tested in order; a star captures a list of the items between."""
    stars = [i for i, p in enumerate(pattern.patterns) if isinstance(p, ast.MatchStar)]
    fixed = len(pattern.patterns) - len(stars)
    is_sequence = _call("isinstance", name(subject), ast.Tuple(
        elts=[name("list"), name("tuple")], ctx=ast.Load()))
    length = ast.Compare(left=_call("len", name(subject)),
                         ops=[ast.GtE() if stars else ast.Eq()],
                         comparators=[ast.Constant(fixed)])
    star = stars[0] if stars else len(pattern.patterns)
    after = len(pattern.patterns) - star - 1
    parts = [(p, _item(subject, ast.Constant(i))) for i, p in enumerate(pattern.patterns[:star])]
    bind = []
    if stars and pattern.patterns[star].name:
        stop = ast.BinOp(left=_call("len", name(subject)), op=ast.Sub(),
                         right=ast.Constant(after))
        bind = [assign(pattern.patterns[star].name, _call("list", _item(
            subject, ast.Slice(lower=ast.Constant(star), upper=stop, step=None))))]
    parts += [(p, _item(subject, ast.UnaryOp(op=ast.USub(), operand=ast.Constant(after - j))))
              for j, p in enumerate(pattern.patterns[star + 1:])]
    return [_if(is_sequence, [_if(length, _parts(parts, subject, bind + then, fresh,
                                                 source))])]


def _mapping(pattern, subject, then, fresh, source):
    """``{"w": w, **rest}``: a dict holding the keys, their values tested in
    order; ``**rest`` captures a dict of the other items."""
    has_keys = [ast.Compare(left=copy.deepcopy(key), ops=[ast.In()], comparators=[name(subject)])
                for key in pattern.keys]
    test = ast.BoolOp(op=ast.And(), values=[_call("isinstance", name(subject), name("dict"))]
                      + has_keys) if has_keys else \
        _call("isinstance", name(subject), name("dict"))
    bind = []
    if pattern.rest:
        key, value = fresh("key"), fresh("value")
        bind = [assign(pattern.rest, ast.DictComp(
            key=name(key), value=name(value), generators=[ast.comprehension(
                target=ast.Tuple(elts=[name(key, True), name(value, True)],
                                 ctx=ast.Store()),
                iter=ast.Call(func=ast.Attribute(value=name(subject), attr="items",
                                                 ctx=ast.Load()), args=[], keywords=[]),
                ifs=[ast.Compare(left=name(key), ops=[ast.NotIn()], comparators=[
                    ast.Tuple(elts=copy.deepcopy(pattern.keys), ctx=ast.Load())])],
                is_async=0)]))]
    parts = [(p, _item(subject, copy.deepcopy(key))) for key, p in zip(pattern.keys, pattern.patterns)]
    return [_if(test, _parts(parts, subject, bind + then, fresh, source))]


# Python's classes whose one positional sub-pattern matches the subject itself
_SELF_MATCHING = {"bool", "bytearray", "bytes", "dict", "float", "frozenset", "int", "list",
                  "set", "str", "tuple"}


def _class(pattern, subject, then, fresh, source):
    """``Point(x=a)``: an instance of the class, its attributes tested in
    order; ``float(v)`` binds the subject itself."""
    if pattern.patterns and not (isinstance(pattern.cls, ast.Name) and
                                 pattern.cls.id in _SELF_MATCHING and
                                 len(pattern.patterns) == 1):
        raise source.error("cannot differentiate positional sub-patterns of a class "
                           "pattern: name the attributes (Point(x=a, y=b))", pattern)
    parts = [(p, name(subject)) for p in pattern.patterns]
    parts += [(p, ast.Attribute(value=name(subject), attr=attr, ctx=ast.Load()))
              for attr, p in zip(pattern.kwd_attrs, pattern.kwd_patterns)]
    return [_if(_call("isinstance", name(subject), copy.deepcopy(pattern.cls)),
                _parts(parts, subject, then, fresh, source))]


def _kept(stmt):
    """Whether ``match`` can test its subject, a plain name, without a copy:
    no pattern or guard binds that name (a capture of a case that goes on to
    fail would change what the next case tests)."""
    if not isinstance(stmt.subject, ast.Name):
        return False
    bound = set()
    for case in stmt.cases:
        for node in ast.walk(case.pattern):
            bound.update(n for n in (getattr(node, "name", None), getattr(node, "rest", None))
                         if n)
        if case.guard is not None:
            bound.update(n.target.id for n in ast.walk(case.guard)
                         if isinstance(n, ast.NamedExpr))
    return stmt.subject.id not in bound


def match_statements(func, source, fresh):
    """Rewrites the ``match`` statements of ``func`` (see the module doc)."""

    def one(stmt):
        if not isinstance(stmt, ast.Match):
            return [stmt]
        matched = fresh("matched")
        if _kept(stmt):             # tested as it is: a copy would alias a list or dict
            subject, out = stmt.subject.id, []
        else:
            subject = fresh("subject")
            out = [assign(subject, stmt.subject)]
        out.append(assign(matched, ast.Constant(False)))
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
