"""Routes ``GET /api/v1/stores/{name}`` (a store's tree) and
``GET /api/v1/stores/{name}/{ctype}?t=...`` (the lookup: which version is valid).

Both answer with a short ``max-age``, a strong ETag of the body and 304 on
``If-None-Match``; answers are memoized per store file state (see
:mod:`pscalib.service.registry`), so a commit is visible to the next request.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping, Optional

import numpy as np

from starlette.requests import Request
from starlette.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from ..errors import InvalidInputError
from ..names import validate_ctype
from ..runs import parse_run, run_time
from ..store import DCStore
from ..store.dcobjects import _parse_vers
from ..store.backend import Backend, VersionInfo
from ..store.payload import checksum
from ..timestamps import format_ns, to_ns
from .answers import json_bytes_answer, query_params
from .encode import (API_PREFIX, dumps, encode_pars, encode_version_info, store_tree)
from .registry import StoreEntry

__all__ = ["routes", "lookup_doc", "version_sha", "LOOKUP_PARAMS"]

#: Query parameters of a lookup. ``t``, ``vers`` and ``tsprod`` map to DCStore.get(); the
#: others are passed on when the library's lookup accepts them (400 otherwise).
LOOKUP_PARAMS = ("t", "vers", "tsprod", "run", "experiment", "tag", "asof")
_PASSED_ON = ("run", "tag", "asof")
_MEMO_LIMIT = 4096  # memoized answers per store file state
_TREE_KEY = ("tree",)


def version_sha(be: Backend, key: tuple, info: VersionInfo) -> str:
    """The sha256 naming a version's payload: stored, or computed (legacy files)."""
    return info.sha256 if info.sha256 else checksum(be.payload(key))


def _memo(ent: StoreEntry, key: Any, make) -> bytes:
    hit = ent.memo.get(key)
    if hit is None:
        if len(ent.memo) >= _MEMO_LIMIT:
            ent.memo.clear()
        hit = ent.memo[key] = make()
    return hit


def _tree_body(request: Request, q: Mapping[str, str]) -> bytes:
    name = request.path_params["name"]
    with request.app.state.registry.use(name, q.get("t")) as ent:
        def make() -> bytes:
            cs = ent.cs
            doc = store_tree(cs, lambda key, info: version_sha(cs.backend, key, info))
            doc["lookup_url"] = f"{API_PREFIX}/stores/{doc['detname']}/{{ctype}}?t={{time}}"
            return dumps(doc)
        return _memo(ent, _TREE_KEY, make)


async def _tree(request: Request) -> Response:
    q = query_params(request, ("t",))
    reg = request.app.state.registry
    body: Optional[bytes] = None if q else reg.memo_hit(request.path_params["name"], _TREE_KEY)
    if body is None:
        body = await run_in_threadpool(_tree_body, request, q)
    return json_bytes_answer(request, body, request.app.state.settings.max_age)


def _library_kwargs(q: Mapping[str, str]) -> Dict[str, Any]:
    """tag=/asof= for the library, refused clearly if its lookup lacks them (run= is turned
    into its begin time by :func:`lookup_doc`)."""
    kw: Dict[str, Any] = {k: q[k] for k in _PASSED_ON if k in q and k != "run"}
    if kw:
        params = inspect.signature(DCStore.version_at).parameters
        missing = [k for k in kw if k not in params]
        if missing:
            have = "".join(", " + k for k in _PASSED_ON if k in params)
            raise InvalidInputError(
                f"this pscalib's lookup does not support {', '.join(m + '=' for m in missing)}"
                f" (supported: t, vers, tsprod{have})")
    return kw


def lookup_doc(cs: DCStore, ctype: str, q: Mapping[str, str]) -> Dict[str, Any]:
    """The lookup answer for query ``q`` (strings as in the URL) on an open store."""
    validate_ctype(ctype)
    if ("t" in q) == ("run" in q):
        raise InvalidInputError("give the time of the lookup as t=<ISO 8601 or Unix seconds>, "
                                "e.g. ?t=2024-05-01T12:00:00, or a run as run=17 "
                                "[&experiment=X] (not both)")
    if "run" in q:  # the run's begin time from the run table, as DCStore.get(run=) does
        t = run_time(parse_run(q["run"]), q.get("experiment"), store_path=cs.path)
    elif "experiment" in q:
        raise InvalidInputError("experiment= is used only with run=")
    else:
        t = to_ns(q["t"])
    vers, tsprod = q.get("vers"), q.get("tsprod")
    if vers is not None and tsprod is not None:
        raise InvalidInputError("give either vers or tsprod, not both")
    kw = _library_kwargs(q)
    tns = np.datetime64(t, "ns")  # exact: a bare int would be read as seconds
    if kw or (vers is None and tsprod is None):
        ver = cs.version_at(ctype, tns, vers, tsprod=tsprod, **kw)
    else:  # the path DCStore.get takes, so that errors carry get's messages
        rng = cs.ctypeobj(ctype).range_at(tns)
        if tsprod is not None:
            ver = rng.version_at(tsprod)
        else:
            if _parse_vers(vers) not in [v.version() for v in rng.versions()]:
                cs.get(ctype, tns, vers)  # raises the library's VersionNotFoundError
            ver = rng.versobj(vers)
    rng = ver.rangeobj()
    be = cs.backend
    info = ver.info()
    doc = encode_version_info(info, version_sha(be, ver._key, info))
    doc.update({"detname": cs.detname(), "ctype": ctype, "t_ns": t, "t": format_ns(t),
                "range": rng.range(), "tsbegin_ns": rng.tsbegin(), "tsend_ns": rng.tsend(),
                "default": rng.versdef() == ver.version(),
                "dictpars": encode_pars(ver.dictpars())})
    return doc


def _lookup_body(request: Request, q: Mapping[str, str], key: tuple) -> bytes:
    name, ctype = request.path_params["name"], request.path_params["ctype"]
    with request.app.state.registry.use(name, q.get("t")) as ent:
        return _memo(ent, key, lambda: dumps(lookup_doc(ent.cs, ctype, q)))


async def _lookup(request: Request) -> Response:
    # A memoized answer is sent from the event loop; anything that reads a file runs in a
    # worker thread (a large store must not stall other requests). The thread hop costs
    # about as much as the whole memoized answer.
    q = query_params(request, LOOKUP_PARAMS)
    key = ("lookup", request.path_params["ctype"], tuple(sorted(q.items())))
    body: Optional[bytes] = request.app.state.registry.memo_hit(request.path_params["name"],
                                                                key)
    if body is None:
        body = await run_in_threadpool(_lookup_body, request, q, key)
    return json_bytes_answer(request, body, request.app.state.settings.max_age)


routes = [Route(API_PREFIX + "/stores/{name}", _tree, methods=["GET"]),
          Route(API_PREFIX + "/stores/{name}/{ctype}", _lookup, methods=["GET"])]
