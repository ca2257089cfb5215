"""The DCS design's per-type accessors: ``cs.pedestals(t)`` is ``cs.get('pedestals', t)``."""
from __future__ import annotations

from typing import Any

from ..timestamps import TimeLike
from .payload import Payload

__all__ = ["CtypeAccessors"]


class CtypeAccessors:
    """Mixin of :class:`~pscalib.store.DCStore`: one method per common calibration type."""

    __slots__ = ()

    def get(self, ctype: str, tsp: TimeLike, vers: Any = None) -> Payload:
        raise NotImplementedError

    def pedestals(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pedestals", tsp, vers)

    def pixel_status(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_status", tsp, vers)

    def pixel_rms(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_rms", tsp, vers)

    def pixel_gain(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_gain", tsp, vers)

    def pixel_mask(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_mask", tsp, vers)

    def pixel_bkgd(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("pixel_bkgd", tsp, vers)

    def common_mode(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("common_mode", tsp, vers)

    def geometry(self, tsp: TimeLike, vers: Any = None) -> Payload:
        return self.get("geometry", tsp, vers)
