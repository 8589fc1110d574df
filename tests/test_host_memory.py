"""The host-memory setting (knet_st/runtime/host_memory.py): a training loop's
large arrays reuse freed memory instead of faulting fresh pages in every step."""

import os
import subprocess
import sys
import textwrap

import pytest

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

PROGRAM = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import knet_st as kt

    def loss(w, x):
        return np.sum(np.tanh(w * x))

    g = kt.grad(loss)              # compiling the first gradient applies the setting
    w, x = np.ones((1000, 1000)), np.ones((1000, 1000))   # 8 MB arrays
    for _ in range(3):
        g(w, x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        g(w, x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    from knet_st.runtime import host_memory
    print(host_memory.keep_freed_memory(), faults)
""")


def run(setting, folder):
    program = folder / "train.py"         # kt.grad reads the loss from its file
    program.write_text(PROGRAM)
    env = dict(os.environ, KNET_ST_HOST_MEMORY=setting, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(program)], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's mallopt")
def test_steps_after_the_first_fault_no_pages_in(tmp_path):
    applied, faults = run("cache", tmp_path)
    assert applied
    # each step allocates about 10 arrays of 8 MB (2,000 pages each) and frees them
    assert faults < 500, faults
    applied, faults = run("system", tmp_path)
    assert not applied
    assert faults > 5000, faults    # glibc by default: steps fault (some of) their arrays in
