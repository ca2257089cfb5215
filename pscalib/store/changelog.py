"""The change log of a store and as-of lookups (docs/reproducibility.rst).

Every committed transaction appends to ``/_changelog`` one row per range whose *selected
version* changed (the range's default: the only version plain ``get`` reads): a range that
became selectable, a new default, a range that stopped being selectable (deleted, or no
valid version left). The rows are derived at commit time by comparing the file with the
log's replay, so every path that changes a store (recorded writer operations, merge, copy,
the importers' bulk writes) is logged the same way.

The same commit appends to ``/_versionlog`` one row per version that appeared, changed
state or was deleted (with its production time and sha256), so that the versions of every
range and their states at a wall time can be replayed too (:mod:`pscalib.store.asof`).

``get(ctype, t, asof=T0)`` replays the rows with ``tsns <= T0`` and applies the selection
rule of :mod:`pscalib.store.selection` (the same :class:`RangeIndex`) to the ranges
selectable then.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import AsOfUnavailableError, NoValidConstantsError, PurgedVersionError
from ..identity import whoami
from ..timestamps import format_ns, now_ns
from . import layout as L
from .backend import Backend, WritableBackend
from .records import (CHANGELOG_DTYPE, VERSIONLOG_DTYPE, LogRow, LogTail, VersionRow,
                      tail_of)
from .selection import RangeIndex

__all__ = ["Selection", "current_selection", "replay", "record_changes", "check_asof",
           "index_of", "pick", "payload_key", "Versions", "replay_versions",
           "check_versionlog"]

#: Bytes reserved per log row (fixed fields, strings on the global heap) and rows of a chunk.
ROW_RESERVE = 256
CHUNK_ROWS = 256

#: ``(ctype, tsbegin, tsend) -> (version, sha256)`` of every selectable range.
Selection = Dict[Tuple[str, int, int], Tuple[int, str]]


#: ``(ctype, tsbegin, tsend, version) -> (state, tsprod, sha256)`` of every version.
Versions = Dict[Tuple[str, int, int, int], Tuple[str, int, str]]


def current_selection(be: Backend, with_sha: bool = True) -> Selection:
    """What plain ``get`` selects from now: every range with a default version."""
    out: Selection = {}
    for c in be.ctypes():
        tab = be.range_table(c)
        for b, e, d in zip(tab.tsbegin.tolist(), tab.tsend.tolist(), tab.defaultv.tolist()):
            if d > 0:
                sha = (be.version_info((c, b, e, d)).sha256 or "") if with_sha else ""
                out[(c, b, e)] = (int(d), sha)
    return out


def replay(rows: List[LogRow], t0: Optional[int] = None,
           base: Optional[Selection] = None) -> Selection:
    """The selection the log records for wall time ``t0`` (None: its end); ``base``: the
    replay of the rows before ``rows`` (default: none)."""
    sel: Selection = dict(base) if base else {}
    for r in rows:
        if t0 is not None and r.tsns > t0:
            break  # rows are appended in time order (record_changes keeps tsns increasing)
        k = (r.ctype, r.tsbegin, r.tsend)
        if r.version > 0:
            sel[k] = (r.version, r.sha256)
        else:
            sel.pop(k, None)
    return sel


def replay_versions(rows: List[VersionRow], t0: Optional[int] = None,
                    base: Optional[Versions] = None) -> Versions:
    """The versions (with state) the version log records for wall time ``t0`` (None: now);
    ``base``: the replay of the rows before ``rows``."""
    out: Versions = dict(base) if base else {}
    for r in rows:
        if t0 is not None and r.tsns > t0:
            break  # appended in time order, like the change log
        if r.state:
            out[r.key] = (r.state, r.tsprod, r.sha256)
        else:
            out.pop(r.key, None)
    return out


#: store path -> (tails of its two logs, their replays) after this process's last commit
#: to it: the next commit compares the tails (one row read per log) instead of reading and
#: replaying both logs whole, so a commit's cost does not grow with the store's history.
_REPLAYS: Dict[str, Tuple[Tuple[LogTail, LogTail], Selection, Versions]] = {}
_REPLAYS_MAX = 64


def _replays(be: WritableBackend, key: Optional[str]
             ) -> Tuple[Tuple[LogTail, LogTail], Selection, Versions]:
    """The tails and replays of both logs: cached when the tails match, else read."""
    tails = be.log_tails()
    hit = _REPLAYS.get(key) if key is not None else None
    if hit is not None and hit[0] == tails:
        return hit
    (start, rows), (vstart, vrows) = be.changelog(), be.versionlog()
    return (tails, {} if start is None else replay(rows),
            {} if vstart is None else replay_versions(vrows))


def _after(tail: LogTail, rows: list, start: Optional[int], dtype: np.dtype) -> LogTail:
    """A log's tail once ``rows`` are appended (and the log created with ``start``)."""
    s0, n, last = tail
    return (start if s0 is None else s0, n + len(rows),
            tail_of(rows[-1], dtype) if rows else last)


