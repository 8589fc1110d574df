"""The im2col matrices of recent conv4 calls, kept for the filter gradient.

``conv4(w, x)`` builds the im2col matrix of ``x`` for its matrix product, and
``conv4_dw(dy, w, x)`` in the backward pass needs the same matrix.  The
forward call leaves it here and the gradient takes it back instead of
building it again.  What makes this safe and bounded:

* An entry belongs to the very array object ``x`` (a weak reference; another
  array with the same shape, or a view of ``x``, is a miss) and to the
  geometry (kernel size, padding, stride).
* The entry holds a private copy of ``x``'s values, and ``take`` compares it
  with ``x`` bit for bit: an ``x`` written in place in between is a miss.
* ``take`` removes the entry; an entry also goes when its ``x`` is garbage
  collected, when more than ``MAX_ENTRIES`` are held (oldest first), and
  matrices larger than ``MAX_BYTES`` are never kept.  So a forward pass with
  no backward holds at most ``MAX_ENTRIES`` matrices.
"""

import threading
import weakref
from collections import OrderedDict

import numpy as np

MAX_ENTRIES = 4
MAX_BYTES = 256 << 20

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_lock = threading.RLock()
_entries = OrderedDict()      # id(x) -> (weakref to x, geometry, snapshot, cols)


def _bits(a):
    """``a`` viewed as unsigned integers of its item size (bitwise comparison), or None."""
    u = _UINT.get(a.dtype.itemsize)
    return None if u is None else a.view(u)


def _drop(key):
    with _lock:
        entry = _entries.pop(key, None)
    del entry


def put(x, geometry, snapshot, cols):
    """Keep ``cols``, the im2col matrix of ``x`` for ``geometry``.

    ``snapshot`` is a copy of ``x``'s values (any layout, ``x``'s shape) that
    nothing else writes; ``take`` compares ``x`` with it.

    Example::

        put(x, (5, 5, 0, 0, 1, 1), x.copy(), cols)
    """
    if cols.nbytes > MAX_BYTES or _bits(snapshot) is None:
        return
    try:
        ref = weakref.ref(x, lambda _, key=id(x): _drop(key))
    except TypeError:                       # an array type without weak references
        return
    # Entries leave under the lock but are released after it: releasing one
    # can free an array whose weak-reference callback takes the lock.
    gone = []
    with _lock:
        gone.append(_entries.pop(id(x), None))
        _entries[id(x)] = (ref, geometry, snapshot, cols)
        while len(_entries) > MAX_ENTRIES:
            gone.append(_entries.popitem(last=False))
    del gone


def take(xp, x, geometry):
    """The matrix ``put`` kept for this very ``x`` and ``geometry``, if ``x`` is unchanged; else None.

    The entry is removed either way.

    Example::

        cols = take(np, x, (5, 5, 0, 0, 1, 1))     # None after an in-place write to x
    """
    with _lock:
        entry = _entries.pop(id(x), None)
    if entry is None:
        return None
    ref, geo, snapshot, cols = entry
    if ref() is not x or geo != geometry or snapshot.shape != x.shape or snapshot.dtype != x.dtype:
        return None
    if not bool(xp.array_equal(_bits(snapshot), _bits(x))):
        return None
    return cols


def clear():
    """Forget every kept matrix.

    Example::

        clear()
    """
    with _lock:
        gone = list(_entries.values())
        _entries.clear()
    del gone


def size():
    """How many matrices are kept now (for tests).

    Example::

        size()    # 0 after clear()
    """
    with _lock:
        return len(_entries)
