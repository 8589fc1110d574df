"""The fusion stage (transform/fusion.py) and its kernels (runtime/fusion.py), on the CPU:
which statements each kernel takes, its NumPy reference against the unfused
code, its C source, names and caching."""

import importlib.util
import re

import numpy as np
import pytest

import knet_st as kt
from knet_st.examples.charlm import lstm
from knet_st.runtime import fusion as F
from knet_st.runtime import kernels as K

R = np.random.default_rng(7)


@pytest.fixture(autouse=True, scope="module")
def generated():
    """Fused code generated for this file's functions (by default only where
    CuPy has a device), answered on CuPy arrays only."""
    old = F.set_mode("on")
    yield
    F.set_mode(old)


@pytest.fixture
def reference_mode():
    old = F.set_mode("reference")
    yield
    F.set_mode(old)


class Site:
    """A fused kernel where the source calls it: the statements it stands for there."""

    def __init__(self, kernel, text, inputs):
        self.kernel, self.text, self.names = kernel, text, inputs.split(", ")
        self.id, self.outputs, self.inputs = kernel.id, kernel.outputs, kernel.inputs

    def reference(self, *args):
        return self.kernel.reference(*args)

    def source(self, sig):
        return self.kernel.source(sig)

    def signature(self, args):
        return self.kernel.signature(args)


def fused_kernels(g):
    """The kernels of a compiled gradient, in the order of its source."""
    source = kt.source(g)                 # compiles: the kernels exist after it
    table = F.kernels()
    return [Site(table[i], text, inputs) for i, text, inputs in re.findall(
        r"(?:'|\"\"\")fused (k_[0-9a-f]+): (.*?)(?:'|\"\"\")\n *\w+ = \w+\(k_\w+, ([\w, ]+)\)",
        source)]


def grads(f, args, mode):
    old = F.set_mode(mode)
    try:
        return kt.grad(f)(*args)
    finally:
        F.set_mode(old)


def assert_same(a, b):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif a is None:
        assert b is None
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- the tutorial's models

def mlp(w, x, labels):
    for i in range(0, len(w) - 2, 2):
        x = kt.relu(w[i] @ x + w[i + 1])
    return kt.nll(w[-2] @ x + w[-1], labels)


def quad(w, x, y):
    a = kt.relu(w[0] @ x + w[1])
    d = w[2] @ a + w[3] - y
    return np.sum(d * d)


def charlm(w, xs, ys, h, c):
    total = 0.0
    for t in range(len(xs)):
        h, c = lstm(w[0], w[1], h, c, w[2] @ xs[t])
        total = total + kt.nll(w[3] @ h + w[4], ys[t])
    return total / len(xs)


def lenet(w, x, labels):
    x = kt.pool(kt.relu(kt.conv4(w[0], x) + w[1]))
    x = kt.relu(w[2] @ kt.mat(x) + w[3])
    return kt.nll(w[4] @ x + w[5], labels)


