"""The rollback journal of the in-place engine: the original bytes of a commit's pages.

Before an in-place commit overwrites any byte below the file's old end, it writes
``.<name>.journal`` beside the store and fsyncs it (and the directory)::

    magic      16 bytes  b"pscalib-journal1"
    base_size   8        file size before the commit (uint64 little-endian)
    seq         8        engine-block sequence number before the commit (even)
    fileid      8        engine-block file id of the store the journal belongs to
    count       4        number of pages (uint32)
    count x  (offset uint64, length uint32, original bytes)
    sha256     32        of everything before it

A journal is *hot* when it is valid and the store's sequence number is ``seq`` or
``seq + 1`` (the commit had not reached its commit point, ``seq + 2``). A journal whose
checksum does not match was cut short by a kill while it was written, before any page
was overwritten: it is ignored. The file is kept and rewritten by the next commit (a
journal of a finished commit is stale and never used). :func:`recover` (run by the next
writer, under the writer lock) restores a hot journal's pages, cuts the file back to
``base_size`` and sets the number to ``seq + 2`` (the file holds the state before the
commit again, under a new number).
"""
from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from .atomic import fsync_dir
from .engineblock import USERBLOCK, Block, CommitLock, pread_block, write_block

__all__ = ["journal_path_for", "Journal", "is_hot", "write_journal", "read_journal",
           "recover", "write_pages"]

MAGIC = b"pscalib-journal1"
_HEAD = struct.Struct("<16sQQQI")
_PAGE = struct.Struct("<QI")
_SUM = 32


def journal_path_for(path: Union[str, Path]) -> Path:
    """``dir/.name.journal`` for the store ``dir/name``."""
    p = Path(path)
    return p.with_name(f".{p.name}.journal")


class Journal(NamedTuple):
    base_size: int
    seq: int
    fileid: int
    pages: Dict[int, bytes]  # offset -> original bytes


def encode(base_size: int, seq: int, fileid: int, pages: List[Tuple[int, bytes]]) -> bytes:
    parts = [_HEAD.pack(MAGIC, base_size, seq, fileid, len(pages))]
    for offset, data in pages:
        parts.append(_PAGE.pack(offset, len(data)))
        parts.append(data)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode(raw: bytes) -> Optional[Journal]:
    """The journal in ``raw``, or None if it is incomplete or damaged."""
    if len(raw) < _HEAD.size + _SUM or raw[:16] != MAGIC:
        return None
    body, digest = raw[:-_SUM], raw[-_SUM:]
    if hashlib.sha256(body).digest() != digest:
        return None
    _, base_size, seq, fileid, count = _HEAD.unpack_from(body)
    pos = _HEAD.size
    pages: Dict[int, bytes] = {}
    for _ in range(count):
        if pos + _PAGE.size > len(body):
            return None
        offset, n = _PAGE.unpack_from(body, pos)
        pos += _PAGE.size
        pages[offset] = body[pos:pos + n]
        pos += n
    if pos != len(body):
        return None
    return Journal(base_size, seq, fileid, pages)


def is_hot(jr: Optional[Journal], blk: Optional[Block]) -> bool:
    """True if ``jr`` undoes a commit of the file whose engine block is ``blk`` that had not
    reached its commit point (number ``seq`` or ``seq + 1``, same file id)."""
    return (jr is not None and blk is not None and blk.fileid == jr.fileid
            and blk.seq in (jr.seq, jr.seq + 1))


def write_journal(path: Path, blk: Block, base_size: int, pages: List[Tuple[int, bytes]],
                  st: os.stat_result) -> Path:
    """Write and fsync the journal of the store ``path`` (``st``: its stat; fsync the
    directory when the journal file is new). The file is reused by later commits."""
    jpath = journal_path_for(path)
    data = encode(base_size, blk.seq, blk.fileid, pages)
    fresh = not os.path.lexists(jpath)
    fd = os.open(jpath, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        # whoever may read the store must be able to read its journal: its mode and group
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o666 | 0o600)
        try:
            if os.fstat(fd).st_gid != st.st_gid:
                os.fchown(fd, -1, st.st_gid)
        except OSError:
            pass  # not a member of that group: the journal gets the writer's group
        view = memoryview(data)
        pos = 0
        while view:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n
        os.ftruncate(fd, len(data))
        os.fdatasync(fd)
    finally:
        os.close(fd)
    if fresh:
        fsync_dir(jpath.parent)
    return jpath


def read_journal(path: Union[str, Path]) -> Optional[Journal]:
    """The valid journal of the store ``path``, or None (absent, incomplete, unreadable).

    A journal that is a symbolic link or not a regular file, or bigger than the store could
    need, is never read (a crafted one must not make a reader read other files).
    """
    try:
        fd = os.open(journal_path_for(path), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        limit = os.stat(path).st_size * 1.01 + (1 << 20)  # pages + headers of every page
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return decode(fh.read())
    except OSError:
        return None
    finally:
        os.close(fd)


def write_pages(fd: int, pages: List[Tuple[int, bytes]]) -> None:
    """Write ``(offset, bytes)`` pages; the engine block's bytes of page 0 are skipped
    (only :func:`~pscalib.txn.engineblock.write_block` writes those)."""
    for offset, data in pages:
        if offset < USERBLOCK:
            data = data[USERBLOCK - offset:]
            offset = USERBLOCK
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n


def recover(path: Path, fd: int, timeout: float,
            log: Optional[Callable[[str], None]] = None) -> bool:
    """Undo what a killed in-place writer left in the store open as ``fd`` (read-write).

    Must run under the writer lock. Returns True if the file was changed. Without a valid
    journal only appended bytes beyond the last committed size are cut off.
    """
    jr = read_journal(path)
    blk = pread_block(fd)
    changed = False
    if jr is not None and blk is not None and is_hot(jr, blk):
        lock = CommitLock(fd, str(path), timeout)
        lock.acquire_exclusive()  # readers see the file before the commit meanwhile
        try:
            write_pages(fd, sorted(jr.pages.items()))
            os.ftruncate(fd, jr.base_size)
            os.fsync(fd)
            write_block(fd, jr.seq + 2, jr.base_size, jr.fileid)
            os.fsync(fd)
        finally:
            lock.release_exclusive()
        changed = True
        if log:
            log(f"rolled back a commit interrupted in {path}")
    elif blk is not None and blk.seq % 2 == 0 and os.fstat(fd).st_size > blk.size:
        os.ftruncate(fd, blk.size)  # bytes a killed writer appended before its journal
        os.fsync(fd)
        changed = True
    return changed
