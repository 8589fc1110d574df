"""What the passes after resolve share about the one function they transform."""

import ast
import builtins

from ..runtime import gradients as rt
from .facts import set_fact
from .trees import bound_name, call, name


class Context:
    """One function's source (for errors), its local names (for fresh ones) and
    ``bind``, which binds an object into the generated module's namespace
    under a key that no local of the function uses."""

    def __init__(self, source, names, bind):
        self.source = source
        self.names = names
        self.bind = bind

    def error(self, message, node):
        """A :class:`TransformError` pointing at ``node``'s line."""
        return self.source.error(message, node)

    def fresh(self, base):
        """A new local name starting with ``base``."""
        return self.names.fresh(base)

    def helper(self, key, obj=None):
        """A Name of a runtime helper (or builtin) in the generated module."""
        if obj is None:
            obj = getattr(rt, key) if hasattr(rt, key) else getattr(builtins, key)
        return self.constant(key, obj)

    def constant(self, key, obj):
        """A Name of ``obj`` in the generated module."""
        return set_fact(bound_name(self.bind(key, obj, self.names)), "helper", key)

    def run_check(self, helper, var, stmt):
        """A run-time check ``helper(var, lineN)`` of ``stmt``: ``lineN`` is a
        name in the generated module for ``(file, line, text)``, for its error."""
        where = (self.source.filename, stmt.lineno, self.source.line(stmt.lineno))
        check = ast.Expr(call(self.helper(helper), name(var),
                              self.constant(f"line{stmt.lineno}", where)))
        return set_fact(check, "check", True)
