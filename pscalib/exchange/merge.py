"""merge: bring new ranges, versions and parameters from one store (a workspace) into another.

Rules (see docs/exchange.rst):

* a calibration type, range or version missing in the destination is added (versions keep
  their numbers, production times and dictpars; identical payloads are hard-linked);
* a version with the same number and identical content (checksum and dictpars) is skipped;
* a parameter missing in the destination is added;
* conflicts are reported and left untouched unless a resolution is chosen:

  - same range and version number, different payload: ``renumber=True`` adds the source's
    version under the next free number;
  - same parameter, different value: ``prefer='source'`` overwrites, ``'dest'`` keeps;
  - different default versions: the source's choice is taken without asking when it is a
    *fast-forward* (its default is a version this merge adds, and the destination's default
    exists unchanged in the source, i.e. the source moved on from it); otherwise
    ``prefer`` decides.

Everything is applied in one transaction on the destination; every applied change gets a
history record naming the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from ..errors import (ConflictError, CtypeNotFoundError, IntegrityError, InvalidInputError,
                      StoreNotFoundError)
from ..names import validate_ctype
from ..store import DCStore
from ..store import layout as L
from ..store.backend import Backend
from ..store.payload import checksum
from ..store.values import pars_equal
from ..timestamps import format_ns
from .diff import open_for_read

__all__ = ["Step", "MergeReport", "merge_stores"]

PREFER = (None, "source", "dest")


@dataclass
class Step:
    """One planned change, skip or conflict.

    ``action``: ``add_ctype``, ``add_range``, ``add_version``, ``skip_identical``, ``set_par``,
    ``set_default``, ``conflict_version``, ``conflict_par``, ``conflict_default``.
    ``resolution`` (conflicts): None (left untouched), ``'source'``, ``'dest'`` or
    ``'renumber'``.
    """
    action: str
    path: str
    detail: str
    resolution: Optional[str] = None
    key: Tuple = ()
    value: Any = None

    @property
    def is_conflict(self) -> bool:
        return self.action.startswith("conflict_")

    @property
    def changes_dest(self) -> bool:
        if self.is_conflict:
            return self.resolution in ("source", "renumber")
        return self.action != "skip_identical"

    def __str__(self) -> str:
        res = ""
        if self.is_conflict:
            res = {None: " [UNRESOLVED: left untouched]", "dest": " [keep destination]",
                   "source": " [take source]", "renumber": " [add under a new number]"
                   }[self.resolution]
        return f"{self.action:17s} {self.path}: {self.detail}{res}"


@dataclass
class MergeReport:
    """Plan and outcome of :func:`merge_stores`."""
    source: str
    dest: str
    dry_run: bool
    steps: List[Step] = field(default_factory=list)

    @property
    def conflicts(self) -> List[Step]:
        return [s for s in self.steps if s.is_conflict]

    @property
    def unresolved(self) -> List[Step]:
        return [s for s in self.conflicts if s.resolution is None]

    @property
    def changes(self) -> List[Step]:
        return [s for s in self.steps if s.changes_dest]

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for s in self.steps:
            out[s.action] = out.get(s.action, 0) + 1
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"source": self.source, "dest": self.dest, "dry_run": self.dry_run,
                "counts": self.counts(), "unresolved": len(self.unresolved),
                "steps": [{"action": s.action, "path": s.path, "detail": s.detail,
                           "resolution": s.resolution} for s in self.steps]}

    def format(self) -> str:
        head = (f"{'plan (dry run)' if self.dry_run else 'merged'}: {self.source} -> "
                f"{self.dest}: {len(self.changes)} changes, "
                f"{self.counts().get('skip_identical', 0)} identical skipped, "
                f"{len(self.conflicts)} conflicts ({len(self.unresolved)} unresolved)")
        return "\n".join([head] + [f"  {s}" for s in self.steps])


def _rpath(rkey: tuple) -> str:
    return f"{rkey[0]}/{L.range_name(rkey[1], rkey[2])}"


def _path(key: tuple) -> str:
    if not key:
        return "/"
    if len(key) == 1:
        return key[0]
    if len(key) == 3:
        return _rpath(key)
    return f"{_rpath(key)}/{L.version_name(key[3])}"


class _Planner:
    def __init__(self, src: Backend, dst: Backend, prefer: Optional[str], renumber: bool):
        self.src, self.dst = src, dst
        self.prefer, self.renumber = prefer, renumber
        self.steps: List[Step] = []

    def pars(self, key: tuple, dst_exists: bool) -> None:
        ps = self.src.dictpars(key)
        pd = self.dst.dictpars(key) if dst_exists else {}
        for k in sorted(ps):
            if k not in pd:
                self.steps.append(Step("set_par", _path(key), f"{k}={ps[k]!r}", key=key,
                                       value=(k, ps[k])))
            elif not pars_equal(ps[k], pd[k]):
                self.steps.append(Step("conflict_par", _path(key),
                                       f"{k}: source {ps[k]!r} != destination {pd[k]!r}",
                                       resolution=self.prefer, key=key, value=(k, ps[k])))

    def identical(self, key: tuple) -> Tuple[bool, bool]:
        """(same payload, same dictpars) of a version present in both stores."""
        a, b = self.src.version_info(key), self.dst.version_info(key)
        same_payload = a.kind == b.kind and a.sha256 is not None and a.sha256 == b.sha256
        pa, pb = self.src.dictpars(key), self.dst.dictpars(key)
        same_pars = set(pa) == set(pb) and all(pars_equal(pa[k], pb[k]) for k in pa)
        return same_payload, same_pars

    def range_(self, rkey: tuple, ds: int, dst_ranges: Dict[Tuple[int, int], int]) -> None:
        exists = rkey[1:] in dst_ranges
        dv: Set[int] = set(self.dst.versions(*rkey)) if exists else set()
        dd = dst_ranges.get(rkey[1:], 0)
        added: Set[int] = set()      # source versions this merge adds (same number)
        unchanged: Set[int] = set()  # source versions the destination holds identically
        renumbered: Set[int] = set()
        src_versions = self.src.versions(*rkey)
        if not exists and not src_versions:
            self.steps.append(Step("add_range", _rpath(rkey), "new empty range", key=rkey))
        for v in src_versions:
            key = rkey + (v,)
            info = self.src.version_info(key)
            if v not in dv:
                self.steps.append(Step("add_version", _path(key), f"{info.kind} "
                                       f"sha256:{(info.sha256 or '?')[:16]} tsprod "
                                       f"{format_ns(info.tsprod)}", key=key))
                added.add(v)
                continue
            same_payload, same_pars = self.identical(key)
            if same_payload and same_pars:
                self.steps.append(Step("skip_identical", _path(key), "identical", key=key))
                unchanged.add(v)
            elif same_payload:
                unchanged.add(v)
                self.pars(key, True)
            else:
                res = "renumber" if self.renumber else None
                self.steps.append(Step("conflict_version", _path(key),
                                       "same version number, different payload "
                                       f"(source sha256:{(info.sha256 or '?')[:16]})",
                                       resolution=res, key=key))
                if res:
                    renumbered.add(v)
        self.pars(rkey, exists)
        if ds == 0 or (ds == dd and ds not in renumbered):
            return
        src_default_known = ds in added or ds in unchanged or ds in renumbered
        if not src_default_known:
            return  # its version is an unresolved conflict, already reported
        detail = f"source default v{ds:04d}, destination default v{dd:04d}"
        if dd == 0 or (ds in added | renumbered and dd in unchanged):
            self.steps.append(Step("set_default", _rpath(rkey), detail + " (source moved on)"
                                   if dd else f"v{ds:04d}", key=rkey, value=ds))
        else:
            self.steps.append(Step("conflict_default", _rpath(rkey), detail,
                                   resolution=self.prefer, key=rkey, value=ds))

    def plan(self, ctypes: Optional[Sequence[str]]) -> List[Step]:
        if ctypes is None:
            self.pars((), True)
            names = self.src.ctypes()
        else:
            have = self.src.ctypes()
            missing = [c for c in ctypes if c not in have]
            if missing:
                raise CtypeNotFoundError(f"the source has no calibration type "
                                         f"{', '.join(map(repr, missing))}; it has "
                                         f"{', '.join(have) or 'none'}")
            names = list(ctypes)
        for c in names:
            exists = self.dst.has_ctype(c)
            if not exists:
                self.steps.append(Step("add_ctype", c, "new calibration type", key=(c,)))
            self.pars((c,), exists)
            t = self.dst.range_table(c) if exists else None
            dst_ranges = ({(int(b), int(e)): int(d) for b, e, d in
                           zip(t.tsbegin, t.tsend, t.defaultv)} if t is not None else {})
            ts = self.src.range_table(c)
            for b, e, d in sorted(zip(ts.tsbegin.tolist(), ts.tsend.tolist(),
                                      ts.defaultv.tolist())):
                self.range_((c, b, e), d, dst_ranges)
        return self.steps


def _apply(store: DCStore, src: Backend, steps: List[Step], origin: str) -> None:
    w = store.writer()
    vmap: Dict[tuple, int] = {}  # source version key -> number in the destination
    for s in steps:
        if not s.changes_dest:
            continue
        if s.action == "add_ctype":
            w.ensure_ctype(s.key[0])
            w.append_history((), "merge", f"add_ctype {s.key[0]} from {origin}")
        elif s.action == "add_range":
            ctype, b, e = s.key
            w.add_range(ctype, b, e, comment=f"merged from {origin}")
        elif s.action in ("add_version", "conflict_version"):
            key = s.key
            payload = src.payload(key)
            info = src.version_info(key)
            sha = checksum(payload)
            if info.sha256 is not None and info.sha256 != sha:
                raise IntegrityError(f"{origin}: payload of {_path(key)} does not match its "
                                     f"checksum; nothing was merged - run 'dcs verify' on it")
            new_v = key[3] if s.action == "add_version" else None
            note = (f"merged from {origin} {L.version_name(key[3])}"
                    + (" (renumbered: the destination has a different version with that "
                       "number)" if new_v is None else ""))
            ver = w.add_version(key[0], payload, key[1], key[2], info.tsprod, sha,
                                src.dictpars(key), note, False, new_v, force=True)
            vmap[key] = ver.version()
        elif s.action in ("set_par", "conflict_par"):
            k, v = s.value
            target = s.key
            if len(target) == 4 and target in vmap:
                target = target[:3] + (vmap[target],)
            w.set_par(target, k, v)
            w.append_history(target, "merge", f"set {k}={v!r} from {origin}")
        elif s.action in ("set_default", "conflict_default"):
            rkey = s.key
            new = vmap.get(rkey + (s.value,), s.value)
            old = w.default_of(*rkey)
            if new != old:
                w.set_default(rkey[0], rkey[1], rkey[2], new, action="merge",
                              record=f"default v{old:04d} -> v{new:04d} from {origin}")


def merge_stores(src: Union[str, Path, DCStore], dest: Union[str, Path, DCStore], *,
                 ctypes: Optional[Sequence[str]] = None, prefer: Optional[str] = None,
                 renumber: bool = False, dry_run: bool = False,
                 lock_timeout: Optional[float] = None) -> MergeReport:
    """Merge store ``src`` (e.g. a workspace file) into the existing store ``dest``.

    Parameters
    ----------
    src, dest
        Paths or open stores (``dest`` must be open with ``mode='a'`` unless ``dry_run``).
    ctypes
        Only merge these calibration types (default: all, plus store-level dictpars).
    prefer
        Resolution of parameter and default-version conflicts: ``'source'`` or ``'dest'``
        (default None: report and leave untouched).
    renumber
        Add a source version whose number is taken by a different destination version
        under the next free number (default: report and leave untouched).
    dry_run
        Only plan: the destination is opened read-only and not changed.

    Returns
    -------
    MergeReport
        Every step; ``report.unresolved`` lists conflicts left untouched.

    Raises
    ------
    ConflictError
        The stores belong to different detectors.
    IntegrityError
        A source payload does not match its checksum (nothing is merged).
    """
    if prefer not in PREFER:
        raise InvalidInputError(f"prefer must be 'source', 'dest' or None, got {prefer!r}")
    if ctypes is not None:
        ctypes = [validate_ctype(c) for c in ctypes]
    s, close_s = open_for_read(src)
    try:
        if isinstance(dest, DCStore):
            d, close_d = dest, False
        else:
            if not Path(dest).is_file():  # mode 'a' would create an empty store
                raise StoreNotFoundError(f"merge destination {dest} does not exist; make a "
                                         f"new store from the source with 'dcs copy'")
            d = DCStore(Path(dest), mode="r" if dry_run else "a", lock_timeout=lock_timeout)
            close_d = True
        try:
            if s.detname() != d.detname():
                raise ConflictError(f"{s.path} holds {s.detname()!r} but {d.path} holds "
                                    f"{d.detname()!r}: refusing to merge different detectors")
            origin = f"{s.path} ({s.detname()})"
            rep = MergeReport(str(s.path), str(d.path), dry_run)
            if dry_run:
                rep.steps = _Planner(s.backend, d.backend, prefer, renumber).plan(ctypes)
                return rep
            with d.transaction():
                rep.steps = _Planner(s.backend, d.backend, prefer, renumber).plan(ctypes)
                if not rep.changes:
                    if rep.unresolved:  # record that a merge was tried and what blocked it
                        d.writer().append_history((), "merge", _summary(rep, origin))
                    else:
                        raise _NothingToDo()
                else:
                    _apply(d, s.backend, rep.steps, origin)
                    d.writer().append_history((), "merge", _summary(rep, origin))
            return rep
        except _NothingToDo:
            return rep
        finally:
            if close_d:
                d.close()
    finally:
        if close_s:
            s.close()


class _NothingToDo(Exception):
    """Internal: aborts the transaction of a merge that changes nothing (file untouched)."""


def _summary(rep: MergeReport, origin: str) -> str:
    c = rep.counts()
    return (f"merged from {origin}: {len(rep.changes)} changes "
            f"({c.get('add_version', 0)} versions added), {c.get('skip_identical', 0)} "
            f"identical skipped, {len(rep.conflicts)} conflicts ({len(rep.unresolved)} "
            f"left untouched)")

