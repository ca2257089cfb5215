"""Pictures of calibration constants (optional extra ``pscalib[plot]``: matplotlib, Agg).

Drawing functions need matplotlib and are imported on first use, so ``import pscalib.plot``
and the matplotlib-free parts (:mod:`.model` timeline data, :mod:`.svg` inline timelines,
:mod:`.html` notebook views) work without it.

Main entry points:

* :func:`plot_array` -- 2-D image, 3-D/4-D mosaic of segments with a shared colour scale,
  or the detector image assembled by a geometry; with a histogram and robust limits.
* :func:`plot_constants` -- the same for a version of a store, using the store's geometry.
* :func:`plot_diff` -- difference of two versions (arrays or text).
* :func:`plot_timeline` -- every range of a store as a bar over time with its versions.
* :func:`robust_limits`, :func:`save_figure`, :func:`raw_image`.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["plot_array", "plot_constants", "plot_version", "plot_diff", "plot_timeline",
           "robust_limits", "save_figure", "raw_image", "image_of", "timeline_rows"]

_WHERE = {"plot_array": "arrays", "plot_constants": "arrays", "plot_version": "arrays",
          "plot_diff": "arrays", "robust_limits": "limits", "image_of": "arrays",
          "raw_image": "output", "save_figure": "output", "plot_timeline": "timeline",
          "timeline_rows": "model"}


def __getattr__(name: str) -> Any:  # lazy: matplotlib is imported only when drawing
    if name in _WHERE:
        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
