"""HTTP answers of the API: JSON with ETag and max-age, 304 on a matching If-None-Match,
and JSON errors."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInputError
from .encode import dumps, etag_of
from .errors import error_body, status_of

__all__ = ["JSON_TYPE", "etag_matches", "json_answer", "json_bytes_answer", "error_answer",
           "IMMUTABLE", "query_params"]

JSON_TYPE = "application/json"
#: Cache-Control of content-addressed payloads: never changes, cache for a year.
IMMUTABLE = "public, max-age=31536000, immutable"


def etag_matches(request: Request, etag: str) -> bool:
    """True if the request's If-None-Match lists ``etag`` (or ``*``).

    Weak comparison (RFC 9110 13.1.2): a ``W/`` prefix added by a proxy that compressed the
    answer still matches.
    """
    header = request.headers.get("if-none-match")
    if not header:
        return False
    want = etag[2:] if etag.startswith("W/") else etag
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or (tag[2:] if tag.startswith("W/") else tag) == want:
            return True
    return False


def json_bytes_answer(request: Request, body: bytes, max_age: int,
                      etag: Optional[str] = None) -> Response:
    """200 with ``body`` (JSON bytes), or 304 if the client already has this ETag."""
    etag = etag or etag_of(body)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={int(max_age)}"}
    if etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON_TYPE, headers=headers)


def json_answer(request: Request, obj: Any, max_age: int) -> Response:
    return json_bytes_answer(request, dumps(obj), max_age)


def error_answer(exc: BaseException) -> Response:
    """The JSON error answer of a library exception (never cached by shared caches)."""
    return Response(dumps(error_body(exc)), status_code=status_of(exc), media_type=JSON_TYPE,
                    headers={"Cache-Control": "no-store"})


def query_params(request: Request, allowed: Tuple[str, ...]) -> Dict[str, str]:
    """The query parameters as a dict; InvalidInputError for unknown or repeated ones
    (a typo such as ``time=`` must not silently mean "no time")."""
    q = request.query_params
    unknown = sorted(set(q.keys()) - set(allowed))
    if unknown:
        names = ", ".join(map(repr, unknown[:5]))[:300]
        raise InvalidInputError(f"unknown query parameter(s) {names}; "
                                f"this route accepts {', '.join(allowed) or 'none'}")
    out = {}
    for k in q.keys():
        vals = q.getlist(k)
        if len(vals) != 1:
            raise InvalidInputError(f"query parameter {k!r} is given {len(vals)} times")
        out[k] = vals[0]
    return out
