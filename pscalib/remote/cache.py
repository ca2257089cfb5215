"""The remote client's local cache (``PSCALIB_CACHE``, default ``~/.cache/pscalib``).

Layout::

    <cache>/payloads/<sha256>.npy    an ndarray payload as .npy (as served)
    <cache>/payloads/<sha256>.txt    a text payload, UTF-8
    <cache>/answers/<key>.json       last answer of a lookup/tree URL with its ETag

Payload files are named by the payload's sha256 (:func:`pscalib.store.payload.checksum`)
and are checked against it on every read (a damaged file is removed and fetched again);
they are verified *before* they are written, and written atomically (temporary file +
rename, :func:`pscalib.ndarrio.write_file_atomic`), so no partial file is ever visible
under a final name. Answers are plain JSON documents written the same way.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional

import numpy as np

from ..errors import IntegrityError, StoreIOError
from ..ndarrio import write_file_atomic
from ..store.payload import Payload, checksum

__all__ = ["ClientCache", "decode_payload"]

_EXT = {"ndarray": ".npy", "text": ".txt"}


def decode_payload(body: bytes, kind: str) -> Payload:
    """A payload from the bytes the service sent (``.npy`` or UTF-8 text)."""
    if kind == "text":
        return body.decode("utf-8")
    return np.load(io.BytesIO(body), allow_pickle=False)


def _writing(data: bytes) -> Callable[[BinaryIO], None]:
    def write(fh: BinaryIO) -> None:
        fh.write(data)
    return write


class ClientCache:
    """Content-addressed payload files and last answers under one directory."""

    def __init__(self, root: os.PathLike):
        self.root = Path(root)
        self.payload_dir = self.root / "payloads"
        self.answer_dir = self.root / "answers"

    def _mkdir(self, d: Path) -> None:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreIOError(f"cannot create the cache directory {d} ({exc.strerror}); set "
                               f"PSCALIB_CACHE to a writable directory") from None

    # ---------------------------------------------------------------- payloads
    def payload_path(self, sha: str, kind: str) -> Path:
        return self.payload_dir / f"{sha}{_EXT.get(kind, '.npy')}"

    def load_payload(self, sha: str, kind: str) -> Optional[Payload]:
        """The cached payload if present and intact, else None (a bad file is removed)."""
        p = self.payload_path(sha, kind)
        try:
            body = p.read_bytes()
        except OSError:
            return None
        try:
            data = decode_payload(body, kind)
            if checksum(data) == sha:
                return data
        except (ValueError, UnicodeDecodeError, OSError, EOFError):
            pass
        try:
            p.unlink()  # damaged (disk error, manual edit): fetch again
        except OSError:
            pass
        return None

    def verified(self, sha: str, kind: str, body: bytes, source: str) -> Payload:
        """Decode ``body``, check it against ``sha`` and keep it; IntegrityError if wrong."""
        try:
            data = decode_payload(body, kind)
            ok = checksum(data) == sha
        except (ValueError, UnicodeDecodeError, EOFError):
            ok = False
        if not ok:
            raise IntegrityError(f"the payload received from {source} does not match its "
                                 f"sha256 {sha}; nothing was cached (a broken cache or proxy "
                                 f"in between?)")
        self._mkdir(self.payload_dir)
        write_file_atomic(self.payload_path(sha, kind), _writing(body))
        return data

    # ----------------------------------------------------------------- answers
    def _answer_path(self, url: str) -> Path:
        return self.answer_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:40]}.json"

    def load_answer(self, url: str) -> Optional[Dict[str, Any]]:
        """``{"url", "etag", "fetched", "doc"}`` of the last answer for ``url``, or None."""
        try:
            rec = json.loads(self._answer_path(url).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("url") != url or "doc" not in rec:
            return None
        return rec

    def save_answer(self, url: str, etag: Optional[str], doc: Any, fetched: float) -> None:
        self._mkdir(self.answer_dir)
        text = json.dumps({"url": url, "etag": etag, "fetched": fetched, "doc": doc})
        write_file_atomic(self._answer_path(url), _writing(text.encode("utf-8")))
