"""RemoteClient: JSON answers and payloads of one service, through the local cache.

Offline rules (see docs/http.rst):

- payloads are named by their sha256, so a cached payload is always used without asking
  the service (it is verified on every read);
- lookups and store trees can change with every commit, so they are always asked for
  (conditionally: ``If-None-Match`` with the cached ETag, a 304 costs no body). Only when
  the service cannot be reached does the client fall back to the last cached answer, and
  only if asked to: ``stale_ok=True`` (use it, warn with :class:`StaleAnswerWarning` and
  set ``stale``) or ``offline=True`` (never ask; cached answers only).
"""
from __future__ import annotations

import json
import time
import urllib.parse
import warnings
from typing import Any, Mapping, Optional

from ..errors import PscalibError, ServiceUnavailableError
from ..store.payload import Payload
from ..timestamps import format_ns
from .cache import ClientCache
from .http import HttpClient

__all__ = ["RemoteClient", "StaleAnswerWarning"]

API = "/api/v1"
_MAX_JSON = 256 * 2**20


class StaleAnswerWarning(UserWarning):
    """A cached answer was used because the service could not be reached."""


class RemoteClient:
    """Access to one calibration service with a local cache (see module docstring)."""

    def __init__(self, http: HttpClient, cache: ClientCache, *, stale_ok: bool = False,
                 offline: bool = False):
        self.http = http
        self.cache = cache
        self.stale_ok = stale_ok
        self.offline = offline
        #: True if the last answer came from the cache because the service was unreachable
        self.stale = False

    @staticmethod
    def quote(name: str) -> str:
        return urllib.parse.quote(str(name), safe="")

    def doc(self, path: str, params: Optional[Mapping[str, str]] = None) -> Any:
        """The JSON document at ``path`` (revalidated against the cached copy)."""
        url = self.http.url(path, params)
        cached = self.cache.load_answer(url)
        if self.offline:
            if cached is None:
                raise ServiceUnavailableError(
                    f"offline: no cached answer for {url}; run once with the service "
                    f"reachable (offline=False) to fill the cache")
            self.stale = True
            return cached["doc"]
        try:
            etag = cached.get("etag") if cached else None
            ans = self.http.get(path, params, etag=etag if isinstance(etag, str) else None,
                                max_bytes=_MAX_JSON)
        except ServiceUnavailableError as exc:
            if cached is None:
                raise
            when = format_ns(int(cached["fetched"] * 1e9))
            if not self.stale_ok:
                raise ServiceUnavailableError(
                    f"{exc} (a cached answer from {when} exists; open the store with "
                    f"stale_ok=True to use it)") from None
            warnings.warn(StaleAnswerWarning(f"service unreachable; using the cached answer "
                                             f"from {when} for {url}"), stacklevel=3)
            self.stale = True
            return cached["doc"]
        self.stale = False
        if ans.status == 304 and cached is not None:
            return cached["doc"]
        try:
            doc = json.loads(ans.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PscalibError(f"calibration service answered {url} with something that is "
                               f"not JSON; is {self.http.base} a pscalib service?") from None
        self.cache.save_answer(url, ans.headers.get("etag"), doc, time.time())
        return doc

    def payload(self, sha: str, kind: str) -> Payload:
        """The payload named ``sha`` (cache first, then the service), verified."""
        data = self.cache.load_payload(sha, kind)
        if data is not None:
            return data
        if self.offline:
            raise ServiceUnavailableError(f"offline: payload {sha} is not in the cache "
                                          f"{self.cache.payload_dir}")
        path = f"{API}/payloads/{sha}"
        ans = self.http.get(path)
        return self.cache.verified(sha, kind, ans.body, self.http.url(path))
