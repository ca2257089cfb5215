"""In-place transaction of a store with an engine block: append, journal, overwrite pages.

The cost of a commit grows with the change, not with the file (docs/design/engine.rst):

1. ``begin()`` takes the writer lock, undoes what a killed writer left
   (:func:`~pscalib.txn.journal.recover`) and opens the store read-write behind an
   :class:`~pscalib.txn.overlay.OverlayFile`: HDF5's writes beyond the old end of file go
   to the file, writes below it stay in memory.
2. ``commit()``: write and fsync the journal of the original bytes of every page to be
   overwritten; take the commit lock (readers wait, for milliseconds); set the sequence
   number odd; write the pages; fdatasync (appended bytes and pages); set the number to
   the next even value with the new size and fdatasync (the commit point); release. The
   journal file stays for the next commit (a stale journal is never used: see
   :mod:`pscalib.txn.journal`).
3. ``abort()`` (or an error before the commit point): cut the appended bytes off; the file
   is byte for byte as before.

A kill at any moment leaves either the old state (journal valid, sequence number not yet
advanced: the next writer restores the pages; readers meanwhile read through the journal)
or the new one.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import PscalibError, StoreIOError, StorePermissionError, StoreNotFoundError
from .atomic import atomic_replace, cleanup_leftovers, os_error, tmp_path_for
from .engineblock import Block, CommitLock, pread_block, write_block
from .journal import recover, write_journal, write_pages
from .leftovers import remove_dead_tmp
from .lock import StoreLock
from .overlay import OverlayFile
from .transaction import check_free_space, check_size_limit

__all__ = ["InPlaceTransaction"]


class InPlaceTransaction:
    """Journaled in-place transaction on one existing store file with an engine block.

    Same interface as :class:`~pscalib.txn.transaction.FileTransaction` (``begin``,
    ``commit``, ``abort``, ``check_space``, ``existed``); HDF5 opens :attr:`fileobj`
    instead of a private copy (:attr:`tmp` is None).
    """

    engine = "inplace"

    def __init__(self, path: Union[str, Path], lock_timeout: Optional[float] = None,
                 extra_bytes: int = 0,
                 rewrite: Optional[Callable[[Path, Path], None]] = None):
        self.path = Path(os.path.realpath(path))
        if self.path.exists() and not os.access(self.path, os.W_OK):
            raise StorePermissionError(
                f"{self.path} is read-only (mode {stat.S_IMODE(self.path.stat().st_mode):o}); "
                f"make it writable (chmod u+w) to change it - nothing was changed")
        self.lock = StoreLock(self.path, lock_timeout)
        self.extra_bytes = int(extra_bytes)
        self.rewrite = rewrite
        self.existed = False
        self.tmp: Optional[Path] = None
        self.fd = -1
        self.fileobj: Optional[OverlayFile] = None
        self.seq = 0
        self.block: Optional[Block] = None
        self._active = False

    def begin(self) -> OverlayFile:
        self.lock.acquire()
        try:
            cleanup_leftovers(self.path)
            remove_dead_tmp(self.path.parent)
            try:
                self.fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                raise StoreNotFoundError(f"{self.path} was removed by another process") \
                    from None
            self.existed = True
            recover(self.path, self.fd, self.lock.timeout)
            blk = pread_block(self.fd)
            if blk is None or blk.seq % 2:
                raise StoreIOError(f"{self.path}: the engine block is missing or damaged; "
                                   f"run 'dcs verify' on the file (nothing was changed)")
            self.seq = blk.seq
            self.block = blk
            self.check_space(self.extra_bytes)
            self.fileobj = OverlayFile(self.fd, os.fstat(self.fd).st_size)
        except BaseException as exc:
            self._close_fd()
            self.lock.release()
            if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
                raise os_error(exc, "open", self.path) from None
            raise
        self._active = True
        return self.fileobj

    def check_space(self, nbytes: int) -> None:
        """Free space for the appended bytes and the journal (no copy is made), and the
        process's file size limit."""
        check_free_space(self.path, nbytes)
        check_size_limit(self.path, self.path, nbytes)

    def commit(self, compact: bool = False) -> None:
        """Make the change durable in place (see module docstring), then release the lock."""
        try:
            self._commit_in_place()
            if compact:
                self._compact()
        except BaseException as exc:
            self._finish()
            if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
                raise os_error(exc, "write", self.path) from None
            raise
        self._finish()

    def _commit_in_place(self) -> None:
        fo = self.fileobj
        assert fo is not None and self.block is not None
        pages = list(fo.changed_pages())
        size = fo.final_size()
        try:
            write_journal(self.path, self.block, fo.base_size,
                          [(off, orig) for off, orig, _ in pages], os.fstat(self.fd))
        except BaseException:
            self._truncate_back()
            raise
        lock = CommitLock(self.fd, str(self.path), self.lock.timeout)
        try:
            lock.acquire_exclusive()
        except BaseException:
            self._truncate_back()  # nothing below the old end was written
            raise
        try:
            write_block(self.fd, self.seq + 1, fo.base_size, self.block.fileid)
            write_pages(self.fd, [(off, new) for off, _, new in pages])
            # one flush for the appended bytes and the pages: until the number below is
            # durable, a crash rolls back to the journal whatever of them reached the disk
            os.fdatasync(self.fd)
            write_block(self.fd, self.seq + 2, size, self.block.fileid)
            os.fdatasync(self.fd)  # the commit point
        except BaseException:
            try:  # put the original pages back now (else the next writer does)
                recover(self.path, self.fd, self.lock.timeout)
            except (OSError, PscalibError):
                pass
            raise
        finally:
            lock.release_exclusive()
        # the journal stays (it is only used while the number is odd, and is rewritten by
        # the next commit): removing it would cost a directory update per commit
        self.seq += 2

    def _compact(self) -> None:
        """Rewrite the committed file compactly and rename it into place (deletions)."""
        if self.rewrite is None:
            raise RuntimeError("internal error: compact commit without a rewrite")
        packed = tmp_path_for(self.path)
        try:
            self.rewrite(self.path, packed)  # stamps the engine block (seq + 2)
            os.chmod(packed, stat.S_IMODE(os.fstat(self.fd).st_mode))
            atomic_replace(packed, self.path)
        except BaseException:
            packed.unlink(missing_ok=True)
            raise

    def _truncate_back(self) -> None:
        fo = self.fileobj
        if fo is None or self.fd < 0:
            return
        try:
            os.ftruncate(self.fd, fo.base_size)
        except OSError:
            pass  # the next writer cuts it (recover: beyond the committed size)

    def abort(self) -> None:
        """Cut off what was appended and release the lock; the file is as before."""
        self._truncate_back()
        self._finish()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _finish(self) -> None:
        self._close_fd()
        if self._active:
            self._active = False
            self.lock.release()
