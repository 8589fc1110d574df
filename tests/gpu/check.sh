#!/usr/bin/env bash
# GPU checks for knet_st's runtime (issue 4), for a machine with an NVIDIA GPU,
# its driver, Python 3.12 and pip access to PyPI.  Not run by CI (no GPU there).
#
#   tests/gpu/check.sh            # from any directory; about 2-4 minutes
#   WHEELS=.whl KNET_ST_DATA=gpu_data tests/gpu/check.sh
#                                 # offline, with the machine's python3 (CuPy there)
#
# 1. a virtual environment with knet_st (editable, test extra) and CuPy;
# 2. every test marked `gpu` (CuPy kernels vs NumPy references, conv/pool on
#    the GPU vs the CPU, dropout, the Knet memory pool); with
#    KNET_ST_REQUIRE_GPU=1 a test that cannot reach the GPU fails, not skips;
# 3. a short conv4/pool forward+backward timing on the GPU.
#
# Environment: PYTHON (default python3.12), VENV (default /tmp/knet_st-gpu-venv),
# CUPY_PKG (default 'cupy-cuda12x[ctk]': CuPy built for CUDA 12, which runs on
# any driver for CUDA 12 or 13; the [ctk] extra installs the CUDA runtime,
# NVRTC and cuBLAS from PyPI, so no CUDA toolkit is needed on the machine.
# Use 'cupy-cuda13x[ctk]' to match a CUDA 13 toolkit).
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3.12}
VENV=${VENV:-${TMPDIR:-/tmp}/knet_st-gpu-venv}   # outside the repo: nothing to ignore
CUPY_PKG=${CUPY_PKG:-cupy-cuda12x[ctk]}

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "check.sh: nvidia-smi not found: no NVIDIA driver on this machine" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [ -n "${WHEELS:-}" ]; then
    # Offline machine whose python3 already has CuPy, NumPy and pytest (the
    # lent GPU machines): install what is missing (gast) from a folder of
    # wheels and use the checkout in place.
    echo "== environment: python3 with wheels from $WHEELS, no network"
    python3 -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/knet_st-site "$WHEELS"/*.whl
    export PYTHONPATH="/tmp/knet_st-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    PY=python3
else
    echo "== environment: $VENV ($PYTHON, $CUPY_PKG)"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
    timeout 60 python -m pip install --quiet --upgrade pip
    timeout 240 python -m pip install --quiet -e '.[test]' "$CUPY_PKG"
    PY=python
fi

"$PY" - <<'PY'
import sys
import cupy
import knet_st
from knet_st.runtime import backend
print("python", sys.version.split()[0], "| cupy", cupy.__version__,
      "| CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "| devices", cupy.cuda.runtime.getDeviceCount())
if not knet_st.gpu():
    sys.exit("knet_st.gpu() is False: %s" % backend._gpu_reason)
PY

echo "== pytest -m gpu"
KNET_ST_REQUIRE_GPU=1 timeout 240 "$PY" -m pytest -q -m gpu -rs

echo "== GPU benchmark: conv4 / pool forward + backward (cupy)"
timeout 120 "$PY" bench/bench_conv.py --gpu --reps 50
timeout 120 "$PY" bench/bench_conv.py --gpu --reps 50 --dtype float64
if [ -n "${KNET_ST_DATA:-}" ]; then
    echo "== GPU benchmark: the tutorial's models, knet_st on CuPy and torch on CUDA"
    timeout 240 "$PY" -m bench.gpu --steps 50
fi
echo "== check.sh: all GPU checks passed"
