"""The web GUI of ``dcs serve`` (``/gui``): browse stores, see pictures, manage constants.

Server-rendered HTML with a little vanilla JavaScript (``static/``), served by the same
Starlette app as the HTTP API (:func:`pscalib.service.app.create_app` with
``extra_routes=gui_routes(settings)``). Read-only unless a configuration file enables
writes (:mod:`.settings`); who may change what: :mod:`.auth`. See docs/gui.rst.
"""
from __future__ import annotations

__all__ = ["gui_routes", "load_settings"]


def gui_routes(settings=None):
    """The GUI's routes (needs the ``server`` extra; pictures need ``plot``)."""
    from .app import gui_routes as routes
    return routes(settings)


def load_settings(path=None):
    """The GUI configuration of ``path`` (None: read-only)."""
    from .settings import load_settings as load
    return load(path)
