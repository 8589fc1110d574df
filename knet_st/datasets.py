"""Datasets of the Knet tutorial: Boston housing, MNIST, Hiawatha, Shakespeare.

Each file is downloaded once from its public source (or a mirror), checked
against a fixed sha256, and kept in a data folder: ``$KNET_ST_DATA`` when
that variable is set, else ``~/.cache/knet_st``.  A file already in that
folder is verified and used without any network access, so on a machine
offline, put the files there yourself::

    export KNET_ST_DATA=/path/to/folder/with/the/files

Arrays follow the tutorial's layout: features x instances, float32::

    x, y = kt.datasets.housing()                 # 13x506, 1x506
    xtrn, ytrn, xtst, ytst = kt.datasets.mnist() # 784x60000, 60000, ...
    s = kt.datasets.text("hiawatha")
"""

import functools
import gzip
import hashlib
import math
import os
import struct
import sys
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ._atomic import AtomicFile
from .init import get_rng

__all__ = ["DatasetError", "data_dir", "fetch", "download", "read_idx",
           "housing", "mnist", "text"]

ENV_VAR = "KNET_ST_DATA"

_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")

_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# file name -> (sha256, source URLs, tried in order)
FILES = {
    **{name: (sha256, tuple(u + name for u in _MNIST_URLS))
       for name, sha256 in _MNIST_SHA256.items()},
    "housing.data": (
        "baadf72995725d76efe787b664e1f083388c79ba21ef9a7990d87f774184735a",
        ("https://archive.ics.uci.edu/ml/machine-learning-databases/"
         "housing/housing.data",)),
    "hiawatha.txt": (
        "c1f1725c6e9a8d96ac34de046f2c9ee320b49ed27f724dc51f85c643b715748f",
        ("https://www.gutenberg.org/files/19/19.txt",
         # GITenberg's copy of the same 19.txt, pinned to a commit
         "https://raw.githubusercontent.com/GITenberg/The-Song-of-Hiawatha_19/"
         "cdbbd723df90db846089e5372ede0acb522cdc08/19.txt")),
    "shakespeare.txt": (
        "17d47ae375676f7576feb3d931784223865403a18537707f9a567247015d6781",
        ("https://www.gutenberg.org/files/100/100-0.txt",
         # GITenberg's copy of the same 100-0.txt (2018 revision), pinned
         "https://raw.githubusercontent.com/GITenberg/"
         "The-Complete-Works-of-William-Shakespeare_100/"
         "c6728ea4a6edd5f1bfabd31324dbd509b2c6f29a/100-0.txt")),
}

TEXTS = {"hiawatha": "hiawatha.txt", "shakespeare": "shakespeare.txt"}


class DatasetError(Exception):
    """A data file could not be downloaded, verified or parsed.

    Example::

        try:
            kt.datasets.mnist()
        except kt.datasets.DatasetError as e:
            print(e)        # names the URLs and KNET_ST_DATA
    """


# ---------------------------------------------------------------------------
# Files: location, verification, download
# ---------------------------------------------------------------------------

def data_dir():
    """The folder where data files are looked for and downloaded to.

    ``$KNET_ST_DATA`` when set (and not empty), else ``~/.cache/knet_st``.

    Example::

        print(kt.datasets.data_dir())
    """
    d = os.environ.get(ENV_VAR)
    if d:
        return Path(d).expanduser()
    return Path.home() / ".cache" / "knet_st"


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified = {}      # (path, size, mtime_ns, sha256) of files already checked


def _verify(path, sha256):
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns, sha256)
    if key in _verified:
        return
    digest = _sha256_file(path)
    if digest != sha256:
        raise DatasetError(
            f"{path} has sha256 {digest}, expected {sha256}: the file is "
            f"corrupt or a different version.  Delete it to download it "
            f"again, or put the right file there (the data folder is "
            f"${ENV_VAR} when set, else ~/.cache/knet_st).")
    _verified[key] = True


