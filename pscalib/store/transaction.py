"""Store transactions: a :class:`StoreWriter` over a file transaction of :mod:`pscalib.txn`.

:func:`store_transaction` is the body of :meth:`DCStore.transaction
<pscalib.store.dcstore.DCStore.transaction>`: it takes the lock and a private copy of the
file (:class:`~pscalib.txn.transaction.FileTransaction`), points the store at the writable
backend of the copy and, on normal exit, flushes and commits it (renamed over the file); on
an exception the copy is thrown away. :func:`create_store_file` writes a new, empty store the
same way.
"""
from __future__ import annotations

import os

import contextlib
import errno
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Tuple, TypeVar, Union, cast

from ..config import inplace_min_bytes, load_config
from ..errors import (InvalidInputError, PscalibError, ReadOnlyError, StoreNotFoundError)
from ..locations import make_dirs
from ..names import split_detname, validate_detname
from ..timestamps import now_ns
from ..txn.atomic import os_error
from ..txn.engineblock import read_block
from ..txn.inplace import InPlaceTransaction
from ..txn.transaction import FileTransaction
from . import layout as L
from .backends import WRITABLE
from .heapcheck import WriteGuard, check_file
from .native import NativeBackend
from .writer import StoreWriter
from .changelog import record_changes

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore
    from .storefile import StoreFile

__all__ = ["StoreTransaction", "store_transaction", "create_store_file"]

S = TypeVar("S", bound="StoreFile")

#: Either engine's file transaction (same interface).
AnyTransaction = Union[FileTransaction, InPlaceTransaction]

_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StoreTransaction:
    """State of the open transaction of one store: file transaction, writer, nesting."""

    __slots__ = ("file_txn", "writer", "depth", "error")

    def __init__(self, file_txn: AnyTransaction, writer: StoreWriter):
        self.file_txn = file_txn
        self.writer = writer
        self.depth = 0
        #: First error raised inside a nested block: the whole transaction is rolled back.
        self.error: Optional[BaseException] = None

    def check_space(self, nbytes: int) -> None:
        self.file_txn.check_space(nbytes)


def _as_oserror(exc: Exception) -> OSError:
    """An OSError with the errno HDF5 reported (h5py raises RuntimeError on flush)."""
    if isinstance(exc, OSError):
        return exc
    m = re.search(r"errno = (\d+)", str(exc))
    return OSError(int(m.group(1)) if m else 0, str(exc))


@contextlib.contextmanager
def store_transaction(store: S) -> Iterator[S]:
    """See :meth:`DCStore.transaction`."""
    cur = store._txn
    if cur is not None:
        cur.depth += 1
        try:
            yield store
        except BaseException as exc:
            if cur.error is None:
                cur.error = exc
            raise
        finally:
            cur.depth -= 1
        return
    if store.mode == "r":
        raise ReadOnlyError(f"{store.path} is open read-only; open it with mode='a' to "
                            f"change it")
    txn, convert = _file_transaction(store)  # may raise: reader stays open
    store._close_backend()
    try:
        txn.begin()
    except StoreNotFoundError:
        store._open_reader_or_missing()
        raise
    except BaseException:
        store._open_reader()
        raise
    if not txn.existed:
        txn.abort()
        store._open_reader_or_missing()
        raise StoreNotFoundError(f"{store.path} was removed by another process")
    be = None
    guard: Optional[WriteGuard] = None
    try:
        try:
            if isinstance(txn, InPlaceTransaction):
                # HDF5 reads the committed file through the overlay: the guard judges each
                # heap collection it loads (a damaged one would hang HDF5), so no scan of
                # the whole file is needed (docs/design/engine-reads.rst)
                guard = WriteGuard(txn.fileobj, store.path)
                be = WRITABLE.open_fileobj(guard, store.path, write=True)
            else:
                check_file(txn.tmp, name=store.path)  # a damaged string heap would hang HDF5
                be = WRITABLE.open_for_write(txn.tmp)
        except OSError as exc:
            raise os_error(exc, "open a copy of", store.path) from None
        state = StoreTransaction(txn, StoreWriter(cast("DCStore", store), be))
        store._txn = state
        store._backend = be
        try:
            yield store
        except OSError as exc:  # disk full / file too large while writing the copy
            if isinstance(exc, PscalibError) or exc.errno not in _SPACE_ERRNOS:
                raise
            raise os_error(exc, "write", store.path) from None
        if state.error is not None:
            err = state.error
            err.add_note(f"(the whole transaction on {store.path} was rolled back)")
            raise err
        # the change log of what get selects (docs/reproducibility.rst); its space is
        # checked first like every other write (a failed HDF5 write can crash at exit)
        record_changes(be, reserve=txn.check_space, cache=str(store.path))
        if convert:
            be.set_format_inplace()  # the compacting rewrite adds the engine block
        try:
            be.finish()
        except (OSError, RuntimeError) as exc:  # h5py reports a failed flush as either
            raise os_error(_as_oserror(exc), "write", store.path) from None
        txn.commit(compact=state.writer.compact or convert)
    except BaseException:
        if be is not None:
            be.close()
        txn.abort()
        if guard is not None and guard.damage is not None:
            raise guard.damage from None  # whatever HDF5 made of the guard's refusal
        raise
    finally:
        store._txn = None
        store._backend = None
        store._open_reader_or_missing()


