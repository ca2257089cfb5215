"""``dcs purge``: reclaim the space of deprecated versions, saying which as-of answers it
makes unanswerable (docs/reproducibility.rst, "Purge")."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Tuple

from ..timestamps import OPEN_END, format_ns
from . import layout as L
from .backend import Backend, Key
from .records import LogRow, VersionRow
from .tags import check_unprotected

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["deprecated_versions", "selected_windows", "reachable_windows", "purge",
           "describe_windows", "describe_losses"]

#: key -> wall-time windows ``[(from, to), ...]`` in which get selected that version
Windows = Dict[Key, List[Tuple[int, int]]]


def deprecated_versions(be: Backend) -> List[Key]:
    """Every deprecated version of the file."""
    out: List[Key] = []
    for c in be.ctypes():
        tab = be.range_table(c)
        for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist()):
            for v in be.versions(c, b, e):
                if be.version_state((c, b, e, v)).state == "deprecated":
                    out.append((c, b, e, v))
    return out


def selected_windows(rows: List[LogRow]) -> Windows:
    """From the change log: when each version was the one plain get selected."""
    out: Windows = {}
    open_: Dict[Tuple[str, int, int], Tuple[int, int]] = {}
    for r in rows:
        rk = (r.ctype, r.tsbegin, r.tsend)
        prev = open_.pop(rk, None)
        if prev is not None:
            out.setdefault(rk + (prev[0],), []).append((prev[1], r.tsns))
        if r.version > 0:
            open_[rk] = (r.version, r.tsns)
    for rk, (v, t) in open_.items():
        out.setdefault(rk + (v,), []).append((t, OPEN_END))
    return out


def reachable_windows(rows: List[VersionRow]) -> Windows:
    """From the version log: when each version was valid or candidate - the wall times in
    which ``get`` with ``vers=``, ``tsprod=`` or ``include=`` could return it."""
    out: Windows = {}
    since: Dict[Key, int] = {}
    for r in rows:
        live = r.state in ("valid", "candidate")
        if live and r.key not in since:
            since[r.key] = r.tsns
        elif not live and r.key in since:
            out.setdefault(r.key, []).append((since.pop(r.key), r.tsns))
    for k, t in since.items():
        out.setdefault(k, []).append((t, OPEN_END))
    return out


def describe_losses(plain: List[Tuple[int, int]], other: List[Tuple[int, int]]) -> str:
    """What purging a version makes unanswerable, from its windows (``""``: nothing)."""
    parts = ([f"get as of {describe_windows(plain)}"] if plain else []) + \
        ([f"get with vers/tsprod/include as of {describe_windows(other)}"] if other else [])
    return "; ".join(parts)


def _purge(store: "DCStore", dry_run: bool = False
                     ) -> List[Tuple[Key, List[Tuple[int, int]]]]:
    """Delete every deprecated version (refused, writing nothing, when a published tag
    references one); returns each with the windows of wall time whose as-of answers it
    made unanswerable. The root history records the purge and those windows."""
    with store.transaction():
        w = store.writer()
        be = w.backend
        keys = deprecated_versions(be)
        for k in keys:
            check_unprotected(be, k, "purge")
        wins = selected_windows(be.changelog()[1])
        reach = reachable_windows(be.versionlog()[1])
        out = [(k, wins.get(k, [])) for k in keys]
        if dry_run or not keys:
            raise _DryRun(out)
        for k in keys:
            w.delete_version(k)
        lost = [(k, describe_losses(ws, reach.get(k, []))) for k, ws in out]
        lines = [f"{L.h5path(k)} ({text})" if text else L.h5path(k) for k, text in lost]
        w.append_history((), "purge", f"{len(keys)} deprecated versions deleted; get "
                         f"as of these times can no longer be answered: " + "; ".join(lines))
    return out


def describe_windows(ws: List[Tuple[int, int]]) -> str:
    return ", ".join(f"{format_ns(a)} .. {'now' if b == OPEN_END else format_ns(b)}"
                     for a, b in ws)


class _DryRun(Exception):
    def __init__(self, out):
        super().__init__("dry run")
        self.out = out


def purge(store: "DCStore", dry_run: bool = False
          ) -> List[Tuple[Key, List[Tuple[int, int]]]]:
    """Delete every deprecated version (see ``_purge``); a dry run (or nothing to purge)
    writes nothing."""
    try:
        return _purge(store, dry_run)
    except _DryRun as d:
        return d.out

