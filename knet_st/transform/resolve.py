"""Pass 4, resolve: what each called name means, decided once at transform time.

A call is one of:

* ``primitive``: a function with an adjoint rule (``np.exp``, ``kt.sigm``);
* ``nondiff``: a function declared to have no gradient (``len``, ``np.argmax``),
  or a runtime helper the normalizer inserted;
* ``user``: a Python function of the user's (transformed in turn);
* ``local``: a function defined inside the differentiated one (lifted);
* ``method``: ``x.sum()``, ``xs.append(v)``: a method of a local value;
* ``opaque``: anything else (a class, a C function without a rule): fine on
  values that carry no gradient, an error on values that do;
* ``dynamic``: a function held in a local variable;
* ``refused``: a function declared never to be called in differentiated code;
* ``gradient``: a gradient function ``kt.grad(f, wrt=k)`` made inside the
  differentiated function (its adjoint is forward over reverse).
"""

import ast
import builtins
import inspect
import types
from dataclasses import dataclass

import numpy as np

from .closures import LocalFunction, environment_names, function_of, hidden_name, local_value
from .facts import fact, has_fact, set_fact
from .registry import is_gradient_maker, is_nondifferentiable, refusal, rule_for


@dataclass
class Target:
    """What a call refers to: ``kind`` (see the module doc), the object, its
    name; for a method of a user class called on a local of known class
    (``self.predict(x)``), ``receiver`` is that local's name (the function's
    first argument) and ``receiver_class`` its class.  ``functions`` are the
    ``(parameter, function)`` pairs of a user function's parameters that
    receive a known function (``act=np.tanh``): the callee calls it."""
    kind: str
    obj: object = None
    name: str = ""
    receiver: str = None
    receiver_class: type = None
    functions: tuple = ()

    def __deepcopy__(self, memo):
        return self


class Environment:
    """The global names a function sees: its closure cells, module globals,
    builtins.  ``lookup`` raises ``KeyError`` for an unknown name."""

    def __init__(self, globals_, closure=None, classes=None, functions=None):
        self.globals = globals_
        self.closure = closure or {}
        self.classes = classes or {}     # parameter name -> its class, where known
        self.functions = functions or {}     # parameter name -> the function it holds
        self.imports = {}         # names imported inside the function -> their objects
        self.cells = {}           # closure variable name -> its cell

    @classmethod
    def of(cls, fn):
        """The environment of the function ``fn``."""
        code = fn.__code__
        cells = fn.__closure__ or ()
        closure = {}
        for name, cell in zip(code.co_freevars, cells):
            try:
                closure[name] = cell.cell_contents
            except ValueError:
                pass
        env = cls(fn.__globals__, closure)
        env.cells = dict(zip(code.co_freevars, cells))
        return env

    def lookup(self, name):
        """The object ``name`` means; ``KeyError`` if none."""
        if name in self.imports:
            return self.imports[name]
        if name in self.closure:
            return self.closure[name]
        if name in self.globals:
            return self.globals[name]
        return getattr(builtins, name)


def classify(obj, name=""):
    """The :class:`Target` for a statically known callable."""
    if refusal(obj) is not None:
        return Target("refused", obj, name)
    if rule_for(obj) is not None:
        return Target("primitive", obj, name)
    if is_nondifferentiable(obj):
        return Target("nondiff", obj, name)
    if isinstance(obj, types.FunctionType):
        return Target("user", obj, name)
    if isinstance(obj, LocalFunction):
        return Target("local", (obj.tree, obj.unit), name)
    return Target("opaque", obj, name)


def _is_function(obj):
    """Whether ``obj`` is a function a parameter may hold and a callee call."""
    return isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, np.ufunc,
                            LocalFunction)) or rule_for(obj) is not None


def _local_value(node, env, dotted, local_functions):
    """``(LocalFunction, holder)`` for an argument node that stands for a
    function defined inside (its marker, or a parameter ``holder`` that
    received one), else ``(None, None)``."""
    if isinstance(node, ast.Name) and node.id in dotted:
        node = dotted[node.id]
    if isinstance(node, ast.Constant) and has_fact(node, "local_function"):
        tree, unit = local_functions[fact(node, "local_function")]
        return local_value(tree, unit, fact(tree, "free_variables")), None
    if isinstance(node, ast.Name) and isinstance(env.functions.get(node.id), LocalFunction):
        return env.functions[node.id], node.id
    return None, None


