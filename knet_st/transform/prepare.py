"""Pass 5b, prepare: rewrites of the normalized tree that need to know which
variables carry gradients, run just before the reverse pass.

* ``check_aliasing``: a list or dict modified in place must have one name;
* ``lower_augmented``: ``x += v`` on a value with a gradient becomes
  ``x = x + v`` where that cannot change what other names see, and is refused
  at run time on shared arrays;
* ``insert_live_flags``: a variable that holds values with and without
  gradients at different times gets a ``<name>_live`` flag, so that the
  gradient of input data is never computed.
"""

import ast

import numpy as np

from .facts import fact, set_fact
from .resolve import Target
from .activity import value_active
from .inplace import positions, sole_owner
from .trees import name as _name, rewrite, statements


def check_aliasing(ctx, func, params, active, bindings, arrays, effects):
    """A list or dict that is modified (``s[i] = v``, ``s.append(v)``) while it
    carries gradients must be reachable under one name only: its adjoint is
    kept per name.  Refuses the programs where that does not hold.  Storing
    it into another list, tuple or dict once it is finished (``return h,
    outs`` after the appends) is fine: no change of it follows."""
    mutated = {v for v in bindings.containers if v in active} - set(arrays)
    if not mutated:
        return
    places = positions(func.body)

    def changed_after(var, stmt):
        if id(stmt) not in places:
            return True
        here, loops = places[id(stmt)]
        for other in statements(func.body):
            effect = effects.by_statement.get(id(other))
            if effect is not None and var in effect.mutates and id(other) in places:
                there, their_loops = places[id(other)]
                if there > here or loops & their_loops:
                    return True
        return False

    for p in params:
        if p in mutated and bindings.sites.get(p, 1) > 1:
            raise ctx.error(f"cannot differentiate: the parameter {p!r} is modified in "
                            "place and also rebound; use another name for the new value",
                            _mutation_site(func, p) or func)

    def refuse(var, node, why):
        raise ctx.error(f"cannot differentiate: the list or dict {var!r} is modified "
                        f"and {why}; keep one name for it", node)

    def fresh(value):
        # list(), dict(), copies list(xs), tuple(xs), a + b, [x] * n: new ones
        return isinstance(value, ast.Call) and not value.keywords and (
            fact(value, "target").obj in (list, dict, tuple) and len(value.args) <= 1
            or fact(value, "target").name in ("seq_concat", "seq_repeat"))

    # ``hs = hs + ys`` is normalized to ``t = hs + ys; hs = t``: a name bound
    # once to a new list and read once, by ``hs = t``, is that new list
    uses = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Name):
            uses.setdefault(node.id, []).append(node)
    fresh_names = {a.targets[0].id for a in ast.walk(func)
                   if isinstance(a, ast.Assign) and isinstance(a.targets[0], ast.Name)
                   and fresh(a.value) and a.targets[0].id not in mutated
                   and len(uses.get(a.targets[0].id, ())) == 2}

    for stmt in ast.walk(ast.Module(body=func.body, type_ignores=[])):
        if isinstance(stmt, ast.Assign):
            target, value = stmt.targets[0], stmt.value
            fresh_call = fresh(value) or isinstance(value, ast.Name) and \
                value.id in fresh_names
            if isinstance(target, ast.Name) and target.id in mutated and not fresh_call:
                if isinstance(value, ast.Name):
                    refuse(target.id, stmt, f"is also named {value.id!r}")
                if not isinstance(value, (ast.List, ast.Dict, ast.Tuple)):
                    site = _mutation_site(func, target.id) or stmt
                    raise ctx.error(
                        f"cannot differentiate this in-place change of {target.id!r}: only "
                        "a list or dict made in this function (or passed in), or an array "
                        "made in it for certain (np.zeros(...), x.copy(), arithmetic) may "
                        "be written into while it carries gradients; build a new array",
                        site)
            if isinstance(value, ast.Name) and value.id in mutated:
                refuse(value.id, stmt, f"also copied to {ast.unparse(target)!r}")
            elements = value.elts if isinstance(value, (ast.List, ast.Tuple)) else \
                value.values if isinstance(value, ast.Dict) else []
            stored = [value] if isinstance(target, ast.Subscript) else []
            for node in list(elements) + stored:
                if isinstance(node, ast.Name) and node.id in mutated and \
                        changed_after(node.id, stmt):
                    refuse(node.id, stmt, "also stored inside another list, tuple or dict")
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            for arg in stmt.value.args:
                if isinstance(arg, ast.Name) and arg.id in mutated and \
                        changed_after(arg.id, stmt):
                    refuse(arg.id, stmt, "also stored inside another list")
        elif isinstance(stmt, ast.For) and stmt.target.id in mutated:
            refuse(stmt.target.id, stmt, "is a loop variable")


