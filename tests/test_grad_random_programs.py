"""Randomly generated programs mixing every construct, each gradient checked
against finite differences.

Each program is written to a module file (``kt.grad`` reads source), built
from loops with ``break``/``continue``, branches on loop counters, variables
rebound in loops, lists that grow and are read by index, state lists modified
in place, helper functions returning tuples, and recursion.  Branch conditions
depend on counters only, so finite differences never cross a branch.
"""

import importlib.util
import random
import textwrap

import numpy as np
import pytest

from gradcheck import check_grad

HELPERS = '''
import numpy as np


def pair(w, h):
    a = np.tanh(w[0] @ h)
    return a, a * h + 0.5


def power(w, h, n):
    if n == 0:
        return h
    return power(w, np.sin(w[1] @ h) + h, n - 1)


def update(s, k, v):
    s[k] = s[k] * 0.5 + v


def push(hs, v):
    hs.append(np.tanh(v) * 0.5)
    return hs[-1] + v


def fill(hs, v, n):
    if n == 0:
        return v
    hs.append(v * 0.5)
    return fill(hs, np.sin(v) + hs[-1], n - 1)


def both(w, h):
    return [np.tanh(w[0] @ h), h * 0.5]


def tweak(d, v):
    d['a'] = d['a'] * 0.9 + v
    return d['b'] * v
'''


