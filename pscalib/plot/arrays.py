"""Figures of constants: image, mosaic of segments, assembled detector image, differences."""
from __future__ import annotations

import difflib
import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInputError, PscalibError
from ..geometry import Geometry, parse_geometry
from ._mpl import Figure, listed_colormap, new_figure
from .limits import finite_sample, robust_limits

__all__ = ["plot_array", "plot_constants", "plot_version", "plot_diff", "image_of",
           "mosaic_shape", "geometry_for"]

LAYOUTS = ("auto", "mosaic", "geometry")
_CMAP = "viridis"
_DIFF_CMAP = "RdBu_r"


def mosaic_shape(nseg: int) -> Tuple[int, int]:
    """Grid ``(rows, cols)`` for ``nseg`` panels: as square as possible, wider than tall."""
    cols = int(math.ceil(math.sqrt(nseg)))
    rows = int(math.ceil(nseg / cols))
    if (rows - 1) * (cols + 1) >= nseg:  # 8 segments: 2 x 4 rather than 3 x 3
        rows, cols = rows - 1, cols + 1
    return rows, cols


def _segments(arr: np.ndarray) -> np.ndarray:
    """Any >= 3-D array as ``(nseg, rows, cols)`` (leading dimensions flattened)."""
    return arr.reshape((-1,) + arr.shape[-2:])


def image_of(arr: np.ndarray, geometry: Optional[Geometry] = None, layout: str = "auto",
             frame: str = "psana", gap: int = 4) -> Tuple[np.ndarray, str]:
    """One 2-D float image of ``arr`` and the layout used (``'image'``, ``'mosaic'``,
    ``'geometry'``).

    ``layout='auto'`` assembles by ``geometry`` when it is given and fits the array, else
    tiles 3-D/4-D arrays as a mosaic (segments in :func:`mosaic_shape` order, row-major,
    ``gap`` NaN pixels apart). This is the picture both :func:`plot_array` and
    :func:`~pscalib.plot.output.raw_image` draw.
    """
    if layout not in LAYOUTS:
        raise InvalidInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise InvalidInputError(f"cannot draw an array of dtype {a.dtype} (numbers only)")
    if layout == "geometry" and geometry is None:
        raise InvalidInputError("layout 'geometry' needs geometry constants; the store has "
                                "none valid at that time (use layout mosaic)")
    if geometry is not None and layout in ("auto", "geometry"):
        if a.size == geometry.size:
            return geometry.image(a, frame=frame), "geometry"
        if layout == "geometry":
            geometry.image(a)  # raises the one-line 'does not fit' message
    if a.ndim <= 1:
        return a.reshape(1, -1).astype(np.float64), "image"
    if a.ndim == 2:
        return a.astype(np.float64), "image"
    segs = _segments(a)
    nr, nc = mosaic_shape(len(segs))
    r, c = segs.shape[1:]
    img = np.full((nr * r + (nr - 1) * gap, nc * c + (nc - 1) * gap), np.nan)
    for k, seg in enumerate(segs):
        i, j = divmod(k, nc)
        img[i * (r + gap): i * (r + gap) + r, j * (c + gap): j * (c + gap) + c] = seg
    return img, "mosaic"


def _histogram(ax, arr: np.ndarray, limits: Tuple[float, float], color: str = "C0") -> None:
    vals = finite_sample(arr)
    if vals.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    ax.hist(vals, bins=200, range=(lo, hi), color=color, histtype="stepfilled")
    ax.set_yscale("log")
    for v in limits:
        ax.axvline(v, color="k", lw=0.8, ls="--")
    ax.set_xlabel("value (dashed: colour limits)")
    ax.set_ylabel("pixels")


def _stats(a: np.ndarray) -> str:
    vals = finite_sample(a)
    if vals.size == 0:
        return f"shape {a.shape} {a.dtype}"
    return (f"shape {a.shape} {a.dtype}  mean {vals.mean():.4g}  std {vals.std():.4g}  "
            f"min {vals.min():.4g}  max {vals.max():.4g}")


