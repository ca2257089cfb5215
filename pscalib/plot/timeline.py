"""The timeline figure: every range as a bar over time, labelled with its versions."""
from __future__ import annotations

from typing import Any, Iterable, Optional

import numpy as np

from ._mpl import Figure, new_figure
from .model import RangeBar, time_span, timeline_rows

__all__ = ["plot_timeline", "STATE_COLORS"]

#: Bar colour by the state of the range's default version (None: no version states).
STATE_COLORS = {None: "tab:blue", "valid": "tab:blue", "candidate": "tab:orange",
                "deprecated": "tab:gray", "invalid": "tab:red"}


def _days(ns: int) -> float:
    return ns / 86400e9


def plot_timeline(store: Any, ctypes: Optional[Iterable[str]] = None,
                  title: Optional[str] = None) -> Figure:
    """A figure of the ranges of ``store`` (all or the given ``ctypes``) over time.

    Each ctype gets one row per lane (overlapping ranges go to separate lanes). A bar spans
    ``[begin, end)``; an open range runs to the right edge and ends in an arrow. Its label
    lists the versions, the default in brackets; the colour is the default's state.
    """
    rows = timeline_rows(store, ctypes)
    t0, t1 = time_span(rows)
    ylabels, y = [], 0
    nlanes = sum(max((b.lane for b in bs), default=0) + 1 for bs in rows.values())
    height = 1.1 + 0.4 * max(nlanes, 1)  # inches: margins + one strip per lane
    fig = new_figure(figsize=(11, height), dpi=100)
    ax = fig.add_axes((0.16, 0.5 / height, 0.8, (height - 0.9) / height))
    span = _days(t1) - _days(t0)
    for ct, bs in rows.items():
        lanes = max((b.lane for b in bs), default=0) + 1
        for bar in bs:
            _draw_bar(ax, bar, y + bar.lane, t1, span)
        ylabels += [ct] + [""] * (lanes - 1)
        y += lanes
        ax.axhline(y - 0.5, color="0.85", lw=0.8)
    ax.set_yticks(np.arange(len(ylabels)))
    ax.set_yticklabels(ylabels, fontsize=8)
    ax.set_ylim(len(ylabels) - 0.5, -0.5)
    ax.set_xlim(_days(t0) - span * 0.02, _days(t1))
    ax.xaxis_date()
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title or f"{store.detname()}: validity ranges (label: versions, "
                          f"[default]; colour: state of the default)", fontsize=9)
    return fig


def _draw_bar(ax, bar: RangeBar, y: float, t_right: int, span: float) -> None:
    b = _days(bar.begin)
    e = _days(t_right if bar.end is None else bar.end)
    d = bar.default
    color = STATE_COLORS.get(d.state if d else None, "tab:purple")
    ax.barh(y, e - b, left=b, height=0.7, color=color, alpha=0.85, edgecolor="k", lw=0.5)
    if bar.end is None:
        ax.annotate("", xy=(e, y), xytext=(e - span * 0.03, y),
                    arrowprops={"arrowstyle": "->", "color": "k"})
    label = bar.label()
    tags = sorted({t for v in bar.versions for t in v.tags})
    if tags:
        label += "  tags: " + ",".join(tags)
    ax.text(b + span * 0.003, y, label, va="center", ha="left", fontsize=7, clip_on=True,
            color="white" if (e - b) > span * 0.08 else "k")
