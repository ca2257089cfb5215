"""The engine block of an in-place store and the commit lock readers and writers share.

A store of format 4 (docs/format.rst, "In-place engine block") begins with a 512-byte
HDF5 *user block* that HDF5 itself ignores (h5py and h5dump read the file as usual). Its
first bytes::

    0   16  magic  b"pscalib-engine1\\n"
    16   8  seq    commit sequence number, uint64 little-endian: even = committed state,
                   odd = an in-place commit is writing pages below the old end of file
    24   8  size   file size at the last commit, uint64 little-endian
    32   8  fileid random number given to each new file (a copy, a rewrite); a journal
                   names the file it belongs to by it
    40   4  crc    zlib.crc32 of bytes 0..40, uint32 little-endian (a torn read is retried)

Readers read it with one ``pread``; :func:`read_block` returns None for a file without it
(older formats, which are changed only by copy-on-write).

**Commit lock.** Open-file-description byte-range locks (``F_OFD_SETLK``, Linux >= 3.15)
on two bytes far beyond any real offset of the store file (nothing is written there):
``TURNSTILE`` and ``COMMIT``. A reader holds a shared lock on ``COMMIT`` during each read
call (taking and dropping a shared lock on ``TURNSTILE`` first); an in-place writer holds
exclusive locks on both only while it overwrites pages below the old end of file
(milliseconds). So no reader ever reads a page while it is being overwritten, and a
waiting writer is not starved by readers (they queue at the turnstile). Readers need only
read permission (a shared lock needs a descriptor open for reading); the kernel drops the
locks of a killed process. These locks are independent of ``flock`` (the writer lock of
:mod:`pscalib.txn.lock` and HDF5's own file locking) on local filesystems.
"""
from __future__ import annotations

import errno
import fcntl
import os
import secrets
import struct
import time
import zlib
from pathlib import Path
from typing import NamedTuple, Optional, Union

from ..errors import LockTimeoutError, LockUnavailableError

__all__ = ["USERBLOCK", "MAGIC", "Block", "read_block", "pread_block", "write_block",
           "stamp", "CommitLock", "TURNSTILE", "COMMIT"]

#: Size of the HDF5 user block of an in-place store (HDF5 needs a power of 2 >= 512).
USERBLOCK = 512
MAGIC = b"pscalib-engine1\n"
_FIELDS = struct.Struct("<16sQQQ")
_CRC = struct.Struct("<I")
BLOCK_BYTES = _FIELDS.size + _CRC.size  # 44
#: A human-readable line after the fields, for someone looking at the file with `head`.
NOTE = b"\npscalib in-place engine block; see docs/format.rst\n"

#: Offsets of the two lock bytes (beyond any file pscalib writes; never written).
TURNSTILE = 1 << 62
COMMIT = TURNSTILE + 1
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on 64-bit Linux: type, whence, start, len, pid
#: errno values of a filesystem without byte-range locks (Lustre without -o flock, ...).
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


class Block(NamedTuple):
    seq: int
    size: int
    fileid: int


def _decode(raw: bytes) -> Optional[Block]:
    if len(raw) < BLOCK_BYTES or raw[:16] != MAGIC:
        return None
    magic, seq, size, fileid = _FIELDS.unpack_from(raw)
    (crc,) = _CRC.unpack_from(raw, _FIELDS.size)
    if crc != zlib.crc32(raw[:_FIELDS.size]):
        return None
    return Block(seq, size, fileid)


def pread_block(fd: int, tries: int = 50) -> Optional[Block]:
    """The block of the open file ``fd``; None if the file has none.

    A block with the magic but a wrong checksum is a read that met a concurrent write of
    the 44 bytes: it is read again (``tries`` times, then treated as absent).
    """
    for _ in range(tries):
        raw = os.pread(fd, BLOCK_BYTES, 0)
        blk = _decode(raw)
        if blk is not None or raw[:16] != MAGIC:
            return blk
        time.sleep(0.0005)
    return None


def read_block(path: Union[str, Path]) -> Optional[Block]:
    """The block of the file ``path`` (None: no block, or the file cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return pread_block(fd)
    finally:
        os.close(fd)


def encode_block(seq: int, size: int, fileid: int) -> bytes:
    head = _FIELDS.pack(MAGIC, seq, size, fileid)
    return head + _CRC.pack(zlib.crc32(head))


def write_block(fd: int, seq: int, size: int, fileid: int) -> None:
    """Write the block's fields (one ``pwrite`` of 44 bytes into the user block)."""
    data = encode_block(seq, size, fileid)
    if os.pwrite(fd, data, 0) != len(data):
        raise OSError(errno.EIO, "short write of the engine block")


def stamp(path: Union[str, Path], seq: int) -> None:
    """Write a full block (fields and note) into the user block of the new file ``path``,
    with its current size and a new file id; used for files about to be renamed into
    place (a journal of the file they replace never applies to them)."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        data = encode_block(seq, size, secrets.randbits(63)) + NOTE
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


class CommitLock:
    """The reader/writer commit lock on the open store descriptor ``fd`` (see module doc).

    Parameters
    ----------
    fd
        Descriptor of the store file (read-only for readers, read-write for writers).
    name
        The store, named in error messages.
    timeout
        Seconds to wait before :class:`~pscalib.errors.LockTimeoutError`.
    """

    def __init__(self, fd: int, name: str, timeout: float):
        self.fd = fd
        self.name = name
        self.timeout = timeout
        #: Set when a reader found that the filesystem has no byte-range locks: it then
        #: reads unlocked and checks the sequence number after each read (a writer cannot
        #: commit in place there: it needs the exclusive lock).
        self.unsupported = False

    def _set(self, kind: int, where: int) -> bool:
        try:
            fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _FLOCK.pack(kind, os.SEEK_SET, where, 1, 0))
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            if kind == fcntl.F_RDLCK and exc.errno in _NO_LOCKS:
                self.unsupported = True
                return True
            raise LockUnavailableError(
                f"cannot take the commit lock of {self.name}: {exc.strerror}; the filesystem "
                f"does not support byte-range locks (see docs/design/engine.rst)") from None

    def _wait(self, kind: int, where: int) -> None:
        if self._set(kind, where):
            return
        start = time.monotonic()
        delay = 0.0002
        while not self._set(kind, where):
            if time.monotonic() - start > self.timeout:
                raise LockTimeoutError(
                    f"{self.name} is being committed by another process and the commit did "
                    f"not end within {self.timeout:.0f} s; try again later")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _unlock(self, where: int) -> None:
        try:
            fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK,
                        _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, where, 1, 0))
        except OSError:
            pass  # closing the descriptor drops it anyway

    def acquire_shared(self) -> None:
        """Reader: wait behind a committing writer, then hold ``COMMIT`` shared."""
        self._wait(fcntl.F_RDLCK, TURNSTILE)
        try:
            self._wait(fcntl.F_RDLCK, COMMIT)
        finally:
            self._unlock(TURNSTILE)

    def release_shared(self) -> None:
        self._unlock(COMMIT)

    def acquire_exclusive(self) -> None:
        """Writer: close the turnstile, then wait for the readers inside to finish."""
        self._wait(fcntl.F_WRLCK, TURNSTILE)
        try:
            self._wait(fcntl.F_WRLCK, COMMIT)
        except BaseException:
            self._unlock(TURNSTILE)
            raise

    def release_exclusive(self) -> None:
        self._unlock(COMMIT)
        self._unlock(TURNSTILE)
