"""Compare two versions of constants: by how much do two arrays or two texts differ.

:func:`diff_payloads` compares two payloads (arrays or texts); :func:`diff_versions` two
:class:`~pscalib.store.DCVersion` handles (same or different stores);
:func:`diff_store_versions` two version numbers of one range of a store (what
``dcs diff STORE --ctype C --versions 1 2`` runs). See docs/exchange.rst.

Arrays are compared element by element when their shapes agree (dtypes may differ):

* two NaNs at the same place are equal; a NaN facing a number is a change
  (``nan_mismatch``) and is left out of the absolute differences;
* integer differences are computed exactly when both dtypes have a common integer type
  (no float rounding, no overflow, also at the extremes of ``int64``/``uint64``; int64
  against uint64 has none and is compared in float64); floats in float64, complex
  numbers by the modulus of the difference, bools as 0/1;
* ``mean_abs_diff`` is the mean of ``|a - b|`` over every element where neither side is NaN
  (equal elements count as 0), ``max_abs_diff`` its maximum;
* 3-D and 4-D arrays also get one summary per detector segment: the segments are axis 0 of
  a 3-D array ``(segments, rows, columns)`` and axis 1 of a 4-D array
  ``(gain ranges, segments, rows, columns)``, the layouts of LCLS area-detector constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError, VersionNotFoundError
from ..store import layout as L
from ..store.payload import Payload
from .arraystats import array_stats, segment_axis
from .diff import jsonable, text_diff

if TYPE_CHECKING:  # pragma: no cover
    from ..store import DCStore, DCVersion

__all__ = ["VersionDiff", "array_stats", "diff_payloads", "diff_versions",
           "diff_store_versions", "versions_to_compare", "segment_axis"]


@dataclass
class VersionDiff:
    """How two versions (payloads) differ; :func:`diff_payloads` makes it.

    Attributes
    ----------
    a, b
        Labels of the two sides (e.g. ``pedestals/<range>/v0001``).
    kind
        ``"ndarray"`` (both arrays), ``"text"`` (both texts) or ``"mixed"``.
    same
        True when the payloads are equal (same dtype, shape and values, or same text).
    kind_a, kind_b, dtype_a, dtype_b, shape_a, shape_b
        What each side is (dtype/shape None for text).
    sha256_a, sha256_b
        Checksums when known (versions), else None.
    values
        For arrays of equal shape: :func:`array_stats` (else None).
    text
        For two texts: ``added``, ``removed`` (line counts), ``diff`` (unified diff lines,
        at most :data:`~pscalib.exchange.diff.MAX_TEXT_DIFF_LINES`), ``truncated``.
    """
    a: str
    b: str
    kind: str
    same: bool
    kind_a: str
    kind_b: str
    dtype_a: Optional[str] = None
    dtype_b: Optional[str] = None
    shape_a: Optional[List[int]] = None
    shape_b: Optional[List[int]] = None
    sha256_a: Optional[str] = None
    sha256_b: Optional[str] = None
    values: Optional[Dict[str, Any]] = None
    text: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        d = {k: getattr(self, k) for k in ("a", "b", "kind", "same", "kind_a", "kind_b",
                                          "dtype_a", "dtype_b", "shape_a", "shape_b",
                                          "sha256_a", "sha256_b", "values", "text")}
        d.update(self.extra)
        return jsonable(d)

    def format(self) -> str:
        """Human-readable report (what ``dcs diff --versions`` prints)."""
        lines = [f"--- A {self.a}", f"+++ B {self.b}"]
        if self.kind == "mixed":
            lines.append(f"kind: A {self.kind_a} != B {self.kind_b}")
        elif self.kind == "text":
            t = self.text or {}
            if self.same:
                lines.append("same text")
            else:
                lines.append(f"text differs: +{t['added']} -{t['removed']} lines"
                             + (" (diff truncated)" if t.get("truncated") else ""))
                lines += t["diff"]
        else:
            lines += self._format_arrays()
        lines.append("same" if self.same else "different")
        return "\n".join(lines)

    def _format_arrays(self) -> List[str]:
        out = []
        if self.dtype_a != self.dtype_b:
            out.append(f"dtype: A {self.dtype_a} != B {self.dtype_b}")
        else:
            out.append(f"dtype: {self.dtype_a}")
        if self.shape_a != self.shape_b:
            out.append(f"shape: A {tuple(self.shape_a or ())} != B {tuple(self.shape_b or ())}"
                       " (values not compared)")
            return out
        out.append(f"shape: {tuple(self.shape_a or ())}")
        v = self.values or {}
        out.append(_stats_line("elements", v))
        for s in v.get("segments", []):
            out.append("  " + _stats_line(f"segment {s['segment']}", s))
        return out


def _stats_line(label: str, v: Dict[str, Any]) -> str:
    return (f"{label}: {v['changed']} of {v['size']} differ ({100 * v['fraction']:.4g}%), "
            f"max |A-B| {v['max_abs_diff']:.6g}, mean |A-B| {v['mean_abs_diff']:.6g}"
            + (f", NaN mismatches {v['nan_mismatch']}" if v["nan_mismatch"] else ""))


def _kind(p: Payload) -> str:
    return "text" if isinstance(p, str) else "ndarray"


def diff_payloads(pa: Payload, pb: Payload, name_a: str = "A", name_b: str = "B", *,
                  segments: bool = True) -> VersionDiff:
    """Compare two payloads (numpy arrays or str).

    Parameters
    ----------
    pa, pb
        The payloads ("A" and "B").
    name_a, name_b
        Labels used in the report and in the unified diff header.
    segments
        Add per-segment summaries for 3-D/4-D arrays.

    Returns
    -------
    VersionDiff
    """
    ka, kb = _kind(pa), _kind(pb)
    if ka != kb:
        arr_a = None if isinstance(pa, str) else pa
        arr_b = None if isinstance(pb, str) else pb
        return VersionDiff(name_a, name_b, "mixed", False, ka, kb,
                           dtype_a=None if arr_a is None else str(arr_a.dtype),
                           dtype_b=None if arr_b is None else str(arr_b.dtype),
                           shape_a=None if arr_a is None else list(arr_a.shape),
                           shape_b=None if arr_b is None else list(arr_b.shape))
    if isinstance(pa, str) and isinstance(pb, str):
        t = text_diff(pa, pb, name_a, name_b)
        return VersionDiff(name_a, name_b, "text", pa == pb, ka, kb, text=t)
    a, b = np.asarray(pa), np.asarray(pb)
    res = VersionDiff(name_a, name_b, "ndarray", False, ka, kb, dtype_a=str(a.dtype),
                      dtype_b=str(b.dtype), shape_a=list(a.shape), shape_b=list(b.shape))
    if a.shape == b.shape:
        res.values = array_stats(a, b, segments=segments)
        res.same = a.dtype == b.dtype and res.values["changed"] == 0
    return res


def _label(v: "DCVersion") -> str:
    return f"{v.ctype()}/{v.rangeobj().range()}/{L.version_name(v.version())}"


def diff_versions(a: "DCVersion", b: "DCVersion", *, segments: bool = True) -> VersionDiff:
    """Compare two versions (of one range, of two ranges, or of two stores).

    Equal checksums answer without reading the payloads.

    Examples
    --------
    >>> rng = cs["pedestals"].rangeobj("20240501T000000Z_end")      # doctest: +SKIP
    >>> print(diff_versions(rng.versobj(1), rng.versobj(2)).format())  # doctest: +SKIP
    """
    ia, ib = a.info(), b.info()
    la, lb = _label(a), _label(b)
    if ia.sha256 is not None and ia.sha256 == ib.sha256 and ia.kind == ib.kind:
        pa = pb = a.calib()  # identical by checksum: read one side only
    else:
        pa, pb = a.calib(), b.calib()
    res = diff_payloads(pa, pb, la, lb, segments=segments)
    res.sha256_a, res.sha256_b = ia.sha256, ib.sha256
    res.extra = {"tsprod_a": ia.tsprod, "tsprod_b": ib.tsprod}
    return res


def diff_store_versions(store: "DCStore", ctype: str, va: Any, vb: Any,
                        range_: Any = None, *, segments: bool = True) -> VersionDiff:
    """Compare versions ``va`` and ``vb`` of one range of ``ctype`` in ``store``.

    Parameters
    ----------
    range_
        The range (name, begin time or ``(begin, end)``, as :meth:`DCType.rangeobj`
        accepts). None: the one range of ``ctype`` that has both versions; an error names
        the candidates when there are several or none.
    """
    a, b = versions_to_compare(store, ctype, va, vb, range_)
    return diff_versions(a, b, segments=segments)


def versions_to_compare(store: "DCStore", ctype: str, va: Any, vb: Any,
                        range_: Any = None) -> Tuple[Any, Any]:
    """The two DCVersion objects :func:`diff_store_versions` compares (same arguments)."""
    t = store.ctypeobj(ctype)
    if range_ is not None:
        rng = t.rangeobj(range_)
    else:
        hits = []
        for r in t.ranges():
            try:  # versobj parses '3' / 'v0003' / 3 alike and raises when one is missing
                r.versobj(va), r.versobj(vb)
            except VersionNotFoundError:
                continue
            hits.append(r)
        if not hits:
            raise VersionNotFoundError(f"no range of {ctype!r} has both versions {va} and "
                                       f"{vb}; see 'dcs print' for the versions of each range")
        if len(hits) > 1:
            raise InvalidInputError(
                f"{len(hits)} ranges of {ctype!r} have versions {va} and {vb} "
                f"({', '.join(r.range() for r in hits)}); give the range")
        rng = hits[0]
    return rng.versobj(va), rng.versobj(vb)
