"""DCBase: parameters (dictpars) and history shared by every level of a store."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..errors import InvalidNameError, InvalidParameterError, NotFoundError
from ..names import validate_parkey
from ..timestamps import format_ns
from .history import HistoryRecord
from .values import encode_par

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["DCBase"]

_MISSING = object()


class DCBase:
    """Common part of DCStore, DCType, DCRange and DCVersion.

    Objects are thin handles: a reference to the store and a key (see
    :mod:`pscalib.store.backend`). They stay valid across transactions and refreshes as
    long as the object exists in the file.
    """

    __slots__ = ("_store", "_key")

    def __init__(self, store: "DCStore", key: tuple):
        self._store = store
        self._key = key

    # ----------------------------------------------------------------- dictpars
    def dictpars(self) -> Dict[str, Any]:
        """All parameters of this object as a dict (a copy)."""
        return self._store._backend_for_read().dictpars(self._key)

    def par(self, key: str, default: Any = _MISSING) -> Any:
        """Value of parameter ``key``; ``default`` if given and absent, else an error."""
        if not isinstance(key, str):
            raise InvalidNameError(f"parameter key must be a string, got {type(key).__name__}")
        pars = self.dictpars()
        if key in pars:
            return pars[key]
        if default is not _MISSING:
            return default
        raise NotFoundError(f"{self._describe()} has no parameter {key!r}; it has "
                            f"{sorted(pars) or 'none'}")

    def set_par(self, key: str, value: Any) -> None:
        """Set (add or replace) one parameter; recorded in history."""
        self.set_pars({key: value})

    add_par = set_par  # DCS design name

    def set_pars(self, pars: Dict[str, Any]) -> None:
        """Set several parameters in one transaction and one history record."""
        if not isinstance(pars, dict):
            raise InvalidParameterError(f"dictpars must be a dict, got {type(pars).__name__}")
        for k, v in pars.items():
            validate_parkey(k)
            encode_par(k, v)  # validate every value before anything is written
        if not pars:
            return
        st = self._store
        with st.transaction():
            be = st.writer()
            self._require_exists()
            for k, v in pars.items():
                be.set_par(self._key, k, v)
            text = ", ".join(f"{k}={v!r}" for k, v in pars.items())
            be.append_history(self._key, "set_par", text)

    def del_par(self, key: str) -> None:
        """Delete one parameter; recorded in history."""
        validate_parkey(key)
        st = self._store
        with st.transaction():
            be = st.writer()
            self._require_exists()
            pars = be.dictpars(self._key)
            if key not in pars:
                raise NotFoundError(f"{self._describe()} has no parameter {key!r}")
            be.del_par(self._key, key)
            be.append_history(self._key, "del_par", f"{key} (was {pars[key]!r})")

    def clear_pars(self) -> None:
        """Delete every parameter (one history record)."""
        st = self._store
        with st.transaction():
            be = st.writer()
            self._require_exists()
            pars = be.dictpars(self._key)
            for k in pars:
                be.del_par(self._key, k)
            if pars:
                be.append_history(self._key, "clear_pars", ", ".join(sorted(pars)))

    # ------------------------------------------------------------------ history
    def history_records(self) -> List[HistoryRecord]:
        """History of this object, oldest first."""
        return self._store._backend_for_read().history(self._key)

    def history(self, fmt: Optional[str] = None, sep: str = "\n") -> str:
        """History as text, one record per line (see :meth:`HistoryRecord.format`)."""
        return sep.join(r.format(fmt) for r in self.history_records())

    def histdict(self) -> Dict[str, str]:
        """``{time: record}``; records in the same ns get suffixes ``#2``, ``#3`` ..."""
        out: Dict[str, str] = {}
        for r in self.history_records():
            key = base = format_ns(r.tsns)
            n = 1
            while key in out:
                n += 1
                key = f"{base}#{n}"
            out[key] = f"{r.action}: {r.record}" if r.action else r.record
        return out

    def add_history(self, record: str, action: str = "note") -> HistoryRecord:
        """Append a free-text record (a note) to this object's history."""
        if not isinstance(record, str) or not record.strip():
            raise InvalidParameterError("a history record must be a non-empty string")
        if not isinstance(action, str) or not action.strip():
            raise InvalidParameterError("a history action must be a non-empty string")
        st = self._store
        with st.transaction():
            self._require_exists()
            return st.writer().append_history(self._key, action, record)

    # ------------------------------------------------------------------ helpers
    def _require_exists(self) -> None:
        """Raise NotFoundError if this object no longer exists (checked in transactions)."""

    def _describe(self) -> str:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DCBase) and type(self) is type(other)
                and self._store is other._store and self._key == other._key)

    def __hash__(self) -> int:
        return hash((type(self).__name__, id(self._store), self._key))
