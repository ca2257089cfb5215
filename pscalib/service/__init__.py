"""The read-only HTTP service of ``dcs serve`` (optional extra ``pscalib[server]``).

:mod:`pscalib.service.app` (``create_app``) and the route modules need Starlette; the JSON
model encoding :mod:`pscalib.service.encode` and the error mapping
:mod:`pscalib.service.errors` do not (the remote client uses them). Nothing is imported
here, so ``import pscalib.service.encode`` works without the extra. See docs/http.rst.
"""

#: What to install for the service (printed when the extra is missing).
SERVER_EXTRA_HINT = "pip install 'pscalib[server]'"
