"""Writing a file all at once: a temporary file in the same folder, moved
over the destination with ``os.replace`` only when complete (checkpoints,
downloaded data files)."""

import os
import tempfile
from pathlib import Path


class AtomicFile:
    """A temporary file next to ``path`` that becomes ``path`` when complete.

    Creating it makes the temporary file (``OSError`` when the folder cannot
    be written).  As a context manager it gives the file, open for binary
    writing; when the block ends without an exception the file is closed and
    moved over ``path``.  After an exception, or :meth:`discard`, it is
    removed and ``path`` is left as it was.  With ``durable=True`` the file
    and then the folder are flushed to disk (``fsync``), so the new ``path``
    survives a crash.  The file gets the mode of the file it replaces, or,
    for a new file, that of any new file (``0o666`` less the umask).

    Example::

        with AtomicFile("model.npz", durable=True) as f:
            np.savez(f, **arrays)
    """

    def __init__(self, path, suffix=".tmp", durable=False):
        self.path = Path(path)
        self.durable = durable
        self._keep = True
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent,
                                         prefix="." + self.path.name + ".",
                                         suffix=suffix)
        try:
            os.chmod(self._tmp, _mode_for(self.path))
            self._file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self._remove()
            raise

    def discard(self):
        """Remove the file at the end of the block instead of keeping it."""
        self._keep = False

    def __enter__(self):
        return self._file

    def __exit__(self, exc_type, exc, tb):
        replaced = False
        try:
            if exc_type is None and self._keep:
                if self.durable:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                self._file.close()
                os.replace(self._tmp, self.path)
                self._tmp = None
                replaced = True
        finally:
            self._file.close()
            self._remove()
        if replaced and self.durable:
            _fsync_folder(self.path.parent)
        return False

    def _remove(self):
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


def _umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path):
    """The permission bits ``path`` should get: those of the file there now,
    else ``0o666`` less the umask, as ``open`` would give."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _fsync_folder(folder):
    """Makes a rename in ``folder`` durable, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
