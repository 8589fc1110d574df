"""Tests for knet_st.datasets.

The real-data tests read the files from $KNET_ST_DATA (CI points it at
../shared/data) and are skipped when it is unset or a file is missing.  The
other tests build small files in a temporary folder.  No test touches the
network: urlopen is patched to refuse anything but file:// URLs.
"""

import gzip
import hashlib
import os
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from knet_st import datasets as ds
from knet_st.datasets import DatasetError

REAL_DIR = os.environ.get("KNET_ST_DATA")

_real_urlopen = urllib.request.urlopen


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def guarded(url, *a, **kw):
        u = url if isinstance(url, str) else url.full_url
        if not u.startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {u}")
        return _real_urlopen(url, *a, **kw)
    monkeypatch.setattr(urllib.request, "urlopen", guarded)


def need_real(*names):
    if not REAL_DIR:
        pytest.skip("KNET_ST_DATA is not set; point it at a folder with the "
                    "data files (e.g. ../shared/data) to run this test")
    for n in names:
        if not (Path(REAL_DIR) / n).exists():
            pytest.skip(f"{n} is not in KNET_ST_DATA={REAL_DIR}")


MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# --- real data ---------------------------------------------------------------

def test_mnist_real():
    need_real(*MNIST_FILES)
    xtrn, ytrn, xtst, ytst = ds.mnist()
    assert xtrn.shape == (784, 60000) and xtst.shape == (784, 10000)
    assert xtrn.dtype == np.float32 and ytrn.dtype == np.int64
    assert ytrn.shape == (60000,) and ytst.shape == (10000,)
    assert np.bincount(ytrn).tolist() == [5923, 6742, 5958, 6131, 5842,
                                          5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ytst).tolist() == [980, 1135, 1032, 1010, 982, 892,
                                          958, 1028, 974, 1009]
    assert ytrn[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ytst[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert xtrn.min() == 0.0 and xtrn.max() == 1.0
    assert float(xtrn.mean()) * 255 == pytest.approx(33.3184, abs=1e-3)
    assert float(xtst.mean()) * 255 == pytest.approx(33.7912, abs=1e-3)
    # first image, row 14 (0-based) of the "5": pixels are row-major
    img = xtrn[:, 0].reshape(28, 28)
    assert img[0].sum() == 0 and img[14].sum() > 0
    raw = ds.read_idx(Path(REAL_DIR) / MNIST_FILES[0])
    np.testing.assert_array_equal(xtrn[:, 0] * np.float32(255),
                                  raw[0].ravel().astype(np.float32))
    # callers may modify the result without corrupting the cache
    xtrn[:] = 7
    ytrn[:] = 3
    x2, y2, _, _ = ds.mnist()
    assert x2.max() == 1.0 and y2[0] == 5


def test_mnist_real_nchw():
    need_real(*MNIST_FILES)
    xtrn, ytrn, xtst, ytst = ds.mnist(layout="nchw")
    assert xtrn.shape == (60000, 1, 28, 28) and xtst.shape == (10000, 1, 28, 28)
    flat = ds.mnist()[2]
    np.testing.assert_array_equal(xtst[123, 0].ravel(), flat[:, 123])
    with pytest.raises(ValueError):
        ds.mnist(layout="nhwc")


def test_housing_real():
    need_real("housing.data")
    x, y = ds.housing()
    assert x.shape == (13, 506) and y.shape == (1, 506)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert y[0, :3].tolist() == pytest.approx([24.0, 21.6, 34.7])
    assert float(y.mean()) == pytest.approx(22.5328, abs=1e-4)
    assert y.min() == 5.0 and y.max() == 50.0
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=1, ddof=1), 1, atol=1e-5)
    xr, yr = ds.housing(raw=True)
    assert xr[:, 0].tolist() == pytest.approx(
        [0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0,
         15.3, 396.9, 4.98])
    np.testing.assert_array_equal(yr, y)
    xtrn, ytrn, xtst, ytst = ds.housing(test=0.2, rng=0)
    assert xtrn.shape == (13, 405) and xtst.shape == (13, 101)
    assert ytrn.shape == (1, 405) and ytst.shape == (1, 101)
    # the split is a permutation of the instances
    assert sorted(np.concatenate([ytrn[0], ytst[0]]).tolist()) == \
        sorted(y[0].tolist())


def test_texts_real():
    need_real("hiawatha.txt", "shakespeare.txt")
    h = ds.text("hiawatha")
    assert h.startswith("The Project Gutenberg EBook of The Song Of Hiawatha")
    assert len(h) == 214325 and "\r\n" in h
    s = ds.text("shakespeare")
    assert not s.startswith("\ufeff")
    assert "The Complete Works of William Shakespeare" in s[:200]
    assert len(s.encode("utf-8")) == 5852404 - 3       # minus the BOM
    with pytest.raises(ValueError):
        ds.text("iliad")


