"""Pass 3b, normalize: one operation per statement.

Every compound expression is split into statements whose operands are names
or constants (``t3 = t1 + t2``).  Afterwards the function body consists of:

* ``x = <op>`` where ``<op>`` is a name, a constant, a binary or unary
  operation, a comparison, a call, ``a[index]``, ``a.attr``, or a tuple,
  list or dict display, all over names and constants;
* ``a[index] = v`` and ``a.method(args)`` (mutation of a container);
* ``if name:``, ``for name in name_or_range:``, ``while name:`` (the test is
  computed again at the end of the body) and the final ``return``.

Also made explicit here: augmented assignment, tuple unpacking, several
targets, ``and``/``or``/``x if c else y`` (as ``if`` statements, keeping
short-circuit evaluation), list comprehensions and generator expressions
(as loops that append), and loops over ``zip``/``enumerate`` (as loops over
an index).
"""

import ast
import copy

from .facts import set_fact
from .registry import is_mutating_method
from .trees import assign as _assign, name as _name
from .normalize_exprs import Expressions




def _call(func, *args):
    """A call of a runtime helper or builtin (marked so that the user's names
    cannot shadow it)."""
    node = ast.Call(func=_name(func), args=list(args), keywords=[])
    set_fact(node, "runtime", func)
    return node


def _truth(test):
    """A test whose value only decides (``while``, ``if``): names in it, also
    the operands of ``and``/``or``, as ``bool(name)``, so that a list the code
    changes in place is not bound to a second name."""
    if isinstance(test, ast.Name):
        return ast.copy_location(_call("bool", test), test)
    if isinstance(test, ast.BoolOp):
        return ast.copy_location(ast.BoolOp(op=test.op, values=[_truth(v) for v in test.values]),
                                 test)
    return test


