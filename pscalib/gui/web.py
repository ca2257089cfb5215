"""Request plumbing shared by the GUI's page modules: who is asking (:class:`Ctx`), HTTP
statuses of errors, bounded form parsing and the same-origin check."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..errors import (AccessDeniedError, ConflictError, InvalidInputError, ProtectedByTagError,
                      PscalibError)
from ..service.errors import status_of
from . import auth
from .pages import layout

if TYPE_CHECKING:  # pragma: no cover
    from .app import Gui

__all__ = ["HttpError", "status_for", "Ctx", "one_line", "as_int", "same_origin",
           "small_form", "bounded_form"]


class HttpError(Exception):
    """A GUI answer with its own status (413 for a too large upload, 405 ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def status_for(exc: BaseException, user: Optional[str]) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, AccessDeniedError):
        return 401 if user is None else 403
    if isinstance(exc, (ProtectedByTagError, ConflictError)):
        return 409  # refused because of what the store holds (a published tag ...)
    return status_of(exc)


class Ctx:
    """Who is asking: user (or None), CSRF basis and token, and what they may do."""

    def __init__(self, gui: "Gui", request: Request):
        self.request = request
        self.settings = gui.settings
        self.user, self.basis = gui.identify(request)
        self.csrf = auth.csrf_token(self.settings, self.basis) if self.basis else None
        self.can_write, self.why = auth.may_write(self.settings, self.user)

    def page(self, title: str, body: str, crumbs=(), status: int = 200,
             message: Optional[str] = None) -> HTMLResponse:
        msg = message or self.request.query_params.get("done")
        return HTMLResponse(layout(title, body, self.user, self.csrf, crumbs, msg[:300]
                                   if msg else None), status_code=status,
                            headers={"Cache-Control": "no-store"})


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:1000] or type(exc).__name__


def as_int(text: Any, what: str, low: int = 1) -> int:
    try:
        n = int(str(text))
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be a number such as 1, got {str(text)[:40]!r}") \
            from None
    if not low <= n < 10**9:
        raise InvalidInputError(f"{what} must be a number from {low}, got {n}")
    return n


def same_origin(request: Request) -> None:
    """Refuse a POST whose Origin (sent by browsers) is another site."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise AccessDeniedError(f"request from another site ({origin[:100]}) refused")


async def small_form(request: Request):
    """A form without files: at most 64 kB."""
    return await bounded_form(request, 64 * 1024)


async def bounded_form(request: Request, limit: int):
    """The form of a POST whose body is at most ``limit`` bytes (else 413, read no more)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit + 64 * 1024:
                raise HttpError(413, f"upload of {int(declared):,} bytes is larger than the "
                                     f"limit of {limit:,} bytes; nothing was changed")
        except ValueError:
            raise HttpError(400, "malformed Content-Length") from None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit + 64 * 1024:
            raise HttpError(413, f"upload larger than the limit of {limit:,} bytes; nothing "
                                 f"was changed")
        chunks.append(chunk)
    body = b"".join(chunks)

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}
    clone = Request(request.scope, replay)
    try:
        return await clone.form(max_files=1, max_fields=50, max_part_size=limit + 1)
    except Exception as exc:  # malformed multipart/urlencoded bodies
        if isinstance(exc, (PscalibError, HttpError)):
            raise
        raise HttpError(400, f"malformed form data ({one_line(exc)[:200]}); nothing was "
                             f"changed") from None
