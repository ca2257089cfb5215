"""The per-file payload checksum index ``/_payloads`` (deduplication of identical payloads).

A 1-d, chunked, extendible dataset at the file root with one row per version::

    (sha256 S64, ctype vlen UTF-8 str, tsbegin i8, tsend i8, version i8)

``sha256`` is the version's checksum (:func:`pscalib.store.payload.checksum`). Rows are
unordered. Finding the versions that already hold a payload reads only the ``sha256``
column (64 bytes per version) instead of walking every group of the file; ``get`` never
touches the index.

The index is an accelerator, not a source of truth: a file without it is valid (it is
built on the first add, by one walk over the existing versions), and every hit is checked
against the version group (exists, same checksum, same payload bytes) before a hard link
is made. ``dcs verify`` reports rows that point to missing versions or disagree with them.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple

import h5py
import numpy as np

from . import layout as L
from . import safety
from .layout import h5path
from .payload import Payload, payloads_equal, read_payload
from .rowio import read_rows_at, write_rows_at

__all__ = ["PAYINDEX_DTYPE", "N_PAYLOAD_INDEX", "ensure_index", "add_row", "find_identical",
           "forget", "rebuild", "read_rows", "iter_versions", "holds", "walk_rows", "load_lazy",
           "store"]

N_PAYLOAD_INDEX = L.N_PAYLOAD_INDEX
_STR = h5py.string_dtype("utf-8")
PAYINDEX_DTYPE = np.dtype([("sha256", "S64"), ("ctype", _STR), ("tsbegin", "<i8"),
                           ("tsend", "<i8"), ("version", "<i8")])
_CHUNK = 1024
_SHA_ONLY = np.dtype([("sha256", "S64")])

Key = Tuple[str, int, int, int]
#: One row: (sha256 as bytes, ctype, tsbegin, tsend, version).
PayRow = Tuple[bytes, str, int, int, int]


def iter_versions(f: h5py.File) -> Iterator[Tuple[Key, h5py.Group]]:
    """Walk every version group of a native file (used once to build the index)."""
    for cname in sorted(k for k in f.keys() if not k.startswith("_")):
        cg = f[_safe(f, cname)]
        if not isinstance(cg, h5py.Group):
            continue
        for rname in sorted(k for k in cg.keys() if not k.startswith("_")):
            rg = f[_safe(f, f"{cname}/{rname}")]
            if not isinstance(rg, h5py.Group) or L.A_TSBEGIN not in rg.attrs:
                continue
            b, e = int(rg.attrs[L.A_TSBEGIN]), int(rg.attrs[L.A_TSEND])
            for vname in sorted(rg.keys()):
                v = L.parse_version_name(vname)
                if v is not None and isinstance(f[_safe(f, f"{cname}/{rname}/{vname}")],
                                                h5py.Group):
                    yield (cname, b, e, v), rg[vname]


def _safe(f: h5py.File, path: str) -> str:
    safety.check_links(f, path)
    return path


def _sha_of(g: h5py.Group) -> Optional[str]:
    raw = g.attrs.get(L.A_SHA256)
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def rebuild(f: h5py.File) -> int:
    """(Re)create the index from the version groups; returns the number of rows."""
    rows = [(sha.encode(), key[0], key[1], key[2], key[3])
            for key, g in iter_versions(f) if (sha := _sha_of(g))]
    if N_PAYLOAD_INDEX in f:
        del f[N_PAYLOAD_INDEX]
    ds = f.create_dataset(N_PAYLOAD_INDEX, shape=(len(rows),), maxshape=(None,),
                          chunks=(_CHUNK,), dtype=PAYINDEX_DTYPE)
    if rows:
        ds[...] = np.array(rows, dtype=PAYINDEX_DTYPE)
    return len(rows)


def ensure_index(f: h5py.File) -> h5py.Dataset:
    """The index dataset, built from the existing versions if the file has none."""
    if N_PAYLOAD_INDEX not in f:
        rebuild(f)
    return f[N_PAYLOAD_INDEX]


def _checked(f: h5py.File) -> Optional[h5py.Dataset]:
    """The index dataset (None if absent), refused if reading it could leave the file."""
    if not f.id.links.exists(N_PAYLOAD_INDEX.encode()):
        return None
    safety.check_links(f, N_PAYLOAD_INDEX)
    ds = f[N_PAYLOAD_INDEX]
    safety.check_dataset(ds.id, f.filename, N_PAYLOAD_INDEX)
    return ds


def _exists(f: h5py.File, path: str) -> bool:
    """True if every component of ``path`` exists, as hard links only (safety)."""
    prefix = ""
    seen: set = set()
    for part in path.split("/"):  # an external link must be refused before it is traversed
        prefix = f"{prefix}/{part}" if prefix else part
        if not f.id.links.exists(prefix.encode()):
            return False
        safety.check_links(f, prefix, seen)
    return True


def read_rows(f: h5py.File) -> Optional[np.ndarray]:
    """All rows (None if the file has no index)."""
    ds = _checked(f)
    return None if ds is None else ds[...]


def add_row(f: h5py.File, sha256: str, key: Key) -> None:
    """Record a version just created (a missing index is built, and then holds it)."""
    if N_PAYLOAD_INDEX not in f:
        rebuild(f)
        return
    ds = f[N_PAYLOAD_INDEX]
    n = ds.shape[0]
    ds.resize((n + 1,))
    ds[n] = (sha256.encode(), key[0], key[1], key[2], key[3])


def forget(f: h5py.File, ctype: str, tsbegin: Optional[int] = None,
           tsend: Optional[int] = None, version: Optional[int] = None) -> int:
    """Drop the rows of a deleted ctype, range or version; returns how many were dropped."""
    ds = _checked(f)
    if ds is None or ds.shape[0] == 0:
        return 0
    rows = ds[...]
    gone = np.array([c.decode() if isinstance(c, bytes) else c for c in rows["ctype"]],
                    dtype=object) == ctype
    if tsbegin is not None:
        gone &= (rows["tsbegin"] == tsbegin) & (rows["tsend"] == tsend)
    if version is not None:
        gone &= rows["version"] == version
    n = int(gone.sum())
    if n:
        keep = rows[~gone]
        ds.resize((len(keep),))
        if len(keep):
            ds[...] = keep
    return n


def find_identical(f: h5py.File, sha256: str, payload: Payload) -> Optional[Key]:
    """Key of a version whose stored payload is identical to ``payload``, or None.

    Reads the checksum column only; each candidate is confirmed by reading its payload, so
    a stale row or a damaged stored copy is never linked to.
    """
    ds = _checked(f)
    if ds is None and f.mode == "r+":  # a file written before the index: build it once
        ds = ensure_index(f)
    if ds is None or ds.shape[0] == 0:
        return None
    shas = ds.fields("sha256")[...]
    for i in np.nonzero(shas == sha256.encode())[0]:
        row = ds[int(i)]
        ctype = row["ctype"].decode() if isinstance(row["ctype"], bytes) else str(row["ctype"])
        key = (ctype, int(row["tsbegin"]), int(row["tsend"]), int(row["version"]))
        if holds(f, key, sha256, payload):
            return key
    return None


def holds(f: h5py.File, key: Key, sha256: str, payload: Payload) -> bool:
    """True if version ``key`` exists with checksum ``sha256`` and exactly ``payload``
    (an index hit is confirmed this way before a hard link is made to it)."""
    if not _exists(f, h5path(key) + "/" + L.N_DATA):
        return False
    g = f[h5path(key)]
    if _sha_of(g) != sha256:
        return False
    ds_data = g[L.N_DATA]
    safety.check_dataset(ds_data.id, f.filename, ds_data.name)
    kind = L.KIND_TEXT if h5py.check_string_dtype(ds_data.dtype) else L.KIND_NDARRAY
    try:
        return payloads_equal(read_payload(ds_data, kind), payload)
    except (OSError, ValueError):  # a damaged copy is simply not reused
        return False


def walk_rows(f: h5py.File) -> List[PayRow]:
    """The rows of a file without an index, from a walk over the version groups (as
    :func:`rebuild` makes them); a file with one is read by :func:`load_lazy`."""
    return [(sha.encode(), key[0], key[1], key[2], key[3])
            for key, g in iter_versions(f) if (sha := _sha_of(g))]


def load_lazy(f: h5py.File) -> Optional[Tuple[np.ndarray, Callable[[Optional[List[int]]],
                                                                   List[PayRow]]]]:
    """``(checksum column, fetch)`` of the index on disk, or None without an index:
    ``fetch(indices)`` reads those rows, ``fetch(None)`` all (see pending.PayRows)."""
    ds = _checked(f)
    if ds is None:
        return None

    def fetch(idx: Optional[List[int]]) -> List[PayRow]:
        d = f[N_PAYLOAD_INDEX]
        return [_payrow(r) for r in (d[...] if idx is None else [d[i] for i in idx])]
    # the checksum column only, through a prebuilt memory type (no dtype conversion)
    return read_rows_at(ds.id, 0, ds.id.shape[0], _SHA_ONLY)["sha256"], fetch


def _payrow(r: np.void) -> PayRow:
    return (bytes(r["sha256"]), _str(r["ctype"]), int(r["tsbegin"]), int(r["tsend"]),
            int(r["version"]))


def store(f: h5py.File, rows: List[PayRow], start: int, total: int) -> None:
    """Write ``rows`` from row ``start`` on, the index then holding ``total`` rows."""
    ds = f.get(N_PAYLOAD_INDEX)
    if ds is None:
        if start:
            raise ValueError("internal error: appending to a payload index that is absent")
        ds = f.create_dataset(N_PAYLOAD_INDEX, shape=(0,), maxshape=(None,),
                              chunks=(_CHUNK,), dtype=PAYINDEX_DTYPE)
    ds.id.set_extent((total,))
    write_rows_at(ds.id, start, np.array(rows, dtype=PAYINDEX_DTYPE))


def _str(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def keys_of(rows: np.ndarray) -> List[Key]:
    return [_payrow(r)[1:] for r in rows]
