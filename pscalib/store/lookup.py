"""Which version ``DCStore.get`` / ``version_at`` read: the selection rule plus a version
chosen by number, by production time or, with candidates included, by state
(docs/format.rst, "Selection rule")."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..errors import InvalidInputError, VersionNotFoundError
from ..names import validate_ctype
from ..timestamps import TimeLike, format_ns, to_ns
from . import layout as L
from .dcobjects import DCRange, _parse_vers
from .stateops import check_not_deprecated
from .states import parse_include

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["resolve"]


def resolve(store: "DCStore", ctype: str, tsp: TimeLike, vers: Any = None,
            tsprod: Optional[TimeLike] = None, include: Any = ()) -> tuple:
    """Key ``(ctype, tsbegin, tsend, version)`` of the version ``get`` returns."""
    validate_ctype(ctype)
    t = to_ns(tsp)
    if vers is not None and tsprod is not None:
        raise InvalidInputError("give either vers or tsprod, not both")
    inc = parse_include(include)
    b, e, v = store._select(ctype, t, inc)
    if tsprod is not None:
        v = DCRange(store, ctype, b, e).version_at(tsprod, include=inc).version()
    elif vers is not None:
        be = store._backend_for_read()
        v = _parse_vers(vers)
        if v not in be.versions(ctype, b, e):
            raise VersionNotFoundError(
                f"range {L.range_name(b, e)} of {ctype!r} (valid at {format_ns(t)}) has no "
                f"version {v}; it has {be.versions(ctype, b, e)}")
        check_not_deprecated(be, (ctype, b, e, v))  # asked by number: still never returned
    return (ctype, b, e, v)
