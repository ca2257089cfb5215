"""Impact of a change: between two frozen selections (tags, or a tag and now), the time
windows of each ctype whose ``get`` answer differs -- what must be reprocessed
(docs/reproducibility.rst, "Impact")."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import PscalibError
from ..runs import RunTable, run_table_path
from ..store.changelog import Selection, current_selection, index_of
from ..store.dcstore import DCStore
from ..store.layout import range_name
from ..store.tags import rows_of
from ..timestamps import OPEN_END, format_ns

__all__ = ["Window", "selection_of", "changed_windows", "runs_in", "workspace_runs"]

NOW = "now"


@dataclass
class Window:
    """``[begin, end)`` of ``ctype`` where selection A answers ``a`` and B ``b`` (each
    ``'range vN sha256[:12]'`` or None for no constants)."""
    ctype: str
    begin: int
    end: int
    a: Optional[str]
    b: Optional[str]
    #: runs beginning inside the window: ``get(run=R)`` answers differ
    runs: List[int] = field(default_factory=list)
    #: runs beginning before the window and lasting into it: lookups by event time differ
    #: for their events inside the window
    runs_partly: List[int] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"ctype": self.ctype, "begin": format_ns(self.begin), "begin_ns": self.begin,
                "end": "end" if self.end == OPEN_END else format_ns(self.end),
                "end_ns": self.end, "a": self.a, "b": self.b, "runs": self.runs,
                "runs_partly": self.runs_partly}


def selection_of(cs: DCStore, name: str) -> Selection:
    """The selection of tag ``name`` in ``cs``, or ``'now'``: what get selects now."""
    be = cs._backend_for_read()
    if name == NOW:
        return current_selection(be)
    return {(r.ctype, r.tsbegin, r.tsend): (r.version, r.sha256)
            for r in rows_of(be, name, str(cs.path)) if r.ctype}


def _at(ranges, idx, t: int) -> Optional[Tuple[str, str]]:
    i = idx.find(t)
    if i is None:
        return None
    b, e, v, sha = ranges[i]
    return (sha, f"{range_name(b, e)} v{v:04d} {sha[:12]}")


def changed_windows(a: Selection, b: Selection) -> List[Window]:
    """Windows, per ctype, where the constants (by sha256) ``get`` answers differ."""
    out: List[Window] = []
    for c in sorted({k[0] for k in a} | {k[0] for k in b}):
        ra, ia = index_of(a, c)
        rb, ib = index_of(b, c)
        points = sorted({x for r in ra + rb for x in r[:2] if x != OPEN_END})
        for lo, hi in zip(points, points[1:] + [OPEN_END]):
            x, y = _at(ra, ia, lo), _at(rb, ib, lo)  # constant between two points
            if (x and x[0]) == (y and y[0]):
                continue
            xa, yb = x and x[1], y and y[1]
            last = out[-1] if out else None
            if last and last.ctype == c and last.end == lo and (last.a, last.b) == (xa, yb):
                last.end = hi
            else:
                out.append(Window(c, lo, hi, xa, yb))
    return out


def workspace_runs(store_path: Path) -> Optional[RunTable]:
    """The run table of the store's workspace (``<calib>/runs.txt`` next to its
    ``<dettype>/`` directory), or None."""
    f = run_table_path(Path(store_path).absolute().parent.parent)
    return RunTable.load(f, None) if f.is_file() else None


def runs_in(table: RunTable, w: Window) -> List[int]:
    """Runs of ``table`` beginning inside the window ``w``; also sets ``w.runs`` and
    ``w.runs_partly`` (a run without a known end lasts until the next run begins)."""
    try:
        recs = sorted(table.records.values(), key=lambda r: r.begin)
    except PscalibError:  # pragma: no cover - a table that failed to load
        return []
    w.runs = [r.run for r in recs if w.begin <= r.begin < w.end]
    nxt = [r.begin for r in recs[1:]] + [OPEN_END]
    w.runs_partly = [r.run for r, n in zip(recs, nxt)
                     if r.begin < w.begin and (r.end if r.end is not None else n) > w.begin]
    return w.runs
