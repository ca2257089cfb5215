"""Writer lock: a ``filelock`` (flock) on a lock file beside the store, never deleted.

Only writers lock; readers never wait. On filesystems without working ``flock`` we fail
with :class:`~pscalib.errors.LockUnavailableError` instead of silently running unlocked
(``fallback_to_soft=False``), unless the user opts into the documented soft-lock fallback
with ``PSCALIB_LOCK_FALLBACK=soft``: an exclusive-create marker file ``.<name>.softlock``,
which works on any filesystem. A soft-mode writer also takes the flock where the filesystem
supports it, so soft- and flock-mode writers of one store still exclude each other. A marker
left by a killed writer is broken by the next writer on the same host (filelock sees that
its pid is dead). One left by a writer on another host (or an empty one, from an older
pscalib) must be removed by hand once that writer is known to be gone; the marker records
the owner (filelock writes pid and host; its mtime is the time) and a timeout names it
(docs/transactions.rst, "Soft locks").

A lock path that is a directory, a symbolic link or another non-regular file is refused with
a message saying what it is: locking (and recording the holder) through a link would write
to a file anywhere.
"""
from __future__ import annotations

import errno
import getpass
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import filelock

from ..config import env_value
from .atomic import umask_file_mode
from ..errors import LockError, LockTimeoutError, LockUnavailableError, StorePermissionError

__all__ = ["StoreLock", "lock_path_for", "soft_lock_path_for", "default_lock_timeout",
           "check_lock_path", "marker_owner"]

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
        if not val >= 0 or val == float("inf"):  # NaN fails >= as well
            raise LockUnavailableError(f"PSCALIB_LOCK_TIMEOUT={raw!r} must be a finite number "
                                       f"of seconds >= 0")
        return val
    return DEFAULT_LOCK_TIMEOUT


def write_holder(path: Path) -> None:
    """Record who holds the lock in the lock file (read by a writer that times out)."""
    try:
        user = env_value("PSCALIB_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    line = (f"pid={os.getpid()} host={socket.gethostname() or '?'} user={user} "
            f"since={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, line.encode("utf-8", "replace"))
    except OSError:
        pass  # the lock works without the note
    finally:
        os.close(fd)


def read_holder(path: Path) -> str:
    """``' (pid 12, host h, user u, since T)'`` from the lock file, or ``''``."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(512).decode("utf-8", "replace")
    except OSError:
        return ""
    fields = dict(f.split("=", 1) for f in text.split() if "=" in f)
    if "pid" not in fields:
        return ""
    return (f" (pid {fields.get('pid')} on host {fields.get('host', '?')}, user "
            f"{fields.get('user', '?')}, since {fields.get('since', '?')})")


def check_lock_path(path: Path) -> None:
    """Raise LockError if ``path`` exists and is not a regular file (say what it is)."""
    try:
        st = os.lstat(path)
    except OSError:
        return  # absent (created by the lock) or unreadable (the lock reports that)
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISLNK(st.st_mode):
        what = f"a symbolic link (to {os.readlink(path)!r})"
    elif stat.S_ISDIR(st.st_mode):
        what = "a directory"
    else:
        what = "not a regular file (a FIFO, socket or device)"
    raise LockError(f"lock file {path} is {what}; pscalib never makes one like that and will "
                    f"not lock through it. Remove it (it holds no data) and try again")


def marker_owner(marker: Path) -> Optional[Tuple[int, str, float]]:
    """``(pid, host, mtime)`` of a soft-lock marker, or None if it names no owner.

    filelock (>= 4) writes the owner's pid and host name as the marker's first two lines;
    an empty marker (older filelock, or made by hand) names nobody.
    """
    try:
        with open(marker, "rb") as fh:
            lines = fh.read(512).decode("utf-8", "replace").splitlines()
        mtime = os.stat(marker).st_mtime
        return int(lines[0]), lines[1].strip(), mtime
    except (OSError, ValueError, IndexError):
        return None


def describe_marker(marker: Path) -> str:
    """``' (pid 12 on host h, since T)'`` or a note that the marker names no owner."""
    owner = marker_owner(marker)
    if owner is None:
        return " (the marker names no owner)"
    pid, host, mtime = owner
    return (f" (pid {pid} on host {host}, since "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(mtime))})")


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
        check_lock_path(self.path)
        if self._soft is not None:
            # a marker of a dead writer on this host is broken by filelock itself (it records
            # pid, host and a token); breaking it here too would race with a new owner
            check_lock_path(soft_lock_path_for(self.target))
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
            if self._soft is None:
                raise LockTimeoutError(
                    f"{self.target} is locked by another writer{read_holder(self.path)} (lock "
                    f"file {self.path}); waited {waited:.1f} s. Try again later or raise the "
                    f"timeout (PSCALIB_LOCK_TIMEOUT / --lock-timeout)") from None
            marker = soft_lock_path_for(self.target)
            who = describe_marker(marker)
            raise LockTimeoutError(
                f"{self.target} is locked by another writer{who} (soft-lock marker {marker}); "
                f"waited {waited:.1f} s. If that writer is gone, remove {marker} by hand "
                f"(docs/transactions.rst, 'Soft locks'); else try again later") from None
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
        if self._hard_held:
            write_holder(self.path)
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