def lower_sequences(ctx, func):
    """``a + b`` and ``a * n`` on lists or tuples (known as such: displays,
    ``list(...)``, ``tuple(...)`` and names bound only to these) become calls of
    ``seq_concat`` and ``seq_repeat``, whose adjoints split and fold the
    sequences' adjoints."""
    from ..runtime import sequences

    def is_display(value, known):
        return isinstance(value, (ast.List, ast.Tuple, ast.ListComp)) or \
            isinstance(value, ast.Name) and value.id in known or \
            isinstance(value, ast.Call) and fact(value, "target", None) is not None and \
            fact(value, "target").obj in (list, tuple, sequences.seq_concat,
                                          sequences.seq_repeat)

    assigns = [n for n in ast.walk(func) if isinstance(n, ast.Assign)
               and isinstance(n.targets[0], ast.Name)]
    loops = {n.id for s in ast.walk(func) if isinstance(s, ast.For)
             for n in ast.walk(s.target) if isinstance(n, ast.Name)}
    # Names whose every binding is a sequence; a binding may read the name
    # itself (u = u + u) once another binding made it one.
    augmented = {n.target.id for n in ast.walk(func) if isinstance(n, ast.AugAssign)}
    params = {a.arg for a in ast.walk(func.args) if isinstance(a, ast.arg)}
    candidates = {a.targets[0].id for a in assigns} - loops - augmented - params

    def sequence(v, known):
        return is_display(v, known) or isinstance(v, ast.BinOp) and \
            isinstance(v.op, (ast.Add, ast.Mult)) and \
            (is_display(v.left, known) or is_display(v.right, known))

    bindings = {n: [a.value for a in assigns if a.targets[0].id == n] for n in candidates}
    possible, shrunk = set(candidates), True       # every binding may be one...
    while shrunk:
        shrunk = False
        for name in sorted(possible):
            if not all(sequence(v, possible) for v in bindings[name]):
                possible.discard(name)
                shrunk = True
    known, grown = set(), True                     # ...and one binding makes one
    while grown:
        grown = False
        for name in sorted(possible - known):
            if any(sequence(v, known) for v in bindings[name]):
                known.add(name)
                grown = True
    for stmt in ast.walk(func):
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, (ast.Add, ast.Mult)):
            values = [a.value for a in assigns if a.targets[0].id == stmt.target.id]
            if values and all(is_display(v, known) for v in values):
                raise ctx.error("cannot differentiate '+=' or '*=' on a list or tuple (it "
                                "changes a list in place): write 'xs = xs + ys'", stmt)
    for stmt in assigns:
        value = stmt.value
        if not isinstance(value, ast.BinOp):
            continue
        left, right = is_display(value.left, known), is_display(value.right, known)
        if isinstance(value.op, ast.Add) and (left or right):
            helper, args = "seq_concat", [value.left, value.right]
        elif isinstance(value.op, ast.Mult) and (left or right):
            helper, args = "seq_repeat", [value.left, value.right] if left else \
                [value.right, value.left]
        else:
            continue
        obj = getattr(sequences, helper)
        stmt.value = set_fact(ast.Call(func=ctx.helper(helper, obj), args=args, keywords=[]),
                              "target", Target("primitive", obj, helper))
    return known