# --- helpers for synthetic files -----------------------------------------------

def _sha(b):
    return hashlib.sha256(b).hexdigest()


def _idx_bytes(a, code=0x08):
    a = np.asarray(a)
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def datadir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("KNET_ST_DATA", str(d))
    return d


# --- IDX parser -------------------------------------------------------------------

def test_read_idx_uint8_gz_and_plain(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    b = _idx_bytes(a)
    (tmp_path / "a.idx").write_bytes(b)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(b))
    for name in ("a.idx", "a.idx.gz"):
        r = ds.read_idx(tmp_path / name)
        assert r.dtype == np.uint8 and r.shape == (2, 3, 4)
        np.testing.assert_array_equal(r, a)
        r[0, 0, 0] = 99                           # writable copy


@pytest.mark.parametrize("dtype,code", [(np.int8, 0x09), (np.int16, 0x0B),
                                        (np.int32, 0x0C), (np.float32, 0x0D),
                                        (np.float64, 0x0E)])
def test_read_idx_big_endian_types(tmp_path, dtype, code):
    a = (np.arange(6) - 3).astype(dtype).reshape(3, 2) * 3
    (tmp_path / "t.idx").write_bytes(_idx_bytes(a, code))
    r = ds.read_idx(tmp_path / "t.idx")
    assert r.dtype == np.dtype(dtype) and r.dtype.isnative
    np.testing.assert_array_equal(r, a)


