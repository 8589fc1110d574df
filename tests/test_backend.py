"""Backend selection: get_array_module, gpu(), to_gpu/to_cpu/KnetArray (fake CuPy on CPU, real on GPU)."""

import collections
import os
import sys
import types

import numpy as np
import pytest

from knet_st.runtime import backend


class _FakeCupyArray:
    def __init__(self, a):
        self.a = np.array(a)


def _fake_cupy():
    m = types.ModuleType("cupy")
    m.ndarray = _FakeCupyArray
    m.asarray = lambda a: a if isinstance(a, _FakeCupyArray) else _FakeCupyArray(a)
    m.asnumpy = lambda a: a.a.copy()
    return m


@pytest.fixture
def fake_gpu(monkeypatch):
    """A pretend CuPy module and a pretend usable GPU."""
    m = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", m)
    monkeypatch.setattr(backend, "_gpu_state", True)
    return m


def _has_gpu():
    return backend.gpu()


def test_get_array_module_numpy():
    assert backend.get_array_module() is np
    assert backend.get_array_module(np.zeros(2), None, 3.0) is np


def test_get_array_module_sees_cupy_arrays(fake_gpu):
    a = _FakeCupyArray([1.0])
    assert backend.get_array_module(np.zeros(1), a) is fake_gpu
    assert backend.get_array_module(None, 2, np.ones(1)) is np
    assert backend.is_cupy_array(a) and not backend.is_cupy_array(np.ones(1))


def test_get_array_module_does_not_import_cupy(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert backend.get_array_module(np.zeros(1)) is np
    assert "cupy" not in sys.modules
    assert backend.cupy_module() is None


def test_gpu_is_cached_bool(monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return False

    monkeypatch.setattr(backend, "_gpu_state", None)
    monkeypatch.setattr(backend, "_probe_gpu", probe)
    assert backend.gpu() is False
    assert backend.gpu() is False
    assert calls == [1]


def test_to_gpu_without_gpu_raises_clear_error(monkeypatch):
    if _has_gpu():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no usable GPU: install cupy"):
        backend.to_gpu(np.zeros(3))
    with pytest.raises(RuntimeError, match="no usable GPU: install cupy"):
        backend.to_gpu([np.zeros(3)])
    with pytest.raises(RuntimeError, match="no usable GPU"):
        backend.KnetArray(np.zeros(3))


def test_probe_reports_missing_cupy(monkeypatch):
    # a cupy that fails to import: gpu() is False and the error says why
    monkeypatch.setitem(sys.modules, "cupy", None)     # import raises ImportError
    monkeypatch.setattr(backend, "_gpu_state", None)
    assert backend.gpu() is False
    with pytest.raises(RuntimeError, match="cupy does not import"):
        backend.to_gpu(np.zeros(1))


Pair = collections.namedtuple("Pair", "w b")


def test_to_cpu_passes_numpy_and_keeps_structure():
    w = [np.ones((2, 2)), (np.zeros(3), {"b": np.arange(2), "n": 5}), Pair(np.ones(1), None)]
    out = backend.to_cpu(w)
    assert isinstance(out, list) and isinstance(out[1], tuple) and isinstance(out[2], Pair)
    assert out[0] is w[0] and out[1][1]["b"] is w[1][1]["b"] and out[1][1]["n"] == 5
    assert out[2].b is None


def test_to_gpu_and_back_nested_with_fake_cupy(fake_gpu):
    w = [np.ones((2, 2), np.float32), (np.zeros(3), {"b": np.arange(2), "s": "x"}),
         Pair(np.ones(1), 3.0)]
    g = backend.to_gpu(w)
    assert isinstance(g[0], _FakeCupyArray) and isinstance(g[1][0], _FakeCupyArray)
    assert isinstance(g[1][1]["b"], _FakeCupyArray) and g[1][1]["s"] == "x"
    assert isinstance(g[2], Pair) and isinstance(g[2].w, _FakeCupyArray) and g[2].b == 3.0
    assert g[0].a.dtype == np.float32                   # dtype kept
    back = backend.to_cpu(g)
    np.testing.assert_array_equal(back[0], w[0])
    assert isinstance(back[1][1]["b"], np.ndarray)
    assert isinstance(back[2], Pair)
    k = backend.KnetArray([[1, 2], [3, 4]])
    assert isinstance(k, _FakeCupyArray) and k.a.shape == (2, 2)


# ------------------------------------------------------------------- GPU

@pytest.mark.gpu
def test_to_gpu_to_cpu_real():
    if os.environ.get("KNET_ST_REQUIRE_GPU") == "1":     # tests/gpu/check.sh: must not skip
        import cupy as cp
        assert backend.gpu(), backend._gpu_reason
    else:
        cp = pytest.importorskip("cupy")
        if not backend.gpu():
            pytest.skip("no usable CUDA device")
    w = [np.random.rand(3, 4).astype(np.float32), {"b": np.zeros(4)}]
    g = backend.to_gpu(w)
    assert isinstance(g[0], cp.ndarray) and g[0].dtype == np.float32
    assert backend.get_array_module(g[0]) is cp
    back = backend.to_cpu(g)
    np.testing.assert_array_equal(back[0], w[0])
    assert isinstance(back[1]["b"], np.ndarray)
    k = backend.KnetArray(np.arange(6).reshape(2, 3))
    assert isinstance(k, cp.ndarray) and k.shape == (2, 3)
    assert backend.KnetArray(k) is k
