"""Fixtures shared by the test files."""

import os

import pytest


@pytest.fixture
def cp():
    """CuPy with a usable CUDA device, else skip; with KNET_ST_REQUIRE_GPU=1
    (set by tests/gpu/check.sh) a missing GPU fails instead of skipping."""
    from knet_st.runtime import backend
    if os.environ.get("KNET_ST_REQUIRE_GPU") == "1":
        import cupy
        assert backend.gpu(), "KNET_ST_REQUIRE_GPU=1 but: %s" % backend._gpu_reason
        return cupy
    cupy = pytest.importorskip("cupy")
    if not backend.gpu():
        pytest.skip("no usable CUDA device")
    return cupy
