"""The merge plan: what merging store SRC into DEST would do, step by step (read only).

The rules are written down in docs/exchange.rst ("merge"); this module implements them over
two read-only backends, so a dry run and the real run compute the same plan. Applying it is
:mod:`pscalib.exchange.merge`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..errors import CtypeNotFoundError
from ..store import layout as L
from ..store.backend import Backend
from ..store.states import DEPRECATED, VALID, StateInfo, higher
from ..store.tombstones import Tombstone, TombstoneIndex
from ..store.values import pars_equal
from ..timestamps import format_ns

__all__ = ["Step", "plan_merge", "path_of"]


@dataclass
class Step:
    """One planned change, skip or conflict.

    ``action``: ``add_ctype``, ``add_range``, ``add_version``, ``skip_identical``,
    ``skip_deleted``, ``set_par``, ``set_state``, ``set_default``, ``add_tombstone``,
    ``conflict_version``, ``conflict_par``, ``conflict_default``. ``resolution``
    (conflicts): None (unresolved), ``'source'``, ``'dest'`` or ``'renumber'``.
    ``key`` is the object in DEST terms; ``value`` what the step needs (see
    :func:`pscalib.exchange.merge._apply`).
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
        return not self.action.startswith("skip_")

    def __str__(self) -> str:
        res = ""
        if self.is_conflict:
            res = {None: " [UNRESOLVED]", "dest": " [keep destination]",
                   "source": " [take source]", "renumber": " [add under a new number]"
                   }[self.resolution]
        return f"{self.action:17s} {self.path}: {self.detail}{res}"


def path_of(key: tuple) -> str:
    """``ctype[/range[/vNNNN]]`` of a store key (``/`` for the store)."""
    if not key:
        return "/"
    if len(key) == 1:
        return key[0]
    rp = f"{key[0]}/{L.range_name(key[1], key[2])}"
    return rp if len(key) == 3 else f"{rp}/{L.version_name(key[3])}"


def _who(t: Tombstone) -> str:
    return f"{t.user} at {format_ns(t.tsns)}"


@dataclass
class _RangeState:
    """What DEST's range will hold after the merge (numbers in DEST terms)."""
    after: Dict[int, str] = field(default_factory=dict)   # version -> state after merge
    added: Set[int] = field(default_factory=set)          # new in DEST (incl. renumbered)
    same_number: Set[int] = field(default_factory=set)    # added under the source's number
    unchanged: Set[int] = field(default_factory=set)      # same payload on both sides
    validated: Set[int] = field(default_factory=set)      # raised to valid by this merge
    raise_to: Dict[int, Tuple[str, StateInfo, str]] = field(default_factory=dict)
    renumbered: Dict[int, int] = field(default_factory=dict)  # source v -> DEST v
    creates: bool = False                                 # the range is created


