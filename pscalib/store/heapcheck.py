"""Refuse files whose HDF5 global heap would make HDF5 loop forever.

Variable-length strings (root attributes, history, text payloads) live in HDF5 *global heap
collections* (signature ``GCOL``). HDF5 (seen with 2.0.0) parses a collection object by
object up to the collection's stored size and steps over a free-space object (index 0) by
its stored size; a damaged size of 0 (or a collection size that runs into zeroed bytes, or
an object size that wraps around in 64-bit arithmetic) makes that loop spin forever inside
the C library, where no Python timeout or signal handler can interrupt it.
``scripts/fuzz_files.py`` found that a few damaged bytes there make opening a store hang.

:func:`check_head` reads the start of the file, where the collection holding the root
attributes is written when a store is created, and raises
:class:`~pscalib.errors.CorruptStoreError` for such a collection before HDF5 touches it.
Collections further into the file are not scanned at open (that would mean reading the
whole file each time); :func:`check_file` scans them all and runs before ``verify`` and
before the first history read of an open store. Text payloads read by ``get`` are not
protected: a damaged heap holding one can still hang HDF5.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Union

from ..errors import CorruptStoreError

__all__ = ["check_head", "check_file", "HEAD_BYTES"]

#: Bytes read at open: superblock, root group and the first collection (4 KiB at 2 KiB).
HEAD_BYTES = 8192
_SIG = b"GCOL"
_HDR = 16            # signature, version, 3 reserved bytes, collection size (8-byte lengths)
_OBJ = struct.Struct("<HHIQ")  # object index, reference count, reserved, object size
_MASK = (1 << 64) - 1


def _spins(buf: bytes, start: int) -> bool:
    """True if HDF5's parse of the collection at ``start`` would never advance."""
    if buf[start + 4:start + 5] != b"\x01" or start + _HDR > len(buf):
        return False  # not a version-1 collection header: not ours to judge
    size = struct.unpack_from("<Q", buf, start + 8)[0]
    end = start + size
    if size < 4096 or end > len(buf):
        return False  # implausible or beyond what was read: HDF5 reports these itself
    p = start + _HDR
    while p + _OBJ.size <= end:
        idx, _, _, osz = _OBJ.unpack_from(buf, p)
        # HDF5 computes in 64-bit size_t: a huge damaged size wraps around to a small step
        need = (_OBJ.size + ((osz + 7) & ~7) if idx else osz) & _MASK
        if need == 0:
            return True
        p += need
    return False


def check_head(path: Union[str, Path], head: int = HEAD_BYTES) -> None:
    """Raise CorruptStoreError if a heap collection in the first ``head`` bytes would hang HDF5.

    Reads at most ``head`` bytes plus the rest of a collection that starts there.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # unreadable: opening the file reports that properly
    try:
        buf = os.pread(fd, head, 0)
        pos = buf.find(_SIG)
        while pos >= 0:
            if pos + _HDR <= len(buf) and buf[pos + 4:pos + 5] == b"\x01":
                size = struct.unpack_from("<Q", buf, pos + 8)[0]
                if len(buf) < pos + size <= pos + (1 << 20):  # read the whole collection
                    buf += os.pread(fd, pos + size - len(buf), len(buf))
                if _spins(buf, pos):
                    raise CorruptStoreError(
                        f"{path} is damaged: the HDF5 global heap at byte {pos} is corrupt "
                        f"(HDF5 would hang reading it); restore the file from a copy")
            pos = buf.find(_SIG, pos + 4, head)
    except OSError:
        return
    finally:
        os.close(fd)


def check_file(path: Union[str, Path], chunk: int = 8 << 20) -> None:
    """Like :func:`check_head` for every heap collection in the file (reads it all once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        size = os.fstat(fd).st_size
        base = 0
        while base < size:
            buf = os.pread(fd, chunk + _HDR, base)  # overlap: a header across the boundary
            pos = buf.find(_SIG)
            while 0 <= pos < chunk:
                hdr = buf[pos:pos + _HDR]
                if len(hdr) == _HDR and hdr[4:5] == b"\x01":
                    n = struct.unpack_from("<Q", hdr, 8)[0]
                    if 4096 <= n <= (1 << 20) and _spins(os.pread(fd, n, base + pos), 0):
                        raise CorruptStoreError(
                            f"{path} is damaged: the HDF5 global heap at byte {base + pos} is "
                            f"corrupt (HDF5 would hang reading it); restore the file from "
                            f"a copy")
                pos = buf.find(_SIG, pos + 4)
            base += chunk
    except OSError:
        return
    finally:
        os.close(fd)
