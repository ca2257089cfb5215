"""Refuse HDF5 features that would make pscalib read outside the store or allocate wildly.

A store file is data from someone else: a crafted one can hold HDF5 features the format
never uses (docs/format.rst, "What a store never contains") that make HDF5 itself open
other files or claim sizes the file cannot hold:

* **external links** (``/x -> other.h5:/y``) and **soft links**: HDF5 follows them
  silently; an external link opens any file the process can read;
* **external storage** (the raw data of a dataset lives in other files, e.g.
  ``/etc/passwd`` or a FIFO that blocks the reader forever);
* **virtual datasets** (data mapped from other files);
* layouts other than compact, contiguous and chunked;
* **size claims** the file cannot back: a dataset whose dataspace promises far more bytes
  than its storage (a "sparse" payload of 16 GiB in a 200 kB file, a 2^30-row index)
  would make numpy allocate it before a single byte is read.

Everything here looks only at link and dataset-creation metadata (no raw data, no other
file) and raises :class:`~pscalib.errors.CorruptStoreError`. :func:`check_links` and
:func:`check_dataset` run before each first read of an object on the read and write paths;
:func:`scan_file` walks a whole file for ``dcs verify`` and ``dcs copy``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Set, Tuple

import h5py
from h5py import h5d, h5l, h5o

from ..errors import CorruptStoreError

__all__ = ["check_links", "check_dataset", "dataset_problem", "scan_file", "check_file",
           "file_identity", "stat_identity",
           "MAX_RATIO"]

#: Largest plausible ratio of claimed to stored bytes of a filtered (compressed) chunked
#: dataset: deflate cannot compress better than about 1032:1.
MAX_RATIO = 1100
_LAYOUTS = {h5d.COMPACT: "compact", h5d.CONTIGUOUS: "contiguous", h5d.CHUNKED: "chunked"}
_LINK_KIND = {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link"}


def _refuse(filename: str, path: str, what: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"{filename}: /{path.lstrip('/')} {what}; the store format never uses this, so the "
        f"file is damaged or crafted - nothing was read from it (restore it from a copy)")


def _link_problem(gid, name: bytes) -> Optional[str]:
    try:
        info = gid.links.get_info(name)
    except KeyError:
        return None  # absent: the caller reports a missing object as usual
    if info.type == h5l.TYPE_HARD:
        return None
    if info.type == h5l.TYPE_EXTERNAL:
        fname, target = gid.links.get_val(name)
        return (f"is an HDF5 external link to {fname.decode(errors='replace')}:"
                f"{target.decode(errors='replace')}")
    if info.type == h5l.TYPE_SOFT:
        return f"is a soft link to {gid.links.get_val(name).decode(errors='replace')}"
    return f"is a user-defined HDF5 link (type {info.type})"


def file_identity(f: h5py.File) -> Optional[Tuple[int, ...]]:
    """``(dev, inode, size, mtime_ns, ctime_ns)`` of the file ``f`` has open, from its
    descriptor (not its path, which may name another file by now); None if unknown."""
    try:
        return stat_identity(os.fstat(f.id.get_vfd_handle()))
    except (OSError, ValueError, TypeError, RuntimeError):
        return None


def stat_identity(st: os.stat_result) -> Tuple[int, ...]:
    """The identity :func:`file_identity` gives, from a stat result."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_links(f: h5py.File, path: str, seen: Optional[Set[str]] = None) -> None:
    """Raise CorruptStoreError unless every component of ``path`` is a hard link.

    Components are checked from the root down, so no external link is ever traversed.
    ``seen`` caches prefixes already checked in this open file.
    """
    parts = path.strip("/").split("/")
    prefix = ""
    for part in parts:
        prefix = f"{prefix}/{part}" if prefix else part
        if seen is not None and prefix in seen:
            continue
        problem = _link_problem(f.id, prefix.encode())
        if problem:
            raise _refuse(f.filename, prefix, problem)
        if seen is not None:
            seen.add(prefix)


