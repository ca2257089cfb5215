"""File objects for HDF5's file-object driver: the in-place engine's view of a store.

:class:`OverlayFile` is what a writer of the in-place engine (:mod:`pscalib.txn.inplace`)
hands to HDF5: bytes written at or beyond the file's size when the transaction began
(``base_size``) go straight to the file (new payloads, new metadata: appended, never seen
by readers, whose HDF5 metadata ends at ``base_size``); bytes written below it are kept in
memory, page by page, and HDF5 reads them back from there. Nothing below ``base_size``
changes on disk until the commit writes the pages (after journaling the originals, see
:mod:`pscalib.txn.journal`).

:class:`JournalView` is what a reader hands to HDF5 when it finds a commit that a killed
writer left half done: the file as it was before that commit (journaled original pages
over the file, cut at the original size). It needs no write permission.

Both implement exactly what h5py's ``fileobj`` driver calls: ``seek``, ``tell``,
``readinto``, ``write``, ``truncate``, ``flush``.
"""
from __future__ import annotations

import os
from typing import Dict, Iterator, Tuple

__all__ = ["PAGE", "OverlayFile", "JournalView", "ReadView"]

#: Granularity of overlaid (and journaled) regions. A page, so that an in-place write
#: touches whole pages and small scattered HDF5 metadata writes share them.
PAGE = 4096


class _PagedFile:
    """Shared seek/tell/readinto over a descriptor with a page overlay below ``base_size``."""

    def __init__(self, fd: int, base_size: int):
        self.fd = fd
        self.base_size = int(base_size)
        self.size = int(base_size)          # logical size (what HDF5 sees as EOF)
        self.pos = 0
        self.pages: Dict[int, bytearray] = {}

    # what the fileobj driver calls ------------------------------------------------
    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = pos
        elif whence == 1:
            self.pos += pos
        else:
            self.pos = self.size + pos
        return self.pos

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        want = min(len(view), max(0, self.size - self.pos))
        done = 0
        while done < want:
            at = self.pos + done
            n = self._read_at(at, view[done:want])
            if n <= 0:
                break
            done += n
        # HDF5 zero-fills reads past EOF itself; short reads inside the file are errors
        self.pos += done
        return done

    def pread_into(self, buf, at: int) -> int:
        """Read into ``buf`` at ``at`` without moving :meth:`tell` (for a second reader of
        the same view, e.g. the heap guard of :mod:`pscalib.store.heapcheck`)."""
        view = memoryview(buf).cast("B")
        want = min(len(view), max(0, self.size - at))
        done = 0
        while done < want:
            n = self._read_at(at + done, view[done:want])
            if n <= 0:
                break
            done += n
        return done

    def logical_size(self) -> int:
        """The size HDF5 sees (the end of file of this view)."""
        return self.size

    # helpers ------------------------------------------------------------------------
    def _page_bytes(self, index: int) -> bytes:
        """The base file's bytes of page ``index`` (cut at ``base_size``)."""
        start = index * PAGE
        n = min(PAGE, self.base_size - start)
        data = os.pread(self.fd, n, start)
        if len(data) != n:
            raise OSError(f"short read of {n} bytes at {start}: the file shrank under a "
                          f"transaction")
        return data

    def _read_at(self, at: int, out: memoryview) -> int:
        """Read up to ``len(out)`` bytes at ``at`` (stops at a page/base boundary)."""
        if at < self.base_size:
            index, off = divmod(at, PAGE)
            page = self.pages.get(index)
            n = min(len(out), PAGE - off, self.base_size - at)
            if page is not None:
                out[:n] = page[off:off + n]
                return n
            # a run of pages not overlaid: one read up to the next overlaid page
            end = min(at + len(out), self.base_size)
            if self.pages:
                i = index + 1
                while i * PAGE < end and i not in self.pages:
                    i += 1
                end = min(end, i * PAGE)
            return os.preadv(self.fd, [out[:end - at]], at)
        return self._read_tail(at, out)

    def _read_tail(self, at: int, out: memoryview) -> int:
        return os.preadv(self.fd, [out], at)


class OverlayFile(_PagedFile):
    """A writer's view (see module docstring). ``fd`` is open read-write on the store.

    Attributes
    ----------
    pages
        ``{page index: new bytes}`` of every page below ``base_size`` HDF5 wrote.
    originals
        ``{page index: bytes before}`` of the same pages (what the journal holds).
    """

    def __init__(self, fd: int, base_size: int):
        super().__init__(fd, base_size)
        self.originals: Dict[int, bytes] = {}
        self.appended = 0  # bytes written at or beyond base_size (reported, not needed)

    def writable(self) -> bool:
        return True

    def write(self, buf) -> int:
        view = memoryview(buf).cast("B")
        total = len(view)
        at = self.pos
        done = 0
        while done < total and at + done < self.base_size:
            index, off = divmod(at + done, PAGE)
            page = self.pages.get(index)
            if page is None:
                orig = self._page_bytes(index)
                self.originals[index] = orig
                page = self.pages[index] = bytearray(orig)
            n = min(total - done, PAGE - off, self.base_size - (at + done))
            page[off:off + n] = view[done:done + n]
            done += n
        if done < total:
            rest = view[done:]
            pos = at + done
            while rest:
                n = os.pwrite(self.fd, rest, pos)
                rest = rest[n:]
                pos += n
            self.appended += total - done
        self.pos = at + total
        self.size = max(self.size, self.pos)
        return total

    def truncate(self, size: int) -> int:
        """HDF5 sets the file to its end of allocation. Below ``base_size`` the file is
        only shortened logically (the commit never cuts original bytes: the journal does
        not hold them); at or beyond it, the appended part is cut or extended for real."""
        size = int(size)
        self.size = size
        os.ftruncate(self.fd, max(size, self.base_size))
        return size

    def changed_pages(self) -> Iterator[Tuple[int, bytes, bytes]]:
        """``(offset, original bytes, new bytes)`` of every page that differs, in order."""
        for index in sorted(self.pages):
            new = bytes(self.pages[index])
            orig = self.originals[index]
            if new != orig:
                yield index * PAGE, orig, new

    def final_size(self) -> int:
        """Size of the file after the commit (never below ``base_size``, see truncate)."""
        return max(self.size, self.base_size)


class JournalView(_PagedFile):
    """A reader's view of the file before a half-done commit (see module docstring).

    ``pages`` maps page offsets to the original bytes from the journal; ``base_size`` is
    the file's size before that commit. Read-only: HDF5 opens it with ``ACC_RDONLY``.
    """

    def __init__(self, fd: int, base_size: int, originals: Dict[int, bytes]):
        super().__init__(fd, base_size)
        for offset, data in originals.items():
            self.pages[offset // PAGE] = bytearray(data)

    def writable(self) -> bool:
        return False

    def write(self, buf) -> int:
        raise OSError("a journal view is read-only")

    def truncate(self, size: int) -> int:
        raise OSError("a journal view is read-only")

    def _read_tail(self, at: int, out: memoryview) -> int:
        return 0  # the appended bytes of a half-done commit are not part of the file


class ReadView(JournalView):
    """A reader's view of a committed file: its bytes, read with ``preadv`` on ``fd``.

    Readers of in-place stores open HDF5 through this instead of by name because HDF5
    shares one open file (and its metadata cache) among all opens of the same file in a
    process: a reader reopening by name to drop stale metadata would get the old cache back
    while another store object of the process still has the file open.
    """

    def __init__(self, fd: int):
        super().__init__(fd, os.fstat(fd).st_size, {})