class Program:
    """Writes the body of ``f(w, x)`` as nested, indented statements."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lines = []
        self.loop_vars = []

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def statement(self, depth):
        r = self.rng
        choices = ["tanh", "mix", "acc", "append", "read", "pair", "state", "closure",
                   "dict", "ifexp", "comprehension", "augmented", "enumerate", "zip",
                   "items", "setlist", "keyword", "push", "grow", "fill", "tweak",
                   "indexed", "listret", "floatmix", "broadcast"]
        if depth < 3:
            choices += ["for", "for", "if", "while"]
        if depth == 1:
            choices += ["power", "early"]
        kind = r.choice(choices)
        if kind == "tanh":
            self.emit(depth, f"h = np.tanh(w[{r.randrange(3)}] @ h)")
        elif kind == "mix":
            self.emit(depth, f"h = h * {r.choice(['0.5', '1.1', '-0.7'])} + x")
        elif kind == "acc":
            self.emit(depth, f"acc = acc + np.sum(h * ({r.choice(['h', 'x', 'w[2] @ h'])}))")
        elif kind == "append":
            self.emit(depth, "hs.append(h * 0.9)")
        elif kind == "read":
            self.emit(depth, f"h = h + hs[{r.choice(['-1', '0', 'len(hs) - 1'])}]")
        elif kind == "pair":
            self.emit(depth, "a, b = pair(w, h)")
            self.emit(depth, "h = a - 0.3 * b")
        elif kind == "state":
            self.emit(depth, f"update(s, {r.randrange(2)}, h)")
            self.emit(depth, f"h = h + s[{r.randrange(2)}] * 0.2")
        elif kind == "enumerate":
            self.emit(depth, "for j, v in enumerate(hs):")
            self.emit(depth + 1, "acc = acc + np.sum(v * h) * (j + 1)")
        elif kind == "zip":
            self.emit(depth, "for u, v in zip(hs, s):")
            self.emit(depth + 1, "h = h + u * v * 0.1")
        elif kind == "items":
            self.emit(depth, "for key, v in d.items():")
            self.emit(depth + 1, "acc = acc + np.sum(v * h)")
        elif kind == "setlist":
            self.emit(depth, "hs[0] = hs[0] * 0.5 + h")
        elif kind == "keyword":
            self.emit(depth, "a, b = pair(h=h, w=w)")
            self.emit(depth, "h = b - a")
        elif kind == "broadcast":
            column, row = f"w[{r.randrange(3)}][:, :1]", f"w[{r.randrange(3)}][:1, :2]"
            op = r.choice(["+", "-", "*"])
            self.emit(depth, f"acc = acc + np.sum(h {op} {column}) + np.sum({row} {op} h)")
            self.emit(depth, f"h = h * 0.5 + {column} {op} {row}")
        elif kind == "listret":
            self.emit(depth, "p = both(w, h)")
            self.emit(depth, f"h = p[{r.randrange(2)}] + p[-1] * 0.5")
        elif kind == "floatmix":
            self.emit(depth, "c = 0.5")
            self.emit(depth, "if len(hs) > 2:")
            self.emit(depth + 1, "c = np.sum(h) * 0.01")
            self.emit(depth, "h = h * c + x")
        elif kind == "grow":
            self.emit(depth, "grow(h)")
        elif kind == "fill":
            self.emit(depth, f"h = fill(hs, h, {r.randrange(3)}) * 0.5")
        elif kind == "tweak":
            self.emit(depth, "h = h + tweak(d, h) * 0.2")
        elif kind == "indexed":
            index = f"{self.loop_vars[-1]} % len(hs)" if self.loop_vars else "len(hs) // 2"
            self.emit(depth, f"h = h * 0.5 + hs[{index}]")
        elif kind == "push":
            self.emit(depth, "h = push(hs, h) * 0.7")
        elif kind == "closure":
            self.emit(depth, "h = layer(h)")
        elif kind == "dict":
            key = r.choice(["'a'", "'b'"])
            self.emit(depth, f"d[{key}] = d[{key}] * 0.5 + np.sin(h)")
            self.emit(depth, f"h = h + d[{r.choice(['a', 'b'])!r}] * 0.3")
        elif kind == "ifexp":
            test = f"{self.loop_vars[-1]} > 0" if self.loop_vars else "len(hs) > 2"
            self.emit(depth, f"h = np.cos(h) if {test} else h * 0.8")
        elif kind == "comprehension":
            self.emit(depth, "acc = acc + sum([np.sum(v * v) for v in hs])")
        elif kind == "augmented":
            self.emit(depth, "acc += np.sum(np.exp(-h * h))")
        elif kind == "while":
            var = f"n{len(self.loop_vars)}"
            self.loop_vars.append(var)
            self.emit(depth, f"{var} = 0")
            self.emit(depth, f"while {var} < {r.randrange(1, 3)}:")
            self.statement(depth + 1)
            if r.random() < 0.3:
                self.emit(depth + 1, f"if len(hs) > {r.randrange(1, 5)}:")
                self.emit(depth + 2, "break")
            self.emit(depth + 1, f"{var} += 1")
            self.loop_vars.pop()
        elif kind == "early":
            self.emit(depth, f"if len(hs) > {r.randrange(2, 6)}:")
            self.emit(depth + 1, "return acc + np.sum(h) + np.sum(d['a'])")
        elif kind == "power":
            self.emit(depth, f"h = power(w, h, {r.randrange(3)})")
        elif kind == "for":
            var = f"i{len(self.loop_vars)}"
            self.loop_vars.append(var)
            self.emit(depth, f"for {var} in range({r.randrange(1, 4)}):")
            exit_kind = r.choice([None, None, "break", "continue"])
            n = r.randrange(1, 4)
            at = r.randrange(n + 1)
            for k in range(n):
                if k == at and exit_kind:
                    self.emit(depth + 1, f"if {var} == {r.randrange(3)}:")
                    self.emit(depth + 2, exit_kind)
                self.statement(depth + 1)
            self.loop_vars.pop()
        elif kind == "if":
            test = f"{self.loop_vars[-1]} % 2 == 0" if self.loop_vars else \
                r.choice(["len(hs) > 1", "True", "False"])
            self.emit(depth, f"if {test}:")
            self.statement(depth + 1)
            if r.random() < 0.5:
                self.emit(depth, "else:")
                self.statement(depth + 1)

    def source(self, n=4):
        self.lines = ["def f(w, x):", "    h = x", "    acc = 0.0", "    hs = [x]",
                      "    s = [x * 1.0, x * 2.0]", "    d = {'a': x * 0.5, 'b': x}", "",
                      "    def layer(v):", "        return np.tanh(w[1] @ v) + s[0] * 0.1", "",
                      "    def grow(v):", "        hs.append(np.cos(v) * 0.3)", ""]
        for _ in range(n):
            self.statement(1)
        self.emit(1, "return acc + np.sum(h * h) + np.sum(hs[-1]) + np.sum(s[0] * s[1]) + "
                     "np.sum(d['b'])")
        return HELPERS + "\n\n" + "\n".join(self.lines) + "\n"


def load(tmp_path, seed):
    text = Program(seed).source()
    path = tmp_path / f"program_{seed}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"program_{seed}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.f, text


@pytest.mark.parametrize("seed", range(200))
def test_random_program(tmp_path, seed):
    f, text = load(tmp_path, seed)
    rng = np.random.default_rng(seed)
    w = [0.4 * rng.standard_normal((3, 3)) for _ in range(3)]
    x = rng.standard_normal((3, 2))
    try:
        check_grad(f, (w, x), rtol=1e-4, atol=1e-6)
        check_grad(f, (tuple(w), x), wrt=(0, 1), rtol=1e-4, atol=1e-6)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nprogram:\n{textwrap.indent(text, '    ')}") from None