class _Planner:
    def __init__(self, src: Backend, dst: Backend, prefer: Optional[str], renumber: bool,
                 origin: str):
        self.src, self.dst = src, dst
        self.prefer, self.renumber = prefer, renumber
        self.origin = origin
        self.steps: List[Step] = []
        self.dst_tombs = TombstoneIndex(dst.tombstones())
        self.src_tombs = src.tombstones()

    # ------------------------------------------------------------------ parts
    def pars(self, key: tuple, dst_exists: bool, out: List[Step],
             dst_key: Optional[tuple] = None) -> None:
        ps = self.src.dictpars(key)
        pd = self.dst.dictpars(key) if dst_exists else {}
        target = key if dst_key is None else dst_key
        for k in sorted(ps):
            if k not in pd:
                out.append(Step("set_par", path_of(target), f"{k}={ps[k]!r}", key=target,
                                value=(k, ps[k])))
            elif not pars_equal(ps[k], pd[k]):
                out.append(Step("conflict_par", path_of(target),
                                f"{k}: source {ps[k]!r} != destination {pd[k]!r}",
                                resolution=self.prefer, key=target, value=(k, ps[k])))

    def identical(self, key: tuple) -> Tuple[bool, bool]:
        """(same payload, same dictpars) of a version present in both stores."""
        a, b = self.src.version_info(key), self.dst.version_info(key)
        same_payload = a.kind == b.kind and a.sha256 is not None and a.sha256 == b.sha256
        pa, pb = self.src.dictpars(key), self.dst.dictpars(key)
        same_pars = set(pa) == set(pb) and all(pars_equal(pa[k], pb[k]) for k in pa)
        return same_payload, same_pars

    def _next_number(self, rkey: tuple, exists: bool, taken: Set[int]) -> int:
        last = 0
        if exists:
            last_of = getattr(self.dst, "last_version", None)
            last = last_of(*rkey) if last_of else max(self.dst.versions(*rkey), default=0)
        last = max(last, self.dst_tombs.max_version(*rkey), max(taken, default=0))
        return last + 1

    # ------------------------------------------------------------------ a range
    def range_(self, rkey: tuple, in_src: bool, ds: int, dst_ranges: Dict[Tuple[int, int], int],
               deprecations: Dict[tuple, Tombstone], out: List[Step]) -> _RangeState:
        exists = rkey[1:] in dst_ranges
        dv = self.dst.versions(*rkey) if exists else []
        dd = dst_ranges.get(rkey[1:], 0)
        rs = _RangeState(after={v: self.dst.version_state(rkey + (v,)).state for v in dv})
        src_versions = self.src.versions(*rkey) if in_src else []
        vsteps: List[Step] = []
        for v in src_versions:
            key = rkey + (v,)
            info = self.src.version_info(key)
            sst = self.src.version_state(key)
            sha = (info.sha256 or "?")[:16]
            copy = self._merged_copy(rkey, v, dv, info)
            if copy is not None:  # renumbered by an earlier merge: the same version
                rs.renumbered[v] = copy
                rs.unchanged.add(copy)
                new = higher(sst.state, rs.after[copy])
                if new != rs.after[copy]:
                    rs.raise_to[copy] = (new, sst, f"{sst.state} in {self.origin}")
                else:
                    vsteps.append(Step("skip_identical", path_of(key), f"already merged as "
                                       f"{L.version_name(copy)}", key=key))
                continue
            if v not in dv:
                tombs = self.dst_tombs.of(key)
                if tombs and any(not t.sha256 or t.sha256 == info.sha256 for t in tombs):
                    t = tombs[-1]
                    vsteps.append(Step("skip_deleted", path_of(key), f"deleted in DEST by "
                                       f"{_who(t)}; not brought back", key=key))
                    continue
                if tombs:
                    self._conflict_version(key, rs, sst, exists, vsteps,
                                           "the number belongs to a version deleted in DEST "
                                           f"(other payload; source sha256:{sha})",
                                           dv + src_versions)
                    continue
                state = "" if sst.state == VALID else f", {sst.state}"
                vsteps.append(Step("add_version", path_of(key), f"{info.kind} sha256:{sha} "
                                   f"tsprod {format_ns(info.tsprod)}{state}", key=key,
                                   value=(key, sst)))
                rs.added.add(v)
                rs.same_number.add(v)
                rs.after[v] = sst.state
                continue
            same_payload, same_pars = self.identical(key)
            if not same_payload:
                self._conflict_version(key, rs, sst, exists, vsteps,
                                       "same version number, different payload (source "
                                       f"sha256:{sha})", dv + src_versions)
                continue
            rs.unchanged.add(v)
            new = higher(sst.state, rs.after[v])
            if new != rs.after[v]:
                rs.raise_to[v] = (new, sst, f"{sst.state} in {self.origin}")
            elif same_pars:
                vsteps.append(Step("skip_identical", path_of(key), "identical", key=key))
            if not same_pars:
                self.pars(key, True, vsteps)
        # deletions in SRC of versions DEST still holds arrive as deprecations
        for v in list(rs.after):
            dt = deprecations.get(rkey + (v,))
            if dt is not None and rs.after[v] != DEPRECATED and \
                    rs.raise_to.get(v, ("",))[0] != DEPRECATED:
                why = f"deleted in {self.origin} by {_who(dt)}"
                rs.raise_to[v] = (DEPRECATED, StateInfo(DEPRECATED, dt.tsns, dt.user, why),
                                  "deleted")
        for v, (new, sinfo, why) in sorted(rs.raise_to.items()):
            old = rs.after[v]
            reason = sinfo.reason or ""
            vsteps.append(Step("set_state", path_of(rkey + (v,)), f"{old} -> {new} "
                               f"({why}{': ' + reason if reason and why != 'deleted' else ''})",
                               key=rkey + (v,), value=StateInfo(new, sinfo.tsns, sinfo.user,
                                                                sinfo.reason)))
            rs.after[v] = new
            if new == VALID:
                rs.validated.add(v)
        rsteps: List[Step] = []
        if not exists:
            if rs.added or rs.renumbered:
                rs.creates = True
            elif in_src and not src_versions:
                if self.dst_tombs.of(rkey):
                    rsteps.append(Step("skip_deleted", path_of(rkey), "empty range deleted "
                                       f"in DEST by {_who(self.dst_tombs.of(rkey)[-1])}",
                                       key=rkey))
                else:
                    rsteps.append(Step("add_range", path_of(rkey), "new empty range",
                                       key=rkey))
                    rs.creates = True
        out.extend(rsteps)
        out.extend(vsteps)
        if in_src and (exists or rs.creates):
            self.pars(rkey, exists, out)
        if exists or rs.creates:
            # the source's default in DEST numbering; 0 when it is not merged (conflict,
            # deleted in DEST), so a DEST version with the same number is never mistaken
            known = rs.same_number | rs.unchanged
            ds_dest = rs.renumbered.get(ds, ds if ds in known else 0)
            self.default(rkey, rs, ds_dest, dd, out)
        return rs

    def _merged_copy(self, rkey: tuple, v: int, dv: List[int], info: Any) -> Optional[int]:
        """DEST's number of source version ``v`` when an earlier merge renumbered it (same
        checksum and production time under another number), else None."""
        if v in dv and self.dst.version_info(rkey + (v,)).sha256 == info.sha256:
            return None  # the same number holds it: the ordinary path
        for n in dv:
            if n == v:
                continue
            i = self.dst.version_info(rkey + (n,))
            if (i.sha256 is not None and i.sha256 == info.sha256 and i.tsprod == info.tsprod
                    and i.kind == info.kind):
                return n
        return None

    def _conflict_version(self, key: tuple, rs: _RangeState, sst: StateInfo, exists: bool,
                          out: List[Step], why: str, taken_numbers: List[int]) -> None:
        if not self.renumber:
            out.append(Step("conflict_version", path_of(key), why, key=key))
            return
        # above every number of either side: a later source version keeps its own number
        taken = set(taken_numbers) | set(rs.after) | set(rs.renumbered.values())
        n = self._next_number(key[:3], exists, taken)
        rs.renumbered[key[3]] = n
        rs.added.add(n)
        rs.after[n] = sst.state
        out.append(Step("conflict_version", path_of(key), f"{why}; added as "
                        f"{L.version_name(n)}", resolution="renumber", key=key,
                        value=(key[:3] + (n,), sst)))

    def default(self, rkey: tuple, rs: _RangeState, ds: int, dd: int,
                out: List[Step]) -> None:
        def ok(v: int) -> bool:
            return v > 0 and rs.after.get(v) == VALID

        detail = f"source default v{ds:04d}, destination default v{dd:04d}"
        if ds == 0 or ds == dd or not ok(ds):
            target = dd
        elif not ok(dd):
            target = ds
            detail += (" (the destination's is deprecated by this merge)" if dd else "")
        elif (ds in rs.added or ds in rs.validated) and dd in rs.unchanged:
            target = ds
            detail += " (source moved on)"
        else:
            out.append(Step("conflict_default", path_of(rkey), detail,
                            resolution=self.prefer, key=rkey, value=ds))
            return  # --prefer picks a valid version either way: no fallback needed
        if not ok(target):
            valid = [v for v, st in rs.after.items() if st == VALID]
            new = max(valid, default=0)
            detail = (f"v{target:04d} is not valid after the merge: newest valid "
                      f"v{new:04d}" if target else f"newest valid v{new:04d}")
            target = new
        if target != dd:
            out.append(Step("set_default", path_of(rkey), detail if dd or ds else
                            f"v{target:04d}", key=rkey, value=target))

    # ------------------------------------------------------------------ the whole plan
    def plan(self, ctypes: Optional[Sequence[str]]) -> List[Step]:
        have = self.src.ctypes()
        if ctypes is not None:
            missing = [c for c in ctypes if c not in have]
            if missing:
                raise CtypeNotFoundError(f"the source has no calibration type "
                                         f"{', '.join(map(repr, missing))}; it has "
                                         f"{', '.join(have) or 'none'}")
            wanted = set(ctypes)
        else:
            self.pars((), True, self.steps)
            wanted = None
        tombs = [t for t in self.src_tombs if wanted is None or t.ctype in wanted]
        deprecations: Dict[tuple, Tombstone] = {}
        copy_tombs: List[Tombstone] = []
        seen = set(self.dst_tombs.identities)
        for t in tombs:
            if t.identity in seen:
                continue
            seen.add(t.identity)
            if t.what == "version" and self._dst_sha(t.key) is not None:
                if self._dst_sha(t.key) == t.sha256 or not t.sha256:
                    deprecations[t.key] = t
                else:
                    copy_tombs.append(t)  # about another payload: DEST's version untouched
                continue
            copy_tombs.append(t)
        names = sorted(set(have if wanted is None else wanted)
                       | {k[0] for k in deprecations})
        for c in names:
            self.ctype(c, c in have, deprecations)
        for t in copy_tombs:
            self.steps.append(Step("add_tombstone", path_of(t.key), f"{t.what} deleted by "
                                   f"{_who(t)} (sha256:{t.sha256[:16] or '-'})", key=t.key,
                                   value=t))
        return self.steps

    def _dst_sha(self, key: tuple) -> Optional[str]:
        if not self.dst.has_ctype(key[0]):
            return None
        if self.dst.range_table(key[0]).row(key[1], key[2]) is None:
            return None
        if key[3] not in self.dst.versions(*key[:3]):
            return None
        return self.dst.version_info(key).sha256 or ""

    def ctype(self, c: str, in_src: bool, deprecations: Dict[tuple, Tombstone]) -> None:
        exists = self.dst.has_ctype(c)
        t = self.dst.range_table(c) if exists else None
        dst_ranges = ({(int(b), int(e)): int(d) for b, e, d in
                       zip(t.tsbegin, t.tsend, t.defaultv)} if t is not None else {})
        src_ranges: Dict[Tuple[int, int], int] = {}
        if in_src:
            ts = self.src.range_table(c)
            src_ranges = {(int(b), int(e)): int(d) for b, e, d in
                          zip(ts.tsbegin, ts.tsend, ts.defaultv)}
        todo = set(src_ranges) | {k[1:3] for k in deprecations if k[0] == c}
        body: List[Step] = []
        creates_any = False
        for r in sorted(todo):
            rs = self.range_((c,) + r, r in src_ranges, src_ranges.get(r, 0), dst_ranges,
                             deprecations, body)
            creates_any = creates_any or rs.creates
        exists_after = exists
        if not exists:
            if creates_any:
                self.steps.append(Step("add_ctype", c, "new calibration type", key=(c,)))
                exists_after = True
            elif in_src and not src_ranges:  # an empty type
                tomb = self.dst_tombs.of((c,))
                if tomb:
                    self.steps.append(Step("skip_deleted", c, "calibration type deleted "
                                           f"in DEST by {_who(tomb[-1])}", key=(c,)))
                else:
                    self.steps.append(Step("add_ctype", c, "new calibration type",
                                           key=(c,)))
                    exists_after = True
        if in_src and exists_after:
            self.pars((c,), exists, self.steps)
        self.steps.extend(body)


def plan_merge(src: Backend, dst: Backend, *, ctypes: Optional[Sequence[str]] = None,
               prefer: Optional[str] = None, renumber: bool = False,
               origin: str = "SRC") -> List[Step]:
    """Every step of merging ``src`` into ``dst`` (both read only; see docs/exchange.rst).

    ``origin`` names the source in state-change reasons.
    """
    return _Planner(src, dst, prefer, renumber, origin).plan(ctypes)
