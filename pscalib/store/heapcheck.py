"""Refuse files whose HDF5 global heap would make HDF5 loop forever.

Variable-length strings (root attributes, history, text payloads) live in HDF5 *global heap
collections* (signature ``GCOL``). HDF5 (seen with 2.0.0) parses a collection object by
object up to the collection's stored size and steps over a free-space object (index 0) by
its stored size; a damaged size of 0 (or a collection size that runs into zeroed bytes, or
an object size that wraps around in 64-bit arithmetic) makes that loop spin forever inside
the C library, where no Python timeout or signal handler can interrupt it.
``scripts/fuzz_files.py`` found that a few damaged bytes there make opening a store hang.

Two ways to keep HDF5 away from such a collection (docs/design/engine-reads.rst):

* :class:`HeapGuard` is the file object of a second, read-only HDF5 handle (h5py's
  ``fileobj`` driver) through which pscalib reads every string outside the ``get`` hot
  path. HDF5 reads a collection (its first 4096 bytes, then the rest) before it parses
  it; the guard judges the whole collection at the first of those reads and raises
  :class:`~pscalib.errors.CorruptStoreError` instead of handing HDF5 a collection it would
  spin on. Only the collections HDF5 actually reads are checked, whatever the file size,
  and bytes elsewhere (payloads that happen to contain ``GCOL``) are never judged.
* :func:`check_file` scans the whole file for collection signatures (for the writer's
  private copy and ``verify``, which read the whole file anyway). A signature whose
  collection would spin is *confirmed* before the file is called damaged: the file is
  walked through a :class:`HeapGuard` handle reading every attribute and string dataset,
  and only a collection that walk reads (a real one) is damage. :func:`check_head` does
  the same for the first bytes of the file (the root attributes) on every open.
"""
from __future__ import annotations

import errno
import functools
import io
import os
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

import h5py
from h5py import h5f, h5p

from ..errors import CorruptStoreError
from .h5fileobj import open_fileobj_file

__all__ = ["check_head", "check_file", "HEAD_BYTES", "HeapGuard", "GuardedFile",
           "open_guarded", "StringHandle", "reads_strings", "WriteGuard"]

#: Bytes read at open: superblock, root group and the first collection (4 KiB at 2 KiB).
HEAD_BYTES = 8192
_SIG = b"GCOL"
_HDR = 16            # signature, version, 3 reserved bytes, collection size (8-byte lengths)
_OBJ = struct.Struct("<HHIQ")  # object index, reference count, reserved, object size
_MASK = (1 << 64) - 1
_MAX_SCAN = 1 << 20  # larger claims in the scan are judged by a guarded read, not here
_MAX_OFF = (1 << 63) - 1  # the largest offset pread takes


def _spins(buf: Any, start: int) -> bool:
    """True if HDF5's parse of the collection at ``start`` would never advance."""
    if bytes(buf[start + 4:start + 5]) != b"\x01" or start + _HDR > len(buf):
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


def _damage(name: Any, pos: int) -> CorruptStoreError:
    return CorruptStoreError(f"{name} is damaged: the HDF5 global heap at byte {pos} is "
                             f"corrupt (HDF5 would hang reading it); restore the file from "
                             f"a copy")


def _judge(head: Any, pos: int, file_size: int, pread: Callable[[Any, int], int],
           name: Any) -> Optional[CorruptStoreError]:
    """The error for the collection whose first bytes HDF5 just read at ``pos`` if HDF5
    would spin on it, else None.

    HDF5 2.0 reads a collection in two steps, 4096 bytes at its address (to learn its
    size) and then the rest, and parses the joined image after the second read; so the
    whole image is judged at the first (read with ``pread`` if longer than ``head``).
    """
    size = struct.unpack_from("<Q", head, 8)[0]
    if size < 4096:
        return None  # HDF5 refuses a collection smaller than its minimum itself
    if size <= len(head):
        image: Any = head
    else:
        if size > file_size - pos:
            return None  # beyond the end of the file: HDF5's read of the rest fails
        image = bytearray(size)
        image = image[:pread(image, pos)]
    return _damage(name, pos) if _spins(image, 0) else None