def lists_as_arrays(ctx, func, known, active):
    """A list or tuple (known as one) given to a NumPy function that takes an
    array (``np.mean(hs, axis=0)``, ``np.dot(hs, w)``, ``np.square(hs)``) is
    made an array first, by ``np.asarray``, as NumPy does: the function's
    adjoint rule is written for arrays, and ``np.asarray``'s adjoint splits
    the array adjoint over the list (kept as it was where the list changes
    later).  Functions whose rules take lists (``np.stack``) get them as
    they are."""
    from .registry import rule_for

    def numpy_function(obj):
        return isinstance(obj, np.ufunc) or \
            (getattr(obj, "__module__", None) or "").split(".")[0] == "numpy"

    def one(stmt):
        value = getattr(stmt, "value", None)
        if isinstance(stmt, ast.Assign) and isinstance(value, ast.BinOp) and \
                isinstance(value.op, ast.MatMult):          # hs @ w: np.matmul's rule
            out = []
            value.left, value.right = (array_of(v, stmt, out) for v in (value.left, value.right))
            return out + [stmt]
        if not isinstance(stmt, ast.Assign) or not isinstance(value, ast.Call):
            return [stmt]
        target = fact(value, "target", None)
        if target is None or target.kind != "primitive" or not numpy_function(target.obj):
            return [stmt]
        if target.obj in (np.asarray, np.asanyarray) and value.args and \
                isinstance(value.args[0], ast.Name) and value.args[0].id in known and \
                value.args[0].id in active:
            # a new array, as np.array makes it (np.asarray is taken for a view)
            value.func = ctx.helper("array", np.array)
            set_fact(value, "target", Target("primitive", np.array, "array"))
            return [stmt]
        rule = rule_for(target.obj)
        if rule is None or rule.containers:
            return [stmt]
        out = []
        value.args = [array_of(a, stmt, out) for a in value.args]
        for k in value.keywords:
            k.value = array_of(k.value, stmt, out)
        return out + [stmt]

    def array_of(node, stmt, out):
        """``node``, or a new name bound to ``np.array(node)`` before ``stmt``
        (in ``out``) where ``node`` names a list with gradients."""
        if not (isinstance(node, ast.Name) and node.id in known and node.id in active):
            return node
        temp = ctx.fresh(f"{node.id}_array")
        active.add(temp)
        convert = set_fact(ast.Call(func=ctx.helper("array", np.array),
                                    args=[_name(node.id)], keywords=[]),
                           "target", Target("primitive", np.array, "array"))
        out.append(ast.copy_location(
            ast.Assign(targets=[_name(temp, True)], value=convert), stmt))
        return ast.copy_location(_name(temp), node)

    active = set(active)
    func.body = rewrite(func.body, one)
    return active


def lower_augmented(ctx, func, active, arrays=frozenset()):
    """``x += v`` on a value with a gradient becomes ``t = x + v; x = t``, after a
    run-time check that ``x`` is no array (an array would change in place, and
    the backward pass needs its old value); elsewhere it stays as written.
    ``t += v`` made of ``x[i] += v`` with ``x`` one of the written ``arrays`` is
    rewritten without the check: ``x[i] = t`` follows, which is what the
    in-place change of the view ``t`` would have done."""

    active = set(active)
    private = {n.target.id for n in ast.walk(func) if isinstance(n, ast.AugAssign)
               and sole_owner(func, n.target.id)}

    def one(stmt):
        out = []
        if isinstance(stmt, ast.AugAssign) and stmt.target.id in active:
            var = stmt.target.id
            if var not in private and fact(stmt, "element_of", None) not in arrays:
                out.append(ctx.run_check("check_not_array", var, stmt))
            temp = ctx.fresh("t")
            active.add(temp)
            out += [ast.Assign(targets=[_name(temp, True)],
                               value=ast.BinOp(left=_name(var), op=stmt.op,
                                               right=stmt.value), lineno=stmt.lineno),
                    ast.Assign(targets=[_name(var, True)], value=_name(temp),
                               lineno=stmt.lineno)]
        else:
            out.append(stmt)
        return out

    func.body = rewrite(func.body, one)
    return active


