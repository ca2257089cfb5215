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

from typing import Iterator, List, Optional, Tuple

import h5py
import numpy as np

from . import layout as L
from .layout import h5path
from .payload import Payload, payloads_equal, read_payload

__all__ = ["PAYINDEX_DTYPE", "N_PAYLOAD_INDEX", "ensure_index", "add_row", "find_identical",
           "forget", "rebuild", "read_rows", "iter_versions"]

N_PAYLOAD_INDEX = L.N_PAYLOAD_INDEX
_STR = h5py.string_dtype("utf-8")
PAYINDEX_DTYPE = np.dtype([("sha256", "S64"), ("ctype", _STR), ("tsbegin", "<i8"),
                           ("tsend", "<i8"), ("version", "<i8")])
_CHUNK = 1024

Key = Tuple[str, int, int, int]


def iter_versions(f: h5py.File) -> Iterator[Tuple[Key, h5py.Group]]:
    """Walk every version group of a native file (used once to build the index)."""
    for cname in sorted(k for k in f.keys() if not k.startswith("_")):
        cg = f[cname]
        if not isinstance(cg, h5py.Group):
            continue
        for rname in sorted(k for k in cg.keys() if not k.startswith("_")):
            rg = cg[rname]
            if not isinstance(rg, h5py.Group) or L.A_TSBEGIN not in rg.attrs:
                continue
            b, e = int(rg.attrs[L.A_TSBEGIN]), int(rg.attrs[L.A_TSEND])
            for vname in sorted(rg.keys()):
                v = L.parse_version_name(vname)
                if v is not None and isinstance(rg[vname], h5py.Group):
                    yield (cname, b, e, v), rg[vname]


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


def read_rows(f: h5py.File) -> Optional[np.ndarray]:
    """All rows (None if the file has no index)."""
    ds = f.get(N_PAYLOAD_INDEX)
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
    ds = f.get(N_PAYLOAD_INDEX)
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
    ds = f.get(N_PAYLOAD_INDEX)
    if ds is None and f.mode == "r+":  # a file written before the index: build it once
        ds = ensure_index(f)
    if ds is None or ds.shape[0] == 0:
        return None
    shas = ds.fields("sha256")[...]
    for i in np.nonzero(shas == sha256.encode())[0]:
        row = ds[int(i)]
        ctype = row["ctype"].decode() if isinstance(row["ctype"], bytes) else str(row["ctype"])
        key = (ctype, int(row["tsbegin"]), int(row["tsend"]), int(row["version"]))
        g = f.get(h5path(key))
        if g is None or _sha_of(g) != sha256 or L.N_DATA not in g:
            continue
        ds_data = g[L.N_DATA]
        kind = L.KIND_TEXT if h5py.check_string_dtype(ds_data.dtype) else L.KIND_NDARRAY
        try:
            if payloads_equal(read_payload(ds_data, kind), payload):
                return key
        except (OSError, ValueError):  # a damaged copy is simply not reused
            continue
    return None


def keys_of(rows: np.ndarray) -> List[Key]:
    out = []
    for r in rows:
        c = r["ctype"].decode() if isinstance(r["ctype"], bytes) else str(r["ctype"])
        out.append((c, int(r["tsbegin"]), int(r["tsend"]), int(r["version"])))
    return out
