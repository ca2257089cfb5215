"""LegacyBackend: the :class:`~pscalib.store.backend.Backend` read interface over an
original LCLS DCS file.

Mapping (documented in docs/import.rst):

- keys are ``(ctype, tsbegin_ns, tsend_ns[, version])``; float seconds become int ns exactly
  (:func:`pscalib.timestamps.to_ns`), an ``end`` of ``b'end'`` becomes ``OPEN_END``;
  ends are *inclusive* (``end_inclusive = True``), so DCStore.get applies the legacy rule;
- ``versdef`` 0 ("the highest version number") is reported resolved in ``defaultv``;
- ``_history/<'%.6f' seconds>`` records become :class:`HistoryRecord` with the time from
  the name, action ``'legacy'``, the record text unchanged, and user/host ``'unknown'``
  unless the text holds a ``user=NAME``/``user:NAME`` (``host=...``) token;
- legacy files carry no checksums: ``VersionInfo.sha256`` is None.

The structure of a calibration type is checked completely the first time it is used
(:meth:`LegacyBackend.check` checks the whole file, parameters, history and payload types
included); anything off the layout raises :class:`~pscalib.errors.LegacyFormatError` naming
the object.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, Tuple

import h5py
import numpy as np

from ..errors import (CtypeNotFoundError, InvalidNameError, RangeNotFoundError,
                      VersionNotFoundError)
from ..names import validate_ctype
from . import layout as L
from .backend import Backend, Key, RangeTable, VersionInfo, corrupt_guard, describe_key
from . import safety
from .history import HistoryRecord
from .fastread import read_into
from .outarray import copy_into
from .payload import Payload, read_payload
from ..timestamps import OPEN_END, format_ns, to_ns
from . import legacy_fields as F

__all__ = ["LegacyBackend", "is_legacy", "LEGACY_ACTION", "UNKNOWN"]

N_PARS = "_parameters"
N_HIST = "_history"
#: Action of every history record read from a legacy file.
LEGACY_ACTION = "legacy"
#: User and host of legacy history records whose text does not name them.
UNKNOWN = "unknown"

ROOT_DATASETS = ("dettype", "detid", "detname", "tscfile", "predecessor", "successor")
RANGE_DATASETS = ("begin", "end", "range", "versdef")
VERSION_DATASETS = ("version", "tsprod", "data")
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_HIST_NAME_RE = re.compile(r"^-?\d+\.\d{6}$")
_USER_RE = re.compile(r"(?:^|[\s,;(\[])user[=:]\s*([^\s,;:)\]]+)")
_HOST_RE = re.compile(r"(?:^|[\s,;(\[])host[=:]\s*([^\s,;:)\]]+)")


def is_legacy(f: h5py.File) -> bool:
    """True if ``f`` looks like an original DCS file (it may still break the layout).

    Deliberately loose (any of the root datasets ``dettype``/``detid``/``detname``/
    ``tscfile``, no native format attribute) so a damaged legacy file gets a
    LegacyFormatError naming the problem instead of "not a calibration store".
    """
    if L.A_FORMAT in f.attrs:
        return False
    return any(F.child(f, n) is not None for n in ROOT_DATASETS[:4])


class _Range(NamedTuple):
    path: str                          # HDF5 path of the range group
    defaultv: int                      # resolved default version (0: no versions)
    versions: Dict[int, Tuple[str, int]]  # version -> (group path, tsprod ns)


class _Ctype(NamedTuple):
    table: RangeTable
    ranges: Dict[Tuple[int, int], _Range]


_guard = corrupt_guard("the file may be damaged")


def _who(text: str) -> Tuple[str, str]:
    """User and host named in a legacy record text, else 'unknown'."""
    u = _USER_RE.search(text)
    h = _HOST_RE.search(text)
    return (u.group(1) if u else UNKNOWN, h.group(1) if h else UNKNOWN)


class LegacyBackend(Backend):
    """Read-only backend for files of the original LCLS DCS implementation.

    Parameters
    ----------
    f
        The file, open read-only with h5py. Root metadata is checked at once.

    Raises
    ------
    LegacyFormatError
        When the root datasets break the layout.
    """

    end_inclusive = True
    writable_format = False
    writable = False
    format_description = "original LCLS DCS format"

    def __init__(self, f: h5py.File):
        self.f = f
        self.filename = f.filename
        safety.check_file(f)  # before any read: links / storage outside the file, size claims
        self._ctypes: Dict[str, _Ctype] = {}
        self._meta = self._read_meta()
        self._names = self._list_ctypes()

    # ------------------------------------------------------------------ structure
    def _read_meta(self) -> Dict[str, Any]:
        f = self.f
        return {L.A_DETTYPE: F.read_str(f, "dettype"), L.A_DETID: F.read_str(f, "detid"),
                L.A_DETNAME: F.read_str(f, "detname"), L.A_TSCFILE: F.read_time(f, "tscfile"),
                L.A_PREDECESSOR: F.read_str(f, "predecessor", required=False),
                L.A_SUCCESSOR: F.read_str(f, "successor", required=False)}

    def _list_ctypes(self) -> List[str]:
        out = []
        for name in self.f.keys():
            if name in ROOT_DATASETS or name in (N_PARS, N_HIST):
                if name in (N_PARS, N_HIST):
                    F.group(self.f, name)
                continue
            obj = F.child(self.f, name)
            if not isinstance(obj, h5py.Group):
                raise F.fail(self.f, f"unexpected root object /{name} (a calibration type "
                                     f"must be a group)")
            try:
                validate_ctype(name)
            except InvalidNameError as exc:
                raise F.fail(self.f, f"group /{name} is not a calibration type: {exc}") from None
            out.append(name)
        return sorted(out)

    def _scan_ctype(self, ctype: str) -> _Ctype:
        g = self.f[ctype]
        stored = F.read_str(g, "ctype")
        if stored != ctype:
            raise F.fail(g, f"dataset /{ctype}/ctype holds {stored!r}, expected {ctype!r}")
        ranges: Dict[Tuple[int, int], _Range] = {}
        for name in g.keys():
            if name == "ctype":
                continue
            if name in (N_PARS, N_HIST):
                F.group(g, name)
                continue
            obj = F.child(g, name)
            if not isinstance(obj, h5py.Group):
                raise F.fail(g, f"unexpected object /{ctype}/{name} (a range must be a group)")
            b, e, rng = self._scan_range(obj)
            other = ranges.get((b, e))
            if other is not None:
                raise F.fail(g, f"ranges {other.path} and {obj.name} have the same begin and "
                                f"end")
            ranges[(b, e)] = rng
        keys = list(ranges)
        table = RangeTable(np.array([k[0] for k in keys], dtype=np.int64),
                           np.array([k[1] for k in keys], dtype=np.int64),
                           np.array([ranges[k].defaultv for k in keys], dtype=np.int64))
        return _Ctype(table, ranges)

    def _scan_range(self, g: h5py.Group) -> Tuple[int, int, _Range]:
        name = g.name.rsplit("/", 1)[-1]
        b = F.read_time(g, "begin")
        e = F.read_time(g, "end", allow_end=True)
        e = OPEN_END if e is None else e
        if e < b:  # inclusive ends: e == b is a valid one-instant range
            raise F.fail(g, f"range {g.name} ends ({format_ns(e)}) before it begins "
                            f"({format_ns(b)})")
        rname = F.read_str(g, "range")
        if rname != name:
            raise F.fail(g, f"dataset {g.name}/range holds {rname!r}, expected the group "
                            f"name {name!r}")
        versdef = F.read_int(g, "versdef")
        versions: Dict[int, Tuple[str, int]] = {}
        for child in g.keys():
            if child in RANGE_DATASETS:
                continue
            if child in (N_PARS, N_HIST):
                F.group(g, child)
                continue
            m = _VERSION_RE.match(child)
            obj = F.child(g, child)
            if m is None or not isinstance(obj, h5py.Group):
                raise F.fail(g, f"unexpected object {g.name}/{child} (expected version "
                                f"groups v0001, v0002, ...)")
            v = int(m.group(1))
            versions[v] = (obj.name, self._scan_version(obj, v))
        if versdef < 0:
            raise F.fail(g, f"dataset {g.name}/versdef is {versdef}, expected >= 0")
        if versdef == 0:  # legacy convention: 0 means "the highest version number"
            defaultv = max(versions) if versions else 0
        elif versdef not in versions:
            raise F.fail(g, f"dataset {g.name}/versdef names version {versdef}, which the "
                            f"range does not have (it has {sorted(versions) or 'none'})")
        else:
            defaultv = versdef
        return b, e, _Range(g.name, defaultv, versions)

    def _scan_version(self, g: h5py.Group, v: int) -> int:
        stored = F.read_int(g, "version")
        if stored != v:
            raise F.fail(g, f"dataset {g.name}/version holds {stored}, expected {v} (the "
                            f"group name)")
        tsprod = F.read_time(g, "tsprod")
        ds = F.dataset(g, "data")
        if not F.is_string(ds) and (ds.dtype.kind not in "biufc" or ds.dtype.fields):
            raise F.fail(g, f"dataset {ds.name} has type {ds.dtype}, expected a numeric "
                            f"array or text bytes")
        for child in g.keys():
            if child in (N_PARS, N_HIST):
                F.group(g, child)
            elif child not in VERSION_DATASETS:
                raise F.fail(g, f"unexpected object {g.name}/{child}")
        return tsprod

    def _ct(self, ctype: str) -> _Ctype:
        hit = self._ctypes.get(ctype)
        if hit is None:
            if ctype not in self._names:
                raise CtypeNotFoundError(f"{self.filename} has no calibration type {ctype!r}")
            hit = self._ctypes[ctype] = self._scan_ctype(ctype)
        return hit

    def _range(self, ctype: str, tsbegin: int, tsend: int) -> _Range:
        rng = self._ct(ctype).ranges.get((int(tsbegin), int(tsend)))
        if rng is None:
            raise RangeNotFoundError(f"{ctype!r} has no range {L.range_name(tsbegin, tsend)}")
        return rng

    def _version(self, key: Key) -> Tuple[str, int]:
        hit = self._range(*key[:3]).versions.get(int(key[3]))
        if hit is None:
            raise VersionNotFoundError(f"range {L.range_name(*key[1:3])} of {key[0]!r} has no "
                                       f"version {key[3]}")
        return hit

    def _path(self, key: Key) -> str:
        if len(key) == 0:
            return "/"
        if len(key) == 1:
            self._ct(key[0])
            return "/" + key[0]
        if len(key) == 3:
            return self._range(*key).path
        return self._version(key)[0]

    # ------------------------------------------------------------------ reading
    @_guard
    def meta(self) -> Dict[str, Any]:
        return dict(self._meta)

    @_guard
    def ctypes(self) -> List[str]:
        return list(self._names)

    @_guard
    def has_ctype(self, ctype: str) -> bool:
        return ctype in self._names

    @_guard
    def range_table(self, ctype: str) -> RangeTable:
        t = self._ct(ctype).table
        return RangeTable(t.tsbegin.copy(), t.tsend.copy(), t.defaultv.copy())

    @_guard
    def versions(self, ctype: str, tsbegin: int, tsend: int) -> List[int]:
        return sorted(self._range(ctype, tsbegin, tsend).versions)

    @_guard
    def version_info(self, key: Key) -> VersionInfo:
        path, tsprod = self._version(key)
        ds = self.f[path + "/data"]
        if F.is_string(ds):
            return VersionInfo(int(key[3]), tsprod, L.KIND_TEXT, None, None, None,
                               len(F.text_bytes(ds)))
        return VersionInfo(int(key[3]), tsprod, L.KIND_NDARRAY, None, ds.dtype,
                           tuple(ds.shape), int(ds.dtype.itemsize * int(np.prod(ds.shape))))

    @_guard
    def payload(self, key: Key) -> Payload:
        ds = self.f[self._version(key)[0] + "/data"]
        if F.is_string(ds):
            return F.decode_text(ds, F.text_bytes(ds))
        return read_payload(ds, L.KIND_NDARRAY)

    @_guard
    def payload_into(self, key: Key, out: Any) -> np.ndarray:
        ds = self.f[self._version(key)[0] + "/data"]
        if F.is_string(ds):
            return copy_into(self.payload(key), out, describe_key(key))  # says: text
        # HDF5 reads into the caller's buffer, chunked and compressed storage included
        return read_into(ds.id, out, describe_key(key))

    @_guard
    def dictpars(self, key: Key) -> Dict[str, Any]:
        g = F.group(self.f[self._path(key)], N_PARS)
        if g is None:
            return {}
        out = {}
        for name in g.keys():
            out[name] = F.read_value(F.dataset(g, name))
        return out

    @_guard
    def history(self, key: Key) -> List[HistoryRecord]:
        g = F.group(self.f[self._path(key)], N_HIST)
        if g is None:
            return []
        recs = []
        for name in g.keys():
            if not _HIST_NAME_RE.match(name):
                raise F.fail(g, f"history record {g.name}/{name} is not named by its time "
                                f"('%.6f' seconds)")
            ds = F.dataset(g, name)
            if not F.is_string(ds):
                raise F.fail(ds, f"history record {ds.name} has type {ds.dtype}, expected "
                                 f"a string (bytes)")
            text = F.decode_text(ds, F.text_bytes(ds))
            user, host = _who(text)
            recs.append(HistoryRecord(to_ns(name), user, host, LEGACY_ACTION, text))
        recs.sort(key=lambda r: r.tsns)  # names sort as text, times as numbers
        return recs

    @_guard
    def keys(self) -> List[Key]:
        """Every key of the file: store, ctypes, ranges (by begin, end), versions."""
        out: List[Key] = [()]
        for ct in self._names:
            out.append((ct,))
            for (b, e), rng in sorted(self._ct(ct).ranges.items()):
                out.append((ct, b, e))
                out.extend((ct, b, e, v) for v in sorted(rng.versions))
        return out

    @_guard
    def check(self) -> int:
        """Check the whole file against the layout; returns the number of objects checked.

        Reads every parameter and history record and the text payloads, and checks the type
        of every array payload (arrays themselves are not read).

        Raises
        ------
        LegacyFormatError
            Naming the first object that breaks the layout.
        """
        n = 0
        for key in self.keys():
            self.dictpars(key)
            self.history(key)
            if len(key) == 4:
                self.version_info(key)
                if self.version_info(key).kind == L.KIND_TEXT:
                    self.payload(key)
            n += 1
        return n

    def close(self) -> None:
        try:
            self.f.close()
        except Exception:  # closing a damaged file must not mask the original error
            pass