def _mutation_site(func, var):
    for node in ast.walk(ast.Module(body=func.body, type_ignores=[])):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript) and \
                node.targets[0].value.id == var:
            return node
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute) and \
                isinstance(node.value.func.value, ast.Name) and node.value.func.value.id == var:
            return node
    return None


def insert_live_flags(ctx, func, params, active, active_params, containers):
    """For each active variable that also holds values without gradients (an
    input that a loop rebinds to a layer's output), a ``<name>_live`` flag
    set at every assignment; contributions to its adjoint test it."""
    inactive_defs = {p for p in params if p in active and p not in active_params}

    def scan(stmts):
        for stmt in stmts:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                var = stmt.targets[0].id
                # A constant start (total = 0.0) costs nothing to differentiate through.
                if var in active and not value_active(stmt.value, active) and \
                        not isinstance(stmt.value, ast.Constant):
                    inactive_defs.add(var)
            elif isinstance(stmt, ast.For) and stmt.target.id in active and \
                    not value_active(stmt.iter, active):
                inactive_defs.add(stmt.target.id)
            scan(getattr(stmt, "body", []))
            scan(getattr(stmt, "orelse", []))

    scan(func.body)
    # Containers gain gradients by mutation, not binding: here or in a function
    # they are passed to.  They get no flag.
    inactive_defs -= containers
    if not inactive_defs:
        return {}
    mixed = {v: ctx.fresh(f"{v}_live") for v in sorted(inactive_defs)}

    def flag(var, value):
        return ast.Assign(targets=[_name(mixed[var], True)], value=ast.Constant(value))

    def insert(stmts):
        out = []
        for stmt in stmts:
            out.append(stmt)
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                    stmt.targets[0].id in mixed:
                out.append(flag(stmt.targets[0].id, value_active(stmt.value, active)))
            if isinstance(stmt, ast.For):
                body = insert(stmt.body)
                if stmt.target.id in mixed:
                    body.insert(0, flag(stmt.target.id, value_active(stmt.iter, active)))
                stmt.body = body
            elif isinstance(stmt, (ast.If, ast.While)):
                stmt.body = insert(stmt.body)
                stmt.orelse = insert(stmt.orelse)
        return out

    func.body = [flag(p, p in active_params) for p in params if p in mixed] + \
        insert(func.body)
    return mixed


def sparse_adjoints(func):
    """Variables whose adjoint may arrive sparse (an index gradient or a
    container's dict): those read by index, those passed to user functions,
    and, through copies ``a = b``, the variables copied into them.  Adjoint
    templates read a dense array, so these get ``dense(d)`` first (and a
    called function gets its output's adjoint dense)."""
    sparse = set()
    copies = []
    for node in ast.walk(func):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and \
                isinstance(node.value, ast.Name):
            sparse.add(node.value.id)
        elif isinstance(node, ast.Call) and fact(node, "target", None) is not None \
                and fact(node, "target").kind in ("user", "local"):
            sparse |= {a.id for a in list(node.args) + [k.value for k in node.keywords]
                       if isinstance(a, ast.Name)}
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                isinstance(node.value, ast.Name):
            copies.append((node.targets[0].id, node.value.id))
    grown = True
    while grown:
        grown = False
        for target, value in copies:
            if target in sparse and value not in sparse:
                sparse.add(value)
                grown = True
    return sparse