def _value_of(node, env, local_names, dotted):
    """The object an argument node names, if it is a known function: a global
    (``np.tanh``, ``kt.sigm``, a user function) or a parameter known to hold one."""
    if isinstance(node, ast.Name):
        if node.id in env.functions:
            return env.functions[node.id]
        if node.id in dotted:
            return _value_of(dotted[node.id], env, local_names, {})
        if node.id in local_names:
            return None
    root = dotted_root(node)
    if not isinstance(root, ast.Name) or root.id in local_names:
        return None
    try:
        obj = _dotted_value(node, env)
    except (KeyError, AttributeError):
        return None
    return obj if _is_function(obj) else None


def _gradient_functions(tree, env, local_names, local_functions):
    """Names bound once to ``kt.grad(f, wrt=k)`` (or ``kt.value_and_grad``) of
    a function ``f`` known at transform time: the gradient function, made
    now, to be differentiated in turn when it is called, and the enclosing
    variables its calls pass last (``f`` defined inside: its lifted form)."""
    found, counts, values = {}, {}, {}
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            counts[node.targets[0].id] = counts.get(node.targets[0].id, 0) + 1
            values[node.targets[0].id] = node.value
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and node.value.args
                and counts[node.targets[0].id] == 1):
            continue
        call = node.value
        try:
            maker = _dotted_value(call.func, env) if not (
                isinstance(call.func, ast.Name) and call.func.id in local_names) else None
        except (KeyError, AttributeError):
            continue
        if maker is None or not is_gradient_maker(maker):
            continue
        inner = fact(call.args[0], "local_function", None) \
            if isinstance(call.args[0], ast.Constant) else None
        if inner in local_functions:          # kt.grad of a function defined inside
            fn, free = _lifted_function(inner, node, tree, local_functions, env, called)
        else:
            fn, free = _value_of(call.args[0], env, local_names, {}), ()
        options = {k.arg: k.value for k in call.keywords}
        for key, value in list(options.items()):    # wrt=(0, 1): a temporary now
            if isinstance(value, ast.Name) and counts.get(value.id) == 1:
                options[key] = values[value.id]
        if fn is None or not isinstance(fn, types.FunctionType) or \
                any(not isinstance(v, (ast.Constant, ast.Tuple)) for v in options.values()):
            continue
        try:
            options = {k: ast.literal_eval(v) for k, v in options.items()}
            found[node.targets[0].id] = (maker(fn, **options), free)
            if inner in local_functions:      # made here: the code does not make it
                node.value = ast.copy_location(ast.Constant(None), node.value)
        except (ValueError, TypeError):
            continue
    return found


def _lifted_function(inner, assignment, tree, local_functions, env, called):
    """For ``g = kt.grad(inner)`` of a function defined inside: a Python
    function standing for its lifted form (:func:`.closures.function_of`)
    and the enclosing variables it takes last, which calls of ``g`` pass."""
    lifted, unit = local_functions[inner]
    name = assignment.targets[0].id
    if any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)
           and id(n) not in called for n in ast.walk(tree)):
        raise unit.source.error(f"the gradient of {inner!r}, a function defined inside, "
                                f"may only be called here (kt.grad({inner})(x)), not "
                                "passed on or stored", assignment)
    return (function_of(lifted, unit.source, env.globals, unit.local_functions),
            fact(lifted, "free_variables", ()))


def _dotted_value(node, env):
    """The object ``a.b.c`` names in ``env``; ``KeyError`` or ``AttributeError``
    if it names none."""
    path = []
    while isinstance(node, ast.Attribute):
        path.append(node.attr)
        node = node.value
    obj = env.lookup(node.id)
    for attr in reversed(path):
        obj = getattr(obj, attr)
    return obj


def _with_functions(target, call, env, local_names, dotted, local_functions):
    """A user function's target with the known functions its parameters get
    (arguments that name one, or defaults that are one); a function defined
    inside gets its enclosing variables as hidden keyword arguments of the
    call (see :mod:`.closures`)."""
    if target.kind != "user":
        return target
    try:
        signature = inspect.signature(target.obj)
        bound = signature.bind_partial(*call.args, **{k.arg: k.value for k in call.keywords
                                                       if k.arg is not None})
    except (TypeError, ValueError):
        return target
    functions = []
    for name, param in signature.parameters.items():
        argument = bound.arguments.get(name)
        local, holder = _local_value(argument, env, dotted, local_functions) \
            if isinstance(argument, ast.AST) else (None, None)
        if local is not None:
            functions.append((name, local))
            call.keywords = call.keywords + [
                ast.keyword(arg=hidden_name(name, var), value=ast.Name(source, ast.Load()))
                for var, source in zip(local.free, environment_names(local, holder))]
            continue
        if name in bound.arguments:
            obj = _value_of(bound.arguments[name], env, local_names, dotted) \
                if isinstance(bound.arguments[name], ast.AST) else None
        else:
            obj = param.default if _is_function(param.default) else None
        if obj is not None:
            functions.append((name, obj))
    if functions:
        target.functions = tuple(functions)
    return target


