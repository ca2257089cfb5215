"""Writer lock: a ``filelock`` (flock) on a lock file beside the store, never deleted.

Only writers lock; readers never wait. On filesystems without working ``flock`` we fail
with :class:`~pscalib.errors.LockUnavailableError` instead of silently running unlocked
(``fallback_to_soft=False``), unless the user opts into the documented soft-lock fallback
with ``PSCALIB_LOCK_FALLBACK=soft``: an exclusive-create marker file, which works on any
filesystem but is left behind by a killed writer and must then be removed by hand.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Optional, Union

import filelock

from ..errors import LockTimeoutError, LockUnavailableError, StorePermissionError

__all__ = ["StoreLock", "lock_path_for", "default_lock_timeout"]

DEFAULT_LOCK_TIMEOUT = 120.0


def lock_path_for(path: Union[str, Path]) -> Path:
    """``dir/.name.lock`` for ``dir/name`` (hidden so directory listings stay clean)."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def default_lock_timeout() -> float:
    """Timeout in seconds: ``PSCALIB_LOCK_TIMEOUT`` or 120."""
    raw = os.environ.get("PSCALIB_LOCK_TIMEOUT")
    if raw:
        try:
            val = float(raw)
        except ValueError:
            raise LockUnavailableError(
                f"PSCALIB_LOCK_TIMEOUT={raw!r} is not a number of seconds") from None
        if val < 0:
            raise LockUnavailableError(f"PSCALIB_LOCK_TIMEOUT={raw!r} must be >= 0")
        return val
    return DEFAULT_LOCK_TIMEOUT


class StoreLock:
    """Exclusive writer lock for one file; usable as a context manager.

    Parameters
    ----------
    path
        The protected file (the store or alias file); the lock is ``.<name>.lock`` beside it.
    timeout
        Seconds to wait; None uses :func:`default_lock_timeout`.
    """

    def __init__(self, path: Union[str, Path], timeout: Optional[float] = None):
        self.target = Path(path)
        self.path = lock_path_for(path)
        self.timeout = default_lock_timeout() if timeout is None else float(timeout)
        self.soft = os.environ.get("PSCALIB_LOCK_FALLBACK", "").lower() == "soft"
        if self.soft:
            self._lock = filelock.SoftFileLock(str(self.path), timeout=self.timeout)
        else:
            self._lock = filelock.FileLock(str(self.path), timeout=self.timeout,
                                           fallback_to_soft=False, preserve_lock_file=True,
                                           thread_local=False)

    def acquire(self) -> "StoreLock":
        start = time.monotonic()
        try:
            self._lock.acquire()
        except filelock.Timeout:
            waited = time.monotonic() - start
            raise LockTimeoutError(
                f"{self.target} is locked by another writer (lock file {self.path}); waited "
                f"{waited:.1f} s. Try again later or raise the timeout "
                f"(PSCALIB_LOCK_TIMEOUT / --lock-timeout)") from None
        except PermissionError as exc:
            raise StorePermissionError(
                f"cannot create or open lock file {self.path}: {exc.strerror}; you need write "
                f"permission on {self.path.parent}") from None
        except (NotImplementedError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EROFS,):
                raise StorePermissionError(
                    f"cannot lock {self.target}: {self.path.parent} is on a read-only "
                    f"filesystem") from None
            raise LockUnavailableError(
                f"cannot lock {self.target}: the filesystem of {self.path.parent} does not "
                f"support file locks ({exc}). Nothing was written. Work on a local copy, or set "
                f"PSCALIB_LOCK_FALLBACK=soft to use marker-file locks (see README)") from None
        return self

    def release(self) -> None:
        self._lock.release()

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