H, B, V = 4, 3, 6
MODELS = {
    "mlp": (mlp, [[R.standard_normal((6, 4)), R.standard_normal((6, 1)),
                   R.standard_normal((3, 6)), R.standard_normal((3, 1))],
                  R.standard_normal((4, 5)), R.integers(0, 3, 5)]),
    "quad": (quad, [[R.standard_normal((6, 4)), R.standard_normal((6, 1)),
                     R.standard_normal((3, 6)), R.standard_normal((3, 1))],
                    R.standard_normal((4, 5)), R.standard_normal((3, 5))]),
    "charlm": (charlm, [[0.5 * R.standard_normal((4 * H, 2 * H)), R.standard_normal((4 * H, 1)),
                         R.standard_normal((H, V)), R.standard_normal((V, H)),
                         R.standard_normal((V, 1))],
                        [np.eye(V)[:, R.integers(0, V, B)] for _ in range(3)],
                        [R.integers(0, V, B) for _ in range(3)],
                        R.standard_normal((H, B)), R.standard_normal((H, B))]),
    "lenet": (lenet, [[0.3 * R.standard_normal((3, 1, 3, 3)), R.standard_normal((1, 3, 1, 1)),
                       0.3 * R.standard_normal((5, 48)), R.standard_normal((5, 1)),
                       R.standard_normal((4, 5)), R.standard_normal((4, 1))],
                      R.standard_normal((2, 1, 10, 10)), R.integers(0, 4, 2)]),
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_models_fused_reference_equals_unfused(model, reference_mode):
    f, args = MODELS[model]
    calls = []
    ref = F.Kernel.reference

    def spy(self, *a):
        calls.append(self.id)
        return ref(self, *a)

    F.Kernel.reference = spy
    try:
        fused_grad = kt.grad(f)(*args)
    finally:
        F.Kernel.reference = ref
    assert calls, "no fused kernel ran"
    assert_same(grads(f, args, "off"), fused_grad)


def test_mlp_kernel_is_bias_plus_relu():
    ks = fused_kernels(kt.grad(mlp))
    assert [k.text for k in ks] == ["t3 = t4 + t5; x = kt.relu(t3)"]
    (k,) = ks
    assert [o[2] for o in k.outputs] == ["array"]          # t3: a temporary


def test_lstm_cell_is_one_forward_kernel():
    ks = fused_kernels(kt.grad(charlm))
    cell = [k for k in ks if "hidden = outgate * t15" in k.text]
    assert len(cell) == 1
    (k,) = cell
    assert k.text.startswith("change = np.tanh(t11); t13 = cell * forget")
    names = re.findall(r"(\w+) = ", k.text)
    order = [n for n in ["change", "t13", "t14", "cell", "t15", "hidden"]]
    assert names == order
    kinds = dict(zip(order, [kind for _, _, kind in k.outputs]))
    # saved for the backward: values, or only their shapes
    assert kinds == {"change": "array", "t13": "shape", "t14": "shape", "cell": "array",
                     "t15": "array", "hidden": "array"}
    # the same numbers as the hand-written lstm kernel's reference
    gates, c = R.standard_normal((4 * H, B)), R.standard_normal((H, B))
    i, f, o = (K.sigm_ref(gates[a * H:(a + 1) * H]) for a in (1, 0, 2))
    args = dict(t11=gates[3 * H:], cell=c, forget=f, ingate=i, outgate=o)
    out = dict(zip(order, k.reference(*(args[n] for n in k.names))))
    h_ref, c_ref = K.lstm_ref(gates[[*range(H, 2 * H), *range(H), *range(2 * H, 4 * H)]], c)
    np.testing.assert_allclose(out["hidden"], h_ref)
    np.testing.assert_allclose(out["cell"], c_ref)
    assert out["t13"].shape == (H, B)


def test_lenet_kernels():
    ks = fused_kernels(kt.grad(lenet))
    assert [k.text for k in ks] == ["t2 = t3 + w1; t1 = kt.relu(t2)",
                                    "t4 = t5 + w3; x = kt.relu(t4)"]
    assert ks[0] is ks[1] or ks[0].id == ks[1].id          # one kernel, shared


# ------------------------------------------------------------------ chain breaking

def breaks(w, x):
    a = w[0] * x + 1.0
    b = np.exp(a) * 2.0
    c = w[1] @ b                     # not element-wise: a new chain after it
    d = np.tanh(c) - c
    for i in range(2):               # nothing crosses into or out of a loop
        d = d * 0.5 + np.sin(d)
    e = d * d
    return np.sum(e + b)


def test_chains_break_at_matmul_loops_and_keep_read_values():
    ks = fused_kernels(kt.grad(breaks))
    texts = [k.text for k in ks]
    # w[0] * x: a repetition when w[0] is a list and x an int (not known
    # before a call), fused as the product it is on arrays
    assert texts[0] == "t1 = times(w0, x); a = t1 + 1.0; t2 = np.exp(a); b = t2 * 2.0"
    assert [o[2] for o in ks[0].outputs] == ["shape", "array", "array"]   # t1, t2, b
    assert any(t.startswith("t3 = np.tanh(c); d = t3 - c") for t in texts)
    assert any("np.sin(d)" in t and "np.tanh" not in t for t in texts)     # the loop's own
    args = [[R.standard_normal((3, 3)), R.standard_normal((3, 3))], R.standard_normal((3, 3))]
    assert_same(grads(breaks, args, "off"), grads(breaks, args, "reference"))


def test_numpy_runs_unfused_by_default():
    assert F.mode() == "on"
    k = fused_kernels(kt.grad(mlp))[0]
    assert F.fused(k, np.ones((2, 2)), np.ones((2, 1))) is None
    assert F.fused(k, 1.0, 2.0) is None


# --------------------------------------------------------------- random chains

_UNARY = ["np.exp({})", "np.tanh({})", "np.sin({})", "kt.sigm({})", "kt.relu({})", "-{}",
          "np.abs({})", "np.cos({})"]
_BINARY = ["{} + {}", "{} - {}", "{} * {}", "np.maximum({}, {})", "np.where({} > 0, {}, 0.5)",
           "({} < 0.3) * {}", "{} / (1.5 + np.abs({}))"]


def random_chain(rng, n):
    """Source of a loss of ``n`` random element-wise statements over arrays of
    broadcasting shapes, read once, twice or not at all after the chain."""
    names = ["x", "y", "z"]
    lines = []
    for k in range(n):
        if rng.random() < 0.4:
            e = _UNARY[rng.integers(len(_UNARY))].format(names[rng.integers(len(names))])
        else:
            form = _BINARY[rng.integers(len(_BINARY))]
            e = form.format(*(names[rng.integers(len(names))] for _ in range(form.count("{}"))))
        lines.append("    v%d = %s" % (k, e))
        names.append("v%d" % k)
    kept = " + ".join("np.sum(%s)" % v for v in rng.choice(names[3:], 2))
    return ("import numpy as np\nimport knet_st as kt\n\n\ndef loss(x, y, z):\n"
            + "\n".join(lines) + "\n    return %s + np.sum(v%d)\n" % (kept, n - 1))


@pytest.mark.parametrize("seed", range(12))
def test_random_chains(seed, tmp_path):
    rng = np.random.default_rng(seed)
    path = tmp_path / ("chain%d.py" % seed)
    path.write_text(random_chain(rng, int(rng.integers(2, 7))))
    spec = importlib.util.spec_from_file_location("chain%d" % seed, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dtype = [np.float64, np.float32][seed % 2]
    args = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (3, 1), (1, 4)]]
    ks = fused_kernels(kt.grad(module.loss))
    plain = grads(module.loss, args, "off")
    old = F.set_mode("reference")
    try:
        fused = kt.grad(module.loss)(*args)
        value = module.loss(*args)
    finally:
        F.set_mode(old)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(plain, fused):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
        assert a.dtype == b.dtype
    assert np.isfinite(value)
    for k in ks:                              # a C source for each argument type
        src = k.source(k.signature([np.ones(1, dtype)] * len(k.inputs)))
        assert src is not None and src[3].startswith("knet_" + k.id)
        assert all(p.split()[0] == np.dtype(dtype).name for p in src[0].split(", "))


