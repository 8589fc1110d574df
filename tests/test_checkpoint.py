"""Tests for knet_st.checkpoint: round trips, bad files, atomic saves."""

import io
import json
import math
import os
import types
import zipfile

import numpy as np
import pytest

from knet_st import checkpoint
from knet_st.checkpoint import CheckpointError, load, save


def _model():
    r = np.random.default_rng(0)
    return {
        "w": [r.standard_normal((3, 4)).astype(np.float32),
              np.zeros((3, 1), np.float32)],
        "conv": (r.standard_normal((2, 1, 3, 3)),          # float64
                 (np.arange(5, dtype=np.int64), np.int32(7))),
        "meta": {"name": "mlp", "lr": 0.1, "epochs": 3, "done": False,
                 "none": None, 5: "int key", "nan": float("nan"),
                 "inf": -math.inf, "big": 2 ** 70, "utf": "Hiawatha \u2019"},
        "scalar0d": np.array(2.5),
        "empty": [],
        "empty_t": (),
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip(tmp_path):
    m = _model()
    p = tmp_path / "m.npz"
    assert save(p, model=m, epoch=12, tag="best") == p
    out = load(p)
    assert set(out) == {"model", "epoch", "tag"}
    _assert_same(out["model"], m)
    assert out["epoch"] == 12 and out["tag"] == "best"
    # tuples stay tuples, dict int keys stay ints, numpy scalars keep type
    assert isinstance(out["model"]["conv"], tuple)
    assert 5 in out["model"]["meta"]
    assert type(out["model"]["conv"][1][1]) is np.int32
    assert out["model"]["w"][0].dtype == np.float32


def test_load_by_name(tmp_path):
    p = tmp_path / "c.npz"
    save(p, w=[np.ones(2)], epoch=3)
    w = load(p, "w")
    assert isinstance(w, list) and w[0].tolist() == [1.0, 1.0]
    w, e = load(p, "w", "epoch")
    assert e == 3
    with pytest.raises(KeyError, match="nope"):
        load(p, "nope")


def test_load_with_xp(tmp_path):
    p = tmp_path / "c.npz"
    save(p, w=[np.ones(2), {"b": np.zeros(1)}], n=1)
    fake = types.SimpleNamespace(asarray=lambda a: ("on device", a.shape))
    out = load(p, xp=fake)
    assert out["w"] == [("on device", (2,)), {"b": ("on device", (1,))}]
    assert out["n"] == 1


def test_gpu_like_arrays_saved_via_get(tmp_path):
    class FakeGpuArray:
        shape = (2,)
        dtype = np.dtype(np.float32)

        def get(self):
            return np.array([1.5, 2.5], np.float32)

    p = tmp_path / "g.npz"
    save(p, w=[FakeGpuArray()])
    w = load(p, "w")
    assert isinstance(w[0], np.ndarray) and w[0].tolist() == [1.5, 2.5]


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    p = tmp_path / "c.npz"
    save(p, w=[np.ones(2, np.float32)], note="x")
    with np.load(p, allow_pickle=False) as z:
        assert "__structure__.json" in z.files
        meta = json.loads(z["__structure__.json"].tobytes())
        assert meta["format"] == "knet_st.checkpoint"
        assert all(z[k].dtype != object for k in z.files)


def test_unsupported_values(tmp_path):
    p = tmp_path / "c.npz"
    with pytest.raises(TypeError, match="set"):
        save(p, s={1, 2})
    with pytest.raises(TypeError, match="object"):
        save(p, a=np.array([{}, None], dtype=object))
    with pytest.raises(TypeError, match="key"):
        save(p, d={(1, 2): 3})
    with pytest.raises(ValueError):
        save(p)
    assert not p.exists()
    assert list(tmp_path.iterdir()) == []


# --- bad files ---------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "none.npz")


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "text.npz"
    p.write_bytes(b"hello, this is not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load(p)
    q = tmp_path / "plain.npz"
    np.savez(q, x=np.ones(3))                 # an npz, but not ours
    with pytest.raises(CheckpointError, match="not a knet_st checkpoint"):
        load(q)
    r = tmp_path / "one.npy"
    np.save(r, np.ones(3))
    with pytest.raises(CheckpointError, match="npy"):
        load(r)


def test_pickle_file_refused(tmp_path):
    import pickle
    p = tmp_path / "evil.npz"
    p.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load(p)


def test_pickle_containing_npz_refused(tmp_path):
    good = tmp_path / "good.npz"
    save(good, w=[np.ones(2)])
    with np.load(good) as z:
        members = {k: z[k] for k in z.files}
    # replace the array by an object array: loading it would unpickle
    members["a0"] = np.array([object(), "x"], dtype=object)
    bad = tmp_path / "evil.npz"
    with open(bad, "wb") as f:
        np.savez(f, **members)
    with pytest.raises(CheckpointError, match="pickle"):
        load(bad)


def test_corrupt_structure(tmp_path):
    bad = tmp_path / "bad.npz"
    for text in (b"{not json", b'{"format": "other", "root": {}}',
                 b'{"format": "knet_st.checkpoint", "version": 99, '
                 b'"root": {}}',
                 b'{"format": "knet_st.checkpoint", "version": 1, '
                 b'"root": {"x": {"t": "array", "k": "a7"}}}',
                 b'{"format": "knet_st.checkpoint", "version": 1, '
                 b'"root": {"x": {"t": "exec", "v": "rm -rf"}}}'):
        np.savez(bad, **{"__structure__.json":
                         np.frombuffer(text, dtype=np.uint8)})
        with pytest.raises(CheckpointError):
            load(bad)


def test_truncated_file(tmp_path):
    p = tmp_path / "c.npz"
    save(p, w=[np.arange(1000.0), np.ones((50, 50))])
    data = p.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 100):
        t = tmp_path / f"trunc{cut}.npz"
        t.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load(t)


def test_corrupted_bytes_in_member(tmp_path):
    p = tmp_path / "c.npz"
    save(p, w=np.arange(1000.0))
    data = bytearray(p.read_bytes())
    # flip bytes inside the first member's data: the zip CRC check fails
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("a0.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start:start + 8] = b"\xff" * 8
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load(p)


# --- atomicity ------------------------------------------------------------------

def test_failed_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "model.npz"
    save(p, w=[np.ones(3)], epoch=1)
    before = p.read_bytes()
    real_savez = np.savez

    def crash_midway(f, **arrays):
        real_savez(f, **arrays)
        f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint.np, "savez", crash_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        save(p, w=[np.zeros(3)], epoch=2)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert load(p, "epoch") == 1
    assert [q.name for q in tmp_path.iterdir()] == ["model.npz"]


def test_save_replaces_existing(tmp_path):
    p = tmp_path / "m.npz"
    save(p, epoch=1)
    save(p, epoch=2)
    assert load(p, "epoch") == 2
    assert [q.name for q in tmp_path.iterdir()] == ["m.npz"]


def test_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save("rel.ckpt", x=np.ones(1))
    assert os.path.exists("rel.ckpt")         # no ".npz" appended
    assert load("rel.ckpt", "x").tolist() == [1.0]


def test_docstrings():
    for name in checkpoint.__all__:
        doc = getattr(checkpoint, name).__doc__
        assert doc and "Example" in doc, name
