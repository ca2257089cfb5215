"""Client of the calibration service (``dcs serve``): the store read API over HTTP.

Standard library only (no extra needed), so analysis jobs can use it anywhere::

    >>> import pscalib.remote
    >>> cs = pscalib.remote.open("http://calib-server:8080", "cspad-0001")  # doctest: +SKIP
    >>> peds = cs.get("pedestals", "2024-05-01T12:00:00")                   # doctest: +SKIP

``pscalib.DCStore("http://calib-server:8080", "cspad-0001")`` is the same. Payloads are
cached by sha256 under ``PSCALIB_CACHE`` and verified on every use; see docs/http.rst for
timeouts, retries and the offline rules.
"""
from .client import RemoteClient, StaleAnswerWarning
from .store import RemoteBackend, RemoteStore, open

__all__ = ["open", "RemoteStore", "RemoteBackend", "RemoteClient", "StaleAnswerWarning"]