def _ranges(be: Backend, ctype: str) -> List[Tuple[int, int]]:
    tab = be.range_table(ctype)
    return list(zip(tab.tsbegin.tolist(), tab.tsend.tolist()))


def _version_rows(be: WritableBackend, new_log: bool, last: Versions, t: int,
                  user: str) -> List[VersionRow]:
    """Rows of what changed in the versions since the version log's end (``last``: its
    replay; all versions for a new log). Only the ranges the backend says it changed are
    compared (reading the state of every version of a big store would cost more than the
    commit)."""
    ranges = {(c, b, e) for c in be.ctypes() for b, e in _ranges(be, c)}
    if not new_log and be.touched is not None:
        whole = {k[0] for k in be.touched if len(k) == 1}
        mine = {k for k in be.touched if len(k) == 3} | {r for r in ranges if r[0] in whole}
        ranges &= mine
        last = {k: x for k, x in last.items() if k[:3] in mine or k[0] in whole}
    cur = {(c, b, e, v): be.version_state((c, b, e, v)).state
           for c, b, e in sorted(ranges) for v in be.versions(c, b, e)}
    new: List[VersionRow] = []
    for k in sorted(cur):
        old = last.get(k)
        if old is None:
            tsprod, sha = be.version_stamp(k)
            new.append(VersionRow(t, *k, cur[k], tsprod, sha or "", user))
        elif old[0] != cur[k]:
            new.append(VersionRow(t, *k, cur[k], old[1], old[2], user))
    for k in sorted(set(last) - set(cur)):
        new.append(VersionRow(t, *k, "", last[k][1], last[k][2], user))
    return new


def record_changes(be: WritableBackend,
                   reserve: Optional[Callable[[int], None]] = None,
                   cache: Optional[str] = None) -> int:
    """Append the rows of what this transaction changed in the selection and in the
    versions (commit time).

    A file without a log (written before it existed) starts one now with the current
    selection (versions); as-of lookups before this moment are then refused. ``cache``
    (the store's path) keeps the replays of both logs for the next commit of this process
    (checked against the logs' tails, so another writer's commit is never missed). Returns
    the rows written.
    """
    (tail, vtail), last, lastv = _replays(be, cache)
    start, vstart = tail[0], vtail[0]
    cur = current_selection(be, with_sha=False)
    t = now_ns()
    for lt in (tail, vtail):  # strictly increasing: replay stops at the first later row
        if lt[2] is not None:
            t = max(t, int(lt[2][0]) + 1)
    user = whoami()
    new: List[LogRow] = []
    for k in sorted(cur):
        v = cur[k][0]
        if last.get(k, (0, ""))[0] != v:
            op = "select" if k in last else "add_range"
            new.append(LogRow(t, op, k[0], k[1], k[2], v,
                              be.version_sha256(k + (v,)) or "", user))
    for k in sorted(set(last) - set(cur)):
        new.append(LogRow(t, "unselect", k[0], k[1], k[2], 0, "", user))
    vnew = _version_rows(be, vstart is None, lastv, t, user)
    if reserve is not None and (new or vnew or start is None or vstart is None):
        # raises before anything is written
        reserve(ROW_RESERVE * (len(new) + len(vnew) + 2 * CHUNK_ROWS))
    n = be.append_versionlog(vnew, start=t if vstart is None else None) \
        if vnew or vstart is None else 0
    n += be.append_changelog(new, start=t) if start is None else \
        (be.append_changelog(new) if new else 0)
    if cache is not None:
        # what the logs hold once this commit lands; if it does not (rolled back), the
        # tails on disk differ and the next commit reads the logs again
        if len(_REPLAYS) >= _REPLAYS_MAX:
            _REPLAYS.clear()
        _REPLAYS[cache] = ((_after(tail, new, t, CHANGELOG_DTYPE),
                            _after(vtail, vnew, t, VERSIONLOG_DTYPE)),
                           replay(new, base=last), replay_versions(vnew, base=lastv))
    return n


