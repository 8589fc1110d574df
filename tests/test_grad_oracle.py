"""A second oracle: kt.grad against HIPS autograd on the same programs.

Opt-in: runs where autograd is installed (``pip install -e '.[oracle]'``),
skipped otherwise.  Each program is written once, as text, and loaded twice
from files: with ``import numpy as np`` for knet_st (which reads the source)
and with ``import autograd.numpy as np`` for autograd.  Programs that write
into arrays are not here: autograd cannot differentiate them.
"""

import importlib.util
import textwrap

import numpy as np
import pytest

import knet_st as kt

autograd = pytest.importorskip("autograd")

PROGRAMS = {
    "elementwise": "np.sum(np.tanh(w) * np.exp(-w * w) + np.sin(w) ** 2 - np.log1p(w * w))",
    "broadcast": "np.sum((w[:4, None] * x.T + x[0, :3]) ** 2 / (1.0 + w[0] ** 2))",
    "reductions": "np.sum(np.mean(x, axis=0) * np.max(x, axis=1)[0]) + np.prod(w[:3])",
    "matmul": "np.sum(np.tanh(x.T @ x @ w[:4]) * w[:4]) + w @ w + x[0] @ w[:4]",
    "softmax": "np.sum(np.log(np.sum(np.exp(x - np.max(x, axis=1, keepdims=True)), axis=1)))",
    "indexing": "np.sum(x[1:, ::2] ** 2) + np.sum(w[[0, 2, 2]] * w[-1]) + x[2, 1]",
    "stack": "np.sum(np.stack([w[:3], w[1:4] * 2]) ** 2) + np.sum(np.concatenate([w, w]) * 0.5)",
    "reshape": "np.sum(np.reshape(x, (2, -1)).T @ np.ones(2) * np.transpose(x).ravel()[:6])",
    "where": "np.sum(np.where(w > 0, w ** 2, -w * 3))",
    "maximum": "np.sum(np.maximum(w, 0.1) * np.minimum(w, x[0, :6] if False else w * 0.5))",
    "cumsum": "np.sum(np.cumsum(w) ** 2) + np.sum(np.diff(w) ** 2)",
    "einsum": "np.sum(np.einsum('ij,kj->ik', x, x) * 0.5) + np.einsum('i,i->', w, w)",
    "linalg": "np.linalg.det(x[:3, :3] + 3 * np.eye(3)) + np.sum(np.linalg.inv(x[:3, :3] + 3 * np.eye(3)))",
    "norm": "np.linalg.norm(w) + np.linalg.norm(x, axis=1)[0]",
    "sort": "np.sum(np.sort(w) * np.arange(6.0))",
    "var": "np.var(w) + np.std(x, axis=0)[1]",
    "loop": "sum(np.sum(np.tanh(w * k)) for k in range(3))",
    "outer": "np.sum(np.outer(w, w[:2]) ** 2) + np.dot(w, w)",
    "abs": "np.sum(np.abs(w) * np.sqrt(w * w + 1.0))",
    "clip": "np.sum(np.clip(w, -0.5, 0.5) ** 2)",
    "trace": "np.trace(x[:3, :3] @ x[:3, :3].T)",
    "logsumexp": "np.sum(np.log(np.sum(np.exp(x), axis=0)))",
    "tril": "np.sum(np.tril(x[:3, :3]) ** 2) + np.sum(np.triu(x[:3, :3], 1))",
    "kron": "np.sum(np.kron(w[:2], w[2:4]) ** 2)",
}


def program_text(module, body):
    return textwrap.dedent(f"""\
        import {module} as np


        def f(w, x):
            h = {body}
            if np.sum(w) > 0:
                h = h * 1.5
            for i in range(2):
                h = h + np.sum(w * w) * 0.1 * i
            return h
        """)


def load(tmp_path, tag, module, body):
    path = tmp_path / f"oracle_{tag}.py"
    path.write_text(program_text(module, body))
    spec = importlib.util.spec_from_file_location(f"oracle_{tag}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.f


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_against_autograd(tmp_path, name):
    body = PROGRAMS[name]
    ours = load(tmp_path, name + "_kt", "numpy", body)
    theirs = load(tmp_path, name + "_ag", "autograd.numpy", body)
    rng = np.random.default_rng(len(name))
    w, x = rng.standard_normal(6), rng.standard_normal((3, 4))
    for wrt in (0, 1):
        expected = autograd.grad(theirs, wrt)(w, x)
        got = kt.grad(ours, wrt=wrt)(w, x)
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10,
                                   err_msg=f"{name}, wrt={wrt}")