def _mosaic_axes(fig: Figure, segs: np.ndarray, limits, cmap: Any, top: float):
    nr, nc = mosaic_shape(len(segs))
    grid = fig.add_gridspec(nr, nc, left=0.05, right=0.88, bottom=0.32, top=top,
                            wspace=0.08, hspace=0.18)
    im = None
    for k, seg in enumerate(segs):
        ax = fig.add_subplot(grid[k // nc, k % nc])
        im = ax.imshow(seg, vmin=limits[0], vmax=limits[1], cmap=cmap, origin="upper",
                       interpolation="nearest", aspect="equal")
        ax.set_title(f"segment {k}", fontsize=8, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def plot_array(arr: Any, title: str = "", geometry: Optional[Geometry] = None,
               layout: str = "auto", percentiles: Tuple[float, float] = (1.0, 99.0),
               limits: Optional[Tuple[float, float]] = None, frame: str = "psana",
               cmap: Any = _CMAP, symmetric: bool = False, hist: bool = True,
               figsize: Tuple[float, float] = (9.0, 7.5)) -> Figure:
    """A figure of an array with a histogram and robust colour limits.

    Parameters
    ----------
    arr
        Constants: 0-/1-D (drawn as a line), 2-D (an image), 3-D/4-D (a mosaic of
        segments sharing one colour scale, or the detector image when ``geometry`` fits).
    title
        Figure title (a statistics line is added below it).
    geometry
        A parsed :class:`pscalib.geometry.Geometry` to assemble the detector image.
    layout
        ``'auto'`` (geometry when it fits, else mosaic), ``'mosaic'`` or ``'geometry'``.
    percentiles, limits
        Colour limits: explicit ``limits`` or these percentiles of the finite values.
    frame
        Image frame of assembled images: ``'psana'`` or ``'lab'``.
    cmap, symmetric, hist
        Colour map (name or object), limits symmetric about 0, draw the histogram.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise InvalidInputError(f"cannot draw an array of dtype {a.dtype} (numbers only)")
    fig = new_figure(figsize=figsize, dpi=100)
    fig.suptitle(f"{title}\n{_stats(a)}" if title else _stats(a), fontsize=9)
    if a.ndim <= 1:
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(np.arange(a.size), a.reshape(-1), "o-")
        ax.set_xlabel("index")
        ax.set_ylabel("value")
        ax.grid(True, alpha=0.3)
        return fig
    lim = limits or robust_limits(a, percentiles, symmetric=symmetric)
    if lim[1] <= lim[0]:
        raise InvalidInputError(f"colour limits must have low < high, got {lim}")
    img, used = image_of(a, geometry, layout, frame)
    if used == "mosaic":
        im = _mosaic_axes(fig, _segments(a), lim, cmap, top=0.9)
    else:
        ax = fig.add_axes((0.08, 0.32, 0.78, 0.58))
        im = ax.imshow(img, vmin=lim[0], vmax=lim[1], cmap=cmap, origin="upper",
                       interpolation="nearest", aspect="equal" if used == "geometry" else "auto")
        ax.set_xlabel("column" if used == "image" else f"image column ({frame} frame)")
        ax.set_ylabel("row" if used == "image" else f"image row ({frame} frame)")
        if used == "geometry" and geometry is not None:
            ax.set_title(f"assembled by geometry: {geometry.nsegments} segments, "
                         f"{geometry.pixel_size:g} um bins", fontsize=8)
    if used == "mosaic":
        fig.colorbar(im, cax=fig.add_axes((0.9, 0.32, 0.02, 0.58)))
    else:
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    if hist:
        _histogram(fig.add_axes((0.08, 0.06, 0.84, 0.18)), a, lim)
    return fig


def geometry_for(store: Any, tsp: Any) -> Optional[Geometry]:
    """The parsed geometry constants of ``store`` valid at ``tsp``, or None when it has
    none (or they are not parseable: a picture should not fail because of them)."""
    if "geometry" not in store.ctypes():
        return None
    try:
        text = store.get("geometry", tsp)
        return parse_geometry(text) if isinstance(text, str) else None
    except PscalibError:
        return None


def _version_title(ver: Any) -> str:
    r = ver.rangeobj()
    return (f"{ver._store.detname()} {ver.ctype()} {r.range()} v{ver.version():04d}"
            f"{' (default)' if ver.is_default() else ''}")


def plot_version(ver: Any, geometry: Optional[Geometry] = None, layout: str = "auto",
                 **kw) -> Figure:
    """:func:`plot_array` of one :class:`~pscalib.DCVersion` (title: detector, ctype, range,
    version). Geometry text is drawn as its segment layout (colour = segment number)."""
    data = ver.calib()
    title = _version_title(ver)
    if isinstance(data, str):
        try:
            geo = parse_geometry(data)
        except InvalidInputError:
            if ver.ctype() == "geometry":
                raise
            raise InvalidInputError(f"{ver.ctype()} v{ver.version()} is text, not an array; "
                                    f"use 'dcs get' to read it") from None
        seg_ids = np.repeat(np.arange(geo.nsegments), geo.size // geo.nsegments)
        colors = listed_colormap([f"C{k % 10}" for k in range(geo.nsegments)])
        return plot_array(seg_ids.reshape(geo.shape), title + " (colour = segment number)",
                          geo, "geometry", limits=(-0.5, geo.nsegments - 0.5),
                          cmap=colors, hist=False, **kw)
    return plot_array(data, title, geometry, layout, **kw)


def plot_constants(store: Any, ctype: str, tsp: Any, vers: Any = None,
                   layout: str = "auto", **kw) -> Figure:
    """:func:`plot_version` of the version of ``ctype`` valid at ``tsp`` (or ``vers`` of
    that range), assembled by the store's geometry valid at ``tsp`` when it fits."""
    ver = store.version_at(ctype, tsp, vers)
    geo = geometry_for(store, tsp) if ctype != "geometry" else None
    return plot_version(ver, geo, layout, **kw)


def _text_diff_figure(a: str, b: str, labels: Sequence[str]) -> Figure:
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), labels[0], labels[1],
                                      n=1, lineterm=""))
    shown = lines[:60] + ([f"... {len(lines) - 60} more lines"] if len(lines) > 60 else [])
    fig = new_figure(figsize=(10, max(2.0, 0.18 * len(shown) + 1)), dpi=100)
    fig.suptitle(f"text difference: {labels[0]} -> {labels[1]}"
                 f"{'' if lines else ' (identical)'}", fontsize=9)
    for i, ln in enumerate(shown):
        color = "tab:green" if ln.startswith("+") else "tab:red" if ln.startswith("-") else "k"
        fig.text(0.02, 0.92 - i * (0.85 / max(len(shown), 1)), ln[:140], family="monospace",
                 fontsize=7, color=color, va="top")
    return fig


def plot_diff(a: Any, b: Any, labels: Sequence[str] = ("a", "b"),
              geometry: Optional[Geometry] = None, layout: str = "auto",
              percentiles: Tuple[float, float] = (1.0, 99.0), **kw) -> Figure:
    """A figure of ``b - a`` (symmetric robust limits, diverging colours) with a histogram
    of the differences; for text, the unified diff.

    Raises
    ------
    InvalidInputError
        If one is text and the other an array, or the shapes differ.
    """
    if isinstance(a, str) or isinstance(b, str):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise InvalidInputError("cannot compare text with an array")
        return _text_diff_figure(a, b, labels)
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        raise InvalidInputError(f"cannot subtract arrays of shapes {x.shape} and {y.shape}")
    diff = y.astype(np.float64) - x.astype(np.float64)
    changed = int(np.count_nonzero(diff))
    title = f"difference {labels[1]} - {labels[0]}: {changed} of {diff.size} values differ"
    return plot_array(diff, title, geometry, layout, percentiles, symmetric=True,
                      cmap=_DIFF_CMAP, **kw)
