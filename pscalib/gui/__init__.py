"""The web GUI of ``dcs serve`` (``/gui``): browse stores, see pictures, manage constants.

Server-rendered HTML with a little vanilla JavaScript (``static/``), served by the same
Starlette app as the HTTP API (:func:`pscalib.service.app.create_app` with
``extra_routes=pscalib.gui.app.gui_routes(settings)``). Read-only unless a configuration
file (:func:`pscalib.gui.settings.load_settings`) enables writes; who may change what:
:mod:`.auth`. Nothing is imported here, so ``pscalib.gui.auth`` and ``.settings`` work
without the web stack. See docs/gui.rst.
"""
