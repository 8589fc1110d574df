"""Checkpoints: save and load nested structures of arrays, safely.

A checkpoint is a NumPy ``.npz`` archive.  Each array is one member
(``a0``, ``a1``, ...), and the structure (lists, tuples, dicts, Python
scalars and strings) is described as JSON in a uint8 member
``__structure__.json``.  Nothing is pickled, ``np.load`` runs with
``allow_pickle=False``, so loading never executes code::

    kt.save("model.npz", w=w, opts=opts, epoch=3)
    w = kt.load("model.npz", "w")
    opts = kt.load("model.npz", "opts")     # Adam's moments and step counts
    everything = kt.load("model.npz")       # {"w": ..., "opts": ..., ...}

Optimizers (``kt.Adam(...)``, and the nested structures of them that
``kt.optimizers`` builds) are saved as their class name, hyperparameters,
step count and state arrays; only knet_st's own optimizer classes are
accepted on loading, and the next update after a load is bit-identical to
the one the saved optimizer would have made.

Saving writes a temporary file in the same folder and moves it over the old
checkpoint with ``os.replace``, so a crash never leaves a half-written file
in place of the previous checkpoint.  A new file gets the permissions of
any new file (``0o666`` less the umask: 0644 under umask 022); a replaced
file keeps its own.
"""

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import _optstate
from ._atomic import AtomicFile

__all__ = ["CheckpointError", "save", "load"]

FORMAT = "knet_st.checkpoint"
VERSION = 1
STRUCTURE = "__structure__.json"


class CheckpointError(Exception):
    """A file is not a valid knet_st checkpoint (corrupt, truncated, not a
    checkpoint, or holding pickled objects).

    Example::

        try:
            kt.load("model.npz")
        except kt.checkpoint.CheckpointError as e:
            print(e)
    """


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------

def _encode(v, where, arrays):
    if isinstance(v, np.generic):       # before float: np.float64 is a float
        a = np.asarray(v)
        _check_dtype(a, where)
        key = f"a{len(arrays)}"
        arrays[key] = a
        return {"t": "scalar", "k": key}
    if v is None:
        return {"t": "none"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": int(v)}
    if isinstance(v, float):
        return {"t": "float", "v": repr(float(v))}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        a = v.get() if hasattr(v, "get") and not isinstance(v, np.ndarray) \
            else v
        a = np.asarray(a)
        _check_dtype(a, where)
        key = f"a{len(arrays)}"
        arrays[key] = a
        return {"t": "array", "k": key}
    if _optstate.is_optimizer(v):
        name, values = _optstate.state(v)
        return {"t": "optimizer", "class": name,
                "v": _encode(values, f"{where}.{name}", arrays)}
    if isinstance(v, tuple):
        if hasattr(v, "_fields"):
            raise TypeError(f"{where}: namedtuple {type(v).__name__} cannot "
                            "be saved; convert it to a tuple or dict")
        return {"t": "tuple",
                "v": [_encode(x, f"{where}[{i}]", arrays)
                      for i, x in enumerate(v)]}
    if isinstance(v, list):
        return {"t": "list",
                "v": [_encode(x, f"{where}[{i}]", arrays)
                      for i, x in enumerate(v)]}
    if isinstance(v, dict):
        keys, vals = [], []
        for k, x in v.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"{where}: dict key {k!r} is not a str or "
                                "int")
            keys.append({"t": "str" if isinstance(k, str) else "int",
                         "v": k})
            vals.append(_encode(x, f"{where}[{k!r}]", arrays))
        return {"t": "dict", "keys": keys, "v": vals}
    raise TypeError(f"{where}: cannot save a {type(v).__name__}; a checkpoint "
                    "holds arrays, None, bool, int, float, str and lists, "
                    "tuples and dicts of them")


def _check_dtype(a, where):
    if a.dtype.hasobject or a.dtype.kind == "V":
        raise TypeError(f"{where}: arrays of dtype {a.dtype} cannot be saved "
                        "without pickle")


def save(path, **named_values):
    """Save named values (nested arrays, scalars, strings) to a checkpoint.

    Arrays may be NumPy arrays or GPU arrays with a ``.get()`` method (CuPy);
    they are stored as NumPy arrays.  Lists, tuples and dicts (str or int
    keys) nest freely; tuples come back as tuples.  knet_st's optimizers
    (``kt.SGD`` ... ``kt.Adam``) are saved with their state, so training
    can resume.

    Arguments:
        path: file to write (written exactly as given; ``.npz`` is a good
            extension).  The old file is replaced atomically.
        **named_values: what to save, by name.

    Returns:
        The path, as a ``pathlib.Path``.

    Example::

        kt.save("mlp.npz", w=[w1, b1, w2, b2], epoch=10, note="lr 0.1")
        kt.save("mlp.npz", w=w, opts=opts)    # opts = kt.optimizers(w, kt.Adam)
    """
    if not named_values:
        raise ValueError("nothing to save: give values as keyword arguments")
    path = Path(path)
    arrays = {}
    root = {name: _encode(v, name, arrays) for name, v in named_values.items()}
    meta = json.dumps({"format": FORMAT, "version": VERSION, "root": root})
    arrays[STRUCTURE] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    with AtomicFile(path, durable=True) as f:
        np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------

