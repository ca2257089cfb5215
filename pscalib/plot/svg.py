"""The timeline as inline SVG text, without matplotlib (notebooks and the web GUI)."""
from __future__ import annotations

from html import escape
from typing import Callable, Dict, List, Optional, Tuple

from ..timestamps import format_ns
from .model import RangeBar, time_span

__all__ = ["timeline_svg"]

_COLORS = {None: "#1f77b4", "valid": "#1f77b4", "candidate": "#ff7f0e",
           "deprecated": "#7f7f7f", "invalid": "#d62728"}


def _ticks(t0: int, t1: int, n: int = 6) -> List[int]:
    step = max((t1 - t0) // n, 1)
    return [t0 + i * step for i in range(n + 1)]


def timeline_svg(rows: Dict[str, List[RangeBar]], width: int = 900, lane_px: int = 18,
                 href: Optional[Callable[[RangeBar], Optional[str]]] = None,
                 span: Optional[Tuple[int, int]] = None) -> str:
    """SVG text drawing ``rows`` (from :func:`pscalib.plot.model.timeline_rows`).

    Same picture as :func:`pscalib.plot.timeline.plot_timeline`: one strip per lane, bars
    over ``[begin, end)``, open ranges to the right edge (drawn with a ``>``), label with
    versions and ``[default]``, colour by the default's state, a tooltip per bar. ``href``
    turns bars into links; ``span`` = ``(t0, t1)`` fixes the time axis (e.g. one axis for
    several ctypes), default :func:`~pscalib.plot.model.time_span`.
    """
    t0, t1 = span or time_span(rows)
    left, top, right = 130, 6, 10
    plot_w = width - left - right
    nlanes = sum(max((b.lane for b in bs), default=0) + 1 for bs in rows.values())
    height = top + nlanes * lane_px + 26

    def x(t: int) -> float:
        return left + plot_w * (t - t0) / (t1 - t0)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
           f'font-size="10">']
    y = top
    for ct, bs in rows.items():
        lanes = max((b.lane for b in bs), default=0) + 1
        out.append(f'<text x="{left - 6}" y="{y + lane_px * 0.7:.1f}" text-anchor="end">'
                   f'{escape(ct)}</text>')
        for b in bs:
            out.append(_bar(b, x, y + b.lane * lane_px, lane_px, t1, href))
        y += lanes * lane_px
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" '
                   f'stroke="#ddd"/>')
    for t in _ticks(t0, t1):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{y + 4}" '
                   f'stroke="#eee"/><text x="{x(t):.1f}" y="{y + 16}" text-anchor="middle">'
                   f'{format_ns(t)[:10]}</text>')
    out.append("</svg>")
    return "".join(out)


def _bar(b: RangeBar, x, y: float, h: int, t_right: int, href) -> str:
    x0, x1 = x(b.begin), x(t_right if b.end is None else b.end)
    d = b.default
    color = _COLORS.get(d.state if d else None, "#9467bd")
    tags = sorted({t for v in b.versions for t in v.tags})
    tip = (f"{b.ctype} {b.name}: {format_ns(b.begin)} .. "
           f"{'open' if b.end is None else format_ns(b.end)}; versions {b.label()}"
           f"{'; tags ' + ','.join(tags) if tags else ''}")
    w = max(x1 - x0, 1.0)
    body = (f'<rect class="bar" data-range="{escape(b.name)}" x="{x0:.1f}" y="{y + 2:.1f}" '
            f'width="{w:.1f}" height="{h - 4}" fill="{color}" stroke="#333" '
            f'stroke-width="0.5"><title>{escape(tip)}</title></rect>')
    if w > 40:
        label = escape(b.label() + (" >" if b.end is None else ""))
        body += (f'<text x="{x0 + 3:.1f}" y="{y + h * 0.7:.1f}" fill="white" '
                 f'pointer-events="none">{label}</text>')
    link = href(b) if href else None
    return f'<a href="{escape(link)}">{body}</a>' if link else body