@pytest.mark.parametrize("mutate,msg", [
    (lambda b: b"\x01\x00" + b[2:], "magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "type"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "truncated or corrupt"),
    (lambda b: b[:6], "header"),
    (lambda b: b"", "magic"),
])
def test_read_idx_rejects_bad_files(tmp_path, mutate, msg):
    good = _idx_bytes(np.zeros((2, 2), np.uint8))
    (tmp_path / "bad.idx").write_bytes(mutate(good))
    with pytest.raises(DatasetError, match=msg):
        ds.read_idx(tmp_path / "bad.idx")


def test_read_idx_corrupt_gzip(tmp_path):
    z = gzip.compress(_idx_bytes(np.zeros((50, 50), np.uint8)))
    (tmp_path / "trunc.gz").write_bytes(z[: len(z) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        ds.read_idx(tmp_path / "trunc.gz")
    (tmp_path / "garbage.gz").write_bytes(b"\x1f\x8b" + b"\xff" * 40)
    with pytest.raises(DatasetError):
        ds.read_idx(tmp_path / "garbage.gz")


def _fake_mnist(datadir, monkeypatch, ntrn=5, ntst=3, images=None):
    r = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": r.integers(0, 256, (ntrn, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(ntrn) % 10,
        "t10k-images-idx3-ubyte.gz": r.integers(0, 256, (ntst, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": (np.arange(ntst) + 3) % 10,
    }
    if images is not None:
        arrays["train-images-idx3-ubyte.gz"] = images
    for name, a in arrays.items():
        b = gzip.compress(_idx_bytes(np.asarray(a).astype(np.uint8)))
        (datadir / name).write_bytes(b)
        monkeypatch.setitem(ds.FILES, name, (_sha(b), ("file:///nonexistent",)))
    return arrays


def test_mnist_from_small_files(datadir, monkeypatch):
    arrays = _fake_mnist(datadir, monkeypatch)
    xtrn, ytrn, xtst, ytst = ds.mnist()
    assert xtrn.shape == (784, 5) and xtst.shape == (784, 3)
    img = arrays["train-images-idx3-ubyte.gz"][2]
    np.testing.assert_allclose(xtrn[:, 2], img.ravel() / 255.0, rtol=1e-6)
    assert ytrn.tolist() == [0, 1, 2, 3, 4] and ytst.tolist() == [3, 4, 5]
    x4 = ds.mnist(layout="nchw")[0]
    assert x4.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(x4[2, 0], xtrn[:, 2].reshape(28, 28))


def test_mnist_wrong_image_shape_is_an_error(datadir, monkeypatch):
    _fake_mnist(datadir, monkeypatch,
                images=np.zeros((5, 28, 27), np.uint8))
    with pytest.raises(DatasetError, match="28, 28"):
        ds.mnist()


# --- files: cache folder, verification, download -----------------------------------

def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KNET_ST_DATA", str(tmp_path))
    assert ds.data_dir() == tmp_path
    monkeypatch.delenv("KNET_ST_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.data_dir() == tmp_path / "home" / ".cache" / "knet_st"


def test_present_file_is_used_without_network(datadir, monkeypatch):
    body = b"0.1 2 3 4 5 6 7 8 9 10 11 12 13 24\n" \
           b"0.3 2 3 4 5 6 7 8 9 10 11 12 15 30\n"
    (datadir / "housing.data").write_bytes(body)
    monkeypatch.setitem(ds.FILES, "housing.data",
                        (_sha(body), ("https://example.invalid/h",)))
    x, y = ds.housing()
    assert x.shape == (13, 2) and y.tolist() == [[24.0, 30.0]]
    np.testing.assert_allclose(x[0], [-0.70710677, 0.70710677], rtol=1e-6)
    np.testing.assert_array_equal(x[1], 0)   # constant feature: std 0


def test_present_file_with_bad_checksum(datadir, monkeypatch):
    (datadir / "hiawatha.txt").write_bytes(b"not the poem")
    with pytest.raises(DatasetError) as e:
        ds.text("hiawatha")
    assert "sha256" in str(e.value) and "KNET_ST_DATA" in str(e.value)
    assert (datadir / "hiawatha.txt").read_bytes() == b"not the poem"


def test_download_file_url(datadir, tmp_path, monkeypatch):
    src = tmp_path / "src.txt"
    body = "\ufeffHello, Hiawatha\r\n".encode("utf-8")
    src.write_bytes(body)
    monkeypatch.setitem(ds.FILES, "hiawatha.txt",
                        (_sha(body), (src.as_uri(),)))
    assert ds.text("hiawatha") == "Hello, Hiawatha\r\n"      # BOM stripped
    assert (datadir / "hiawatha.txt").read_bytes() == body
    assert sorted(p.name for p in datadir.iterdir()) == ["hiawatha.txt"]
    # second call: no download (the source is gone)
    src.unlink()
    assert ds.text("hiawatha") == "Hello, Hiawatha\r\n"


def test_download_bad_checksum_leaves_nothing(datadir, tmp_path, monkeypatch):
    src = tmp_path / "src.txt"
    src.write_bytes(b"tampered")
    monkeypatch.setitem(ds.FILES, "hiawatha.txt",
                        ("0" * 64, (src.as_uri(),)))
    with pytest.raises(DatasetError) as e:
        ds.text("hiawatha")
    msg = str(e.value)
    assert src.as_uri() in msg and "sha256" in msg and "KNET_ST_DATA" in msg
    assert list(datadir.iterdir()) == []


def test_download_failed_url_and_mirror(datadir, tmp_path, monkeypatch):
    missing = (tmp_path / "missing.txt").as_uri()
    with pytest.raises(DatasetError) as e:
        ds.download([missing], datadir / "x.txt", "0" * 64, quiet=True)
    assert missing in str(e.value) and "KNET_ST_DATA" in str(e.value)
    assert list(datadir.iterdir()) == []
    # the first URL fails, the mirror works
    good = tmp_path / "good.txt"
    good.write_bytes(b"payload")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"other")
    p = ds.download([missing, bad.as_uri(), good.as_uri()],
                    datadir / "x.txt", _sha(b"payload"), quiet=True)
    assert p.read_bytes() == b"payload"
    assert [q.name for q in datadir.iterdir()] == ["x.txt"]


def test_download_creates_folder_and_replaces_atomically(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes(b"new")
    dest = tmp_path / "deep" / "er" / "f.txt"
    ds.download(good.as_uri(), dest, _sha(b"new"), quiet=True)
    assert dest.read_bytes() == b"new"


def test_download_interrupted_leaves_no_partial_file(datadir, tmp_path,
                                                     monkeypatch):
    class Boom:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self, n):
            raise ConnectionResetError("connection lost mid-file")

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Boom())
    with pytest.raises(DatasetError, match="connection lost"):
        ds.download(["https://example.invalid/f"], datadir / "f",
                    "0" * 64, quiet=True)
    assert list(datadir.iterdir()) == []


def test_unknown_file_and_bad_housing(datadir, monkeypatch):
    with pytest.raises(KeyError):
        ds.fetch("cifar10.tgz")
    body = b"1 2 3\n4 5 6\n"
    (datadir / "housing.data").write_bytes(body)
    monkeypatch.setitem(ds.FILES, "housing.data", (_sha(body), ()))
    with pytest.raises(DatasetError, match="14"):
        ds.housing()
    with pytest.raises(ValueError):
        ds.housing(test=1.5)


def test_docstrings():
    for name in ds.__all__:
        doc = getattr(ds, name).__doc__
        assert doc and "Example" in doc, name
