"""diff: what differs between two stores, at every level, and by how much.

Compares metadata, dictpars (every level), calibration types, ranges, default versions and
versions. For a version present in both stores the payloads are compared: identical (same
checksum), a kind/dtype/shape change, a numeric summary (number of changed elements,
maximum absolute difference, NaN-aware) or a line diff for text constants.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..store import DCStore
from ..store import layout as L
from ..store.backend import Backend
from ..store.payload import Payload
from ..store.values import pars_equal
from .arraystats import array_stats

__all__ = ["Difference", "DiffReport", "diff_stores", "numeric_summary", "text_diff",
           "pars_differences", "open_for_read", "jsonable"]

#: Lines of a text diff kept in a report (the count of changed lines is always exact).
MAX_TEXT_DIFF_LINES = 400


@dataclass
class Difference:
    """One difference. ``path`` is ``ctype/range/vNNNN`` (``/`` for the store itself).

    ``kind`` is one of: ``meta``, ``dictpars``, ``only_in_a``, ``only_in_b``, ``default``,
    ``tsprod``, ``kind``, ``dtype``, ``shape``, ``values``, ``text``.
    """
    path: str
    kind: str
    detail: Dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        d = self.detail
        if self.kind in ("only_in_a", "only_in_b"):
            return f"{self.path}: {d.get('what', 'object')} only in {self.kind[-1].upper()}"
        if self.kind == "dictpars":
            if d.get("only_in"):
                side = d["only_in"].upper()
                return f"{self.path}: parameter {d['key']!r} only in {side} " \
                       f"({d['a'] if side == 'A' else d['b']!r})"
            return f"{self.path}: parameter {d['key']!r}: A {d['a']!r} != B {d['b']!r}"
        if self.kind == "values":
            return (f"{self.path}: values differ: {d['changed']} of {d['size']} elements "
                    f"changed, max abs difference {d['max_abs_diff']}, NaN mismatches "
                    f"{d['nan_mismatch']}")
        if self.kind == "text":
            body = "\n".join("    " + ln for ln in d["diff"])
            return (f"{self.path}: text differs (+{d['added']} -{d['removed']} lines)"
                    + (f"\n{body}" if body else ""))
        if self.kind in ("meta", "default", "tsprod", "kind", "dtype", "shape"):
            what = d.get("name", self.kind)
            return f"{self.path}: {what}: A {d['a']} != B {d['b']}"
        return f"{self.path}: {self.kind} {d}"


@dataclass
class DiffReport:
    """Result of :func:`diff_stores`; ``same`` is True when there is no difference."""
    a: str
    b: str
    differences: List[Difference] = field(default_factory=list)
    identical_versions: int = 0

    @property
    def same(self) -> bool:
        return not self.differences

    def to_dict(self) -> Dict[str, Any]:
        return {"a": self.a, "b": self.b, "same": self.same,
                "identical_versions": self.identical_versions,
                "differences": [{"path": d.path, "kind": d.kind, **jsonable(d.detail)}
                                for d in self.differences]}

    def format(self) -> str:
        if self.same:
            return f"same: {self.a} and {self.b} ({self.identical_versions} versions identical)"
        lines = [f"--- A {self.a}", f"+++ B {self.b}"]
        lines += [str(d) for d in self.differences]
        lines.append(f"{len(self.differences)} differences, {self.identical_versions} versions "
                     f"identical")
        return "\n".join(lines)


def jsonable(x: Any) -> Any:
    """Plain-JSON form of dictpars values and details (arrays -> lists, NaN kept)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def open_for_read(store: Union[str, Path, DCStore]) -> Tuple[DCStore, bool]:
    """(store, opened_here): accept an open DCStore or a path."""
    if isinstance(store, DCStore):
        return store, False
    return DCStore(Path(store)), True


def pars_differences(path: str, pa: Dict[str, Any], pb: Dict[str, Any]) -> Iterator[Difference]:
    """One Difference per parameter key that is missing on one side or differs."""
    for k in sorted(set(pa) | set(pb)):
        if k not in pb:
            yield Difference(path, "dictpars", {"key": k, "only_in": "a", "a": pa[k], "b": None})
        elif k not in pa:
            yield Difference(path, "dictpars", {"key": k, "only_in": "b", "a": None, "b": pb[k]})
        elif not pars_equal(pa[k], pb[k]):
            yield Difference(path, "dictpars", {"key": k, "only_in": None, "a": pa[k],
                                                "b": pb[k]})


def numeric_summary(a: np.ndarray, b: np.ndarray) -> Dict[str, Any]:
    """Changed elements and max absolute difference of two same-shape arrays.

    Two NaNs at the same position are equal; a NaN facing a number counts as a change
    (``nan_mismatch``) and is left out of ``max_abs_diff``. (The full statistics are
    :func:`pscalib.exchange.vdiff.array_stats`.)
    """
    s = array_stats(a, b, segments=False)
    return {"size": s["size"], "changed": s["changed"], "nan_mismatch": s["nan_mismatch"],
            "max_abs_diff": float(s["max_abs_diff"])}


def text_diff(a: str, b: str, name_a: str = "A", name_b: str = "B") -> Dict[str, Any]:
    """Unified line diff of two texts with counts of added/removed lines."""
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), fromfile=name_a,
                                      tofile=name_b, lineterm="", n=1))
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    return {"added": added, "removed": removed, "diff": lines[:MAX_TEXT_DIFF_LINES],
            "truncated": len(lines) > MAX_TEXT_DIFF_LINES}


