"""merge: bring new ranges, versions, parameters, state changes and deletions from one store
(a workspace) into another, all or nothing.

The rules (docs/exchange.rst, "merge") are planned by :mod:`pscalib.exchange.mergeplan`:

* a calibration type, range or version missing in the destination is added (versions keep
  their numbers, production times, dictpars and states; identical payloads are
  hard-linked), unless the destination has a tombstone for it (a deletion sticks);
* a version present in both with the same payload ends in the higher of its two states
  (``candidate < valid < deprecated``): a validation travels, a deprecation is never undone;
* a version deleted in the source that the destination still has is deprecated there (a
  merge never removes anything); other tombstones of the source are copied;
* conflicts (same version number with another payload, another parameter value, diverging
  defaults) are resolved only by ``renumber`` / ``prefer``. If any is left unresolved,
  nothing at all is written.

Everything is applied in one transaction on the destination; every applied change gets a
history record naming the source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ConflictError, IntegrityError, InvalidInputError, StoreNotFoundError
from ..names import validate_ctype
from ..store import DCStore
from ..store import layout as L
from ..store.backend import Backend
from ..store.payload import checksum
from ..store.tags import carry_tags, tags_to_carry
from ..store.tombstones import TombstoneIndex
from ..store.writer import StoreWriter
from ..timestamps import format_ns
from .diff import open_for_read
from .mergeplan import Step, path_of, plan_merge

__all__ = ["Step", "MergeReport", "merge_stores"]

PREFER = (None, "source", "dest")


@dataclass
class MergeReport:
    """Plan and outcome of :func:`merge_stores`.

    ``applied`` is True when the changes were written; False for a dry run, for a merge
    blocked by unresolved conflicts (nothing written) and for one with nothing to change.
    """
    source: str
    dest: str
    dry_run: bool
    steps: List[Step] = field(default_factory=list)
    applied: bool = False
    #: Tags of the source added to the destination (or, in a dry run, that would be).
    tags_carried: List[str] = field(default_factory=list)
    #: Tags of the source whose versions are not all in the destination, or whose name
    #: the destination uses for another selection (not carried).
    tags_not_carried: List[str] = field(default_factory=list)

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
                "applied": self.applied, "counts": self.counts(),
                "changes": len(self.changes), "conflicts": len(self.conflicts),
                "unresolved": len(self.unresolved), "tags_carried": self.tags_carried,
                "tags_not_carried": self.tags_not_carried,
                "steps": [{"action": s.action, "path": s.path, "detail": s.detail,
                           "resolution": s.resolution, "changes_dest": s.changes_dest}
                          for s in self.steps]}

    def format(self) -> str:
        n, c = len(self.changes), self.counts()
        tail = (f"{c.get('skip_identical', 0)} identical and {c.get('skip_deleted', 0)} "
                f"deleted skipped, {len(self.conflicts)} conflicts "
                f"({len(self.unresolved)} unresolved)")
        if self.unresolved:
            head = (f"NOT merged: {len(self.unresolved)} unresolved conflicts, nothing was "
                    f"changed in {self.dest}; {'the plan' if self.dry_run else 'it'} would "
                    f"have applied {n} changes from {self.source} ({tail}). Resolve with "
                    f"--prefer source|dest and/or --renumber")
        elif self.dry_run:
            head = f"plan (dry run): {self.source} -> {self.dest}: {n} changes, {tail}"
        else:
            head = f"merged: {self.source} -> {self.dest}: {n} changes, {tail}"
        lines = [head]
        if self.unresolved:
            lines.append("  conflicts:")
            lines += [f"    {s}" for s in self.unresolved]
            lines.append("  would have applied:" if n else "  (no other change)")
            lines += [f"    {s}" for s in self.changes]
            rest = [s for s in self.steps if not s.changes_dest and s not in self.unresolved]
            lines += [f"    {s}" for s in rest]
        else:
            lines += [f"  {s}" for s in self.steps]
        if self.tags_carried:
            lines.append(f"  tags {'to carry' if self.dry_run else 'carried'}: "
                         f"{', '.join(self.tags_carried)}")
        if self.tags_not_carried:
            lines.append(f"  tags not carried (versions missing or name taken): "
                         f"{', '.join(self.tags_not_carried)}")
        return "\n".join(lines)


def _apply(store: DCStore, src: Backend, steps: List[Step], origin: str) -> None:
    """Write the planned steps through ``store.writer()`` (inside its transaction)."""
    w = store.writer()
    touched = set()  # ranges that get versions or tombstones: their lastv is raised below
    for s in steps:
        if not s.changes_dest:
            continue
        if len(s.key) >= 3 and s.action in ("add_range", "add_version", "conflict_version",
                                            "add_tombstone"):
            touched.add(s.key[:3])
        if s.action == "add_ctype":
            w.ensure_ctype(s.key[0])
            w.append_history((), "merge", f"add_ctype {s.key[0]} from {origin}")
        elif s.action == "add_range":
            ctype, b, e = s.key
            w.create_range_recorded(ctype, b, e, comment=f"merged from {origin}")
        elif s.action in ("add_version", "conflict_version"):
            _add_version(w, src, s, origin)
        elif s.action in ("set_par", "conflict_par"):
            k, v = s.value
            w.set_par(s.key, k, v)
            w.append_history(s.key, "merge", f"set {k}={v!r} from {origin}")
        elif s.action == "set_state":
            w.set_state(s.key, s.value.state, s.value.reason or "merged", info=s.value,
                        note=f" (merged from {origin})", defaults=False)
        elif s.action in ("set_default", "conflict_default"):
            rkey = s.key
            old = w.default_of(*rkey)
            rec = f"default v{old:04d} -> v{s.value:04d} from {origin}"
            if s.value == 0:  # no valid version left after the merge
                w.clear_default(rkey[0], rkey[1], rkey[2], action="merge", record=rec)
            elif s.value != old:
                w.set_default(rkey[0], rkey[1], rkey[2], s.value, action="merge",
                              record=rec)
        elif s.action == "add_tombstone":
            t = s.value
            w.add_tombstones([t])
            w.append_history((), "merge", f"tombstone of {t.what} {s.path} (deleted by "
                             f"{t.user} at {format_ns(t.tsns)}) from {origin}")
    _raise_last_versions(w, src, touched)


def _raise_last_versions(w: StoreWriter, src: Backend, rkeys: set) -> None:
    """Version numbers are never reused: a merged range counts at least as far as the
    source's range and every tombstone of it (docs/format.rst, ``lastv``)."""
    tombs = TombstoneIndex(w.tombstones())
    for rkey in sorted(rkeys):
        if not w.has_ctype(rkey[0]) or w.range_table(rkey[0]).row(*rkey[1:]) is None:
            continue
        want = tombs.max_version(*rkey)
        if src.has_ctype(rkey[0]) and src.range_table(rkey[0]).row(*rkey[1:]) is not None:
            last_of = getattr(src, "last_version", None)
            want = max(want, last_of(*rkey) if last_of else max(src.versions(*rkey),
                                                                 default=0))
        if want > w.last_version(*rkey):
            w.set_last_version(rkey[0], rkey[1], rkey[2], want)


