"""Route ``GET /api/v1/detectors``: the detectors (store files) and aliases served."""
from __future__ import annotations

import os
from typing import Any, Dict, List

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..aliases import list_aliases
from .answers import json_answer, query_params
from .encode import API_PREFIX
from .registry import StoreRegistry

__all__ = ["routes", "detectors_doc"]


def detectors_doc(reg: StoreRegistry) -> Dict[str, Any]:
    """``{"detectors": [...], "aliases": [...]}`` of the served calib directory.

    Paths are relative to the calib directory (the server's layout is not exposed).
    """
    dets: List[Dict[str, Any]] = []
    for p in reg.store_files():
        det = p.name[:-3]
        dets.append({"detname": det, "dettype": det.split("-", 1)[0],
                     "url": f"{API_PREFIX}/stores/{det}"})
    aliases = []
    for rec in list_aliases(reg.calib):
        d = rec.to_dict()
        d["file"] = None if rec.path is None else os.path.relpath(rec.path, reg.calib)
        aliases.append(d)
    return {"detectors": dets, "aliases": aliases}


def detectors(request: Request) -> Response:
    app = request.app.state
    query_params(request, ())
    return json_answer(request, detectors_doc(app.registry), app.settings.max_age)


routes = [Route(f"{API_PREFIX}/detectors", detectors, methods=["GET"])]
