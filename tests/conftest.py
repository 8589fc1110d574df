"""Fixtures shared by the test files."""

import os

import pytest

# Gradients run their shape-specialized code from the first call on (the
# default is from the second call with an argument signature): every
# gradient the suite checks then checks the specialized code too.
os.environ.setdefault("KNET_ST_SPECIALIZE", "first")


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
