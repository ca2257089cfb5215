"""Library errors as HTTP answers: ``{"error": <class name>, "message": <library text>}``.

Status codes: 400 for bad input (:class:`~pscalib.errors.InvalidInputError`), 404 for
anything asked for that does not exist (:class:`~pscalib.errors.NotFoundError`), 503 for
problems of the served files or the server (damaged or unreadable stores, locks, I/O),
500 for a bug (message without internals). The client maps the class name back to the
same exception class (:func:`error_class`).
"""
from __future__ import annotations

from typing import Type

from .. import errors as E

__all__ = ["status_of", "error_body", "error_class"]


def status_of(exc: BaseException) -> int:
    """HTTP status for a library exception."""
    if isinstance(exc, E.InvalidInputError):
        return 400
    if isinstance(exc, E.NotFoundError):
        return 404
    if isinstance(exc, E.PscalibError):
        return 503
    return 500


def error_body(exc: BaseException) -> dict:
    """The JSON error document (one line of text, like ``dcs`` prints)."""
    if isinstance(exc, E.PscalibError):
        return {"error": type(exc).__name__, "message": " ".join(str(exc).split())}
    return {"error": "InternalError",
            "message": f"internal error of the calibration service ({type(exc).__name__}); "
                       f"see the server log"}


def error_class(name: object) -> Type[E.PscalibError]:
    """The :mod:`pscalib.errors` class of that name (PscalibError if unknown)."""
    cls = getattr(E, str(name), None) if isinstance(name, str) and name in E.__all__ else None
    if isinstance(cls, type) and issubclass(cls, E.PscalibError):
        return cls
    return E.PscalibError
