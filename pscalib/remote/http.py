"""HTTP GET for the remote client: standard library only, timeouts, bounded retries.

Transient failures (connection refused or reset, timeouts, a transfer cut short, 502/503/504
from something that is not pscalib) are retried ``retries`` times in all with exponential
backoff; then :class:`~pscalib.errors.ServiceUnavailableError` is raised. Errors that the
service reports as JSON (``{"error": class, "message": text}``) are raised at once as the
same :mod:`pscalib.errors` class with the same message. Nothing here ever exits the
process or waits without a bound.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.parse
from typing import Dict, Mapping, NamedTuple, Optional

from ..errors import InvalidInputError, PscalibError, ServiceUnavailableError
from ..service.errors import error_class

__all__ = ["HttpClient", "Answer"]

_TRANSIENT_STATUS = (502, 503, 504)
_CHUNK = 1 << 20


class Answer(NamedTuple):
    """One HTTP answer: status (200 or 304), headers (lower-case names), body bytes."""
    status: int
    headers: Dict[str, str]
    body: bytes


class _Transient(Exception):
    """Internal: a failure worth another attempt."""


def _check_base(url: str) -> str:
    if not isinstance(url, str):
        raise InvalidInputError(f"service URL must be a string, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{url!r} is not an http:// or https:// URL of a calibration "
                                f"service, e.g. 'http://calib-server:8080'")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"service URL {url!r} must not have a query or fragment")
    return url.rstrip("/")


class HttpClient:
    """GET requests against one service base URL (``http://host:port``).

    Parameters
    ----------
    base
        Base URL of the service (or of an HTTP cache in front of it).
    timeout
        Seconds per attempt for connecting and for each read.
    retries
        Attempts in all before ServiceUnavailableError.
    backoff
        First wait between attempts (doubles each time, at most 2 s).
    """

    def __init__(self, base: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.1):
        self.base = _check_base(base)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # no proxies from the environment: the client talks to the URL it was given (put
        # the cache's URL there to go through a cache). urllib.request (with ssl) is
        # imported here, not with pscalib: 'import pscalib' stays cheap.
        import urllib.request
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def url(self, path: str, params: Optional[Mapping[str, str]] = None) -> str:
        q = f"?{urllib.parse.urlencode(sorted(params.items()))}" if params else ""
        return f"{self.base}{path}{q}"

    def get(self, path: str, params: Optional[Mapping[str, str]] = None,
            etag: Optional[str] = None, max_bytes: Optional[int] = None) -> Answer:
        """GET ``path`` (already quoted); 304 is returned when ``etag`` still matches.

        Raises
        ------
        ServiceUnavailableError
            After ``retries`` failed attempts.
        PscalibError (subclass)
            The error the service reported (e.g. NoValidConstantsError, InvalidTimeError).
        """
        url = self.url(path, params)
        last = "no attempt"
        for attempt in range(self.retries):
            if attempt:
                time.sleep(min(2.0, self.backoff * 2 ** (attempt - 1)))
            try:
                return self._once(url, etag, max_bytes)
            except _Transient as exc:
                last = str(exc)
        raise ServiceUnavailableError(
            f"calibration service {self.base} did not answer {path} after {self.retries} "
            f"attempt(s) (last: {last}); check that 'dcs serve' (or the cache in front of it) "
            f"runs there, or use cached answers with stale_ok=True / offline=True")

    def _once(self, url: str, etag: Optional[str], max_bytes: Optional[int]) -> Answer:
        import http.client
        import urllib.error
        import urllib.request
        req = urllib.request.Request(url, headers={"Accept": "*/*", "User-Agent": "pscalib"})
        if etag:
            req.add_header("If-None-Match", etag)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                headers = {k.lower(): v for k, v in resp.headers.items()}
                body = _read_all(resp, headers, max_bytes)
                return Answer(resp.status, headers, body)
        except urllib.error.HTTPError as exc:
            headers = {k.lower(): v for k, v in exc.headers.items()} if exc.headers else {}
            if exc.code == 304:
                return Answer(304, headers, b"")
            try:
                raw = exc.read(1 << 16)
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
            err = _library_error(raw)
            if err is not None:
                raise err from None
            if exc.code in _TRANSIENT_STATUS:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
            raise PscalibError(f"calibration service answered {url} with HTTP {exc.code} "
                               f"{exc.reason}") from None
        except urllib.error.URLError as exc:
            raise _Transient(f"{exc.reason}") from None
        except (socket.timeout, TimeoutError) as exc:
            raise _Transient(f"timed out after {self.timeout} s ({exc})") from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from None


def _read_all(resp, headers: Dict[str, str], max_bytes: Optional[int]) -> bytes:
    """The whole body; a transfer cut short (fewer bytes than Content-Length) is transient."""
    want = headers.get("content-length")
    n = int(want) if want and want.isdigit() else None
    if max_bytes is not None and n is not None and n > max_bytes:
        raise PscalibError(f"answer of {n} bytes exceeds the limit of {max_bytes}")
    import http.client
    buf = bytearray()
    while True:
        try:
            chunk = resp.read(_CHUNK)
        except http.client.IncompleteRead as exc:
            raise _Transient(f"transfer cut short after {len(buf) + len(exc.partial)} of "
                             f"{n} bytes") from None
        if not chunk:
            break
        buf += chunk
        if max_bytes is not None and len(buf) > max_bytes:
            raise PscalibError(f"answer exceeds the limit of {max_bytes} bytes")
    if n is not None and len(buf) != n:
        raise _Transient(f"transfer cut short after {len(buf)} of {n} bytes")
    return bytes(buf)


def _library_error(raw: bytes) -> Optional[PscalibError]:
    """The pscalib exception described by an error document, or None if it is not one."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("message"), str) or \
            not isinstance(doc.get("error"), str):
        return None
    if doc["error"] == "InternalError":
        return PscalibError(doc["message"])
    return error_class(doc["error"])(doc["message"])
