"""Readers for the benchmark's data files.

The folder comes from ``--data DIR`` or ``$KNET_ST_DATA`` and holds the files
Knet's examples download: MNIST in gzipped IDX format
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``), UCI
``housing.data`` and Project Gutenberg's ``hiawatha.txt``.

These readers only decode the files; batching, normalisation and layouts are
decided in :mod:`bench.problems`.
"""

import functools
import gzip
import os

import numpy as np


def data_dir(path=None):
    """Return the data folder: *path*, else ``$KNET_ST_DATA``; raise if neither exists."""
    path = path or os.environ.get("KNET_ST_DATA")
    if not path:
        raise FileNotFoundError("no data folder: pass --data DIR or set $KNET_ST_DATA")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data folder {path!r} does not exist")
    return path


def read_idx(path):
    """Decode a (gzipped) IDX file of unsigned bytes into an ndarray of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\0\0" or dtype_code != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@functools.lru_cache(maxsize=1)
def mnist_train(folder):
    """MNIST training set: images (60000, 784) float32 in [0, 1], labels (60000,) int64 in 0..9.

    Cached: the arrays are shared between problems and must not be written to.
    """
    images = read_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"))
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int64)


def housing(folder):
    """UCI Boston Housing as a (506, 14) float64 table; the last column is the target."""
    return np.loadtxt(os.path.join(folder, "housing.data"))


def text(folder, name):
    """The text file *name*.txt, exactly as stored (line endings kept)."""
    with open(os.path.join(folder, name + ".txt"), encoding="utf-8", newline="") as f:
        return f.read()
