"""Consistent whole-file access to stores that may be changed in place.

Tools that read a store file by path, outside a :class:`~pscalib.store.DCStore` (``dcs
verify``, ``dcs copy``), use these so that an in-place commit running meanwhile, or one a
killed writer left half done, never shows them torn pages. Files without an engine block
(copy-on-write formats) are read as they are: nobody ever writes into them.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Union

from .atomic import copy_file
from .engineblock import CommitLock, pread_block
from .journal import is_hot, read_journal
from .lock import default_lock_timeout

__all__ = ["consistent_copy", "frozen"]

PathLike = Union[str, Path]


def _reader_lock(fd: int, path: PathLike) -> Optional[CommitLock]:
    """The shared commit lock of an in-place store open as ``fd`` (None: no engine block)."""
    if pread_block(fd) is None:
        return None
    lock = CommitLock(fd, str(path), default_lock_timeout())
    lock.acquire_shared()
    return lock


def _undo_half_commit(src: PathLike, fd: int, dst: PathLike) -> None:
    """If ``src`` (open as ``fd``) shows a commit a killed writer left half done, turn its
    copy ``dst`` into the file as it was before that commit (journaled pages, old size)."""
    blk = pread_block(fd)
    if blk is None or blk.seq % 2 == 0:
        return
    jr = read_journal(src)
    if not is_hot(jr, blk) or jr is None:
        return  # cannot happen: the journal is fsynced before the number turns odd
    out = os.open(dst, os.O_RDWR)
    try:
        for offset, data in jr.pages.items():
            os.pwrite(out, data, offset)
        os.ftruncate(out, jr.base_size)
    finally:
        os.close(out)


def consistent_copy(src: PathLike, dst: PathLike) -> str:
    """Copy ``src`` to the new file ``dst`` (see :func:`~pscalib.txn.atomic.copy_file`) as
    of one committed state; returns the copy method."""
    fd = os.open(src, os.O_RDONLY)
    try:
        lock = _reader_lock(fd, src)
        try:
            method = copy_file(src, dst)
            if lock is not None:
                _undo_half_commit(src, fd, dst)
        finally:
            if lock is not None:
                lock.release_shared()
    finally:
        os.close(fd)
    return method


@contextlib.contextmanager
def frozen(path: PathLike) -> Iterator[Path]:
    """A path to read ``path`` through as of one committed state, until the block ends.

    An in-place store is read under its shared commit lock (in-place commits wait); one
    with a half-done commit is read from a private copy without it (in the temporary
    directory, ``TMPDIR``), since a reader may not roll it back.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        lock = _reader_lock(fd, path)
        if lock is None:
            yield Path(path)
            return
        try:
            blk = pread_block(fd)
            if blk is None or blk.seq % 2 == 0:
                yield Path(path)
                return
            with tempfile.TemporaryDirectory(prefix="pscalib-snapshot-") as d:
                copy = Path(d) / Path(path).name
                copy_file(path, copy)
                _undo_half_commit(path, fd, copy)
                lock.release_shared()
                lock = None
                yield copy
        finally:
            if lock is not None:
                lock.release_shared()
    finally:
        os.close(fd)