def dataset_problem(dsid: h5d.DatasetID, filesize: Optional[int]) -> Optional[str]:
    """What is wrong with the creation properties / size claim of an open dataset, or None."""
    dcpl = dsid.get_create_plist()
    n_ext = dcpl.get_external_count()
    if n_ext:
        name = dcpl.get_external(0)[0].decode(errors="replace")
        return f"uses HDF5 external storage ({n_ext} file(s), first {name!r})"
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        return "is an HDF5 virtual dataset (data mapped from other files)"
    if layout not in _LAYOUTS:
        return f"has an unknown HDF5 storage layout ({layout})"
    space = dsid.get_space()
    npoints = space.get_simple_extent_npoints()
    claimed = npoints * dsid.get_type().get_size()
    if claimed == 0:
        return None
    stored = dsid.get_storage_size()
    if layout == h5d.CHUNKED:
        chunk = dcpl.get_chunk()
        chunk_bytes = dsid.get_type().get_size()
        for c in chunk:
            chunk_bytes *= int(c)
        limit = stored * (MAX_RATIO if dcpl.get_nfilters() else 1) + chunk_bytes
    else:
        limit = stored
    if claimed > limit:
        return (f"claims {claimed} bytes (shape {space.shape}) but only {stored} bytes are "
                f"stored")
    if filesize is not None and layout == h5d.CONTIGUOUS:
        offset = dsid.get_offset()
        if offset is None or offset + claimed > filesize:
            return (f"claims {claimed} bytes at byte {offset} of a file of {filesize} bytes")
    return None


def check_dataset(dsid: h5d.DatasetID, filename: str, path: str,
                  filesize: Optional[int] = None) -> h5d.DatasetID:
    """Raise CorruptStoreError if the dataset must not be read (see :func:`dataset_problem`);
    returns ``dsid``."""
    # fast path (every get): a contiguous dataset with its data inside this file has an
    # address (external storage has none) and exactly the bytes its dataspace claims
    offset = dsid.get_offset()
    if offset is not None:
        claimed = dsid.get_space().get_simple_extent_npoints() * dsid.get_type().get_size()
        if dsid.get_storage_size() == claimed and (filesize is None or
                                                   offset + claimed <= filesize):
            return dsid
    problem = dataset_problem(dsid, filesize)
    if problem:
        raise _refuse(filename, path, problem)
    return dsid


def scan_file(f: h5py.File, first_only: bool = False) -> List[Tuple[str, str]]:
    """``(path, problem)`` for every forbidden link and dataset of the whole file.

    Walks hard links only (each object once, by address), never opening another file and
    reading no raw data. ``first_only`` stops at the first problem.
    """
    try:
        return _scan(f, first_only)
    except CorruptStoreError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        # h5py's answers on damaged metadata (checksums, B-trees, heaps) met on the walk
        raise CorruptStoreError(f"{f.filename} is damaged: {exc}; restore it from a "
                                f"copy") from None


def _scan(f: h5py.File, first_only: bool) -> List[Tuple[str, str]]:
    problems: List[Tuple[str, str]] = []
    filesize = f.id.get_filesize()
    seen_addr: Set[int] = set()
    stack = [("", f.id)]
    while stack and not (first_only and problems):
        base, gid = stack.pop()
        names: list = []
        gid.links.iterate(names.append)  # the callback returns None: iterate on
        for name in names:
            path = f"{base}/{name.decode(errors='replace')}"
            problem = _link_problem(gid, name)
            if problem:
                problems.append((path, problem))
                continue
            try:
                info = h5o.get_info(gid, name)
            except KeyError:
                continue
            if info.addr in seen_addr:
                continue
            seen_addr.add(info.addr)
            if info.type == h5o.TYPE_GROUP:
                stack.append((path, h5py.h5g.open(gid, name)))
            elif info.type == h5o.TYPE_DATASET:
                problem = dataset_problem(h5d.open(gid, name), filesize)
                if problem:
                    problems.append((path, problem))
    return problems


def check_file(f: h5py.File, name: Optional[str] = None) -> None:
    """Raise CorruptStoreError for the first problem :func:`scan_file` finds.

    ``name`` is the file named in the error (default: the file's own name).
    """
    found = scan_file(f, first_only=True)
    if found:
        raise _refuse(str(name or f.filename), *found[0])