# ------------------------------------------------------------------ the guarded handle
class HeapGuard(io.RawIOBase):
    """Read-only file object for h5py's ``fileobj`` driver that checks heap collections.

    HDF5 loads a global heap collection by reading its first 4096 bytes (to learn its
    size), then the rest, and parses the image after that; a read that starts with a
    collection header (``GCOL``, version 1) has the whole collection checked with the
    emulation of that parse (:func:`_spins`) before HDF5 sees it. Reads use ``preadv`` at
    the guard's own position, so a duplicated descriptor shares nothing with HDF5's.
    """

    def __init__(self, fd: int, name: Any, view: Any = None):
        super().__init__()
        self._fd = fd
        self._pos = 0
        self.name = name
        #: a file object with ``pread_into(buf, at)`` and ``logical_size()`` (an in-place
        #: store's view, :mod:`pscalib.txn.overlay`) read instead of ``fd``: the guard then
        #: sees exactly the bytes the store's main handle sees (e.g. a killed commit's
        #: journaled originals), not the raw file
        self._view = view
        #: the CorruptStoreError raised inside HDF5 (h5py passes it on; kept to repeat it)
        self.damage: Optional[CorruptStoreError] = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def _size(self) -> int:
        return self._view.logical_size() if self._view is not None else os.fstat(self._fd).st_size

    def _pread(self, buf: Any, pos: int) -> int:
        if self._view is not None:
            return int(self._view.pread_into(buf, pos))
        return os.preadv(self._fd, [buf], pos)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self._size()
        elif whence == io.SEEK_CUR:
            offset += self._pos
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        if self._fd < 0:  # closed: never read a descriptor number the OS may have reused
            raise ValueError(f"read of {self.name} after its heap guard was closed")
        pos = self._pos
        if not 0 <= pos <= _MAX_OFF:  # damaged addresses: HDF5 reports the failed read
            raise OSError(errno.EINVAL, f"read at byte {pos} of {self.name}, beyond any file")
        n = self._pread(buf, pos)
        if n >= _HDR and bytes(buf[:5]) == b"GCOL\x01":
            self._check(memoryview(buf)[:n], pos)
        self._pos += n
        return n

    def _check(self, head: Any, pos: int) -> None:
        err = _judge(head, pos, self._size(), self._pread, self.name)
        if err is not None:
            self.damage = err
            raise err

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        super().close()


class WriteGuard:
    """The in-place writer's file object: an :class:`~pscalib.txn.overlay.OverlayFile`
    whose reads of heap collections are judged like :class:`HeapGuard`'s.

    The in-place writer's HDF5 reads the committed file (through the overlay); judging the
    collections it loads replaces a scan of the whole file before every in-place commit
    (that scan cost most of an addition to a big store). :attr:`damage` holds the refusal.
    """

    def __init__(self, inner: Any, name: Any):
        self.inner = inner
        self.name = name
        self.damage: Optional[CorruptStoreError] = None

    def seek(self, pos: int, whence: int = 0) -> int:
        return int(self.inner.seek(pos, whence))

    def tell(self) -> int:
        return int(self.inner.tell())

    def readinto(self, buf: Any) -> int:
        pos = self.inner.tell()
        n = int(self.inner.readinto(buf))
        if n >= _HDR and bytes(memoryview(buf)[:5]) == b"GCOL\x01":
            err = _judge(memoryview(buf)[:n], pos, self.inner.logical_size(),
                         self.inner.pread_into, self.name)
            if err is not None:
                self.damage = err
                raise err
        return n

    def write(self, buf: Any) -> int:
        return int(self.inner.write(buf))

    def truncate(self, size: int) -> int:
        return int(self.inner.truncate(size))

    def flush(self) -> None:
        self.inner.flush()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class GuardedFile:
    """A read-only h5py file whose reads of heap collections go through a :class:`HeapGuard`.

    Close it before dropping it: HDF5 must close its file before the file object goes.
    """

    def __init__(self, fd: int, name: Any, view: Any = None):
        self.guard = HeapGuard(fd, name, view)
        try:
            self.f = open_fileobj_file(os.fsencode(str(name)), h5f.ACC_RDONLY,
                                       h5p.create(h5p.FILE_ACCESS), self.guard)
        except BaseException:
            self.guard.close()
            raise

    def close(self) -> None:
        try:
            self.f.close()
        except Exception:  # closing after damage must not mask the error that was raised
            pass
        self.guard.close()


def open_guarded(path: Union[str, Path], fd: Optional[int] = None,
                 name: Optional[Any] = None, view: Any = None) -> GuardedFile:
    """Open ``path`` (or a duplicate of the open descriptor ``fd``: the same file even if
    ``path`` was replaced since; or the in-place ``view`` on ``fd``) read-only through a
    :class:`HeapGuard`."""
    own = os.dup(fd) if fd is not None else os.open(path, os.O_RDONLY)
    try:
        return GuardedFile(own, name if name is not None else path, view)
    except BaseException:
        try:
            os.close(own)
        except OSError:
            pass
        raise


