"""One file transaction: lock, private copy, commit by atomic rename (or abort)."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Optional, Union

from ..errors import StoreIOError
from .atomic import atomic_replace, cleanup_leftovers, copy_file, os_error, tmp_path_for
from .compact import rewrite_file
from .lock import StoreLock

__all__ = ["FileTransaction"]

#: Extra free space demanded beyond the copy itself, for HDF5 metadata growth.
SPACE_MARGIN = 4 * 1024 * 1024


class FileTransaction:
    """Copy-on-write transaction on one file.

    ``begin()`` takes the lock, removes leftovers of killed writers and (if the file exists)
    copies it to :attr:`tmp`. The caller edits :attr:`tmp`, then calls ``commit()`` (fsync,
    rename over the original, fsync directory) or ``abort()`` (delete the copy). The lock is
    released in both cases. The original is never opened for writing.

    Parameters
    ----------
    path
        The file to change (it may not exist yet when creating).
    lock_timeout
        Seconds to wait for the lock (None: ``PSCALIB_LOCK_TIMEOUT`` or 120).
    new_file_mode
        Permission bits for a file created by this transaction (None: 0o666 & ~umask).
    extra_bytes
        Expected growth, checked against free disk space before anything is written.
    """

    def __init__(self, path: Union[str, Path], lock_timeout: Optional[float] = None,
                 new_file_mode: Optional[int] = None, extra_bytes: int = 0):
        self.path = Path(path)
        self.lock = StoreLock(self.path, lock_timeout)
        self.tmp = tmp_path_for(self.path)
        self.new_file_mode = new_file_mode
        self.extra_bytes = int(extra_bytes)
        self.existed = False
        self.copy_method: Optional[str] = None
        self._active = False

    def begin(self) -> Path:
        self.lock.acquire()
        try:
            cleanup_leftovers(self.path)
            self.existed = self.path.exists()
            size = self.path.stat().st_size if self.existed else 0
            self.check_space(size + self.extra_bytes)
            if self.existed:
                self.copy_method = copy_file(self.path, self.tmp)
        except BaseException as exc:
            self._discard()
            self.lock.release()
            if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
                raise os_error(exc, "copy", self.path) from None
            raise
        self._active = True
        return self.tmp

    def check_space(self, nbytes: int) -> None:
        """Raise StoreIOError if the directory has less than ``nbytes`` (+margin) free."""
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return
        if free < nbytes + SPACE_MARGIN:
            raise StoreIOError(
                f"not enough disk space for {self.path}: need about "
                f"{(nbytes + SPACE_MARGIN) / 2**20:.1f} MiB in {self.path.parent}, "
                f"{free / 2**20:.1f} MiB free (nothing was changed)")

    def _final_mode(self) -> int:
        if self.existed:
            return stat.S_IMODE(self.path.stat().st_mode)
        if self.new_file_mode is not None:
            return self.new_file_mode
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask

    def commit(self, compact: bool = False) -> None:
        """Make the copy the file (atomically), then release the lock."""
        try:
            src = self.tmp
            if compact:
                packed = tmp_path_for(self.path)
                try:
                    rewrite_file(self.tmp, packed)
                except BaseException:
                    packed.unlink(missing_ok=True)
                    raise
                self.tmp.unlink()
                self.tmp = src = packed
            os.chmod(src, self._final_mode())
            atomic_replace(src, self.path)
        except BaseException as exc:
            self._discard()
            self._finish()
            if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
                raise os_error(exc, "write", self.path) from None
            raise
        self._finish()

    def abort(self) -> None:
        """Throw the copy away and release the lock; the file is as before."""
        self._discard()
        self._finish()

    def _discard(self) -> None:
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # cleaned by the next writer under the lock

    def _finish(self) -> None:
        if self._active:
            self._active = False
            self.lock.release()
