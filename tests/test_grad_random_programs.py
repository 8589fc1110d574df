"""Randomly generated programs mixing every construct, each gradient checked
against finite differences.

Each program is written to a module file (``kt.grad`` reads source), built
from loops with ``break``/``continue``, branches on loop counters, variables
rebound in loops, lists that grow and are read by index, state lists modified
in place, helper functions returning tuples, and recursion.  Branch conditions
depend on counters only, so finite differences never cross a branch.

Since issue 10 the programs also change values in place after a use that the
backward pass reads: augmented assignment on floats, ints (loop counters that
index the weights), discounts and arrays without gradient (``buf *= 0.5``);
writes into buffers, masks and index arrays (``buf[:] = v``, ``mask[i] =
False``, ``idx[:] = ...``, ``np.copyto``, ``.fill``), directly, in loops,
through helpers that change their argument, through aliases and views;
``out=`` on values without gradient and on fresh values with gradient;
helpers wrapped with ``functools.wraps`` decorators; rebinding then indexing,
softmax normalisation then fancy indexing.

Every generated program must give the gradient of finite differences.  A few
constructs (``out=`` into a parameter, in-place operators on values with
gradients) may be refused instead: their lines end with ``# may refuse``, and a
``kt.TransformError`` is accepted only when it names the program's file and
such a line.

The default test checks 200 programs; ``-m slow`` runs a sweep over the
seeds ``KNET_ST_SWEEP=start:stop`` (default ``0:20000``), e.g.::

    KNET_ST_SWEEP=0:5000 python -m pytest -q -m slow tests/test_grad_random_programs.py -x

or, with a count of checked and refused programs and a log of failures,
``python tests/sweep_random_programs.py 0 5000``.  Constructs left out until a
finding of ``tests/sweep_findings.md`` is fixed are named in comments.
"""

import copy
import importlib.util
import os
import random
import textwrap

import numpy as np
import pytest

import knet_st as kt
from gradcheck import check_grad

MAY_REFUSE = "# may refuse"

HELPERS = '''
import functools

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


def halve(b):
    b *= 0.5


def zero_row(b, i):
    b[i] = 0.0


def refill(b, v):
    b[:] = v


def drop(m, i):
    m[i] = False


def shift(idx):
    idx[:] = (idx + 1) % 3


def scaled_use(h, b):
    y = np.tanh(h) * b
    b *= 0.5
    return y


def doubled(fn):
    @functools.wraps(fn)
    def wrapper(w, h):
        return 2.0 * fn(w, h)
    return wrapper


def swapped(fn):
    @functools.wraps(fn)
    def wrapper(w, h):
        a, b = fn(w, h)
        return b * 0.5, a
    return wrapper


def scaled(c):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(w, h):
            return fn(w, h) * c
        return wrapper
    return deco


@doubled
def wcell(w, h):
    return np.tanh(w[2] @ h) * 0.5


@swapped
def wpair(w, h):
    return pair(w, h)


@scaled(0.5)
@doubled
def wstack(w, h):
    return np.sin(w[1] @ h)
'''


