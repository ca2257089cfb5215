"""Names and constants of the on-disk format (see docs/format.rst).

Everything a reader without pscalib needs is here: attribute and object names, the
version-group naming rule and the range-group naming rule.
"""
from __future__ import annotations

import functools
import re
from typing import Optional, Tuple

import numpy as np

from ..timestamps import OPEN_END, compact_ns

#: Root attribute ``pscalib_format`` identifies a native store.
FORMAT_NAME = "pscalib-dcs"
#: Root attribute ``format_version``; bumped on incompatible changes. Readers refuse files
#: with a higher number than they know. This is the highest one pscalib reads and writes.
FORMAT_VERSION = 4
#: Format 1 files become FORMAT_STATES when they first get a state other than 'valid' or a
#: tombstone (so stores that never use them stay readable by older releases).
FORMAT_PLAIN = 1
FORMAT_STATES = 2
#: Format 2 plus one history table for the whole store (root ``_history`` with a ``path``
#: field) instead of a ``_history`` dataset per object; small payloads may be compact.
#: New files are created in this format (``PSCALIB_CREATE_FORMAT=1`` makes format 1 files
#: for older readers); ``dcs upgrade`` converts older files.
FORMAT_TABLE = 3
#: Environment variable choosing the format of new files (1 or 3).
ENV_CREATE_FORMAT = "PSCALIB_CREATE_FORMAT"
#: Format 4 = format 3 plus the in-place engine block in a 512-byte HDF5 user block
#: (pscalib.txn.engineblock): changed in place with a journal, read under the commit lock.
#: Only format 3 files are converted to it (older ones: ``dcs upgrade`` first).
FORMAT_INPLACE = 4

#: HDF5 library version bounds for every file pscalib writes. Never 'latest': files written
#: with it cannot be reopened after a killed writer until h5clear is run.
LIBVER = ("v108", "v110")

# Root attributes
A_FORMAT = "pscalib_format"
A_FORMAT_VERSION = "format_version"
A_DETTYPE = "dettype"
A_DETID = "detid"
A_DETNAME = "detname"
A_TSCFILE = "tscfile"
A_PREDECESSOR = "predecessor"
A_SUCCESSOR = "successor"
ROOT_META = (A_DETTYPE, A_DETID, A_DETNAME, A_TSCFILE, A_PREDECESSOR, A_SUCCESSOR)

# Range attributes
A_TSBEGIN = "tsbegin"
A_TSEND = "tsend"
A_DEFAULTV = "defaultv"
A_LASTV = "lastv"

# Version attributes
A_VERSION = "version"
A_TSPROD = "tsprod"
A_KIND = "kind"
A_SHA256 = "sha256"
# Version state attributes (format 2; absent state = 'valid'), see pscalib.store.states
A_STATE = "state"
A_STATE_TSNS = "state_tsns"
A_STATE_USER = "state_user"
A_STATE_REASON = "state_reason"
KIND_NDARRAY = "ndarray"
KIND_TEXT = "text"

# Child objects of every level (names start with '_' so they never clash with ctypes,
# ranges or versions, whose names cannot start with '_').
N_DICTPARS = "_dictpars"
N_HISTORY = "_history"
#: Per-ctype index of ranges: compound (tsbegin i8, tsend i8, defaultv i8), unordered.
N_RANGE_INDEX = "_ranges"
INDEX_DTYPE = np.dtype([("tsbegin", "<i8"), ("tsend", "<i8"), ("defaultv", "<i8")])
#: Payload dataset inside a version group.
N_DATA = "data"
#: Root-level checksum index of payloads (optional, see pscalib.store.payindex).
N_PAYLOAD_INDEX = "_payloads"
#: Root-level record of deletions (format 2, see pscalib.store.tombstones).
N_TOMBSTONES = "_tombstones"

INDEX_CHUNK = 1024
HISTORY_CHUNK = 64
#: Rows per chunk of the format 3 history table (11 kB chunks: a small store stays small).
TABLE_CHUNK = 128
#: Format 3: ndarray payloads up to this many bytes are stored with the compact layout
#: (inside the dataset's object header: no separate data block).
COMPACT_MAX = 4096

_VERSION_RE = re.compile(r"^v(\d{4,})$")


def version_name(version: int) -> str:
    """Group name of a version: ``v0001`` ... ``v9999``, ``v10000`` ..."""
    return f"v{int(version):04d}"


def parse_version_name(name: str) -> Optional[int]:
    """Inverse of :func:`version_name`; None if ``name`` is not a version group name."""
    m = _VERSION_RE.match(name)
    return int(m.group(1)) if m else None


def range_name(tsbegin: int, tsend: int) -> str:
    """Deterministic, readable range group name: ``<begin>_<end>`` in compact UTC.

    E.g. ``20240501T120000Z_20240601T000000Z`` or ``20240501T120000.5Z_end``.
    """
    return f"{compact_ns(tsbegin)}_{compact_ns(tsend)}"


@functools.lru_cache(maxsize=65536)  # formatting range names costs more than the lookup
def h5path(key: tuple) -> str:
    """HDF5 path of the object addressed by ``key``."""
    n = len(key)
    if n == 0:
        return "/"
    if n == 1:
        return key[0]
    rn = range_name(key[1], key[2])
    if n == 3:
        return f"{key[0]}/{rn}"
    return f"{key[0]}/{rn}/{version_name(key[3])}"


def range_key(tsbegin: int, tsend: int) -> Tuple[int, int]:
    return (int(tsbegin), int(tsend))


__all__ = [n for n in dir() if n.isupper() or n in (
    "version_name", "parse_version_name", "range_name", "range_key", "h5path")] + ["OPEN_END"]