def _add_version(w: StoreWriter, src: Backend, s: Step, origin: str) -> None:
    key = s.key
    dest_key, sst = s.value
    payload = src.payload(key)
    info = src.version_info(key)
    sha = checksum(payload)
    if info.sha256 is not None and info.sha256 != sha:
        raise IntegrityError(f"{origin}: payload of {path_of(key)} does not match its "
                             f"checksum; nothing was merged - run 'dcs verify' on it")
    renumbered = dest_key != key
    note = (f"merged from {origin} {L.version_name(key[3])}"
            + (" (renumbered: the destination has or had another version with that number)"
               if renumbered else ""))
    w.add_version(key[0], payload, key[1], key[2], info.tsprod, sha, src.dictpars(key), note,
                  False, dest_key[3], force=True, state=sst.state, auto_default=False)
    if sst.tsns is not None:  # keep who set the state, when and why
        w.set_state_attrs(dest_key, sst)


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
        (default None: a conflict blocks the whole merge).
    renumber
        Add a source version whose number is taken by a different destination version (or
        by a deleted one) under the next free number (default: a conflict).
    dry_run
        Only plan: the destination is opened read-only and not changed; the report is the
        one the real run would give.

    Returns
    -------
    MergeReport
        Every step; ``report.unresolved`` lists the conflicts that blocked the merge (then
        nothing was written); ``report.applied`` says whether changes were written.

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

            def plan() -> List[Step]:
                return plan_merge(s.backend, d.backend, ctypes=ctypes, prefer=prefer,
                                  renumber=renumber, origin=origin)
            # planned on the read-only handle first: a blocked merge never writes (the
            # destination stays byte-identical) and a dry run is exactly this plan
            rep.steps = plan()
            if not rep.changes:  # the tags alone: a merge of a copy carries its new tags
                rep.tags_carried, rep.tags_not_carried = _tag_names(s.backend, d.backend)
            if dry_run or rep.unresolved or not (rep.changes or rep.tags_carried):
                return rep
            try:
                with d.transaction():
                    rep.steps = plan()  # again under the lock: another writer may have won
                    if not rep.changes:
                        rep.tags_carried = _tag_names(s.backend, d.backend)[0]
                    if rep.unresolved or not (rep.changes or rep.tags_carried):
                        raise _NothingToDo()
                    _apply(d, s.backend, rep.steps, origin)
                    rep.tags_carried, rep.tags_not_carried = carry_tags(s.backend,
                                                                        d.writer())
                    d.writer().append_history((), "merge", _summary(rep, origin))
            except _NothingToDo:
                return rep
            rep.applied = True
            return rep
        finally:
            if close_d:
                d.close()
    finally:
        if close_s:
            s.close()


def _tag_names(src: Any, dest: Any) -> Tuple[List[str], List[str]]:
    """Names of the tags a merge would carry and not carry (the destination as it is)."""
    add, skipped = tags_to_carry(src, dest)
    return list(dict.fromkeys(r.name for r in add)), skipped


class _NothingToDo(Exception):
    """Internal: aborts the transaction of a merge that changes nothing (file untouched)."""


def _summary(rep: MergeReport, origin: str) -> str:
    c = rep.counts()
    return (f"merged from {origin}: {len(rep.changes)} changes "
            f"({c.get('add_version', 0)} versions added, {c.get('set_state', 0)} state "
            f"changes, {c.get('add_tombstone', 0)} tombstones), {c.get('skip_identical', 0)} "
            f"identical and {c.get('skip_deleted', 0)} deleted skipped, "
            f"{len(rep.conflicts)} conflicts resolved"
            + (f"; tags carried: {', '.join(rep.tags_carried)}" if rep.tags_carried else "")
            + (f"; tags not carried: {', '.join(rep.tags_not_carried)}"
               if rep.tags_not_carried else ""))

