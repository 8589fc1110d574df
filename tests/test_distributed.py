"""kt.distributed: data-parallel training.  The in-process tests need no MPI;
the property test runs ``mpiexec -n 2`` on localhost (skipped only where
mpi4py or mpiexec is not installed: ``pip install -e '.[test]'`` brings
both)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import knet_st as kt
from knet_st import distributed as dist
from knet_st.distributed import _comm

import dist_worker

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KNET_ST_DATA")


@pytest.fixture
def world(monkeypatch):
    """Sets the world this process believes it is in; restores it after."""
    saved = _comm._world

    def set_world(rank, size):
        _comm._world = _comm.World(rank, size)
    yield set_world
    _comm._world = saved


def mpiexec():
    """The mpiexec next to this Python (a virtual environment's), else on
    PATH; skips when there is none or mpi4py is missing."""
    pytest.importorskip("mpi4py")
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    exe = exe if os.path.exists(exe) else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec (pip install 'knet_st[mpi]')")
    return exe


def clean_env(**extra):
    """The environment without an enclosing MPI launcher's variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "MPI_", "OMPI_", "HYD"))}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------
# one plain process
# ---------------------------------------------------------------------------

def test_plain_process_is_rank_0_of_1():
    assert dist.init() == (0, 1)
    assert (dist.rank(), dist.size(), dist.is_root()) == (0, 1, True)
    w = [np.ones(3), {"b": 2.0}]
    assert dist.broadcast(w) is w and dist.allreduce_mean(w) is w
    dist.barrier()


def test_plain_process_does_not_import_mpi4py():
    code = "import knet_st as kt, sys; kt.distributed.init(); print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=clean_env(), timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_launched_without_mpi4py_is_one_clear_error():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import knet_st as kt; kt.distributed.init()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=clean_env(PMI_SIZE="2"), timeout=60)
    assert out.returncode != 0
    assert "started by an MPI launcher (2 processes) but mpi4py is not installed" in out.stderr


def test_shard_range_partitions():
    for n in range(0, 13):
        for size in range(1, 5):
            parts = [dist.shard_range(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    with pytest.raises(dist.DistributedError, match="do not split evenly over 3"):
        dist.shard_range(10, 0, 3, even=True)
    with pytest.raises(dist.DistributedError, match="rank 2 is not in 0..1"):
        dist.shard_range(10, 2, 2)


def test_shard_and_minibatch_take_this_ranks_part(world):
    x = np.arange(24).reshape(2, 12)
    y = np.arange(12)
    world(1, 2)
    assert np.array_equal(dist.shard(x, axis=1), x[:, 6:])
    got = [yb for _, yb in kt.minibatch(x, y, 4, shard=True)]
    assert [list(b) for b in got] == [[2, 3], [6, 7], [10, 11]]
    kt.seed(3)
    whole = [yb for _, yb in kt.minibatch(x, y, 4, shuffle=True)]
    kt.seed(3)
    part = [yb for _, yb in kt.minibatch(x, y, 4, shuffle=True, shard=True)]
    assert [list(a[2:]) for a in whole] == [list(b) for b in part]
    with pytest.raises(dist.DistributedError, match="batchsize 5 does not split evenly over 2"):
        kt.minibatch(x, y, 5, shard=True)
    with pytest.raises(dist.DistributedError, match="do not split evenly"):
        dist.shard(x[:, :7], axis=1)
    world(0, 1)
    part = [yb for _, yb in kt.minibatch(x, y, 4, shard=(1, 2))]   # explicit
    assert [list(b) for b in part] == [[2, 3], [6, 7], [10, 11]]


def test_buckets_reverse_order_and_size_limit():
    leaves = [np.zeros((10, 10), np.float32), np.zeros(10, np.float32),
              np.zeros(300, np.float32), np.zeros(5), 1.5]
    plan = dist.Reducer(bucket_bytes=440).plan(leaves)
    f32 = [b for b in plan.buckets if b.buf.dtype == np.float32]
    # last leaf first; a leaf larger than a bucket gets its own
    assert [b.leaves for b in f32] == [[2], [1, 0]] or [b.leaves for b in f32] == [[2], [1], [0]]
    f64 = [b for b in plan.buckets if b.buf.dtype == np.float64]
    assert [b.leaves for b in f64] == [[4, 3]]
    assert plan.nbytes == (100 + 10 + 300) * 4 + 6 * 8


def test_reducer_round_trip_keeps_structure_and_values():
    """In one process the mean is the value itself: packing and unpacking
    must put every value back in its place (floats in tuples rebuilt)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(7)
    dw = {"a": [a.copy(), None, (2.5, b.copy())], "n": np.arange(3), "t": a.T.copy()}
    red = dist.Reducer(bucket_bytes=32)
    out = red.allreduce_mean(dw)
    assert out is dw and out["a"][0] is dw["a"][0]
    assert np.array_equal(out["a"][0], a) and np.array_equal(out["a"][2][1], b)
    assert out["a"][2][0] == 2.5 and out["a"][1] is None
    out = red.allreduce_mean(dw, weight=4)       # sum(4 g) / 4
    assert np.allclose(out["t"], a.T) and out["a"][2][0] == 2.5
    assert red.messages > 4


def test_stream_needs_every_leaf():
    w = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    stream = dist.Reducer().stream(w)
    stream.ready(1, np.ones(2, np.float32))
    with pytest.raises(dist.DistributedError, match="1 gradient leaves were never given"):
        stream.finish(w)
    with pytest.raises(dist.DistributedError, match="no gradient leaf 5"):
        stream.ready(5, np.ones(2))
    nested = {"conv": [np.zeros(2)], "dense": (np.zeros(3), 1.0)}
    stream = dist.Reducer().stream(nested)
    assert stream.index_of == {("conv", 0): 0, ("dense", 0): 1, ("dense", 1): 2}
    with pytest.raises(dist.DistributedError, match=r"no gradient leaf at \('x',\)"):
        stream.ready(("x",), np.ones(2))
    for path, g in [(("dense", 1), 2.0), (("dense", 0), np.ones(3)), (("conv", 0), np.ones(2))]:
        stream.ready(path, g)
    out = stream.finish(nested).finish()         # one process: the values themselves
    assert out["dense"][1] == 2.0 and np.array_equal(out["conv"][0], np.ones(2))


def test_update_in_one_process_is_kt_update():
    w1 = [np.ones(3), np.ones((2, 2))]
    w2 = [a.copy() for a in w1]
    dw = [np.full(3, 0.5), np.full((2, 2), 2.0)]
    o1, o2 = kt.optimizers(w1, kt.Adam), kt.optimizers(w2, kt.Adam)
    kt.update(w1, dw, o1)
    dist.update(w2, dw, o2)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


# ---------------------------------------------------------------------------
# two processes
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    exe = mpiexec()
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run([exe, "-n", "2", sys.executable,
                          os.path.join(HERE, "dist_worker.py"), str(out)],
                         capture_output=True, text=True, timeout=120,
                         env=clean_env())
    assert run.returncode == 0, run.stdout + run.stderr
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """One process's weights, with one BLAS thread as each MPI process."""
    out = tmp_path_factory.mktemp("plain")
    run = subprocess.run([sys.executable, os.path.join(HERE, "dist_worker.py"),
                          "--plain", str(out)], capture_output=True, text=True,
                         timeout=120, env=clean_env(OMP_NUM_THREADS="1",
                                                    OPENBLAS_NUM_THREADS="1"))
    assert run.returncode == 0, run.stdout + run.stderr
    return dict(np.load(out / "plain.npz"))


def test_collectives_on_nested_structures(two_ranks):
    r0, r1 = two_ranks
    assert int(r0["size"]) == 2
    for k in r0:
        if k != "mismatch":
            assert np.array_equal(r0[k], r1[k]), k       # the same everywhere
    assert np.array_equal(r0["b_a0"], np.ones((2, 3))) and int(r0["b_a1"]) == 7
    assert float(r0["b_b0"]) == 0.5 and np.array_equal(r0["b_b1"], np.arange(4))
    assert np.array_equal(r0["b_c"], np.arange(12.0).reshape(3, 4).T)
    assert np.array_equal(r0["r_0"], np.full(5, 0.5)) and float(r0["r_1"]) == 1.5
    assert np.array_equal(r0["r_k"], np.ones((2, 2)))
    assert np.array_equal(r0["r_int"], np.arange(3))             # ints untouched
    assert np.allclose(r0["weighted"], 50 / 3)
    assert "differs in structure" in str(r0["mismatch"])


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_two_processes_take_the_steps_of_one(two_ranks, plain, opt):
    """The property: P = 2 processes on halves of the same global batches
    end with one process's weights, to float32 round-off."""
    for mode in ("overlap", "default", "blocking", "stream"):
        for i in range(4):
            got, want = two_ranks[0][f"{mode}_{opt}_{i}"], plain[f"{opt}_{i}"]
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6,
                                       err_msg=f"{mode} {opt} w[{i}]")
            assert np.array_equal(got, two_ranks[0][f"overlap_{opt}_{i}"])
    # bytes per step: every parameter once, float32
    nparams = sum(plain[f"{opt}_{i}"].size for i in range(4))
    assert int(two_ranks[0][f"blocking_{opt}_bytes"]) == dist_worker.STEPS * 4 * nparams


def test_two_processes_convolutional_model(two_ranks, plain):
    """4-d weights and biases, conv4 and pool: the same property."""
    for i in range(4):
        np.testing.assert_allclose(two_ranks[0][f"conv_{i}"], plain[f"conv_{i}"],
                                   rtol=2e-5, atol=2e-6, err_msg=f"w[{i}]")
    assert two_ranks[0]["conv_0"].shape == (4, 1, 3, 3)


def test_the_property_test_can_fail(plain):
    """Rank 0 training on its half alone (no averaging) ends far outside
    the tolerance above: the test would catch a reduction that is missing
    or wrong."""
    assert np.abs(plain["alone_0"] - plain["sgd_0"]).max() > 1e-3
    kt.seed(1)
    w0 = dist_worker.init()[0]
    assert np.abs(plain["sgd_0"] - w0).max() > 1e-3                 # it trained


@pytest.mark.skipif(not DATA, reason="KNET_ST_DATA is not set")
def test_mpiexec_knet_st_run_mlp_prints_once():
    exe = mpiexec()
    cmd = [exe, "-n", "2", sys.executable, "-m", "knet_st", "run", "mlp",
           "--epochs", "1", "--ntrain", "4000", "--ntest", "1000"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                         env=clean_env())
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [ln.split(",")[:2] for ln in lines] == [["('epoch'", " 0"], ["('epoch'", " 1"]]
    assert run.stderr.count("s of training") == 1
    from knet_st.examples import mnist
    one = mnist.main(["--model", "mlp", "--epochs", "1", "--ntrain", "4000",
                      "--ntest", "1000"])
    two = eval(lines[-1])
    last = one["history"][-1]
    tst = last[last.index("tst") + 1]
    assert abs(tst - two[two.index("tst") + 1]) < 0.005     # the same training


def test_blas_threads_per_process_under_a_launcher():
    code = "import os, knet_st; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
    env = clean_env(MPI_LOCALNRANKS="2")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(v, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.stdout.strip() == str(max(1, (os.cpu_count() or 1) // 2))
    env["OMP_NUM_THREADS"] = "3"                       # the user's choice stays
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.stdout.strip() == "None"


def test_a_failing_process_ends_the_run_instead_of_hanging():
    exe = mpiexec()
    code = ("import knet_st as kt, numpy as np\n"
            "rank, size = kt.distributed.init()\n"
            "if rank == 1:\n"
            "    raise ValueError('rank 1 fails')\n"
            "kt.distributed.allreduce_mean([np.ones(3)])\n")
    run = subprocess.run([exe, "-n", "2", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60,
                         env=clean_env())
    assert run.returncode != 0
    assert "ValueError: rank 1 fails" in run.stdout + run.stderr