class Normalizer(Expressions):
    """Rewrites statements into one-operation form; see the module doc."""

    def __init__(self, names, source, global_names):
        self.names = names
        self.source = source
        self.global_names = global_names
        self.out = []
        self.lineno = None

    # -- statements ---------------------------------------------------------

    def block(self, stmts):
        """A body in one-operation form."""
        saved, self.out = self.out, []
        for stmt in stmts:
            self.statement(stmt)
        result, self.out = self.out, saved
        return result

    def emit(self, stmt):
        """Appends a statement to the body being written."""
        if self.lineno is not None and not hasattr(stmt, "lineno"):
            stmt.lineno = self.lineno
        self.out.append(stmt)

    def statement(self, stmt):
        """One statement in one-operation form, emitted."""
        self.lineno = getattr(stmt, "lineno", self.lineno)
        method = getattr(self, "stmt_" + type(stmt).__name__, None)
        if method is None:
            raise self.source.error(
                f"cannot differentiate '{type(stmt).__name__}' statements", stmt)
        method(stmt)

    def stmt_Assign(self, stmt):
        targets = stmt.targets
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            self.assign_name(targets[0].id, stmt.value)
            return
        if len(targets) == 1 and isinstance(targets[0], (ast.Tuple, ast.List)) and \
                isinstance(stmt.value, (ast.Tuple, ast.List)) and not any(
                    isinstance(e, ast.Starred) for e in targets[0].elts + stmt.value.elts) and \
                len(targets[0].elts) == len(stmt.value.elts):
            self.parallel_assign(targets[0].elts, stmt.value.elts)
            return
        value = self.atom(stmt.value)
        for target in targets:
            self.store(target, value)

    def parallel_assign(self, targets, values):
        """``a, b = x, y`` element by element (all values are read first)."""
        stored = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        read = {n.id for v in values for n in ast.walk(v) if isinstance(n, ast.Name)}
        if not stored & read and all(isinstance(t, ast.Name) for t in targets):
            for target, value in zip(targets, values):
                self.assign_name(target.id, value)
            return
        atoms = []
        for value in values:
            atom = self.atom(value)
            if isinstance(atom, ast.Name) and atom.id in stored:
                temp = self.names.fresh("t")
                self.emit(_assign(temp, atom))
                atom = _name(temp)
            atoms.append(atom)
        for target, atom in zip(targets, atoms):
            self.store(target, atom)

    def stmt_AnnAssign(self, stmt):
        if stmt.value is not None:
            self.stmt_Assign(ast.Assign(targets=[stmt.target], value=stmt.value))

    def stmt_AugAssign(self, stmt):
        # x[i] += v is Python's t = x[i]; t += v; x[i] = t (an element that is
        # an array changes in place; see prepare.lower_augmented).
        if isinstance(stmt.target, ast.Subscript):
            load = copy.deepcopy(stmt.target)
            load.ctx = ast.Load()
            element = self.names.fresh("t")
            self.assign_name(element, load)
            self.emit(set_fact(ast.AugAssign(target=_name(element, True), op=stmt.op,
                                             value=self.atom(stmt.value),
                                             lineno=self.lineno),
                               "element_of", _root(stmt.target)))
            self.stmt_Assign(ast.copy_location(ast.Assign(
                targets=[stmt.target], value=_name(element)), stmt))
            return
        # Kept as ``x += v`` (v an atom): on an array it changes the array in
        # place, which the reverse pass keeps for values without gradients and
        # refuses for arrays with (see reverse.lower_augmented).
        self.emit(ast.AugAssign(target=_name(stmt.target.id, True), op=stmt.op,
                                value=self.atom(stmt.value), lineno=self.lineno))

    def stmt_Expr(self, stmt):
        value = stmt.value
        if isinstance(value, ast.Constant):
            return
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                and isinstance(value.func.value, ast.Name) \
                and value.func.value.id not in self.global_names \
                and is_mutating_method(value.func.attr):
            call = self.simple(value)
            self.emit(ast.Expr(call))
            return
        self.assign_name(self.names.fresh("t"), value)

    def stmt_If(self, stmt):
        test = self.atom(_truth(stmt.test) if isinstance(stmt.test, ast.BoolOp) else stmt.test)
        body = self.block(stmt.body) or [ast.Pass()]
        orelse = self.block(stmt.orelse)
        self.emit(ast.If(test=self.stable(test, body + orelse), body=body, orelse=orelse,
                         lineno=self.lineno))

    def stable(self, test, branches):
        """The test of an ``if`` as a name the branches do not rebind: the
        backward pass tests it again to replay the same branch."""
        if isinstance(test, ast.Name) and test.id in {
                n.id for s in branches for n in ast.walk(s)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}:
            copy_ = self.names.fresh("t")
            # its truth, not the object: a list changed in place keeps one name
            self.emit(_assign(copy_, _call("bool", test)))
            return _name(copy_)
        return test

    def stmt_While(self, stmt):
        if isinstance(stmt.test, ast.Constant):
            self.emit(ast.While(test=stmt.test, body=self.block(stmt.body), orelse=[],
                                lineno=self.lineno))
            return
        flag = self.names.fresh("going")
        test = _truth(stmt.test)            # while hs: its truth, not a second name
        head = self.block([_assign(flag, test, stmt)])
        self.out += head
        body = self.block(stmt.body)
        recompute = self.block([_assign(flag, copy.deepcopy(test), stmt)])
        self.emit(ast.While(test=_name(flag), body=body + recompute, orelse=[],
                            lineno=self.lineno))

    def stmt_For(self, stmt):
        it = stmt.iter
        target = stmt.target
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and \
                it.func.attr in ("items", "values") and not it.args and \
                isinstance(it.func.value, ast.Name):
            # for k, v in d.items(): ...  ->  for k in d: v = d[k]; ...
            mapping = it.func.value
            if it.func.attr == "items":
                if not (isinstance(target, ast.Tuple) and len(target.elts) == 2):
                    raise self.source.error("unpack .items() into two names", stmt)
                key, value = target.elts
            else:
                key, value = _name(self.names.fresh("key"), True), target
            if not isinstance(key, ast.Name):
                raise self.source.error("the key of .items() must be a plain name", stmt)
            read = ast.Assign(targets=[value], value=ast.Subscript(
                value=_name(mapping.id), slice=_name(key.id), ctx=ast.Load()),
                lineno=self.lineno)
            self.stmt_For(ast.For(target=key, iter=_name(mapping.id), body=[read] + stmt.body,
                                  orelse=[], lineno=self.lineno))
            return
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and \
                it.func.id == "reversed" and len(it.args) == 1 and not it.keywords and \
                not (isinstance(it.args[0], ast.Call) and isinstance(it.args[0].func, ast.Name)
                     and it.args[0].func.id == "range"):
            # for x in reversed(xs): ...  ->  for k in reversed(range(seqlen(xs))): x = xs[k]
            seq = self.atom(it.args[0])
            index = self.names.fresh("k")
            count = self.names.fresh("n")
            self.emit(_assign(count, _call("seqlen", seq)))
            backwards = _call("reversed", _call("range", _name(count)))
            read = ast.Assign(targets=[target], value=ast.Subscript(
                value=copy.deepcopy(seq), slice=_name(index), ctx=ast.Load()),
                lineno=self.lineno)
            self.emit(ast.For(target=_name(index, True), iter=backwards,
                              body=self.block([read] + stmt.body), orelse=[],
                              lineno=self.lineno))
            return
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and not it.keywords \
                and it.func.id in ("zip", "enumerate") and it.args \
                and isinstance(target, ast.Tuple):
            self.indexed_loop(stmt)
            return
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) \
                and it.func.id == "range" and not it.keywords:
            iterable = ast.Call(func=it.func, args=[self.atom(a) for a in it.args],
                                keywords=[])
        else:
            iterable = self.atom(it)
        if isinstance(target, ast.Name):
            var, unpack = target.id, []
        else:
            var = self.names.fresh("item")
            unpack = [ast.Assign(targets=[target], value=_name(var), lineno=self.lineno)]
        body = self.block(unpack + stmt.body)
        self.emit(ast.For(target=_name(var, True), iter=iterable, body=body, orelse=[],
                          lineno=self.lineno))

    def indexed_loop(self, stmt):
        """``for i, x in enumerate(xs)`` / ``for a, b in zip(as_, bs)`` over an index."""
        it, target = stmt.iter, stmt.target
        seqs = [self.atom(a) for a in it.args]
        if it.func.id == "enumerate":
            if len(seqs) != 1 or len(target.elts) != 2:
                raise self.source.error("enumerate() with a start is not supported", stmt)
            count = self.names.fresh("n")
            self.emit(_assign(count, _call("seqlen", seqs[0]), stmt))
            index = target.elts[0]
            pairs = [(target.elts[1], seqs[0])]
        else:
            if len(seqs) != len(target.elts):
                raise self.source.error("zip() must be unpacked into one name per sequence",
                                        stmt)
            lengths = []
            for s in seqs:
                n = self.names.fresh("n")
                self.emit(_assign(n, _call("seqlen", s), stmt))
                lengths.append(_name(n))
            count = self.names.fresh("n")
            self.emit(_assign(count, _call("min", *lengths) if len(lengths) > 1
                              else lengths[0], stmt))
            index = _name(self.names.fresh("k"), True)
            pairs = list(zip(target.elts, seqs))
        if isinstance(index, ast.Name):
            var, unpack = index.id, []
        else:
            var = self.names.fresh("k")
            unpack = [ast.Assign(targets=[index], value=_name(var), lineno=self.lineno)]
        reads = [ast.Assign(targets=[t], value=ast.Subscript(value=copy.deepcopy(s),
                                                             slice=_name(var), ctx=ast.Load()),
                            lineno=self.lineno) for t, s in pairs]
        body = self.block(unpack + reads + stmt.body)
        self.emit(ast.For(target=_name(var, True), iter=_call("range", _name(count)),
                          body=body, orelse=[], lineno=self.lineno))

    def stmt_Return(self, stmt):
        value = self.atom(stmt.value) if stmt.value is not None else ast.Constant(None)
        self.emit(ast.Return(value=value, lineno=self.lineno))

    def stmt_Pass(self, stmt):
        pass

    def stmt_Break(self, stmt):
        self.emit(stmt)

    def stmt_Continue(self, stmt):
        raise self.source.error("internal: 'continue' survived the jumps pass", stmt)

    def stmt_Assert(self, stmt):
        test = self.atom(stmt.test)
        self.emit(ast.Assert(test=test, msg=stmt.msg, lineno=self.lineno))

    def stmt_Raise(self, stmt):
        self.emit(stmt)

    # -- assignment targets ----------------------------------------------------


def _root(node):
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def global_names(func):
    """Names ``func`` reads but never binds: globals, closure cells, builtins."""
    bound = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    bound |= {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    loaded = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Load)}
    return loaded - bound


def normalize(func, names, source):
    """Rewrites ``func``'s body in place into one-operation statements."""
    func.body = Normalizer(names, source, global_names(func)).block(func.body)
    return func
