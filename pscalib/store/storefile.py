"""StoreFile: an open store file (the lifecycle half of :class:`~pscalib.store.DCStore`).

Resolves the name to a file (:mod:`pscalib.paths`; an explicit file path reads no
configuration), creates a missing file for ``mode='a'``/``'x'``, holds the read-only backend
of the snapshot it opened (:meth:`StoreFile.refresh` moves to a newer file), and runs
transactions (:mod:`pscalib.store.transaction`) whose :class:`~pscalib.store.writer.StoreWriter`
:meth:`StoreFile.writer` returns.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Optional, Self, Tuple, Union, cast

from ..errors import (InvalidInputError, PscalibError, ReadOnlyError, StoreExistsError,
                      StoreNotFoundError)
from ..paths import resolve_store
from ..timestamps import TimeLike
from ..txn.atomic import os_error
from .backend import Backend
from .backends import open_backend
from .dcbase import DCBase
from .safety import file_identity, stat_identity
from .selection import SelectionCache
from .transaction import StoreTransaction, create_store_file, store_transaction
from .writer import StoreWriter

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["StoreFile"]

PathLike = Union[str, Path]


class StoreFile(DCBase):
    """An open store file; see :class:`~pscalib.store.DCStore` for the parameters."""

    __slots__ = ("path", "mode", "resolved", "_backend", "_lock_timeout", "_txn", "_lookup",
                 "_stat", "_file_mode")

    def __init__(self, cpath: Optional[PathLike] = None, detname: Optional[str] = None,
                 mode: str = "r", *, lock_timeout: Optional[float] = None,
                 tsp: Optional[TimeLike] = None, file_mode: Optional[int] = None):
        super().__init__(cast("DCStore", self), ())  # a StoreFile is always a DCStore
        if mode == "w":
            raise InvalidInputError("mode 'w' would truncate an existing store; use 'a' to "
                                    "open or create, or 'x' to create a new one")
        if mode not in ("r", "a", "x"):
            raise InvalidInputError(f"mode must be 'r', 'a' or 'x', got {mode!r}")
        if cpath is not None and not isinstance(cpath, (str, os.PathLike)):
            raise InvalidInputError(f"store path must be a str or path, got "
                                    f"{type(cpath).__name__} {cpath!r}")
        if lock_timeout is not None and (isinstance(lock_timeout, bool) or not isinstance(
                lock_timeout, (int, float)) or not lock_timeout >= 0):  # NaN fails >= too
            raise InvalidInputError(f"lock_timeout must be a number of seconds >= 0, got "
                                    f"{lock_timeout!r}")
        try:  # an explicit file reads no configuration (see paths.resolve_file)
            self.resolved = resolve_store(cpath, detname, mode=mode, tsp=tsp)
        except OSError as exc:  # stat() of a hostile path, e.g. longer than NAME_MAX
            if isinstance(exc, PscalibError):
                raise
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidInputError(f"store path {str(cpath)[:80]!r}... is too long for "
                                        f"the file system") from None
            raise os_error(exc, "open", str(cpath)) from None
        self.path: Path = Path(self.resolved.path)
        self.mode = mode
        self._lock_timeout = lock_timeout
        # explicit file_mode wins, else PSCALIB_FILE_MODE (read only if a file is created)
        self._file_mode = file_mode if file_mode is not None else self.resolved.file_mode
        self._backend: Optional[Backend] = None
        self._txn: Optional[StoreTransaction] = None
        self._lookup = SelectionCache(cast("DCStore", self))
        self._stat: Optional[tuple] = None
        if mode == "x" and self.path.exists():
            raise StoreExistsError(f"{self.path} already exists; open it with mode='a'")
        if mode in ("a", "x") and not self.path.exists():
            create_store_file(self.path, self.resolved.detname, self._lock_timeout,
                              self._file_mode)
        self._open_reader()
        if mode != "r" and not self.backend.writable_format:
            desc = self._backend_desc()  # before close() drops the backend
            self.close()
            raise ReadOnlyError(f"{self.path} is in the {desc} and can only be "
                                f"read; convert it with 'dcs import-legacy'")

    # ------------------------------------------------------------------ opening
    def _backend_desc(self) -> str:
        return getattr(self._backend, "format_description", "an unknown format")

    def _open_reader(self) -> None:
        self._backend = open_backend(self.path)
        if hasattr(self._backend, "on_reopen"):  # in-place store: moved to a newer commit
            self._backend.on_reopen = self._lookup.clear
        # the file opened, by its descriptor: a stat of the path after the open may see
        # a newer file renamed over it meanwhile, and refresh() would then miss that commit
        ident = getattr(self._backend, "identity", None)  # in-place stores: own descriptor
        f = getattr(self._backend, "f", None)
        self._stat = ident() if ident is not None else (
            file_identity(f) if f is not None else None)
        self._lookup.clear()

    def _open_reader_or_missing(self) -> None:
        try:
            self._open_reader()
        except StoreNotFoundError:
            self._backend = None

    def refresh(self) -> bool:
        """Reopen the file if another process changed it; True if it did.

        An open store keeps reading a consistent snapshot (the file it opened) until it is
        refreshed or reopened.
        """
        if self._txn is not None:
            return False
        try:
            now: Optional[tuple] = stat_identity(os.stat(self.path))
        except OSError:
            now = None
        if now == self._stat:
            return False
        self._close_backend()
        self._open_reader()
        return True

    def _close_backend(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._lookup.clear()

    def close(self) -> None:
        """Close the file (a store in a transaction cannot be closed)."""
        if self._txn is not None:
            raise InvalidInputError("cannot close a store inside a transaction")
        self._close_backend()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self._txn is None:
            self.close()

    def _backend_for_read(self) -> Backend:
        if self._backend is None:
            raise InvalidInputError(f"store {self.path} is closed")
        return self._backend

    @property
    def backend(self) -> Backend:
        """The backend object (native or legacy) reading this file."""
        return self._backend_for_read()

    # ------------------------------------------------------------ transactions
    def transaction(self) -> ContextManager[Self]:
        """Group changes into one atomic, locked transaction.

        On normal exit every change appears in the file at once; on an exception (or a
        kill) the file stays exactly as it was. Nested calls join the outer transaction; if
        one of them fails, the outer transaction is rolled back too (even if the caller
        caught the error), because the failed change may have been half applied.
        """
        return store_transaction(self)

    def writer(self) -> StoreWriter:
        """The :class:`~pscalib.store.writer.StoreWriter` of the open transaction."""
        if self._txn is None:
            raise InvalidInputError(f"changes to {self.path} need a transaction: call "
                                    f"writer() inside 'with store.transaction():'")
        return self._txn.writer

    def compact(self) -> Tuple[int, int]:
        """Rewrite the file to reclaim space of deleted objects; returns (before, after) bytes."""
        before = self.path.stat().st_size
        with self.transaction():
            w = self.writer()
            w.compact_on_commit()
            w.append_history((), "compact", f"rewrote file ({before} bytes before)")
        return before, self.path.stat().st_size
