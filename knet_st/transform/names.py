"""Fresh, readable, deterministic names for generated code."""

import ast
import re


class Names:
    """Hands out names that clash with none already used in a function.

    ``fresh('t')`` gives ``t1``, ``t2``...; ``fresh('w0')`` gives ``w0`` if free,
    else ``w0_1``.  Same input, same names: generated source can be diffed.
    """

    def __init__(self, taken=(), globals_=()):
        self.taken = set(taken)
        self.globals = set(globals_)
        self.counters = {}

    def copy(self):
        """An independent generator with the same names taken."""
        other = Names(self.taken, self.globals)
        other.counters = dict(self.counters)
        return other

    def checkpoint(self):
        """The state, for :meth:`restore` (the reverse pass retries loop bodies)."""
        return set(self.taken), set(self.globals), dict(self.counters)

    def restore(self, state):
        """Back to a :meth:`checkpoint`."""
        taken, globals_, counters = state
        self.taken, self.globals, self.counters = set(taken), set(globals_), dict(counters)

    @classmethod
    def of(cls, tree):
        """A generator that avoids every identifier in ``tree``."""
        taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        taken |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        taken |= {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
        return cls(taken)

    def reserve(self, name):
        """Marks ``name`` as taken and returns it."""
        self.taken.add(name)
        return name

    def fresh(self, base="t"):
        """A new name from ``base``: ``t1``, ``t2``... for temporaries; ``base``
        itself if free, else ``base2``, ``base3``..."""
        base = re.sub(r"\W", "_", base) or "t"
        if base[0].isdigit():
            base = "t" + base
        if base == "t":                  # temporaries are numbered from t1
            return self._numbered("t", 0)
        if base not in self.taken:
            return self.reserve(base)
        if base[-1].isdigit():           # w0 taken: w0_2, not w02
            base += "_"
        return self._numbered(base, 1)

    def _numbered(self, base, start):
        n = self.counters.get(base, start)
        while True:
            n += 1
            name = f"{base}{n}"
            if name not in self.taken:
                self.counters[base] = n
                return self.reserve(name)