class Program:
    """Writes the body of ``f(w, x)`` as nested, indented statements."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lines = []
        self.loop_vars = []
        self.fresh = 0

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def new(self, prefix):
        self.fresh += 1
        return f"{prefix}{self.fresh}"

    def counter(self):
        """An int index expression in 0..2 (a loop counter or ``k``)."""
        r = self.rng
        var = r.choice(self.loop_vars + ["k"])
        return f"{var} % 3"

    # ------------------------------------------------- uses that the backward reads

    def use_buf(self, depth, b="buf"):
        self.emit(depth, self.rng.choice([
            f"h = h * {b}", f"acc = acc + np.sum(h * {b})", f"h = np.tanh(h * {b}) + x * 0.1",
            f"h = h + np.sin(h) * {b} * 0.5", f"acc = acc + np.sum({b}.T @ np.tanh(h))"]))

    def use_mask(self, depth, m="mask"):
        self.emit(depth, self.rng.choice([
            f"h = h * {m} + x * 0.1", f"h = np.where({m}, np.tanh(h), h * 0.5)",
            f"acc = acc + np.sum(np.sin(h) * {m})"]))

    def use_idx(self, depth):
        r = self.rng
        self.emit(depth, r.choice([
            f"h = np.tanh(w[{r.randrange(3)}][idx] @ h)", "acc = acc + np.sum(h[idx] * x)",
            f"h = h * 0.5 + w[{r.randrange(3)}][idx][:, :2]", "h = h + h[idx] * 0.3"]))

    # ---------------------------------------------------------- in-place changes

    def change_buf(self, depth, b="buf"):
        r = self.rng
        self.emit(depth, r.choice([
            f"{b} *= 0.5", f"{b} += 0.25", f"{b} -= 0.125", f"{b} /= 2.0",
            f"{b}[:] = 0.5 + 0.1 * k", f"{b}[:] = C", f"{b}[{self.counter()}] = 0.0",
            f"{b}[:, {r.randrange(2)}] = 0.5", f"{b}[1, 1] = 2.0", f"np.copyto({b}, C)",
            f"np.copyto({b}, C * 0.5 + {b})", f"{b}.fill({r.choice(['1.0', '0.5', '0'])})",
            f"halve({b})", f"zero_row({b}, {self.counter()})", f"refill({b}, C * 0.3)",
            f"np.exp(C * 0.1, out={b})", f"np.multiply({b}, 0.5, out={b})",
            f"np.tanh({b}, out={b})", f"np.add({b}, 0.25, out={b})"]))

    def change_mask(self, depth, m="mask"):
        r = self.rng
        self.emit(depth, r.choice([
            f"{m}[{self.counter()}] = False", f"{m}[:, {r.randrange(2)}] = False",
            f"{m}[{self.counter()}, {r.randrange(2)}] = False", f"{m}[:] = True",
            f"drop({m}, {self.counter()})", f"np.copyto({m}, C > 0)",
            f"{m}.fill(True)"]))

    def change_idx(self, depth):
        r = self.rng
        self.emit(depth, r.choice([
            "idx[:] = (idx + 1) % 3", "idx[:] = [2, 1, 0]", f"idx[{self.counter()}] = 1",
            "shift(idx)", "np.copyto(idx, (idx + 2) % 3)", "idx[:] = idx[::-1]",
            "idx += 1", "idx %= 3"]))
        if self.lines[-1].endswith("idx += 1"):
            self.emit(depth, "idx %= 3")      # keeps the indices in range

    def change(self, depth):
        """Changes one of the arrays without gradient in place."""
        kind = self.rng.choice(["buf", "buf", "mask", "idx"])
        getattr(self, f"change_{kind}")(depth)

    # ------------------------------------------------------------------ statements

    OLD = ["tanh", "mix", "acc", "append", "read", "pair", "state", "closure",
           "dict", "ifexp", "comprehension", "augmented", "enumerate", "zip",
           "items", "setlist", "keyword", "push", "grow", "fill", "tweak",
           "indexed", "listret", "floatmix", "broadcast"]
    NEW = ["augfloat", "augfloat", "disc", "counter", "powint", "bufaug", "bufaug",
           "bufwrite", "mask", "mask", "index", "index", "change", "change", "helpermut",
           "alias", "view", "outbuf", "outfresh", "outfresh", "wrapped", "wrapped",
           "rebindindex", "rebindindex", "softmax", "softmax", "stash", "rebuf",
           "rare", "aliasrebind"]

    def statement(self, depth):
        r = self.rng
        choices = self.OLD + self.NEW
        if depth < 3:
            choices += ["for", "for", "if", "while", "countloop"]
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
        # ------------------------------------------- issue 10: augmented, no gradient
        elif kind == "augfloat":
            self.emit(depth, r.choice([
                "h = h * sc + x", "acc = acc + np.sum(h * h) * sc", "h = np.tanh(h * sc)",
                "acc += np.sum(np.sin(h)) * sc"]))
            self.emit(depth, r.choice(["sc += 0.25", "sc *= 0.9", "sc -= 0.05", "sc /= 1.25"]))
        elif kind == "disc":
            self.emit(depth, "acc = acc + disc * np.sum(np.tanh(h))")
            self.emit(depth, f"disc *= {r.choice(['0.9', 'gamma'])}")
        elif kind == "counter":
            self.emit(depth, r.choice([
                "h = np.tanh(w[k % 3] @ h) * 0.5 + h * 0.5", "h = h * (0.5 + 0.1 * k) + x",
                "acc = acc + np.sum(w[k % 3] @ h) * k"]))
            self.emit(depth, "k += 1")
        elif kind == "powint":
            self.emit(depth, "acc = acc + np.sum(np.tanh(h) ** pw)")
            self.emit(depth, "pw += 1")
        elif kind == "bufaug":
            self.use_buf(depth)
            self.emit(depth, r.choice(["buf *= 0.5", "buf += 0.25", "buf -= 0.125",
                                       "buf /= 2.0"]))
        # ----------------------------------------- issue 10: in-place writes after use
        elif kind == "bufwrite":
            self.use_buf(depth)
            self.change_buf(depth)
        elif kind == "mask":
            self.use_mask(depth)
            if r.random() < 0.7:
                self.change_mask(depth)
        elif kind == "index":
            self.use_idx(depth)
            if r.random() < 0.7:
                self.change_idx(depth) if r.random() < 0.7 else self.change(depth)
        elif kind == "change":
            self.change(depth)
        elif kind == "helpermut":
            self.emit(depth, r.choice([
                "h = scaled_use(h, buf) + x * 0.1", "halve(buf)", "drop(mask, k % 3)",
                "shift(idx)"]))
        elif kind == "alias":
            m = self.new("m")
            if r.random() < 0.5:
                self.emit(depth, f"{m} = buf")
                self.use_buf(depth, r.choice([m, "buf"]))
                self.change_buf(depth, r.choice([m, "buf"]))
            else:
                self.emit(depth, f"{m} = mask")
                self.use_mask(depth, r.choice([m, "mask"]))
                self.change_mask(depth, r.choice([m, "mask"]))
        elif kind == "view":
            v = self.new("v")
            self.emit(depth, f"{v} = buf[{r.choice(['0', '1', '2', 'k % 3', '-1'])}]")
            self.emit(depth, r.choice([f"h = h * {v} + x * 0.1",
                                       f"acc = acc + np.sum(np.tanh(h) * {v})"]))
            if r.random() < 0.5:
                self.emit(depth, r.choice([f"{v} *= 0.5", f"{v}[0] = 3.0", f"{v}.fill(0.5)"]))
            self.change_buf(depth)
        # ---------------------------------------------------------- issue 10: out=
        elif kind == "outbuf":
            self.emit(depth, r.choice([
                "np.exp(C * 0.1, out=buf)", "np.tanh(C, out=buf)",
                "np.multiply(buf, 0.5, out=buf)", "np.add(buf, C, out=buf)"]))
            self.use_buf(depth)
            if r.random() < 0.5:
                self.change_buf(depth)
        elif kind == "outfresh":
            o = self.new("o")
            self.emit(depth, f"{o} = w[{r.randrange(3)}] @ h")
            fn = r.choice(["np.tanh({o}, out={o})", "np.sin({o}, out={o})",
                           "np.multiply({o}, 0.5, out={o})", "np.add({o}, x, out={o})",
                           "np.exp({o} * 0.1, out={o})", "{y} = np.tanh({o}, out={o})"])
            y = self.new("y")
            self.emit(depth, fn.format(o=o, y=y))
            if fn.startswith("{y}"):
                self.emit(depth, f"h = {y} * 0.5 + h * 0.5")
            else:
                self.emit(depth, f"h = {o} * 0.5 + h * 0.5")
        # ------------------------------------------------------- issue 10: wrappers
        elif kind == "wrapped":
            form = r.choice(["cell", "pair", "stack"])
            if form == "cell":
                self.emit(depth, "h = wcell(w, h) + h * 0.5")
            elif form == "pair":
                self.emit(depth, "a, b = wpair(w, h)")
                self.emit(depth, "h = a - 0.3 * b")
            else:
                self.emit(depth, "h = wstack(w, h) * 0.7 + x")
        # ----------------------------------------- issue 10: rebinding then indexing
        elif kind == "rebindindex":
            self.emit(depth, "h = np.tanh(h)")
            self.emit(depth, "h = np.sin(h)")
            self.emit(depth, r.choice([
                f"acc += h[{r.randrange(3)}, {r.randrange(2)}]", "acc = acc + h[k % 3, 1]",
                "acc += np.sum(h[idx])", f"acc += h[{r.randrange(3)}][1]",
                "acc = acc + np.sum(h[1:]) * 0.5", "acc += np.sum(h[idx, lab])"]))
        elif kind == "softmax":
            p = self.new("p")
            self.emit(depth, f"{p} = np.exp(h - np.max(h, axis=1, keepdims=True))")
            self.emit(depth, f"{p} = {p} / {p}.sum(axis=1, keepdims=True)")
            self.emit(depth, r.choice([
                f"acc = acc - np.sum(np.log({p}[np.arange(3), lab]))",
                f"acc = acc - np.log({p}[range(3), lab]).sum()",
                f"acc = acc + np.sum({p}[idx, lab] * 0.5)"]))
            if r.random() < 0.3:
                self.emit(depth, f"h = h + {p} * 0.5")
        elif kind == "aliasrebind":
            m = self.new("m")
            self.emit(depth, f"{m} = buf")
            self.emit(depth, r.choice([f"{m} = np.tanh(h * {m})", f"{m} = h * {m}"]))
            self.change_buf(depth)
            self.emit(depth, f"h = h + {m} * 0.5")
        elif kind == "stash":
            # a list holds the buffer, which then changes in place
            self.emit(depth, "hs.append(buf)")
        elif kind == "rebuf":
            self.emit(depth, r.choice(["buf = np.ones((3, 2)) * 0.5", "buf = C * 1.0",
                                       "mask = np.ones((3, 2), dtype=bool)"]))
        elif kind == "rare":
            # constructs the compiler may legitimately refuse: out= into a
            # parameter, in-place operators on values with gradients
            for line in r.choice([
                    [f"np.tanh(w[{r.randrange(3)}], out=w[{r.randrange(3)}])"],
                    ["np.multiply(x, 0.5, out=x)"],   # findings 5 and 6
                    [f"h = w[{r.randrange(3)}] @ h", "np.tanh(h, out=h)"],
                    ["h += x * 0.5"], ["h *= 0.9"],
                    ["t = np.exp(h)", "t /= np.sum(t, axis=1, keepdims=True)",
                     "h = h + t"]]):
                self.emit(depth, f"{line}  {MAY_REFUSE}")
        # ------------------------------------------------------------ control flow
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
        elif kind == "countloop":
            # while i < n: ... w[i] ...; i += 1 (the counter indexes the weights)
            var = f"n{len(self.loop_vars)}"
            self.emit(depth, f"{var} = {r.choice(['0', '1'])}")
            self.emit(depth, f"while {var} < {r.choice(['3', 'len(w)', 'nw'])}:")
            self.emit(depth + 1, r.choice([
                f"h = np.tanh(w[{var}] @ h)", f"acc = acc + np.sum(w[{var}] @ h) * {var}",
                f"h = h * 0.5 + w[{var}][:, :2] * {var}"]))
            self.loop_vars.append(var)
            if r.random() < 0.5:
                self.statement(depth + 1)
            self.loop_vars.pop()
            self.emit(depth + 1, f"{var} += 1")
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
                      "    s = [x * 1.0, x * 2.0]", "    d = {'a': x * 0.5, 'b': x}",
                      "    C = np.cos(np.arange(6.0)).reshape(3, 2)",
                      "    buf = np.ones((3, 2))", "    mask = np.ones((3, 2), dtype=bool)",
                      "    idx = np.array([0, 2, 1])", "    lab = np.array([1, 0, 1])",
                      "    sc = 1.0", "    disc = 1.0", "    gamma = 0.8", "    k = 0",
                      "    pw = 2", "    nw = len(w)", "",
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
    return module.f, text, str(path)


def right_or_refused(f, args, wrt, text, path, atol=1e-6):
    """Checks the gradient against finite differences; a TransformError is
    accepted only at a line marked ``# may refuse`` of the program's file.
    Returns whether the gradient was checked."""
    try:
        kt.grad(f, wrt=wrt)(*copy.deepcopy(args))
    except kt.TransformError as err:
        lines = text.splitlines()
        assert err.filename == path and err.lineno and 1 <= err.lineno <= len(lines), \
            f"refused without the program's file and line: {err}"
        assert MAY_REFUSE in lines[err.lineno - 1], f"refused a construct it must accept: {err}"
        return False
    check_grad(f, args, wrt=wrt, rtol=1e-4, atol=atol)
    return True


def check_program(tmp_path, seed):
    """Checks the program of ``seed`` with wrt=0 and wrt=(0, 1); returns for
    each whether the gradient was checked (False: refused at a marked line)."""
    f, text, path = load(tmp_path, seed)
    rng = np.random.default_rng(seed)
    w = [0.4 * rng.standard_normal((3, 3)) for _ in range(3)]
    x = rng.standard_normal((3, 2))
    # a few programs grow to large values (seed 2603: f = 1.3e7); the rounding
    # error of finite differences grows with f, so atol does too
    try:
        atol = 1e-6 + 1e-8 * abs(float(f(*copy.deepcopy([w, x]))))
        checked = (right_or_refused(f, [w, x], 0, text, path, atol),
                   right_or_refused(f, [tuple(w), x], (0, 1), text, path, atol))
    except Exception as exc:
        raise AssertionError(f"seed {seed}: {type(exc).__name__}: {exc}\n"
                             f"program:\n{textwrap.indent(text, '    ')}") from None
    return checked


@pytest.mark.parametrize("seed", range(200))
def test_random_program(tmp_path, seed):
    check_program(tmp_path, seed)


def sweep_seeds():
    start, stop = os.environ.get("KNET_ST_SWEEP", "0:20000").split(":")
    return range(int(start), int(stop))


@pytest.mark.slow
@pytest.mark.parametrize("seed", sweep_seeds())
def test_random_program_sweep(tmp_path, seed):
    check_program(tmp_path, seed)
