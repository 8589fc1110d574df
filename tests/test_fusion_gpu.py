"""Fused kernels on CuPy (needs a GPU): each kernel of the tutorial's models
against its NumPy reference, and the models' gradients with fusion against
the CPU."""

import numpy as np
import pytest

import knet_st as kt
from knet_st.runtime import fusion as F
from test_fusion import MODELS, fused_kernels

pytestmark = pytest.mark.gpu


def to(cp, tree):
    if isinstance(tree, (list, tuple)):
        return type(tree)(to(cp, t) for t in tree)
    return cp.asarray(tree) if isinstance(tree, np.ndarray) and tree.dtype.kind == "f" else tree


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_kernels_against_numpy(model, dtype, rtol, cp):
    f, _ = MODELS[model]
    rng = np.random.default_rng(3)
    for site in fused_kernels(kt.grad(f)):
        k = site.kernel
        args = [rng.standard_normal((4, 5)).astype(dtype) for _ in k.inputs]
        got = k.run_cupy([cp.asarray(a) for a in args])
        assert got is not None, k
        for g, r in zip(got, k.reference(*args)):
            if isinstance(g, F.ShapeStub):
                assert g.shape == r.shape
            else:
                np.testing.assert_allclose(cp.asnumpy(g), r, rtol=rtol, atol=rtol)
                assert g.dtype == r.dtype


@pytest.mark.parametrize("model", sorted(MODELS))
def test_model_gradients_fused_on_gpu(model, cp):
    f, args = MODELS[model]
    cpu = kt.grad(f)(*args)
    calls = []
    run = F.Kernel.run_cupy

    def spy(self, a):
        out = run(self, a)
        calls.append(out is not None)
        return out

    F.Kernel.run_cupy = spy
    try:
        gpu = kt.grad(f)(*to(cp, args))
    finally:
        F.Kernel.run_cupy = run
    assert any(calls), "no fused kernel ran on the GPU"
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a, cp.asnumpy(b), rtol=1e-9, atol=1e-9)
