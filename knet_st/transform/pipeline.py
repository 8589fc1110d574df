"""The pipeline of ``kt.grad``: every stage, in order, in two functions.

A function is read once (:func:`front_end`) and differentiated once for each
set of parameters that carry gradients (:func:`back_end`); the compiler
(:mod:`.compiler`) asks for the functions a gradient calls, and emits all
their forward and backward functions as one module::

    parse → desugar → scopes → fence → lift → jumps → normalize → dispatch → resolve
          → varargs                                               front_end
    effects → activity → prepare → reverse → assemble → optimize → fusion
                                                                  back_end
    emit                                                          Compiler.compile_top
    observe → specialize → dead value → emit, per signature       GradFunction._specialize

The last line is :mod:`.specialize`: the emitted module, run once with its
helper calls recorded, rewritten for the shapes that call saw (and for a
``grad``, :mod:`.dead_value`: the loss itself is not computed).
"""

import ast
import copy
import functools
from dataclasses import dataclass, field

from .activity import analyze
from .assemble import assemble
from .bindings import bindings_of
from .effects import function_effects
from .fence import check
from .fusion import fuse
from .handlers import check_guarded, guard_forward
from .inplace import (check_written_aliases, copy_written_outputs, lower_out, snapshot_reads,
                      written_arrays)
from .jumps import lower
from .desugar import desugar
from .closures import closure_parameters
from .dispatch import dispatch_calls
from .scopes import imported, outer_names
from .lift import lift
from .names import Names
from .normalize import global_names, normalize
from .operands import SEQUENCE, lower_ambiguous
from .optimize import hoist_checks, propagate_copies
from .parse import parse_function
from .prepare import (check_aliasing, insert_live_flags, lists_as_arrays, lower_augmented,
                      lower_sequences, sparse_adjoints)
from .resolve import resolve_calls
from .reverse import Reverse
from .varargs import pack_arguments, regular_parameters


@dataclass
class Unit:
    """One function read by the front end: its normalized, resolved tree, its
    source (for errors), its environment (for names), its local names, and
    the functions defined inside it (lifted)."""
    name: str
    qualname: str
    tree: object
    source: object
    env: object
    names: Names
    local_functions: dict = field(default_factory=dict)

    @property
    def params(self):
        """The names of the parameters, in order."""
        args = self.tree.args
        return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]


def parse_and_fence(fn):
    """The tree and source of a user function, refused if unsupported."""
    tree, source = parse_function(fn)                   # parse
    desugar(tree, source, _builtin_names(fn))           # desugar
    outer_names(tree, source)                           # scopes
    check(tree, source)                                 # fence
    return tree, source


def _builtin_names(fn):
    """The names of Python's builtins that ``fn``'s module does not rebind,
    among those desugar rewrites, and ``reduce`` or ``functools.reduce``
    where they mean ``functools.reduce``."""
    space = getattr(fn, "__globals__", {})
    names = {n for n in ("map", "sorted", "min", "max") if n not in space}
    if space.get("reduce") is functools.reduce:
        names.add("reduce")
    if space.get("functools") is functools:
        names.add("functools.reduce")
    return frozenset(names)


def front_end(name, qualname, tree, source, env, local_functions):
    """A parsed function tree made ready for differentiation: a :class:`Unit`."""
    env.imports = {**env.imports, **imported(tree, env.globals, env.cells)}
    closure_parameters(tree, env.functions)
    names = Names.of(tree)
    names.globals |= global_names(tree)
    unit = Unit(name, qualname, tree, source, env, names, dict(local_functions))
    lifted = lift(tree, source)                         # lift
    unit.local_functions.update({n: (d, unit) for n, d in lifted.items()})
    lower(tree, names)                                  # jumps
    normalize(tree, names, source)                      # normalize
    dispatch_calls(tree, names, env.functions, unit.local_functions)   # dispatch
    resolve_calls(tree, env, unit.local_functions, source)   # resolve
    pack_arguments(tree, names, source)                 # varargs
    regular_parameters(tree)
    return unit


def local_unit(target, units):
    """The :class:`Unit` of a function defined inside another (a ``local``
    target: its lifted tree and the unit it was lifted from), made once and
    kept in ``units``."""
    tree, parent = target.obj
    key = ("local", id(parent), tree.name)
    if key not in units:
        units[key] = front_end(tree.name, f"{parent.qualname}.{tree.name}",
                               copy.deepcopy(tree), parent.source, parent.env,
                               parent.local_functions)
    return units[key]


def back_end(unit, pattern, is_top, ctx, calls, fwd_name, bwd_name, volatile=frozenset(),
             kinds=None):
    """The forward and backward ``FunctionDef`` trees of ``unit`` differentiated
    with respect to its parameters at positions ``pattern``.  ``ctx`` is the
    :class:`~.context.Context` of this function, ``calls`` answers for the
    user functions it calls (``request``, ``bind``, ``parameters``, ``mutated``,
    ``stored``); ``volatile`` the parameters its caller changes in place
    after the call; ``kinds`` the kinds of the parameters the call gives
    (:mod:`.operands`), where known."""
    tree = copy.deepcopy(unit.tree)
    params = unit.params
    wrt = [params[i] for i in pattern]
    known_sequences = lower_sequences(ctx, tree)
    effects = function_effects(tree, calls.mutated)                         # effects
    active = analyze(tree.body, wrt, calls.stored)                          # activity
    rebound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
               and isinstance(n.ctx, ast.Store)}
    given = {p for p, kind in (kinds or {}).items() if kind == SEQUENCE and p not in rebound}
    active = lists_as_arrays(ctx, tree, known_sequences | given, active)
    check_guarded(ctx, tree, active, calls.mutated)
    before = bindings_of(tree, params)                                      # prepare
    arrays = written_arrays(tree, active)
    check_written_aliases(ctx, tree, effects, arrays)
    active = copy_written_outputs(ctx, tree, arrays, active)
    check_aliasing(ctx, tree, params, active, before, arrays, effects)
    active = lower_out(ctx, tree, active)
    active = lower_augmented(ctx, tree, active, arrays)
    lower_ambiguous(ctx, tree, active, kinds)
    active = snapshot_reads(ctx, tree, effects, active, calls, arrays, volatile)
    mixed = insert_live_flags(ctx, tree, params, active, wrt,
                              before.containers | before.may_grow)
    bindings = bindings_of(tree, params)
    # a list the caller grows or shrinks after the call: its negative or
    # computed indices are fixed in the forward pass, as for lists grown here
    bindings.may_grow |= set(volatile) & set(params)
    reverse = Reverse(ctx, bindings, active, wrt, mixed,
                      sparse_adjoints(tree), is_top, calls)
    reversed_ = reverse.run(tree)                                           # reverse
    fwd, bwd = assemble(reversed_, tree.args, fwd_name, bwd_name, ctx)   # assemble
    guard_forward(fwd, reversed_.stack)
    hoist_checks(fwd)                                                       # optimize
    propagate_copies(bwd)
    fuse(ctx, fwd, bwd)                                                     # fusion
    return fwd, bwd