def check_asof(be: Backend, t0: int, tscfile: int, what: str) -> Tuple[int, List[LogRow]]:
    """``(start, rows)`` of the log when it can answer for ``t0``, else the reason."""
    start, rows = be.changelog()
    if t0 > now_ns():
        raise AsOfUnavailableError(
            f"as of {format_ns(t0)} is in the future: {what} cannot know what get will "
            f"return then")
    if t0 < tscfile:
        raise AsOfUnavailableError(
            f"as of {format_ns(t0)} is before {what} was created ({format_ns(tscfile)})")
    if start is None:
        raise AsOfUnavailableError(
            f"{what} has no change log (written before pscalib kept one, or a legacy file); "
            f"it cannot say what get returned at {format_ns(t0)}")
    if t0 < start:
        raise AsOfUnavailableError(
            f"the change log of {what} begins at {format_ns(start)} (first change by a "
            f"pscalib keeping the log); it cannot say what get returned at {format_ns(t0)}")
    return start, rows


def check_versionlog(be: Backend, t0: int, what: str, why: str) -> List[VersionRow]:
    """Rows of the version log when it covers ``t0`` (``check_asof`` passed), else the
    reason: ``why`` names the form of get that needs it."""
    start, rows = be.versionlog()
    if start is None or t0 < start:
        since = ("has no version log (written by a pscalib before it kept one)"
                 if start is None else f"keeps its version log since {format_ns(start)}")
        raise AsOfUnavailableError(
            f"{what} {since}: get with {why} as of {format_ns(t0)} needs the versions and "
            f"states of then (plain get as of then needs only the change log)")
    return rows


def index_of(sel: Selection, ctype: str) -> Tuple[List[Tuple[int, int, int, str]], RangeIndex]:
    """The ranges of ``ctype`` in ``sel`` and their selection index (the rule of ``get``)."""
    rs = sorted((b, e, v, sha) for (c, b, e), (v, sha) in sel.items() if c == ctype)
    return rs, RangeIndex([r[0] for r in rs], [r[1] for r in rs])


def pick(ranges: List[Tuple[int, int, int, str]], idx: RangeIndex, ctype: str, t: int,
         what: str) -> Tuple[Tuple[str, int, int, int], str]:
    """``(key, sha256)`` the rule selects at ``t``, or NoValidConstantsError."""
    i = idx.find(t)
    if i is None:
        raise NoValidConstantsError(f"no {ctype!r} constants valid at {format_ns(t)} in "
                                    f"{what} ({len(ranges)} ranges selectable then)")
    b, e, v, sha = ranges[i]
    return (ctype, b, e, v), sha


def payload_key(be: Backend, key: Tuple[str, int, int, int], sha: str, why: str) -> tuple:
    """``key`` if the file still holds that version with checksum ``sha``, else the
    specific error (deleted or purged since)."""
    c, b, e, v = key
    ok = (be.has_ctype(c) and be.range_table(c).row(b, e) is not None
          and v in be.versions(c, b, e))
    if ok and be.version_info(key).sha256 == sha:
        return key
    gone = [r for r in be.tombstones() if r.key == key]
    when = (f" (deleted at {format_ns(gone[-1].tsns)} by {gone[-1].user}: {gone[-1].record})"
            if gone else "")
    raise PurgedVersionError(
        f"{why} needs version {v} of range {L.range_name(b, e)} of {c!r} (sha256 "
        f"{sha[:16]}), which is no longer in {be.filename}{when}")
