"""Writing pictures: figures to .png/.svg/.pdf, and raw colour-mapped images."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np

from ..errors import InvalidInputError
from ..ndarrio import write_file_atomic
from ._mpl import Figure, mpl
from .arrays import image_of
from .limits import robust_limits

__all__ = ["save_figure", "figure_bytes", "raw_image", "FORMATS"]

FORMATS = ("png", "svg", "pdf")


def _format(path: Union[str, Path], fmt: Optional[str]) -> str:
    fmt = (fmt or Path(path).suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise InvalidInputError(f"picture format {fmt!r} is not supported; name the output "
                                f"*.png, *.svg or *.pdf")
    return fmt


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure encoded as ``fmt`` (png, svg, pdf)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=_format("x", fmt))
    return buf.getvalue()


def save_figure(fig: Figure, path: Union[str, Path], fmt: Optional[str] = None,
                dpi: Optional[float] = None) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix unless ``fmt``)."""
    fmt = _format(path, fmt)
    write_file_atomic(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi or fig.dpi))
    return Path(path)


def raw_image(arr: Any, geometry: Any = None, layout: str = "auto", frame: str = "psana",
              percentiles: Tuple[float, float] = (1.0, 99.0),
              limits: Optional[Tuple[float, float]] = None, cmap: str = "viridis",
              symmetric: bool = False) -> bytes:
    """PNG bytes with exactly one pixel per image bin (no axes): the array colour-mapped
    with robust limits; bins without a pixel are transparent. Used by the web GUI and for
    pixel-exact checks."""
    img, _ = image_of(arr, geometry, layout, frame)
    lo, hi = limits or robust_limits(img, percentiles, symmetric=symmetric)
    norm = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
    matplotlib = mpl()
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(norm, nan=0.0))
    rgba[~np.isfinite(img)] = (0.0, 0.0, 0.0, 0.0)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgba, format="png")
    return buf.getvalue()
