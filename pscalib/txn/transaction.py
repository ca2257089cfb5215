"""One file transaction: lock, private copy, commit by atomic rename (or abort)."""
from __future__ import annotations

import os
import resource
import shutil
import stat
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import StoreIOError, StorePermissionError
from .atomic import (atomic_replace, cleanup_leftovers, copy_file, os_error, tmp_path_for,
                     umask_file_mode)
from .engineblock import read_block, stamp
from .leftovers import remove_dead_tmp
from .lock import StoreLock

__all__ = ["FileTransaction", "check_free_space", "check_size_limit"]

#: Extra free space demanded beyond the copy itself, for HDF5 metadata growth.
SPACE_MARGIN = 4 * 1024 * 1024
#: Growth allowed for HDF5 metadata when checking RLIMIT_FSIZE.
RLIMIT_MARGIN = 256 * 1024


def check_free_space(path: Union[str, Path], nbytes: int) -> None:
    """Raise StoreIOError if the directory of ``path`` has less than ``nbytes`` (+margin) free."""
    path = Path(path)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < nbytes + SPACE_MARGIN:
        raise StoreIOError(
            f"not enough disk space for {path}: need about "
            f"{(nbytes + SPACE_MARGIN) / 2**20:.1f} MiB in {path.parent}, "
            f"{free / 2**20:.1f} MiB free (nothing was changed)")


def check_size_limit(path: Path, written: Path, nbytes: int) -> None:
    """Raise StoreIOError if the file ``written`` (changing the store ``path``) would outgrow
    the process's file size limit (RLIMIT_FSIZE) by growing ``nbytes``."""
    try:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        have = written.stat().st_size if written.exists() else 0
    except (OSError, ValueError):
        return
    # checked up front because HDF5 2.0 can crash at process exit after a write
    # failed with EFBIG in the middle of a dataset
    if limit != resource.RLIM_INFINITY and have + nbytes + RLIMIT_MARGIN > limit:
        raise StoreIOError(
            f"cannot write {path}: it would grow to about "
            f"{(have + nbytes) / 2**20:.1f} MiB, beyond this process's file size limit of "
            f"{limit / 2**20:.1f} MiB (ulimit -f); nothing was changed")


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
    rewrite
        ``rewrite(src, dst)`` copies the file compactly into the new file ``dst``; needed
        for ``commit(compact=True)``. The file format's backend provides it (this layer
        knows files, not their format).
    """

    def __init__(self, path: Union[str, Path], lock_timeout: Optional[float] = None,
                 new_file_mode: Optional[int] = None, extra_bytes: int = 0,
                 rewrite: Optional[Callable[[Path, Path], None]] = None):
        # the real file: replacing a symlink would turn it into a regular file, and writers
        # using different links to one store must share one lock
        self.path = Path(os.path.realpath(path))
        if self.path.exists() and not os.access(self.path, os.W_OK):
            # the atomic rename would silently bypass a read-only file's protection
            raise StorePermissionError(
                f"{self.path} is read-only (mode {stat.S_IMODE(self.path.stat().st_mode):o}); "
                f"make it writable (chmod u+w) to change it - nothing was changed")
        self.lock = StoreLock(self.path, lock_timeout)
        self.tmp = tmp_path_for(self.path)
        self.new_file_mode = new_file_mode
        self.extra_bytes = int(extra_bytes)
        self.rewrite = rewrite
        self.existed = False
        self.copy_method: Optional[str] = None
        self._active = False

    def begin(self) -> Path:
        self.lock.acquire()
        try:
            cleanup_leftovers(self.path)
            remove_dead_tmp(self.path.parent)  # e.g. of a killed copy to another name
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
        """Raise StoreIOError if the directory has less than ``nbytes`` (+margin) free, or
        the copy would outgrow the process's file size limit (RLIMIT_FSIZE)."""
        check_free_space(self.path, nbytes)
        check_size_limit(self.path, self.tmp, nbytes)

    def _final_mode(self) -> int:
        if self.existed:
            return stat.S_IMODE(self.path.stat().st_mode)
        if self.new_file_mode is not None:
            return self.new_file_mode
        return umask_file_mode()

    def commit(self, compact: bool = False) -> None:
        """Make the copy the file (atomically), then release the lock."""
        try:
            src = self.tmp
            if compact:
                if self.rewrite is None:
                    raise RuntimeError("internal error: compact commit without a rewrite")
                packed = tmp_path_for(self.path)
                try:
                    self.rewrite(self.tmp, packed)
                except BaseException:
                    packed.unlink(missing_ok=True)
                    raise
                self.tmp.unlink()
                self.tmp = src = packed
            blk = read_block(src)
            if blk is not None:  # an in-place store committed by copy: a new sequence number
                stamp(src, blk.seq + 2)
            os.chmod(src, self._final_mode())
            self._keep_group(src)
            atomic_replace(src, self.path)
        except BaseException as exc:
            self._discard()
            self._finish()
            if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
                raise os_error(exc, "write", self.path) from None
            raise
        self._finish()

    def _keep_group(self, src: Path) -> None:
        """Give the copy the store's group (shared calib directories), where allowed."""
        if not self.existed:
            return
        try:
            gid = self.path.stat().st_gid
            if os.stat(src).st_gid != gid:
                os.chown(src, -1, gid)
        except OSError:
            pass  # not a member of that group: the file gets the writer's group

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