# ------------------------------------------------------- kernel source, names, caching

def test_kernel_source_naming_and_caching():
    nodes = [("in", 0), ("in", 1), ("const", 1), ("sub", (2, 1)), ("mul", (1, 3)),
             ("mul", (0, 4))]                                   # dy * (y * (1 - y))
    k = F.kernel(nodes, ["dy", "y"], [("dx", 5, "array")], "dx = dy * (y * (1 - y))")
    assert F.kernel(nodes, ["g", "s"], [("r", 5, "array")]) is k      # one per graph
    dy, y = R.standard_normal((3, 4)), K.sigm_ref(R.standard_normal((3, 4)))
    np.testing.assert_allclose(k.reference(dy, y)[0], K.sigm_dx_ref(dy, y))
    s32 = k.source(k.signature([np.ones(1, np.float32)] * 2))
    s64 = k.source(k.signature([np.ones(1, np.float64)] * 2))
    assert s32[0] == "float32 in0, float32 in1" and s32[1] == "float32 out0"
    assert "const long long v2 = 1;" in s32[2] and "((float)v2) - v1" in s32[2]
    assert "out0 = v5;" in s32[2]
    assert s64[0] == "float64 in0, float64 in1" and "double" in s64[2]
    assert s32[3] != s64[3] and s32[3].startswith("knet_" + k.id)
    assert k.source(k.signature([np.ones(1, np.float32)] * 2)) == s32    # stable
    # a Python number with float32: float32 (NumPy's weak scalars), cast in C
    mixed = k.source(k.signature([np.ones(1, np.float32), 0.5]))
    assert mixed[0] == "float32 in0, float64 in1" and mixed[1] == "float32 out0"
    assert k.dtypes(k.signature([np.ones(1, np.float32), 0.5]))[-1] == np.float32
    # exp of integers: in double, as NumPy; float16 is not fused: None (run unfused)
    e = F.kernel([("in", 0), ("exp", (0,)), ("neg", (1,))], ["x"], [("y", 2, "array")])
    assert "exp(((double)v0))" in e.source(e.signature([np.ones(1, np.int64)]))[2]
    assert e.source(e.signature([np.ones(1, np.float16)])) is None


def test_shapes_fit_and_stubs():
    nodes = [("in", 0), ("in", 1), ("mul", (0, 0)), ("add", (2, 1))]
    k = F.kernel(nodes, ["a", "b"], [("t", 2, "array"), ("u", 3, "array")])
    assert not k.shapes_fit([np.ones((3, 1)), np.ones((3, 4))])   # t would be (3, 1)
    assert k.shapes_fit([np.ones((3, 4)), np.ones((1, 4))])
    s = F.kernel(nodes, ["a", "b"], [("t", 2, "shape"), ("u", 3, "array")])
    assert s.shapes_fit([np.ones((3, 1)), np.ones((3, 4))])
    stub = s.stubs([np.ones((3, 1), np.float32), np.ones((3, 4), np.float32)],
                   s.signature([np.ones(1, np.float32)] * 2))[0]
    assert stub.shape == (3, 1) and stub.dtype == np.float32


def test_unfuse_gives_back_the_statements():
    from knet_st.transform.fusion import unfuse
    text = kt.source(kt.grad(mlp))
    assert "fused(" in text and "fused(" not in unfuse(text)
    assert "x = kt.relu(t3)" in unfuse(text)