def _file_transaction(store: "StoreFile") -> Tuple[AnyTransaction, bool]:
    """The file transaction for a change of ``store`` and whether it converts the file.

    A store with an engine block is changed in place (journaled). A native format 3 store
    whose size reached ``PSCALIB_INPLACE_SIZE`` is copied once more and rewritten as format
    4 with an engine block (the conversion); smaller ones are copied. Formats 1 and 2 stay
    copy-on-write: format 4 includes format 3's history table, which only ``dcs upgrade``
    builds (it converts exactly and says so in the history).
    """
    if read_block(store.path) is not None:
        return InPlaceTransaction(store.path, store._lock_timeout,
                                  rewrite=WRITABLE.rewrite_file), False
    txn = FileTransaction(store.path, store._lock_timeout, rewrite=WRITABLE.rewrite_file)
    limit = inplace_min_bytes()
    be = store._backend
    convert = False
    if (limit is not None and be is not None and isinstance(be, NativeBackend)
            and be.format_version >= L.FORMAT_TABLE):
        try:
            convert = store.path.stat().st_size >= limit
        except OSError:
            convert = False
    return txn, convert


def create_store_file(path: Path, detname: Optional[str], lock_timeout: Optional[float],
                      file_mode: Optional[int]) -> None:
    """Create the empty store ``path`` for ``detname`` (default: the file name's stem).

    ``file_mode`` None takes ``PSCALIB_FILE_MODE`` (read here, only when a file is made).
    Another process creating the file meanwhile is not an error (its file is kept).
    """
    if detname is None:
        stem = path.name[:-3] if path.name.endswith(".h5") else path.stem
        try:
            detname = validate_detname(stem)
        except PscalibError as exc:
            raise InvalidInputError(
                f"cannot create {path}: give detname=... (the file name is not a "
                f"detector name: {exc})") from None
    dettype, detid = split_detname(detname)
    if path.is_symlink():  # exists() is False: a dangling link. Never create through it:
        # its target may lie anywhere, outside the calib directory
        raise InvalidInputError(
            f"cannot create {path}: it is a symbolic link to {os.readlink(path)!r}, which does "
            f"not exist; remove the link or make it point to an existing store")
    if file_mode is None:
        file_mode = load_config().file_mode
    parent = path.parent
    if not parent.is_dir():
        try:
            make_dirs(parent)
        except OSError as exc:
            raise os_error(exc, "create directory", parent) from None
    txn = FileTransaction(path, lock_timeout, new_file_mode=file_mode)
    txn.begin()
    if txn.existed:  # another process created it while we waited for the lock
        txn.abort()
        return
    try:
        WRITABLE.create_file(txn.tmp, dettype, detid, detname, now_ns())
    except BaseException as exc:
        txn.abort()
        if isinstance(exc, OSError):
            raise os_error(exc, "create", path) from None
        raise
    txn.commit()