class _Decoder:
    def __init__(self, npz, path, xp):
        self.npz = npz
        self.path = path
        self.xp = xp
        self.names = set(npz.files)

    def bad(self, msg):
        return CheckpointError(f"{self.path}: {msg}")

    def array(self, node):
        key = node.get("k")
        if not isinstance(key, str) or key not in self.names:
            raise self.bad(f"structure refers to a missing array {key!r}")
        try:
            a = self.npz[key]
        except ValueError as e:
            raise self.bad(f"array {key!r} cannot be read safely: pickled "
                           f"objects are refused, or the data is corrupt "
                           f"({e})") from e
        except (OSError, EOFError, zipfile.BadZipFile, KeyError,
                zlib.error) as e:
            raise self.bad(f"array {key!r} is corrupt or truncated "
                           f"({type(e).__name__}: {e})") from e
        if a.dtype.hasobject:
            raise self.bad(f"array {key!r} holds Python objects; refused")
        return a

    def __call__(self, node, depth=0):
        if depth > 1000:
            raise self.bad("structure nested too deeply")
        if not isinstance(node, dict) or "t" not in node:
            raise self.bad("malformed structure description")
        t = node["t"]
        if t == "none":
            return None
        if t in ("bool", "int", "str"):
            v = node.get("v")
            want = {"bool": bool, "int": int, "str": str}[t]
            if type(v) is not want:
                raise self.bad(f"malformed {t} value {v!r}")
            return v
        if t == "float":
            try:
                return float(node.get("v"))
            except (TypeError, ValueError):
                raise self.bad(f"malformed float {node.get('v')!r}") from None
        if t == "array":
            a = self.array(node)
            return a if self.xp is None else self.xp.asarray(a)
        if t == "scalar":
            a = self.array(node)
            if a.shape != ():
                raise self.bad("a scalar entry holds an array")
            return a[()]
        if t in ("list", "tuple"):
            v = node.get("v")
            if not isinstance(v, list):
                raise self.bad(f"malformed {t}")
            items = [self(x, depth + 1) for x in v]
            return items if t == "list" else tuple(items)
        if t == "dict":
            keys, vals = node.get("keys"), node.get("v")
            if (not isinstance(keys, list) or not isinstance(vals, list)
                    or len(keys) != len(vals)):
                raise self.bad("malformed dict")
            out = {}
            for k, x in zip(keys, vals):
                if not isinstance(k, dict) or k.get("t") not in ("str", "int"):
                    raise self.bad("malformed dict key")
                out[self(k, depth + 1)] = self(x, depth + 1)
            return out
        if t == "optimizer":
            values = self(node.get("v"), depth + 1)
            if not isinstance(values, dict):
                raise self.bad("malformed optimizer")
            try:
                return _optstate.restore(node.get("class"), values)
            except ValueError as e:
                raise self.bad(str(e)) from None
        raise self.bad(f"unknown entry type {t!r}")


def load(path, *names, xp=None):
    """Load a checkpoint written by :func:`save`.

    Arguments:
        path: the checkpoint file.
        *names: which values to return; none means all of them.
        xp: array module for the arrays (e.g. ``cupy``); default NumPy.

    Returns:
        With no names, a dict of every saved value; with one name, that
        value; with several, a tuple of them.

    Raises:
        CheckpointError: the file is corrupt, truncated, not a knet_st
            checkpoint, or contains pickled data.
        FileNotFoundError: no such file.
        KeyError: a requested name is not in the checkpoint.

    Example::

        w, epoch = kt.load("mlp.npz", "w", "epoch")
        w = kt.load("mlp.npz", "w", xp=cupy)     # arrays on the GPU
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] != b"PK" and head != b"\x93NUMPY":
        kind = ("pickled data, which is refused" if head[:1] == b"\x80"
                else "not an .npz archive")
        raise CheckpointError(f"{path}: not a knet_st checkpoint ({kind})")
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise CheckpointError(
            f"{path}: not a knet_st checkpoint (not an .npz archive; pickled "
            f"or unknown data is refused: {e})") from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint "
                              f"({type(e).__name__}: {e})") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: a single .npy array, not a knet_st "
                              "checkpoint")
    with npz:
        dec = _Decoder(npz, path, xp)
        if STRUCTURE not in dec.names:
            raise CheckpointError(f"{path}: not a knet_st checkpoint (no "
                                  f"{STRUCTURE} member)")
        meta_bytes = dec.array({"k": STRUCTURE})
        try:
            meta = json.loads(meta_bytes.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"{path}: unreadable structure "
                                  f"description ({e})") from e
        if (not isinstance(meta, dict) or meta.get("format") != FORMAT
                or not isinstance(meta.get("root"), dict)):
            raise CheckpointError(f"{path}: not a knet_st checkpoint")
        if meta.get("version") != VERSION:
            raise CheckpointError(f"{path}: checkpoint format version "
                                  f"{meta.get('version')!r} is not supported "
                                  f"(this knet_st reads version {VERSION})")
        root = meta["root"]
        for n in names:
            if n not in root:
                raise KeyError(f"{n!r} is not in checkpoint {path}; it has "
                               f"{sorted(root)}")
        wanted = names or tuple(root)
        values = {n: dec(root[n]) for n in wanted}
    if not names:
        return values
    if len(names) == 1:
        return values[names[0]]
    return tuple(values[n] for n in names)
