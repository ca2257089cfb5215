"""The structural check of native store files behind ``dcs verify``.

The file is opened read-only with plain h5py (never through a transaction), so a damaged
file can be inspected and is never modified. Every problem is reported with the HDF5 path
of the object it concerns; checking goes on after a problem wherever it can. The results
are collected in a :class:`VerifyReport` (see :func:`pscalib.exchange.verify.verify`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import h5py
import numpy as np

from ..errors import CorruptStoreError, PscalibError
from ..names import validate_ctype, validate_detname, validate_parkey
from . import layout as L
from . import safety
from .layout import INDEX_DTYPE
from .fastread import open_readonly
from .heapcheck import check_file
from .history import HISTORY_DTYPE, read_history
from .payindex import PAYINDEX_DTYPE, keys_of
from .payload import checksum, read_payload
from .states import VALID, read_state
from .tombstones import TOMBSTONE_DTYPE, read_tombstones
from .records import N_CHANGELOG, N_TAGS, N_VERSIONLOG
from .values import decode_par, encode_par

__all__ = ["Problem", "VerifyReport", "check_native_file", "ERROR", "WARNING"]

ERROR = "error"
WARNING = "warning"


@dataclass
class Problem:
    """One finding: the HDF5 path (``/`` for the file root), what is wrong, severity."""
    path: str
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class VerifyReport:
    """Result of :func:`verify` for one file."""
    file: str
    problems: List[Problem] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def ok(self) -> bool:
        """True if no error was found (warnings allowed)."""
        return not self.errors

    def add(self, path: str, message: str, severity: str = ERROR) -> None:
        self.problems.append(Problem(path, message, severity))

    def to_dict(self) -> Dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "counts": self.counts, "notes": self.notes,
                "problems": [asdict(p) for p in self.problems]}

    def format(self) -> str:
        parts = [_count(v, k) for k, v in self.counts.items()]
        found = (f"{_count(len(self.errors), 'errors')}, "
                 f"{_count(len(self.problems) - len(self.errors), 'warnings')}")
        head = (f"{self.file}: {'OK' if self.ok else 'FAILED'} ("
                + (", ".join(parts) + "; " if parts else "") + found + ")")
        return "\n".join([head] + [f"  {p}" for p in self.problems]
                         + [f"  note: {n}" for n in self.notes])


def _count(n: int, plural: str) -> str:
    """``'1 ctype'``, ``'2 ctypes'``, ``'1 payload read'`` (the plural names a count)."""
    word, _, rest = plural.partition(" ")
    if n == 1 and word.endswith("s"):
        word = word[:-1]
    return f"{n} {word}{' ' + rest if rest else ''}"


def _s(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


class _Checker:
    def __init__(self, f: h5py.File, rep: VerifyReport, checksums: bool):
        self.f = f
        self.rep = rep
        self.checksums = checksums
        self.sha_by_addr: Dict[int, Optional[str]] = {}
        self.version_sha: Dict[Tuple[str, int, int, int], Optional[str]] = {}
        self.version_state: Dict[Tuple[str, int, int, int], Optional[str]] = {}
        self.format_version = L.FORMAT_PLAIN
        self.n = {"ctypes": 0, "ranges": 0, "versions": 0, "payloads read": 0}

    # -------------------------------------------------------------- common parts
    def dictpars(self, g: h5py.Group) -> None:
        pg = g.get(L.N_DICTPARS)
        if pg is None:
            return
        if not isinstance(pg, h5py.Group):
            self.rep.add(pg.name, "dictpars must be a group")
            return
        for name in pg.attrs:
            try:
                validate_parkey(name)
                encode_par(name, decode_par(pg.attrs[name]))  # a type pscalib can hold
            except PscalibError as exc:
                self.rep.add(f"{pg.name}@{name}", f"bad parameter: {exc}")
            except Exception as exc:  # an attribute h5py cannot read
                self.rep.add(f"{pg.name}@{name}", f"parameter cannot be read: {exc}")

    def history(self, g: h5py.Group) -> None:
        ds = g.get(L.N_HISTORY)
        if ds is None:
            return
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names != HISTORY_DTYPE.names:
            self.rep.add(f"{g.name.rstrip('/')}/{L.N_HISTORY}",
                         f"history must be a dataset with fields {HISTORY_DTYPE.names}")
            return
        try:
            recs = read_history(g)
        except Exception as exc:
            self.rep.add(ds.name, f"history cannot be read: {exc}")
            return
        if any(r.tsns <= 0 for r in recs):
            self.rep.add(ds.name, "history has records with a time stamp <= 0", WARNING)

    def guarded(self, path: str, fn, *args) -> None:
        """Run one object's checks; damage that stops them is itself a finding."""
        try:
            fn(*args)
        except Exception as exc:
            self.rep.add(path, f"cannot be read: {type(exc).__name__}: {exc}")

    def children(self, g: h5py.Group, known: Set[str]) -> List[str]:
        """Names of non-underscore children; reports unknown underscore objects."""
        out = []
        for name in g.keys():
            if name.startswith("_"):
                if name not in known:
                    self.rep.add(f"{g.name.rstrip('/')}/{name}", "unknown object (not part "
                                 "of the format)", WARNING)
            else:
                out.append(name)
        return sorted(out)

    # ------------------------------------------------------------------ levels
    def root(self) -> bool:
        a = self.f.attrs
        fmt = a.get(L.A_FORMAT)
        if fmt is None or _s(fmt) != L.FORMAT_NAME:
            self.rep.add("/", f"root attribute {L.A_FORMAT}={fmt!r}, expected "
                         f"{L.FORMAT_NAME!r}: not a native pscalib store (original DCS files "
                         f"are checked after 'dcs import-legacy')")
            return False
        self.format_version = L.FORMAT_PLAIN
        try:
            ver = int(a.get(L.A_FORMAT_VERSION))
            self.format_version = ver
            if not 1 <= ver <= L.FORMAT_VERSION:
                self.rep.add("/", f"format_version {ver} is not one this pscalib reads "
                             f"(1..{L.FORMAT_VERSION})")
        except (TypeError, ValueError):
            self.rep.add("/", "format_version attribute is missing or not an integer")
        for name in (L.A_DETTYPE, L.A_DETID, L.A_DETNAME, L.A_TSCFILE):
            if name not in a:
                self.rep.add("/", f"root attribute {name!r} is missing")
        if L.A_DETNAME in a:
            try:
                detname = validate_detname(_s(a[L.A_DETNAME]))
                if (L.A_DETTYPE in a and L.A_DETID in a and
                        detname != f"{_s(a[L.A_DETTYPE])}-{_s(a[L.A_DETID])}"):
                    self.rep.add("/", f"detname {detname!r} is not dettype-detid "
                                 f"({_s(a[L.A_DETTYPE])!r}, {_s(a[L.A_DETID])!r})")
            except PscalibError as exc:
                self.rep.add("/", f"bad detname: {exc}")
        self.dictpars(self.f)
        self.history(self.f)
        known = {L.N_DICTPARS, L.N_HISTORY, L.N_PAYLOAD_INDEX, N_CHANGELOG, N_VERSIONLOG,
                 N_TAGS}
        if self.format_version >= L.FORMAT_STATES:
            known.add(L.N_TOMBSTONES)
        for cname in self.children(self.f, known):
            self.guarded(f"/{cname}", self.ctype, cname)
        self.guarded(f"/{L.N_PAYLOAD_INDEX}", self.payload_index)
        if self.format_version >= L.FORMAT_STATES:
            self.guarded(f"/{L.N_TOMBSTONES}", self.tombstones)
        return True

    def tombstones(self) -> None:
        ds = self.f.get(L.N_TOMBSTONES)
        if ds is None:
            return
        path = f"/{L.N_TOMBSTONES}"
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names != TOMBSTONE_DTYPE.names:
            self.rep.add(path, f"tombstones must be a dataset with fields "
                         f"{TOMBSTONE_DTYPE.names}")
            return
        for i, t in enumerate(read_tombstones(self.f)):
            if t.what not in ("version", "range", "ctype"):
                self.rep.add(path, f"row {i}: what={t.what!r} is not version/range/ctype")

    def ctype(self, cname: str) -> None:
        self.n["ctypes"] += 1
        g = self.f[cname]
        path = f"/{cname}"
        if not isinstance(g, h5py.Group):
            self.rep.add(path, "a calibration type must be a group")
            return
        try:
            validate_ctype(cname)
        except PscalibError as exc:
            self.rep.add(path, str(exc))
        self.dictpars(g)
        self.history(g)
        rows: Optional[np.ndarray] = None
        ids = g.get(L.N_RANGE_INDEX)
        if ids is None:
            self.rep.add(f"{path}/{L.N_RANGE_INDEX}", "range index is missing")
        elif not isinstance(ids, h5py.Dataset) or ids.dtype.names != INDEX_DTYPE.names:
            self.rep.add(f"{path}/{L.N_RANGE_INDEX}", f"range index must be a dataset with "
                         f"fields {INDEX_DTYPE.names}")
        else:
            rows = ids[...]
        indexed: Dict[str, int] = {}
        if rows is not None:
            for r in rows:
                b, e, d = int(r["tsbegin"]), int(r["tsend"]), int(r["defaultv"])
                rn = L.range_name(b, e)
                if rn in indexed:
                    self.rep.add(f"{path}/{L.N_RANGE_INDEX}", f"range {rn} is listed twice")
                indexed[rn] = d
                if rn not in g:
                    self.rep.add(f"{path}/{L.N_RANGE_INDEX}", f"lists range {rn}, which has "
                                 f"no group")
        for rname in self.children(g, {L.N_DICTPARS, L.N_HISTORY, L.N_RANGE_INDEX}):
            self.guarded(f"{path}/{rname}", self.range_, g, rname,
                         indexed if rows is not None else None)

    def range_(self, cg: h5py.Group, rname: str, indexed: Optional[Dict[str, int]]) -> None:
        self.n["ranges"] += 1
        rg = cg[rname]
        path = rg.name
        if not isinstance(rg, h5py.Group):
            self.rep.add(path, "a range must be a group")
            return
        a = rg.attrs
        try:
            b, e = int(a[L.A_TSBEGIN]), int(a[L.A_TSEND])
            dflt, lastv = int(a[L.A_DEFAULTV]), int(a[L.A_LASTV])
        except (KeyError, TypeError, ValueError) as exc:
            self.rep.add(path, f"range attributes tsbegin/tsend/defaultv/lastv missing or "
                         f"not integers ({exc})")
            return
        if e <= b:
            self.rep.add(path, f"tsend {e} is not after tsbegin {b}")
        if L.range_name(b, e) != rname:
            self.rep.add(path, f"group name does not match its tsbegin/tsend attributes "
                         f"(expected {L.range_name(b, e)})")
        if indexed is not None:
            if rname not in indexed:
                self.rep.add(path, f"range is not in {cg.name}/{L.N_RANGE_INDEX}: get "
                             f"cannot find it")
            elif indexed[rname] != dflt:
                self.rep.add(path, f"defaultv attribute {dflt} differs from the range "
                             f"index ({indexed[rname]})")
        self.dictpars(rg)
        self.history(rg)
        versions = []
        for vname in self.children(rg, {L.N_DICTPARS, L.N_HISTORY}):
            v = L.parse_version_name(vname)
            if v is None:
                self.rep.add(f"{path}/{vname}", "not a version name (vNNNN)")
                continue
            versions.append(v)
            self.guarded(f"{path}/{vname}", self.version_at, rg, vname,
                         (cg.name.strip("/"), b, e, v))
        ckey = (cg.name.strip("/"), b, e)
        valid = [v for v in versions if self.version_state.get(ckey + (v,)) == VALID]
        if dflt == 0 and valid:
            self.rep.add(path, f"defaultv is 0 but the range has valid versions {valid}")
        if dflt != 0 and dflt not in versions:
            self.rep.add(path, f"default version {dflt} does not exist (versions: "
                         f"{versions or 'none'})")
        elif dflt != 0 and dflt not in valid:
            self.rep.add(path, f"default version {dflt} is not valid (its state is "
                         f"{self.version_state.get(ckey + (dflt,))}): get must never "
                         f"select it")
        if versions and lastv < max(versions):
            self.rep.add(path, f"lastv {lastv} is lower than version {max(versions)}")

    def version_at(self, rg: h5py.Group, vname: str, key: Tuple[str, int, int, int]) -> None:
        self.version(rg[vname], key)

    def version(self, g: Any, key: Tuple[str, int, int, int]) -> None:
        self.n["versions"] += 1
        path = g.name
        if not isinstance(g, h5py.Group):
            self.rep.add(path, "a version must be a group")
            return
        a = g.attrs
        try:
            if int(a[L.A_VERSION]) != key[3]:
                self.rep.add(path, f"version attribute {int(a[L.A_VERSION])} does not match "
                             f"the group name")
            int(a[L.A_TSPROD])
        except (KeyError, TypeError, ValueError) as exc:
            self.rep.add(path, f"version/tsprod attributes missing or not integers ({exc})")
        kind = _s(a.get(L.A_KIND, ""))
        if kind not in (L.KIND_NDARRAY, L.KIND_TEXT):
            self.rep.add(path, f"kind {kind!r} is not 'ndarray' or 'text'")
        sha = _s(a[L.A_SHA256]) if L.A_SHA256 in a else None
        self.version_sha[key] = sha
        self.version_state[key] = VALID
        if self.format_version >= L.FORMAT_STATES:
            try:
                self.version_state[key] = read_state(a).state
            except PscalibError as exc:
                self.version_state[key] = None
                self.rep.add(path, f"bad state attribute: {exc}")
        elif L.A_STATE in a:
            self.rep.add(path, "state attribute in a format 1 file (readers ignore it: "
                         "the version reads as valid)", WARNING)
        if sha is None:
            self.rep.add(path, "no sha256 checksum attribute", WARNING)
        self.dictpars(g)
        self.history(g)
        ds = g.get(L.N_DATA)
        if not isinstance(ds, h5py.Dataset):
            self.rep.add(f"{path}/{L.N_DATA}", "payload dataset is missing")
            return
        is_text = h5py.check_string_dtype(ds.dtype) is not None
        if kind in (L.KIND_NDARRAY, L.KIND_TEXT) and is_text != (kind == L.KIND_TEXT):
            self.rep.add(f"{path}/{L.N_DATA}", f"kind is {kind!r} but the dataset type is "
                         f"{ds.dtype}")
        if not self.checksums or sha is None:
            return
        addr = h5py.h5o.get_info(ds.id).addr
        if addr not in self.sha_by_addr:  # a hard-linked payload is read once
            try:
                self.sha_by_addr[addr] = checksum(
                    read_payload(ds, L.KIND_TEXT if is_text else L.KIND_NDARRAY))
                self.n["payloads read"] += 1
            except Exception as exc:
                self.sha_by_addr[addr] = None
                self.rep.add(f"{path}/{L.N_DATA}", f"payload cannot be read: {exc}")
        actual = self.sha_by_addr[addr]
        if actual is not None and actual != sha:
            self.rep.add(f"{path}/{L.N_DATA}", f"checksum mismatch: stored sha256 "
                         f"{sha[:16]}..., payload hashes to {actual[:16]}... (damaged data "
                         f"or checksum)")

    def payload_index(self) -> None:
        ds = self.f.get(L.N_PAYLOAD_INDEX)
        path = f"/{L.N_PAYLOAD_INDEX}"
        if ds is None:
            self.rep.notes.append(f"no payload index {path} (optional; built on the next add)")
            return
        if not isinstance(ds, h5py.Dataset) or ds.dtype.names != PAYINDEX_DTYPE.names:
            self.rep.add(path, f"payload index must be a dataset with fields "
                         f"{PAYINDEX_DTYPE.names}")
            return
        rows = ds[...]
        seen = set()
        for key, r in zip(keys_of(rows), rows):
            where = f"{path} row for {key[0]}/{L.range_name(key[1], key[2])}/" \
                    f"{L.version_name(key[3])}"
            if key in seen:
                self.rep.add(path, f"{where}: listed twice")
            seen.add(key)
            if key not in self.version_sha:
                self.rep.add(path, f"{where}: no such version")
            elif self.version_sha[key] != _s(r["sha256"]):
                self.rep.add(path, f"{where}: sha256 differs from the version's attribute")
        for key, sha in self.version_sha.items():
            if sha is not None and key not in seen:
                self.rep.add(path, f"version {key[0]}/{L.range_name(key[1], key[2])}/"
                             f"{L.version_name(key[3])} is not in the payload index (its "
                             f"payload will not be shared)", WARNING)


def check_native_file(path: Path, rep: VerifyReport, checksums: bool = True) -> None:
    """Add every problem of the native store file ``path`` to ``rep`` (read-only)."""
    try:
        check_file(path)  # a damaged string heap would hang HDF5 in the walk below
        f = open_readonly(path)  # locking flags matching any other open of the file
    except CorruptStoreError as exc:
        rep.add("/", str(exc))
        return
    except OSError as exc:
        rep.add("/", f"cannot be opened as an HDF5 file: {exc}")
        return
    try:
        try:
            unsafe = safety.scan_file(f)  # before anything is read: links, external storage
        except CorruptStoreError as exc:
            rep.add("/", str(exc))
            return
        for where, problem in unsafe:
            rep.add(where, f"{problem}; the store format never uses this (damaged or crafted "
                           f"file) - nothing was read through it")
        if unsafe:
            rep.notes.append("the other checks were skipped: reading the file could read "
                             "other files or allocate what the file claims")
            return
        chk = _Checker(f, rep, checksums)
        try:
            chk.root()
        except Exception as exc:  # damage that stops the walk is itself a finding
            rep.add("/", f"walk stopped by an unreadable object: {type(exc).__name__}: {exc}")
        rep.counts = dict(chk.n)
    finally:
        f.close()