def download(urls, dest, sha256, timeout=60.0, quiet=False):
    """Download a file from the first of ``urls`` that gives the right bytes.

    Each URL is read into a temporary file in the folder of ``dest``, its
    sha256 checked, and only then moved to ``dest`` with ``os.replace``; a
    failed or wrong download leaves no file behind.

    Arguments:
        urls: URLs to try in order (``http(s)://`` or ``file://``).
        dest: the final path.
        sha256: expected hex digest.
        timeout: seconds for each connection.
        quiet: do not print what is downloaded (to stderr).

    Returns:
        ``dest`` as a ``pathlib.Path``.

    Raises:
        DatasetError: every URL failed; the message lists each URL and why.

    Example::

        download(["https://example.org/a.txt"], "/tmp/a.txt", "ab12...")
    """
    dest = Path(dest)
    if isinstance(urls, str):
        urls = [urls]
    errors = []
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        errors.append(f"cannot create folder {dest.parent}: {e}")
        urls = []
    for url in urls:
        try:
            out = AtomicFile(dest, suffix=".part")
        except OSError as e:
            errors.append(f"cannot write in {dest.parent}: {e}")
            break
        try:
            with out as f:
                if not quiet:
                    print(f"knet_st: downloading {url} -> {dest}",
                          file=sys.stderr)
                h = hashlib.sha256()
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    for chunk in iter(lambda: r.read(1 << 20), b""):
                        h.update(chunk)
                        f.write(chunk)
                digest = h.hexdigest()
                if digest != sha256:
                    out.discard()
            if digest == sha256:
                return dest
            errors.append(f"{url}: wrong sha256 {digest} "
                          f"(expected {sha256})")
        except Exception as e:            # URLError, HTTPError, timeouts...
            errors.append(f"{url}: {type(e).__name__}: {e}")
    lines = "\n".join("  " + e for e in errors) or "  (no URL to try)"
    raise DatasetError(
        f"could not download {dest.name}:\n{lines}\n"
        f"Download it yourself from one of these URLs, put it in a folder "
        f"as {dest.name!r}, and set the environment variable {ENV_VAR} to "
        f"that folder ({ENV_VAR} is now "
        f"{os.environ.get(ENV_VAR, 'unset')!s}; files go to {dest.parent}).")


def fetch(filename):
    """Path of a known data file, downloaded and verified if needed.

    Arguments:
        filename: a key of ``FILES``, e.g. ``"housing.data"``.

    Returns:
        A ``pathlib.Path`` to the verified file in :func:`data_dir`.

    Example::

        p = kt.datasets.fetch("t10k-labels-idx1-ubyte.gz")
    """
    if filename not in FILES:
        raise KeyError(f"unknown data file {filename!r}; known: "
                       f"{sorted(FILES)}")
    sha256, urls = FILES[filename]
    path = data_dir() / filename
    if not path.exists():
        download(urls, path, sha256)
    _verify(path, sha256)
    return path


# ---------------------------------------------------------------------------
# IDX (MNIST) parsing
# ---------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4",
              0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (the MNIST format), gzip-compressed or not.

    Checks the magic number (two zero bytes, a type code, the number of
    dimensions) and that the data size matches the dimensions.

    Arguments:
        path: file name; gzip is detected from the content.

    Returns:
        A NumPy array of the stored type (native byte order) and shape.

    Raises:
        DatasetError: bad gzip data, bad magic number, wrong size.

    Example::

        labels = read_idx("t10k-labels-idx1-ubyte.gz")    # shape (10000,)
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read (corrupt gzip data?): "
                           f"{e}") from e
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: not an IDX file (bad magic number "
                           f"{raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise DatasetError(f"{path}: unknown IDX data type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: IDX dimensions {dims} need {expected} data bytes but "
            f"the file has {len(raw) - header} (truncated or corrupt)")
    a = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return a.astype(dtype.newbyteorder("="))


def _check_idx(a, path, ndim, shape_tail=()):
    if a.dtype != np.uint8 or a.ndim != ndim or a.shape[1:] != shape_tail:
        raise DatasetError(
            f"{path}: expected uint8 IDX data of shape (N, "
            f"{', '.join(map(str, shape_tail))}) but got {a.dtype} "
            f"{a.shape}".replace("(N, )", "(N,)"))


@functools.lru_cache(maxsize=2)
def _mnist_raw(paths):
    trn_x, trn_y, tst_x, tst_y = (Path(p) for p in paths)
    out = []
    for xp, yp in ((trn_x, trn_y), (tst_x, tst_y)):
        x, y = read_idx(xp), read_idx(yp)
        _check_idx(x, xp, 3, (28, 28))
        _check_idx(y, yp, 1)
        if x.shape[0] != y.shape[0]:
            raise DatasetError(f"{xp} has {x.shape[0]} images but {yp} has "
                               f"{y.shape[0]} labels")
        if y.size and y.max() > 9:
            raise DatasetError(f"{yp}: label {y.max()} is not a digit")
        x.flags.writeable = False
        y.flags.writeable = False
        out += [x, y]
    return tuple(out)


