"""Reading a store that writers change in place (format 4): :class:`GuardedBackend`.

Every read call of the backend interface runs under the shared commit lock of
:mod:`pscalib.txn.engineblock`, so it never overlaps an in-place commit overwriting pages.
Before the call, one ``pread`` of the engine block tells whether a commit happened since
the HDF5 file was opened: HDF5 caches metadata (superblock, object headers, B-tree nodes,
heaps) in its metadata cache and would keep using the old bytes, so the inner backend is
closed and opened again (and ``on_reopen`` is called: the store's lookup cache is cleared).
A reader that finds a commit a killed writer left half done (odd sequence number) reads the
file as it was before that commit, through the journal (:class:`~pscalib.txn.overlay.
JournalView`); it never needs write permission.

A store kept open (an online monitor) therefore moves to each newly committed state at its
next read call; each call sees exactly one committed state.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from ..errors import (CorruptStoreError, LockTimeoutError, StoreNotFoundError,
                      StorePermissionError)
from ..txn.engineblock import CommitLock, pread_block
from ..txn.journal import is_hot, read_journal
from ..txn.lock import default_lock_timeout
from ..txn.overlay import JournalView, ReadView
from .backend import Backend
from .safety import stat_identity

__all__ = ["GuardedBackend", "Opener"]

#: ``opener(path, view)`` opens the store ``path`` read-only through the file object ``view``.
Opener = Callable[[Path, JournalView], Backend]

#: Backend attributes that are data, read from the inner backend without a lock.
_RETRIES = 20

_PLAIN = ("end_inclusive", "writable_format", "writable", "format_description",
          "format_version", "filename", "f")


class GuardedBackend(Backend):
    """A read-only backend of an in-place store (see module docstring).

    Parameters
    ----------
    path
        The store file.
    opener
        Opens the inner (native) backend; see :data:`Opener`.
    """

    def __init__(self, path: Path, opener: Opener):
        self.path = Path(path)
        self._opener = opener
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise StoreNotFoundError(f"store file {self.path} does not exist") from None
        except PermissionError:
            raise StorePermissionError(f"no permission to read {self.path}") from None
        self._lock = CommitLock(self.fd, str(self.path), default_lock_timeout())
        self._inner: Optional[Backend] = None
        self._seq: Optional[int] = None
        self._users = 0
        self._mutex = threading.Lock()
        self.on_reopen: Optional[Callable[[], None]] = None
        try:
            self._enter()
            self._leave()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- locking
    def _enter(self) -> Backend:
        """Take the shared commit lock (first user of this object) and make sure the inner
        backend shows the current committed state."""
        with self._mutex:
            if self._users == 0:
                self._lock.acquire_shared()
                try:
                    self._refresh_inner()
                except BaseException:
                    self._lock.release_shared()
                    raise
            self._users += 1
            assert self._inner is not None
            return self._inner

    def _leave(self) -> None:
        with self._mutex:
            self._users -= 1
            if self._users == 0:
                self._lock.release_shared()

    def _refresh_inner(self) -> None:
        blk = pread_block(self.fd)
        if blk is None:
            raise CorruptStoreError(f"{self.path}: the engine block at the start of the file "
                                    f"is damaged; run 'dcs verify' and restore it from a copy")
        if self._inner is not None and blk.seq == self._seq:
            return
        reopened = self._inner is not None
        if self._inner is not None:
            self._inner.close()
            self._inner = None
        view: JournalView = ReadView(self.fd)
        if blk.seq % 2:  # a killed writer's half-done commit: read the state before it
            jr = read_journal(self.path)
            if not is_hot(jr, blk) or jr is None:
                raise CorruptStoreError(
                    f"{self.path}: an in-place commit was interrupted and its journal "
                    f"{self.path.parent}/.{self.path.name}.journal is missing or damaged; "
                    f"restore the file from a copy")
            view = JournalView(self.fd, jr.base_size, jr.pages)
        inner = self._opener(self.path, view)
        self._inner, self._seq = inner, blk.seq
        if reopened and self.on_reopen is not None:
            self.on_reopen()

    def identity(self) -> Tuple[int, ...]:
        """``(dev, inode, size, mtime_ns, ctime_ns)`` of the file read, by its descriptor."""
        return stat_identity(os.fstat(self.fd))

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        for _ in range(_RETRIES):
            inner = self._enter()
            try:
                result = getattr(inner, name)(*args, **kwargs)
            except Exception:
                if not self._moved():
                    raise
                continue  # no locks here and a commit happened meanwhile: read again
            finally:
                self._leave()
            if not self._moved():
                return result
        raise LockTimeoutError(f"{self.path} changed during each of {_RETRIES} reads (no "
                             f"byte-range locks on this filesystem); try again")

    def _moved(self) -> bool:
        """Without byte-range locks (rare filesystems), whether a commit happened since the
        inner backend was opened (the read may have met it)."""
        if not self._lock.unsupported:
            return False
        blk = pread_block(self.fd)
        return blk is None or blk.seq != self._seq

    # ---------------------------------------------------- the backend interface
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or self.__dict__.get("_inner") is None:
            raise AttributeError(name)
        value = getattr(self.__dict__["_inner"], name)
        if name in _PLAIN or not callable(value):
            return value
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    end_inclusive = property(lambda self: self._plain("end_inclusive"))
    writable_format = property(lambda self: self._plain("writable_format"))
    writable = property(lambda self: False)
    format_description = property(lambda self: self._plain("format_description"))
    filename = property(lambda self: str(self.path))

    def _plain(self, name: str) -> Any:
        if self._inner is None:
            raise AttributeError(name)
        return getattr(self._inner, name)

    def meta(self, *a: Any, **k: Any) -> Any:
        return self._call("meta", *a, **k)

    def ctypes(self, *a: Any, **k: Any) -> Any:
        return self._call("ctypes", *a, **k)

    def has_ctype(self, *a: Any, **k: Any) -> Any:
        return self._call("has_ctype", *a, **k)

    def range_table(self, *a: Any, **k: Any) -> Any:
        return self._call("range_table", *a, **k)

    def versions(self, *a: Any, **k: Any) -> Any:
        return self._call("versions", *a, **k)

    def versions_by_range(self, *a: Any, **k: Any) -> Any:
        return self._call("versions_by_range", *a, **k)

    def version_info(self, *a: Any, **k: Any) -> Any:
        return self._call("version_info", *a, **k)

    def payload(self, *a: Any, **k: Any) -> Any:
        return self._call("payload", *a, **k)

    def dictpars(self, *a: Any, **k: Any) -> Any:
        return self._call("dictpars", *a, **k)

    def history(self, *a: Any, **k: Any) -> Any:
        return self._call("history", *a, **k)

    def version_state(self, *a: Any, **k: Any) -> Any:
        return self._call("version_state", *a, **k)

    def tombstones(self, *a: Any, **k: Any) -> Any:
        return self._call("tombstones", *a, **k)

    def changelog(self, *a: Any, **k: Any) -> Any:
        return self._call("changelog", *a, **k)

    def tag_rows(self, *a: Any, **k: Any) -> Any:
        return self._call("tag_rows", *a, **k)

    # every public method of Backend is forwarded explicitly: one inherited from Backend
    # would answer with its default, not from the file (tests/test_engine.py checks)
    def versionlog(self, *a: Any, **k: Any) -> Any:
        return self._call("versionlog", *a, **k)

    def log_tails(self, *a: Any, **k: Any) -> Any:
        return self._call("log_tails", *a, **k)

    def version_sha256(self, *a: Any, **k: Any) -> Any:
        return self._call("version_sha256", *a, **k)

    def payload_into(self, *a: Any, **k: Any) -> Any:
        return self._call("payload_into", *a, **k)

    def version_stamp(self, *a: Any, **k: Any) -> Any:
        return self._call("version_stamp", *a, **k)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None
        if self.fd >= 0:
            os.close(self.fd)  # drops the commit lock with the descriptor
            self.fd = -1