def compare_payloads(path: str, pa: Payload, pb: Payload) -> List[Difference]:
    """Differences between two payloads (empty list when identical)."""
    if isinstance(pa, str) or isinstance(pb, str):
        if not (isinstance(pa, str) and isinstance(pb, str)):
            return [Difference(path, "kind", {"a": "text" if isinstance(pa, str) else "ndarray",
                                              "b": "text" if isinstance(pb, str) else "ndarray"})]
        if pa == pb:
            return []
        return [Difference(path, "text", text_diff(pa, pb, f"A/{path}", f"B/{path}"))]
    out = []
    if pa.dtype != pb.dtype:
        out.append(Difference(path, "dtype", {"a": str(pa.dtype), "b": str(pb.dtype)}))
    if pa.shape != pb.shape:
        out.append(Difference(path, "shape", {"a": list(pa.shape), "b": list(pb.shape)}))
        return out
    summary = numeric_summary(pa, pb)
    if summary["changed"]:
        out.append(Difference(path, "values", summary))
    return out


def _vpath(key: tuple) -> str:
    return f"{key[0]}/{L.range_name(key[1], key[2])}/{L.version_name(key[3])}"


def _ranges(be: Backend, ctype: str) -> Dict[Tuple[int, int], int]:
    t = be.range_table(ctype)
    return {(int(b), int(e)): int(d) for b, e, d in zip(t.tsbegin, t.tsend, t.defaultv)}


def diff_stores(a: Union[str, Path, DCStore], b: Union[str, Path, DCStore], *,
                ctypes: Optional[List[str]] = None) -> DiffReport:
    """Compare two stores (paths or open DCStore objects; native or legacy files).

    Parameters
    ----------
    a, b
        The stores ("A" and "B" in the report).
    ctypes
        Only compare these calibration types (default: all).

    Returns
    -------
    DiffReport
        ``report.same`` is True when nothing differs.
    """
    sa, close_a = open_for_read(a)
    try:
        sb, close_b = open_for_read(b)
    except BaseException:
        if close_a:
            sa.close()
        raise
    try:
        rep = DiffReport(str(sa.path), str(sb.path))
        _diff(sa.backend, sb.backend, rep, ctypes)
        return rep
    finally:
        if close_a:
            sa.close()
        if close_b:
            sb.close()


def _diff(ba: Backend, bb: Backend, rep: DiffReport, only: Optional[List[str]]) -> None:
    out = rep.differences
    ma, mb = ba.meta(), bb.meta()
    for name in (L.A_DETTYPE, L.A_DETID, L.A_DETNAME, L.A_PREDECESSOR, L.A_SUCCESSOR):
        if ma.get(name) != mb.get(name):
            out.append(Difference("/", "meta", {"name": name, "a": ma.get(name),
                                                "b": mb.get(name)}))
    if only is None:
        out.extend(pars_differences("/", ba.dictpars(()), bb.dictpars(())))
    ca, cb = set(ba.ctypes()), set(bb.ctypes())
    if only is not None:
        ca &= set(only)
        cb &= set(only)
    for c in sorted(ca | cb):
        if c not in cb:
            out.append(Difference(c, "only_in_a", {"what": "calibration type"}))
            continue
        if c not in ca:
            out.append(Difference(c, "only_in_b", {"what": "calibration type"}))
            continue
        out.extend(pars_differences(c, ba.dictpars((c,)), bb.dictpars((c,))))
        ra, rb = _ranges(ba, c), _ranges(bb, c)
        for r in sorted(set(ra) | set(rb)):
            rpath = f"{c}/{L.range_name(*r)}"
            if r not in rb:
                out.append(Difference(rpath, "only_in_a", {"what": "range"}))
                continue
            if r not in ra:
                out.append(Difference(rpath, "only_in_b", {"what": "range"}))
                continue
            if ra[r] != rb[r]:
                out.append(Difference(rpath, "default", {"name": "default version",
                                                         "a": ra[r], "b": rb[r]}))
            rkey = (c,) + r
            out.extend(pars_differences(rpath, ba.dictpars(rkey), bb.dictpars(rkey)))
            va, vb = set(ba.versions(*rkey)), set(bb.versions(*rkey))
            for v in sorted(va | vb):
                key = rkey + (v,)
                if v not in vb:
                    out.append(Difference(_vpath(key), "only_in_a", {"what": "version"}))
                elif v not in va:
                    out.append(Difference(_vpath(key), "only_in_b", {"what": "version"}))
                else:
                    _diff_version(ba, bb, key, rep)


def _diff_version(ba: Backend, bb: Backend, key: tuple, rep: DiffReport) -> None:
    path = _vpath(key)
    ia, ib = ba.version_info(key), bb.version_info(key)
    found = list(pars_differences(path, ba.dictpars(key), bb.dictpars(key)))
    if ia.tsprod != ib.tsprod:
        found.append(Difference(path, "tsprod", {"name": "tsprod", "a": ia.tsprod,
                                                 "b": ib.tsprod}))
    if ia.sha256 is not None and ia.sha256 == ib.sha256 and ia.kind == ib.kind:
        rep.identical_versions += 1  # same checksum: no need to read the payloads
    else:
        payload_diffs = compare_payloads(path, ba.payload(key), bb.payload(key))
        if not payload_diffs:
            rep.identical_versions += 1
        found.extend(payload_diffs)
    rep.differences.extend(found)
