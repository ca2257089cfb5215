"""JSON encoding of the store model (shared by the HTTP API, the web GUI and the client).

Only numpy and the standard library are imported here, so the remote client
(:mod:`pscalib.remote`) decodes answers without the ``server`` extra.

Values that JSON cannot carry exactly are tagged objects:

- a 1-d array parameter: ``{"$ndarray": [..], "dtype": "<i8"}`` (non-finite floats as
  the strings ``"nan"``, ``"inf"``, ``"-inf"``);
- a non-finite float parameter: ``{"$float": "nan"}``.

Times are given twice: ``*_ns`` (int ns since the epoch, exact) and ISO 8601 text.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..store.backend import VersionInfo
from ..store.history import HistoryRecord
from ..store.layout import range_name
from ..timestamps import OPEN_END, format_ns

__all__ = ["API_PREFIX", "encode_value", "decode_value", "encode_pars", "decode_pars",
           "encode_history", "decode_history", "encode_version_info", "store_tree",
           "dumps", "etag_of", "payload_url"]

#: Prefix of every route of the versioned API (stable; new versions get a new prefix).
API_PREFIX = "/api/v1"


def payload_url(sha256: str) -> str:
    """The content-addressed URL (path) of a payload."""
    return f"{API_PREFIX}/payloads/{sha256}"


def _float_out(x: float) -> Any:
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def encode_value(v: Any) -> Any:
    """A dictpars value (str, int, float, bool or 1-d array) as JSON-compatible data."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            data = [_float_out(float(x)) for x in v.tolist()]
        else:
            data = v.tolist()
        return {"$ndarray": data, "dtype": v.dtype.str}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return {"$float": _float_out(v)}
    return v


def decode_value(v: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(v, dict):
        if "$ndarray" in v:
            return np.array(v["$ndarray"], dtype=np.dtype(v["dtype"]))
        if "$float" in v:
            return float(v["$float"])
    return v


def encode_pars(pars: Dict[str, Any]) -> Dict[str, Any]:
    return {k: encode_value(v) for k, v in pars.items()}


def decode_pars(pars: Dict[str, Any]) -> Dict[str, Any]:
    return {k: decode_value(v) for k, v in pars.items()}


def encode_history(recs: List[HistoryRecord]) -> List[Dict[str, Any]]:
    return [{"tsns": r.tsns, "time": format_ns(r.tsns), "user": r.user, "host": r.host,
             "action": r.action, "record": r.record} for r in recs]


def decode_history(items: List[Dict[str, Any]]) -> List[HistoryRecord]:
    return [HistoryRecord(int(d["tsns"]), d["user"], d["host"], d["action"], d["record"])
            for d in items]


def encode_version_info(info: VersionInfo, sha256: Optional[str]) -> Dict[str, Any]:
    """Metadata of one version; ``sha256`` is the stored (or, for legacy files, computed)
    checksum that names the payload."""
    return {"version": info.version, "tsprod_ns": info.tsprod, "tsprod": format_ns(info.tsprod),
            "kind": info.kind, "sha256": sha256,
            "dtype": None if info.dtype is None else np.dtype(info.dtype).str,
            "shape": None if info.shape is None else list(info.shape), "nbytes": info.nbytes,
            "payload_url": None if sha256 is None else payload_url(sha256)}


def _range_times(b: int, e: int) -> Dict[str, Any]:
    return {"tsbegin_ns": b, "tsend_ns": e, "begin": format_ns(b),
            "end": "end" if e == OPEN_END else format_ns(e), "open": e == OPEN_END}


def store_tree(cs: Any, sha_of: Callable[[tuple, VersionInfo], Optional[str]]) -> Dict[str, Any]:
    """The whole tree of an open :class:`~pscalib.DCStore` as JSON-compatible data.

    ``sha_of(key, info)`` returns the checksum naming a version's payload (the stored one,
    or one computed for files without checksums).
    """
    be = cs.backend
    meta = be.meta()
    out: Dict[str, Any] = {
        "detname": meta.get("detname"), "dettype": meta.get("dettype"),
        "detid": meta.get("detid"), "tscfile_ns": meta.get("tscfile"),
        "predecessor": meta.get("predecessor"), "successor": meta.get("successor"),
        "format": getattr(be, "format_description", ""),
        "end_inclusive": bool(be.end_inclusive),
        "dictpars": encode_pars(be.dictpars(())), "history": encode_history(be.history(())),
        "ctypes": {}}
    for cname in cs.ctypes():
        tab = be.range_table(cname)
        ranges = []
        for b, e, d in sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist(),
                                  tab.defaultv.tolist())):
            versions = []
            for v in be.versions(cname, b, e):
                key = (cname, b, e, v)
                info = be.version_info(key)
                item = encode_version_info(info, sha_of(key, info))
                item["dictpars"] = encode_pars(be.dictpars(key))
                item["history"] = encode_history(be.history(key))
                versions.append(item)
            rng: Dict[str, Any] = {"name": range_name(b, e)}
            rng.update(_range_times(b, e))
            rng.update({"versdef": int(d), "dictpars": encode_pars(be.dictpars((cname, b, e))),
                        "history": encode_history(be.history((cname, b, e))),
                        "versions": versions})
            ranges.append(rng)
        out["ctypes"][cname] = {"dictpars": encode_pars(be.dictpars((cname,))),
                                "history": encode_history(be.history((cname,))),
                                "ranges": ranges}
    return out


def dumps(obj: Any) -> bytes:
    """Compact, deterministic JSON bytes (same content -> same bytes -> same ETag)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False,
                      ensure_ascii=False).encode("utf-8")


def etag_of(body: bytes) -> str:
    """Strong ETag of a JSON answer: a quoted sha256 prefix of its bytes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