class StringHandle:
    """The handle a reader reads strings through, opened on the first string read.

    Read-only (``writable`` False): a :class:`GuardedFile` twin of the open file ``f`` on a
    duplicate of its descriptor, so it is the same file even if the path was replaced
    since; HDF5 then never parses a heap collection that would make it spin, and no scan of
    the file is needed. Writable (a transaction's copy, scanned whole when the transaction
    began): ``f`` itself.
    """

    def __init__(self, f: h5py.File, name: Any, writable: bool, view: Any = None):
        self._f, self._name, self._writable = f, name, writable
        self._view = view  # the in-place reader's file object that ``f`` reads through
        self.guarded: Optional[GuardedFile] = None
        self._lock = threading.Lock()  # one twin per store, even if threads race to open it
        #: the guard's error once it refused a collection: every later string read repeats it
        self.damage: Optional[CorruptStoreError] = None

    def file(self) -> h5py.File:
        if self._writable:
            return self._f
        if self.damage is not None:
            raise self.damage
        gf = self.guarded
        if gf is None:
            with self._lock:
                gf = self.guarded
                if gf is None and self._view is not None:
                    # the same bytes as the main handle (a killed commit's journal too)
                    gf = self.guarded = open_guarded(self._name, fd=self._view.fd,
                                                     name=self._name, view=self._view)
                elif gf is None:
                    try:
                        fd: Optional[int] = self._f.id.get_vfd_handle()
                    except Exception:  # not the sec2 driver: open the path
                        fd = None
                    gf = self.guarded = open_guarded(self._name, fd=fd, name=self._name)
        return gf.f

    def refused(self) -> Optional[CorruptStoreError]:
        """The guard's error if it refused a collection (the twin is then closed at once:
        HDF5 must not meet that collection again), else None."""
        gf = self.guarded
        if gf is not None and gf.guard.damage is not None:
            self.damage, self.guarded = gf.guard.damage, None
            gf.close()
        return self.damage

    def close(self) -> None:
        if self.guarded is not None:
            self.guarded.close()
            self.guarded = None


def reads_strings(method: Callable) -> Callable:
    """Decorator of backend read methods that read through ``self._strings``: whatever
    h5py makes of the guard's refusal, the caller gets the guard's CorruptStoreError."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            err = self._strings.refused()
            if err is None:
                raise
            raise err from None
    return wrapper


# ------------------------------------------------------------------ confirming a signature
def _read_strings(obj: Any, filesize: int) -> None:
    """Read every attribute of ``obj`` and, for a dataset holding variable-length data
    stored inside the file, its values (which makes HDF5 load their heap collections)."""
    for k in obj.attrs:
        obj.attrs[k]
    if not isinstance(obj, h5py.Dataset) or not h5py.check_vlen_dtype(obj.dtype) and not (
            obj.dtype.names and any(obj.dtype[n].kind == "O" for n in obj.dtype.names)):
        return
    dcpl = obj.id.get_create_plist()
    # 16 bytes per heap reference are stored per element: a larger claim is not this file's
    if dcpl.get_external_count() == 0 and obj.size * 16 <= filesize:
        obj[()]


def _confirm(path: Union[str, Path], name: Any, pos: int,
             root_only: bool) -> Optional[CorruptStoreError]:
    """The error for the suspect collection at byte ``pos``, or None if it is not real.

    A guarded walk reads the root attributes (``root_only``) or every attribute and string
    dataset of the file: the collections it loads are the real ones, and the guard stops it
    at one HDF5 would spin on. A walk that cannot finish (other damage) confirms the
    suspicion: refusing is the safe side.
    """
    try:
        gf = open_guarded(path, name=name)
    except CorruptStoreError as exc:
        return exc
    except Exception:
        return _damage(name, pos)
    try:
        size = os.fstat(gf.guard.fileno()).st_size
        _read_strings(gf.f, size)
        if not root_only:
            gf.f.visititems(lambda _n, obj: _read_strings(obj, size))
    except Exception:
        return gf.guard.damage or _damage(name, pos)
    finally:
        gf.close()
    return gf.guard.damage


# ------------------------------------------------------------------ scans
def check_head(path: Union[str, Path], head: int = HEAD_BYTES,
               fd: Optional[int] = None) -> None:
    """Raise CorruptStoreError if a heap collection in the first ``head`` bytes would hang HDF5.

    Reads at most ``head`` bytes plus the rest of a collection that starts there; a
    signature whose collection would spin is confirmed by a guarded read of the root
    attributes (bytes of a small payload there may look like one). ``fd``: read the file
    open on this descriptor (HDF5's own: the very file it will parse) instead of ``path``.
    """
    own = fd is None
    if fd is None:
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
                if len(buf) < pos + size <= pos + _MAX_SCAN:  # read the whole collection
                    buf += os.pread(fd, pos + size - len(buf), len(buf))
                if _spins(buf, pos):
                    err = _confirm(path, path, pos, root_only=True)
                    if err is not None:
                        raise err
            pos = buf.find(_SIG, pos + 4, head)
    except OSError:
        return
    finally:
        if own:
            os.close(fd)


def check_file(path: Union[str, Path], chunk: int = 8 << 20,
               name: Optional[Union[str, Path]] = None) -> None:
    """Like :func:`check_head` for every heap collection in the file (reads it all once).

    A signature whose collection would spin is damage only if a guarded walk of the file
    reads it (payload bytes may contain ``GCOL`` and a plausible header). ``name`` is the
    file named in the error (e.g. the store whose private copy ``path`` is).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    suspects = []
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
                    if 4096 <= n <= _MAX_SCAN and _spins(os.pread(fd, n, base + pos), 0):
                        suspects.append(base + pos)
                pos = buf.find(_SIG, pos + 4)
            base += chunk
    except OSError:
        return
    finally:
        os.close(fd)
    if suspects:
        err = _confirm(path, name or path, suspects[0], root_only=False)
        if err is not None:
            raise err