# Python around NumPy: the constructs the front end rewrites
FUNCTIONS = {
    "closures": """
        def f(w, x):
            def layer(h):
                return np.tanh(x.T @ h[:3] + w[:4])
            act = layer if w[0] > -10 else np.sin
            ys = list(map(lambda v: v * w[1], [w[:4], w[2:]]))
            return np.sum(act(w) * ys[0]) + np.sum(ys[1])
        """,
    "try_match": """
        def f(w, x, kind="scale"):
            try:
                y = {"a": w}[kind]
            except KeyError:
                y = w * 2.0
            match kind:
                case "scale" | "shift":
                    y = y * w[0]
                case _:
                    y = y + 1.0
            return np.sum(y * y) + np.sum(x ** 2) * w[1]
        """,
    "containers": """
        def f(w, x):
            d = {k: w * (i + 1) for i, k in enumerate("abc")}
            first, *rest = [d["a"], d["b"], x[0]]
            total = 0.0
            for row in x:
                total = total + np.sum(row * first[:4])
            else:
                total = total * 2
            return total + np.sum(rest[1] * rest[0][:4]) + sum(v[0] for v in d.values())
        """,
    "nonlocal": """
        def f(w, x):
            acc = 0.0
            def add(v):
                nonlocal acc
                acc = acc + np.sum(v * v)
            for i in range(3):
                add(w * x[i, 0])
            return acc
        """,
    "keywords": """
        def f(w, x, *rest, **opts):
            h = np.tanh(x @ w[:4]) * opts.get("scale", 1.0)
            for k, v in opts.items():
                if k != "scale":
                    h = h + v * w[:3]
            return np.sum(h ** 2) + len(rest)
        """,
    "starred": """
        def f(w, x):
            pair = (w[:4], x[0] * w[0])
            parts = np.split(w, 3)
            hs = [w, np.sin(w)]
            return np.sum(np.maximum(*pair)) + np.sum(np.add(*parts[:2]) * parts[2]) + \
                np.sum(np.stack((*hs, w)) ** 2) + np.sum(np.clip(x, *(-0.5, 0.5)) * x)
        """,
    "plus_times": """
        def f(w, x):
            def join(p, q):
                return p + q
            def rep(p, n):
                return p * n
            rows = join([w[:4], w[2:] * 2], [x[0], x[1]])
            copies = rep(rows[:2], 2)
            return np.sum(rows[0] * rows[-1]) + np.sum(join(w[:4], x[2]) * copies[3]) + \
                np.sum(rep(w, 2.0) * w)
        """,
    "callbacks": """
        import functools

        def f(w, x):
            rows = [x[0] * w[:4], x[1] + w[2:], np.tanh(x[2])]
            ordered = sorted(rows, key=lambda v: np.sum(v), reverse=True)
            best = max(rows, key=lambda v: v[0])
            product = functools.reduce(lambda a, b: a * b, rows, w[1:5])
            return np.sum(ordered[0] * ordered[-1]) + np.sum(best) + np.sum(product)
        """,
    "deletions": """
        def f(w, x):
            rows = [w[:4], x[0] * 2, np.tanh(x[1]), w[2:] * x[2]]
            del rows[1]
            parts = {"a": w, "b": x[0]}
            del parts["a"]
            while len(rows) > 2:
                del rows[-1]
            return np.sum(rows[0] * rows[-1]) + np.sum(parts["b"] * w[:4])
        """,
}
# the keyword arguments each call of FUNCTIONS[name] gets
KEYWORDS = {"keywords": {"scale": 2.0, "shift": 0.5}}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_python_against_autograd(tmp_path, name):
    text = textwrap.dedent(FUNCTIONS[name])
    fns = []
    for module in ("numpy", "autograd.numpy"):
        path = tmp_path / f"{name}_{module.split('.')[0]}.py"
        path.write_text(f"import {module} as np\n\n" + text)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        fns.append(loaded.f)
    rng = np.random.default_rng(len(name))
    w, x = rng.standard_normal(6), rng.standard_normal((3, 4))
    for wrt in (0, 1):
        keywords = KEYWORDS.get(name, {})
        np.testing.assert_allclose(kt.grad(fns[0], wrt=wrt)(w, x, **keywords),
                                   autograd.grad(fns[1], wrt)(w, x, **keywords),
                                   rtol=1e-7, atol=1e-10,
                                   err_msg=f"{name}, wrt={wrt}")