def mnist(layout="flat"):
    """The MNIST handwritten digits (LeCun, Cortes and Burges; CC BY-SA 3.0).

    Arguments:
        layout: ``"flat"`` (default): x is 784 x N float32, one image per
            column, pixels row-major within an image (the Knet tutorial's
            layout; the array is the transpose of a C-ordered N x 784
            array, so each image's column is contiguous in memory).
            ``"nchw"``: x is N x 1 x 28 x 28 float32 for convolutions.

    Returns:
        ``(xtrn, ytrn, xtst, ytst)``: pixels scaled to [0, 1]; labels are
        int64 vectors of digits 0..9 (Knet's ``mnist.jl`` uses 1..10; here
        digit d has label d).  60000 training and 10000 test images.  Each
        call returns new arrays the caller may modify; the parsed files are
        cached in the process.

    Example::

        xtrn, ytrn, xtst, ytst = kt.datasets.mnist()
        xtrn.shape, ytrn[:5]        # (784, 60000), [5 0 4 1 9]
    """
    if layout not in ("flat", "nchw"):
        raise ValueError(f"layout must be 'flat' or 'nchw', got {layout!r}")
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    paths = tuple(str(fetch(n)) for n in names)
    trn_x, trn_y, tst_x, tst_y = _mnist_raw(paths)
    out = []
    for x, y in ((trn_x, trn_y), (tst_x, tst_y)):
        n = x.shape[0]
        xf = np.empty((n, 28 * 28), dtype=np.float32)
        np.divide(x.reshape(n, 28 * 28), np.float32(255), out=xf)
        xf = xf.T if layout == "flat" else xf.reshape(n, 1, 28, 28)
        out += [xf, y.astype(np.int64)]
    return tuple(out)


# ---------------------------------------------------------------------------
# Boston housing
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _housing_raw(path):
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DatasetError(f"{path}: cannot parse as numbers: {e}") from e
    if data.shape[1] != 14 or data.shape[0] == 0:
        raise DatasetError(f"{path}: expected rows of 14 numbers, got shape "
                           f"{data.shape}")
    data.flags.writeable = False
    return data


def housing(raw=False, test=0.0, rng=None):
    """The UCI Boston Housing data (Harrison and Rubinfeld 1978).

    506 neighborhoods, 13 features (crime rate, rooms per house, ...) and
    the median house value in $1000s, as in Knet's ``housing.jl``: the
    features are normalized to zero mean and unit standard deviation per
    feature (sample std, ``ddof=1``, like Julia's ``std``), over all 506
    instances (a constant feature would become all zeros); the values ``y``
    are not normalized.

    Arguments:
        raw: return the features unnormalized.
        test: when ``> 0``, shuffle and split off this fraction as a test
            set (Knet's ``housing(test)``).
        rng: for the split: None (the generator of ``kt.seed``), an int
            seed or a ``numpy.random.Generator``.

    Returns:
        ``(x, y)``: x 13 x 506 float32, y 1 x 506 float32; or
        ``(xtrn, ytrn, xtst, ytst)`` when ``test > 0``.

    Example::

        x, y = kt.datasets.housing()
        xtrn, ytrn, xtst, ytst = kt.datasets.housing(test=0.2, rng=1)
    """
    if not 0.0 <= test < 1.0:
        raise ValueError(f"test must be in [0, 1), got {test}")
    data = _housing_raw(str(fetch("housing.data")))
    x = data[:, :13].T                          # 13 x n float64
    if not raw:
        std = x.std(axis=1, ddof=1, keepdims=True) if x.shape[1] > 1 else \
            np.zeros((x.shape[0], 1))
        std[std == 0] = 1.0                 # a constant feature becomes 0
        x = (x - x.mean(axis=1, keepdims=True)) / std
    # instances are columns, each contiguous (transpose of C-ordered n x 13)
    x = np.ascontiguousarray(x.T, dtype=np.float32).T
    y = np.array(data[:, 13][None, :], dtype=np.float32)
    if test == 0:
        return x, y
    n = x.shape[1]
    perm = get_rng(rng).permutation(n)
    ntrn = int(round((1 - test) * n))
    tr, ts = perm[:ntrn], perm[ntrn:]
    return x[:, tr], y[:, tr], x[:, ts], y[:, ts]


# ---------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------

def text(name):
    """A Project Gutenberg text for the character language model.

    Arguments:
        name: ``"hiawatha"`` (Longfellow's *The Song of Hiawatha*, ebook
            #19, ``19.txt``) or ``"shakespeare"`` (*The Complete Works of
            William Shakespeare*, ebook #100, ``100-0.txt``).

    Returns:
        The whole file as a ``str``, decoded as UTF-8 with the byte order
        mark removed; line endings are kept as in the file (CRLF), and the
        Project Gutenberg header and licence are included.

    Example::

        s = kt.datasets.text("hiawatha")
        len(s), s[:40]
    """
    if name not in TEXTS:
        raise ValueError(f"unknown text {name!r}; choose one of "
                         f"{sorted(TEXTS)}")
    path = fetch(TEXTS[name])
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text: {e}") from e
