"""The ASGI application of ``dcs serve``: :func:`create_app`.

Other parts of pscalib (the web GUI, management routes) add their routes with
``create_app(calib, extra_routes=[...])``; inside a route, open a store of the served
calib directory with :func:`pscalib.service.registry.open_store` (``open_store(request,
name, t=None)``) or ``request.app.state.registry``. ``app.state`` holds:

``registry``   :class:`~pscalib.service.registry.StoreRegistry` of the calib directory
``payloads``   :class:`~pscalib.service.payloads.PayloadIndex` (sha256 -> store)
``settings``   :class:`ServiceSettings`
``stats``      :class:`RequestStats` (what ``GET /api/v1/stats`` reports)
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..errors import InvalidInputError, NotFoundError, PscalibError
from . import detectors, payloads, stores
from .answers import JSON_TYPE, error_answer, json_answer
from .encode import API_PREFIX, dumps
from .payloads import PayloadIndex
from .registry import StoreRegistry

__all__ = ["create_app", "ServiceSettings", "RequestStats"]


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one service instance.

    Attributes
    ----------
    max_age
        ``Cache-Control: max-age`` (seconds) of lookup, tree and listing answers: how long
        a cache in front may answer without asking again (a commit becomes visible through
        the cache after at most this long; the service itself sees it at once).
    payload_cache_bytes
        Bytes of encoded payloads kept in memory (payloads never change).
    """
    max_age: int = 10
    payload_cache_bytes: int = 256 * 2**20


class RequestStats:
    """Counts of requests that reached pscalib, by route (for load tests and monitoring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_route: Dict[str, int] = {}

    def count(self, route: str) -> None:
        with self._lock:
            self.total += 1
            self.by_route[route] = self.by_route.get(route, 0) + 1

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"requests": self.total, "by_route": dict(self.by_route)}


class _CountRequests:
    """ASGI middleware: counts every HTTP request except the stats route itself (by route
    group when it arrives; a thin layer, since it runs for every request)."""

    def __init__(self, app, stats: RequestStats):
        self.app = app
        self.stats = stats

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path != f"{API_PREFIX}/stats":
                self.stats.count(_route_group(path))
        return await self.app(scope, receive, send)


def _route_group(path: str) -> str:
    parts = path[len(API_PREFIX):].strip("/").split("/") if path.startswith(API_PREFIX) else []
    if not parts or not parts[0]:
        return "other"
    if parts[0] == "stores":
        return "lookup" if len(parts) >= 3 else "store"
    return parts[0]


def _stats(request: Request) -> Response:
    doc = request.app.state.stats.snapshot()
    return Response(dumps(doc), media_type=JSON_TYPE, headers={"Cache-Control": "no-store"})


def _health(request: Request) -> Response:
    return Response(dumps({"status": "ok", "pscalib": __version__, "api": 1}),
                    media_type=JSON_TYPE, headers={"Cache-Control": "no-store"})


def _index(request: Request) -> Response:
    return json_answer(request, {
        "api": API_PREFIX, "pscalib": __version__,
        "routes": [f"{API_PREFIX}/detectors", f"{API_PREFIX}/stores/{{name}}",
                   f"{API_PREFIX}/stores/{{name}}/{{ctype}}?t=...",
                   f"{API_PREFIX}/payloads/{{sha256}}", f"{API_PREFIX}/stats",
                   f"{API_PREFIX}/health"]}, request.app.state.settings.max_age)


async def _library_error(request: Request, exc: Exception) -> Response:
    return error_answer(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    code = getattr(exc, "status_code", 500)
    if code == 404:
        err: Exception = NotFoundError(f"no route {request.url.path[:200]!r}; the API is "
                                       f"described at {API_PREFIX}")
    elif code == 405:
        err = InvalidInputError(f"method {request.method} is not allowed here; the service "
                                f"is read-only (GET and HEAD)")
    else:
        err = InvalidInputError(str(getattr(exc, "detail", exc)))
    resp = error_answer(err)
    if code == 405:
        resp.status_code = 405
        resp.headers["Allow"] = "GET, HEAD"
    return resp


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_answer(exc)


def _closing(registry: StoreRegistry):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        registry.close()  # close the HDF5 files at shutdown
    return lifespan


def create_app(calib_dir: os.PathLike, *, extra_routes: Sequence[BaseRoute] = (),
               settings: Optional[ServiceSettings] = None,
               max_open: int = 64) -> Starlette:
    """The read-only HTTP API over one calib directory, as a Starlette (ASGI) app.

    Parameters
    ----------
    calib_dir
        The calib directory served (a repository or a workspace).
    extra_routes
        More routes or mounts (e.g. the web GUI), matched after the API routes.
    settings
        :class:`ServiceSettings` (default: max-age 10 s, 256 MiB payload memory cache).
    max_open
        Store files kept open at once.

    Raises
    ------
    InvalidInputError
        ``calib_dir`` is not a directory.
    """
    calib = Path(calib_dir)
    if not calib.is_dir():
        raise InvalidInputError(f"{calib} is not a directory; give the calib directory to serve "
                                f"(it holds <dettype>/<detname>.h5 files)")
    settings = settings or ServiceSettings()
    registry = StoreRegistry(calib, max_open=max_open)
    routes: List[BaseRoute] = [Route(API_PREFIX, _index, methods=["GET"]),
              Route(f"{API_PREFIX}/stats", _stats, methods=["GET"]),
              Route(f"{API_PREFIX}/health", _health, methods=["GET"])]
    routes += detectors.routes + stores.routes + payloads.routes + list(extra_routes)
    app = Starlette(routes=routes, exception_handlers={
        PscalibError: _library_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=_closing(registry))
    app.state.registry = registry
    app.state.payloads = PayloadIndex(registry, settings.payload_cache_bytes)
    app.state.settings = settings
    app.state.stats = RequestStats()
    app.add_middleware(_CountRequests, stats=app.state.stats)
    return app
