"""The NCCL path of kt.distributed (``pytest -m gpu``): CuPy arrays summed
and broadcast through ``cupy.cuda.nccl``, the unique id sent over MPI.  One
GPU checks the plumbing with ``mpiexec -n 1``; two or more GPUs also check
the training property on CuPy arrays with ``mpiexec -n 2``."""

import os
import subprocess
import sys

import numpy as np
import pytest

import dist_worker
from test_distributed import HERE, clean_env, mpiexec


@pytest.mark.gpu
def test_nccl_collectives_and_two_gpu_training(cp, tmp_path):
    exe = mpiexec()
    pytest.importorskip("cupy.cuda.nccl")
    n = min(2, cp.cuda.runtime.getDeviceCount())
    run = subprocess.run([exe, "-n", str(n), sys.executable,
                          os.path.join(HERE, "dist_worker.py"), "--gpu",
                          str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env=clean_env())
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(n)]
    total = n * (n + 1) / 2                              # sum of rank + 1
    for r in ranks:
        assert np.array_equal(r["sum"], np.full(1000, total, np.float32))
        assert np.array_equal(r["bcast"], np.arange(10.0))
    if n < 2:
        pytest.skip("one GPU: NCCL plumbing checked, not two-GPU training")
    ref, _ = dist_worker.train("plain", "sgd", shard=False)
    for mode in ("overlap", "blocking"):
        for i, a in enumerate(ref):
            got = ranks[0][f"{mode}_sgd_{i}"]
            np.testing.assert_allclose(got, a, rtol=1e-4, atol=1e-5)
            assert np.array_equal(got, ranks[1][f"{mode}_sgd_{i}"])
