"""HTML views of stores and their objects for notebooks (``_repr_html_``): a tree of ctypes,
ranges and versions and an inline SVG timeline. Needs no matplotlib."""
from __future__ import annotations

from html import escape
from typing import Any, Dict

from ..timestamps import format_ns
from .model import state_of, tags_of, timeline_rows
from .svg import timeline_svg

__all__ = ["repr_html", "version_row", "version_rows"]

#: Bigger stores are summarised (a notebook cell should stay readable and fast).
MAX_RANGES = 200


def _pars(pars: Dict[str, Any]) -> str:
    return ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in pars.items())


def version_row(v: Any, vdef: int) -> str:
    """One ``<tr>`` of a version: number, default, tsprod, state, tags, sha256, payload
    kind/shape, size, parameters."""
    info = v.info()
    what = f"{info.dtype} {tuple(info.shape)}" if info.kind == "ndarray" else "text"
    return (f"<tr><td>v{v.version():04d}</td><td>{'default' if v.version() == vdef else ''}"
            f"</td><td>{format_ns(info.tsprod)}</td><td>{escape(state_of(v) or '')}</td>"
            f"<td>{escape(','.join(tags_of(v)))}</td>"
            f"<td><code>{escape((info.sha256 or '')[:12])}</code></td><td>{escape(what)}</td>"
            f"<td>{info.nbytes}</td><td>{_pars(v.dictpars())}</td></tr>")


def version_rows(rng: Any) -> str:
    """``<tr>`` rows of all versions of one range."""
    vdef = rng.versdef()
    return "".join(version_row(v, vdef) for v in rng.versions())


_HEAD = ("<tr><th>version</th><th></th><th>produced</th><th>state</th><th>tags</th>"
         "<th>sha256</th><th>payload</th><th>bytes</th><th>parameters</th></tr>")


def _range_html(r: Any) -> str:
    return (f"<details><summary>{escape(r.range())} ({len(r)} versions, default "
            f"v{r.versdef():04d})</summary><table>{_HEAD}{version_rows(r)}</table></details>")


def _ctype_html(ct: Any, limit: int) -> str:
    ranges = ct.ranges()
    body = "".join(_range_html(r) for r in ranges[:limit])
    if len(ranges) > limit:
        body += f"<p>... {len(ranges) - limit} more ranges</p>"
    return (f"<details><summary><b>{escape(ct.ctype())}</b> ({len(ranges)} ranges)</summary>"
            f"{body}</details>")


def repr_html(obj: Any) -> str:
    """HTML for a DCStore, DCType, DCRange or DCVersion (used by their ``_repr_html_``)."""
    kind = type(obj).__name__
    if hasattr(obj, "ctypes") and hasattr(obj, "detname"):  # the store
        rows = timeline_rows(obj) if _nranges(obj) <= MAX_RANGES else None
        head = (f"<p><b>{escape(obj.detname())}</b> <code>{escape(str(obj.path))}</code>"
                f"{' ' + _pars(obj.dictpars()) if obj.dictpars() else ''}</p>")
        svg = timeline_svg(rows) if rows else "<p>(timeline omitted: many ranges)</p>"
        tree = "".join(_ctype_html(obj.ctypeobj(c), MAX_RANGES) for c in obj.ctypes())
        return f"<div class='pscalib'>{head}{svg}{tree}</div>"
    if kind.endswith("DCType") or (hasattr(obj, "ranges") and not hasattr(obj, "versdef")):
        rows = {obj.ctype(): _bars(obj)}
        return f"<div>{timeline_svg(rows)}{_ctype_html(obj, MAX_RANGES)}</div>"
    if hasattr(obj, "versdef"):  # a range
        return f"<div>{_range_html(obj).replace('<details>', '<details open>', 1)}</div>"
    vdef = obj.rangeobj().versdef()  # a version: its row
    return f"<table>{_HEAD}{version_row(obj, vdef)}</table>"


def _nranges(store: Any) -> int:
    return sum(len(store.ctypeobj(c)) for c in store.ctypes())


def _bars(ct: Any) -> list:
    return timeline_rows(ct._store, [ct.ctype()])[ct.ctype()]