def _user_method(cls, attr):
    """The plain function ``cls.attr`` (not a static or class method, not a
    property), or ``None``."""
    if cls is None:
        return None
    for klass in cls.__mro__:
        if attr in vars(klass):
            value = vars(klass)[attr]
            return value if isinstance(value, types.FunctionType) else None
    return None


def dotted_root(node):
    """The name at the root of ``a.b.c``."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def resolve_calls(tree, env, local_functions, source):
    """Sets ``kt_target`` on every call of the normalized function ``tree``; a
    refused function is a :class:`TransformError` at the call's line."""
    params = [a.arg for a in ast.walk(tree.args) if isinstance(a, ast.arg)]
    local_names = set(params) | {n.id for n in ast.walk(tree)
                                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    # Temporaries the normalizer bound once to a dotted name (t = kt.sigm).
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
              and isinstance(n.targets[0], ast.Name)]
    counts = {}
    for n in stores:
        counts[n.targets[0].id] = counts.get(n.targets[0].id, 0) + 1
    dotted = {n.targets[0].id: n.value for n in stores if counts[n.targets[0].id] == 1
              and n.targets[0].id not in params
              and (isinstance(n.value, (ast.Attribute, ast.Name)) or
                   isinstance(n.value, ast.Constant) and has_fact(n.value, "local_function"))}

    gradients = _gradient_functions(tree, env, local_names, local_functions)

    def visit(node, stmt):
        for child in ast.iter_child_nodes(node):
            where = child if isinstance(child, ast.stmt) else stmt
            if isinstance(child, ast.Call):
                if isinstance(child.func, ast.Name) and child.func.id in gradients:
                    function, free = gradients[child.func.id]
                    child.args = child.args + [ast.Name(v, ast.Load()) for v in free]
                    set_fact(child, "target", Target("gradient", function, child.func.id))
                    visit(child, where)
                    continue
                set_fact(child, "target", _resolve(child, env, local_names,
                                                   local_functions, source, dotted))
                if fact(child, "target").kind == "refused":
                    raise source.error(refusal(fact(child, "target").obj), where)
            visit(child, where)

    visit(tree, tree)


def _resolve(call, env, local_names, local_functions, source, dotted):
    runtime = fact(call, "runtime", None)
    if runtime:
        return Target("nondiff", None, runtime)
    func = call.func
    if isinstance(func, ast.Name):
        if func.id in local_functions:
            return Target("local", local_functions[func.id], func.id)
        if func.id in env.functions:
            value = env.functions[func.id]
            if isinstance(value, LocalFunction):        # f(v): lifted(v, f__w...)
                call.args = call.args + [ast.Name(n, ast.Load())
                                         for n in environment_names(value, func.id)]
            target = classify(value, func.id)
            return _with_functions(target, call, env, local_names, dotted, local_functions)
        if func.id in local_names:
            return Target("dynamic", None, func.id)
        try:
            target = classify(env.lookup(func.id), func.id)
        except (KeyError, AttributeError):
            raise source.error(f"name {func.id!r} is not defined", call) from None
        return _with_functions(target, call, env, local_names, dotted, local_functions)
    if isinstance(func, ast.Attribute):
        root = dotted_root(func)
        if isinstance(root, ast.Name) and root.id in local_names:
            method = _user_method(env.classes.get(root.id), func.attr)
            if func.value is root and method is not None:
                return Target("user", method, f"{root.id}.{func.attr}", receiver=root.id,
                              receiver_class=env.classes[root.id])
            if func.value is root:
                return Target("method", None, func.attr)
            return Target("dynamic", None, ast.unparse(func))
        if isinstance(root, ast.Name):
            try:
                obj = _dotted_value(func, env)
            except (KeyError, AttributeError):
                raise source.error(f"cannot resolve {ast.unparse(func)!r}", call) from None
            return classify(obj, ast.unparse(func))
    return Target("dynamic", None, ast.unparse(func))
