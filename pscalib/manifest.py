"""Manifests for jobs (docs/reproducibility.rst, "Manifests").

``dcs manifest CALIB -o m.json`` (:func:`make_manifest`) records, for every store file,
its sha256, size and the coverage of each ctype (the ranges ``get`` can select). With
``PSCALIB_MANIFEST=m.json`` every lookup (:func:`check_lookup`) refuses a store file that
is not in the manifest or changed since it was written, and a ctype/time outside the
recorded coverage, with :class:`~pscalib.errors.ManifestError`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

from .config import env_value
from .errors import ManifestError
from .timestamps import OPEN_END, format_ns, now_ns

__all__ = ["FORMAT", "file_sha256", "manifest_entry", "check_lookup", "load_manifest"]

FORMAT = "pscalib-manifest"
_CACHE: Dict[str, Tuple[Tuple[int, int], Dict[str, Any]]] = {}
_CHECKED: Dict[str, Tuple[int, int, int]] = {}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_entry(path: Path, detname: str, coverage: Dict[str, List[List[int]]]
                   ) -> Dict[str, Any]:
    """One store of a manifest (``coverage``: ctype -> ``[[begin_ns, end_ns], ...]``)."""
    st = path.stat()
    return {"path": str(path.resolve()), "detname": detname, "sha256": file_sha256(path),
            "size": st.st_size, "coverage": coverage}


def make_manifest(entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"format": FORMAT, "version": 1, "created": format_ns(now_ns()),
            "created_ns": now_ns(), "stores": entries}


def load_manifest(path: str) -> Dict[str, Any]:
    """The manifest at ``path`` indexed by store path (cached while the file is unchanged)."""
    try:
        st = os.stat(path)
        sig = (st.st_mtime_ns, st.st_size)
        hit = _CACHE.get(path)
        if hit is not None and hit[0] == sig:
            return hit[1]
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read the manifest PSCALIB_MANIFEST={path}: {exc}; "
                            f"write one with 'dcs manifest CALIB -o FILE'") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(
            doc.get("stores"), list):
        raise ManifestError(f"PSCALIB_MANIFEST={path} is not a pscalib manifest "
                            f"(format {FORMAT!r} with a 'stores' list)")
    try:
        idx = {str(e["path"]): e for e in doc["stores"]}
    except (TypeError, KeyError):
        raise ManifestError(f"PSCALIB_MANIFEST={path}: a store entry has no 'path'") from None
    _CACHE[path] = (sig, idx)
    return idx


def check_lookup(store_path: Path, ctype: str, t: int) -> None:
    """Refuse the lookup when a manifest is active and does not vouch for it."""
    mpath = env_value("PSCALIB_MANIFEST")
    if not mpath:
        return
    idx = load_manifest(mpath)
    real = str(Path(store_path).resolve())
    e = idx.get(real)
    if e is None:
        raise ManifestError(f"{store_path} is not in the manifest {mpath}; the job may use "
                            f"only the stores it records")
    _check_unchanged(Path(real), e, mpath)
    spans = (e.get("coverage") or {}).get(ctype)
    if not spans or not any(int(b) <= t < int(x) for b, x in spans):
        have = ", ".join(f"{format_ns(int(b))} .. "
                         f"{'end' if int(x) == OPEN_END else format_ns(int(x))}"
                         for b, x in spans or [])
        raise ManifestError(f"{ctype!r} at {format_ns(t)} is outside the coverage the "
                            f"manifest {mpath} records for {store_path} ({have or 'none'})")


def _check_unchanged(path: Path, e: Dict[str, Any], mpath: str) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise ManifestError(f"cannot check {path} against the manifest {mpath}: {exc}"
                            ) from None
    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
    if _CHECKED.get(str(path)) == sig:  # hashed once per process while unchanged
        return
    if st.st_size != e.get("size") or file_sha256(path) != e.get("sha256"):
        raise ManifestError(f"{path} changed since the manifest {mpath} was written "
                            f"(sha256 differs): refusing to answer from it; write a new "
                            f"manifest or restore the file")
    _CHECKED[str(path)] = sig


def coverage_of(selection: Dict[Tuple[str, int, int], Any]) -> Dict[str, List[List[int]]]:
    """ctype -> sorted ``[begin, end]`` of the selectable ranges (merged when touching)."""
    out: Dict[str, List[List[int]]] = {}
    for (c, b, e) in sorted(selection):
        spans = out.setdefault(c, [])
        if spans and b <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([b, e])
    return out


