"""Writer lock: a ``filelock`` (flock) on a lock file beside the store, never deleted.

Only writers lock; readers never wait. On filesystems without working ``flock`` we fail
with :class:`~pscalib.errors.LockUnavailableError` instead of silently running unlocked
(``fallback_to_soft=False``), unless the user opts into the documented soft-lock fallback
with ``PSCALIB_LOCK_FALLBACK=soft``: an exclusive-create marker file ``.<name>.softlock``,
which works on any filesystem. A soft-mode writer also takes the flock where the filesystem
supports it, so soft- and flock-mode writers of one store still exclude each other. A marker
left by a killed writer is broken by the next writer on the same host (its pid is dead); one
left by a writer on another host must be removed by hand.
"""
from __future__ import annotations

import errno
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Union

import filelock

from ..config import env_value
from .atomic import umask_file_mode
from ..errors import LockError, LockTimeoutError, LockUnavailableError, StorePermissionError

__all__ = ["StoreLock", "lock_path_for", "soft_lock_path_for", "default_lock_timeout"]

DEFAULT_LOCK_TIMEOUT = 120.0

#: Lock files held in this process -> the thread that took them. flock is per open file, so
#: a second store object of the same file in the same thread would wait for itself.
_HELD: Dict[str, int] = {}


def lock_path_for(path: Union[str, Path]) -> Path:
    """``dir/.name.lock`` for ``dir/name`` (hidden so directory listings stay clean)."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


def soft_lock_path_for(path: Union[str, Path]) -> Path:
    """``dir/.name.softlock``: marker of the soft-lock fallback (never the flock file, which
    always exists and would look like a held marker)."""
    p = Path(path)
    return p.with_name(f".{p.name}.softlock")


def _lock_file_mode(target: Path) -> int:
    """Read/write bits of the store (or 0o666 & ~umask): whoever may write the store may
    also open its lock file for writing, as flock on a shared group directory needs."""
    try:
        return (target.stat().st_mode & 0o666) | 0o600  # filelock needs owner rw
    except OSError:
        return umask_file_mode()


def default_lock_timeout() -> float:
    """Timeout in seconds: ``PSCALIB_LOCK_TIMEOUT`` or 120."""
    raw = env_value("PSCALIB_LOCK_TIMEOUT")
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
        self.soft = (env_value("PSCALIB_LOCK_FALLBACK") or "").lower() == "soft"
        # thread_local=False: a transaction may be committed from another thread than the
        # one that began it; each transaction has its own lock object anyway.
        self._lock = filelock.FileLock(str(self.path), timeout=self.timeout,
                                       mode=_lock_file_mode(self.target),
                                       fallback_to_soft=False, preserve_lock_file=True,
                                       thread_local=False)
        self._soft: Optional[filelock.SoftFileLock] = None
        if self.soft:
            self._soft = filelock.SoftFileLock(str(soft_lock_path_for(path)),
                                               timeout=self.timeout, thread_local=False)
        self._hard_held = False

    def acquire(self) -> "StoreLock":
        start = time.monotonic()
        if _HELD.get(str(self.path)) == threading.get_ident():
            raise LockError(
                f"{self.target} is already being changed in this thread through another store "
                f"object (waiting for it would never end); make the change through that "
                f"object, inside its transaction")
        try:
            if self._soft is not None:
                self._soft.acquire()
                try:
                    self._acquire_hard_if_supported(start)
                except BaseException:
                    self._soft.release()
                    raise
            else:
                self._lock.acquire()
                self._hard_held = True
        except filelock.Timeout:
            waited = time.monotonic() - start
            held = self.path if self._soft is None else soft_lock_path_for(self.target)
            raise LockTimeoutError(
                f"{self.target} is locked by another writer (lock file {held}); waited "
                f"{waited:.1f} s. Try again later or raise the timeout "
                f"(PSCALIB_LOCK_TIMEOUT / --lock-timeout)") from None
        except PermissionError as exc:
            raise StorePermissionError(
                f"cannot create or open lock file {exc.filename or self.path}: {exc.strerror}; "
                f"you need write permission on it and on {self.path.parent}") from None
        except (NotImplementedError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EROFS,):
                raise StorePermissionError(
                    f"cannot lock {self.target}: {self.path.parent} is on a read-only "
                    f"filesystem") from None
            raise LockUnavailableError(
                f"cannot lock {self.target}: the filesystem of {self.path.parent} does not "
                f"support file locks ({exc}). Nothing was written. Work on a local copy, or set "
                f"PSCALIB_LOCK_FALLBACK=soft to use marker-file locks (see "
                f"docs/transactions.rst)") from None
        _HELD[str(self.path)] = threading.get_ident()
        return self

    def _acquire_hard_if_supported(self, start: float) -> None:
        """Soft mode: also flock (with the time left) unless the filesystem cannot."""
        left = max(0.0, self.timeout - (time.monotonic() - start))
        try:
            self._lock.acquire(timeout=left)
        except (NotImplementedError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.ENOSYS, errno.ENOLCK,
                                                              errno.EOPNOTSUPP, errno.EINVAL):
                raise
            return  # no flock here: the marker alone serializes (soft-mode) writers
        self._hard_held = True

    def release(self) -> None:
        if self.is_locked:
            _HELD.pop(str(self.path), None)
        try:
            if self._hard_held:
                self._hard_held = False
                self._lock.release()
        finally:
            if self._soft is not None and self._soft.is_locked:
                self._soft.release()

    @property
    def is_locked(self) -> bool:
        return self._hard_held or (self._soft is not None and self._soft.is_locked)

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
