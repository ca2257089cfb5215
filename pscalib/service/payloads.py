"""Route ``GET /api/v1/payloads/{sha256}``: a payload at its content-addressed URL.

ndarrays are answered as ``.npy`` (``application/octet-stream``; ``numpy.load`` reads it),
text as ``text/plain; charset=utf-8``. The ETag is the sha256 (strong) and the answer is
``Cache-Control: public, max-age=31536000, immutable``: a sha256 names one payload forever,
so any HTTP cache may keep it.

Only the stores of the served calib directory are searched, through their per-file
checksum index ``/_payloads`` (:mod:`pscalib.store.payindex`; files without it, and legacy
files, are walked once). The sha256 -> store map is rebuilt for a file when its state
(inode, mtime, size) changed, i.e. after a commit. Every payload is checked against its
sha256 before it is served.
"""
from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from ..errors import InvalidInputError, NotFoundError
from ..store import payindex
from ..store.native import NativeBackend
from ..store.payload import Payload, checksum
from .answers import IMMUTABLE, etag_matches, query_params
from .encode import API_PREFIX
from .registry import FileState, StoreRegistry, file_state
from .stores import version_sha

__all__ = ["routes", "PayloadIndex", "encode_payload", "NPY_TYPE", "TEXT_TYPE"]

NPY_TYPE = "application/octet-stream"
TEXT_TYPE = "text/plain; charset=utf-8"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
Key = Tuple[str, int, int, int]


def encode_payload(data: Payload) -> Tuple[bytes, str]:
    """``(bytes, content type)`` of a payload: ``.npy`` for arrays, UTF-8 for text."""
    if isinstance(data, str):
        return data.encode("utf-8"), TEXT_TYPE
    buf = io.BytesIO()
    np.save(buf, data, allow_pickle=False)
    return buf.getvalue(), NPY_TYPE


def _keys_of_store(reg: StoreRegistry, path: Path) -> Dict[str, Key]:
    """sha256 -> version key of every version in one store file."""
    with reg.entry(path) as ent:
        be = ent.cs.backend
        rows = payindex.read_rows(be.f) if isinstance(be, NativeBackend) else None
        if rows is not None:
            return {sha: key for sha, key in
                    zip((r.decode() for r in rows["sha256"]), payindex.keys_of(rows))}
        out: Dict[str, Key] = {}
        for cname in ent.cs.ctypes():
            tab = be.range_table(cname)
            for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist()):
                for v in be.versions(cname, b, e):
                    key = (cname, b, e, v)
                    out.setdefault(version_sha(be, key, be.version_info(key)), key)
        return out


class PayloadIndex:
    """sha256 -> (store file, version key) over the served calib directory, plus a bounded
    in-memory cache of encoded payloads (they never change)."""

    def __init__(self, registry: StoreRegistry, cache_bytes: int = 256 * 2**20):
        self.registry = registry
        self.cache_bytes = cache_bytes
        self._files: Dict[Path, Tuple[FileState, Dict[str, Key]]] = {}
        self._lock = threading.Lock()  # the sha256 map (held during scans)
        self._bytes_lock = threading.Lock()  # the byte cache (held for dict updates only)
        self._bytes: "OrderedDict[str, Tuple[bytes, str]]" = OrderedDict()
        self._held = 0

    def _rescan(self) -> None:
        files = self.registry.store_files()
        for gone in set(self._files) - set(files):
            del self._files[gone]
        for p in files:
            st = file_state(p)
            have = self._files.get(p)
            if have is None or have[0] != st:
                try:
                    self._files[p] = (st, _keys_of_store(self.registry, p))
                except Exception:  # an unreadable store holds no servable payload
                    self._files.pop(p, None)

    def locate(self, sha: str) -> List[Tuple[Path, Key]]:
        """Where ``sha`` is stored (current state of the calib directory)."""
        with self._lock:
            hits = [(p, keys[sha]) for p, (st, keys) in self._files.items()
                    if sha in keys and file_state(p) == st]
            if not hits:
                self._rescan()
                hits = [(p, keys[sha]) for p, (_, keys) in self._files.items() if sha in keys]
            return hits

    def cached(self, sha: str) -> Optional[Tuple[bytes, str]]:
        """The encoded payload if it is in memory (never blocks on a scan)."""
        with self._bytes_lock:
            hit = self._bytes.get(sha)
            if hit is not None:
                self._bytes.move_to_end(sha)
            return hit

    def get(self, sha: str) -> Tuple[bytes, str]:
        """Encoded payload of ``sha``; NotFoundError if no served store holds it."""
        hit = self.cached(sha)
        if hit is not None:
            return hit
        for path, key in self.locate(sha):
            try:
                with self.registry.entry(path) as ent:
                    data = ent.cs.backend.payload(key)
            except NotFoundError:  # removed since the scan
                continue
            if checksum(data) != sha:  # a stale index row: never serve wrong bytes
                continue
            out = encode_payload(data)
            self._remember(sha, out)
            return out
        raise NotFoundError(f"no store of this service holds a payload with sha256 {sha}")

    def _remember(self, sha: str, item: Tuple[bytes, str]) -> None:
        n = len(item[0])
        if n > self.cache_bytes // 4:
            return
        with self._bytes_lock:
            if sha in self._bytes:
                return
            self._bytes[sha] = item
            self._held += n
            while self._held > self.cache_bytes:
                _, (old, _t) = self._bytes.popitem(last=False)
                self._held -= len(old)


async def _payload(request: Request) -> Response:
    sha = request.path_params["sha256"]
    query_params(request, ())
    if not _SHA_RE.match(sha):
        raise InvalidInputError(f"{sha[:80]!r} is not a sha256 (64 lower-case hex digits)")
    etag = f'"{sha}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    index = request.app.state.payloads
    hit = index.cached(sha) or await run_in_threadpool(index.get, sha)
    return Response(hit[0], media_type=hit[1], headers=headers)


routes = [Route(API_PREFIX + "/payloads/{sha256}", _payload, methods=["GET"])]
