"""DCType, DCRange and DCVersion: thin handles on the levels below the store."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import numpy as np

from ..errors import (InvalidInputError, RangeNotFoundError, VersionNotFoundError)
from ..timestamps import OPEN_END, TimeLike, format_ns, to_ns, to_ns_or_none
from . import layout as L
from .backend import VersionInfo
from .dcbase import DCBase
from .payload import Payload
from .states import (DEPRECATED, VALID, StateInfo, check_reason, check_state,
                     parse_include)
from .tags import version_tags

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["DCType", "DCRange", "DCVersion"]


class DCType(DCBase):
    """One calibration type (``pedestals``, ``geometry``, ...) of a store."""

    __slots__ = ()

    def __init__(self, store: "DCStore", ctype: str):
        super().__init__(store, (ctype,))

    def ctype(self) -> str:
        return self._key[0]

    name = property(ctype)

    def _describe(self) -> str:
        return f"calibration type {self.ctype()!r} of {self._store.path}"

    def _require_exists(self) -> None:
        self._store._require_ctype(self.ctype())

    def ranges(self) -> List["DCRange"]:
        """All ranges, ordered by begin then end."""
        tab = self._store._table(self.ctype())
        pairs = sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist()))
        return [DCRange(self._store, self.ctype(), b, e) for b, e in pairs]

    def __iter__(self):
        return iter(self.ranges())

    def __len__(self) -> int:
        return len(self._store._table(self.ctype()).tsbegin)

    def rangeobj(self, key: Any, end: Any = "__unset__") -> "DCRange":
        """Find a range by its name, by ``(begin, end)``, or by a unique begin time.

        ``rangeobj(begin, end)`` is accepted too; use ``end=None`` for an open range.
        """
        if end != "__unset__":
            key = (key, end)
        if isinstance(key, DCRange):  # its times are ns already: to_ns would read seconds
            key = (np.datetime64(key.tsbegin(), "ns"),
                   None if key.is_open() else np.datetime64(key.tsend(), "ns"))
        tab = self._store._table(self.ctype())
        pairs = list(zip(tab.tsbegin.tolist(), tab.tsend.tolist()))
        if isinstance(key, str):
            for b, e in pairs:
                if L.range_name(b, e) == key:
                    return DCRange(self._store, self.ctype(), b, e)
            if "_" in key:  # a range name (times never contain '_'): do not parse it as a time
                raise RangeNotFoundError(
                    f"{self.ctype()!r} has no range named {key!r}; ranges: "
                    f"{', '.join(L.range_name(*p) for p in sorted(pairs)) or 'none'}")
        if isinstance(key, tuple) and len(key) == 2:
            b = to_ns(key[0])
            e = to_ns_or_none(key[1])
            e = OPEN_END if e is None else e
        else:
            b = to_ns(key)
            hits = [(bb, ee) for bb, ee in pairs if bb == b]
            if len(hits) == 1:
                return DCRange(self._store, self.ctype(), *hits[0])
            if not hits:
                raise RangeNotFoundError(
                    f"{self.ctype()!r} has no range named or beginning at {key!r}; ranges: "
                    f"{', '.join(L.range_name(*p) for p in sorted(pairs)) or 'none'}")
            raise InvalidInputError(
                f"{len(hits)} ranges of {self.ctype()!r} begin at {format_ns(b)}: "
                f"{', '.join(L.range_name(*p) for p in sorted(hits))}; give the range name")
        if (b, e) not in pairs:
            raise RangeNotFoundError(f"{self.ctype()!r} has no range {L.range_name(b, e)}")
        return DCRange(self._store, self.ctype(), b, e)

    def range_at(self, tsp: TimeLike) -> "DCRange":
        """The range the selection rule picks at ``tsp``."""
        b, e, _ = self._store._select(self.ctype(), to_ns(tsp))
        return DCRange(self._store, self.ctype(), b, e)

    def get(self, tsp: TimeLike, vers: Any = None, *, tsprod: Optional[TimeLike] = None,
            include: Any = ()) -> Payload:
        return self._store.get(self.ctype(), tsp, vers, tsprod=tsprod, include=include)

    def add_range(self, tsbegin: TimeLike, tsend: Optional[TimeLike] = None) -> "DCRange":
        """Create an empty range (ignored by ``get`` until it has a version)."""
        return self._store._add_range(self.ctype(), tsbegin, tsend)

    def del_range(self, key: Any) -> None:
        """Delete a range with all its versions (history stays at this type)."""
        rng = self.rangeobj(key)
        self._store._del_range(rng)

    def add_constants(self, data: Any, tsbegin: TimeLike, tsend: Optional[TimeLike] = None,
                      **kw) -> "DCVersion":
        return self._store.add_constants(self.ctype(), data, tsbegin, tsend, **kw)

    def __repr__(self) -> str:
        return f"<DCType {self.ctype()!r} ({len(self)} ranges) of {self._store.path}>"


class DCRange(DCBase):
    """A validity range ``[tsbegin, tsend)`` of one calibration type."""

    __slots__ = ()

    def __init__(self, store: "DCStore", ctype: str, tsbegin: int, tsend: int):
        super().__init__(store, (ctype, int(tsbegin), int(tsend)))

    def _describe(self) -> str:
        return f"range {self.range()} of {self.ctype()!r}"

    def _require_exists(self) -> None:
        self._store._require_range(self._key)

    def ctype(self) -> str:
        return self._key[0]

    def tsbegin(self) -> int:
        """Begin as int ns since the epoch."""
        return self._key[1]

    def tsend(self) -> int:
        """End as int ns (:data:`~pscalib.timestamps.OPEN_END` when open)."""
        return self._key[2]

    def begin(self) -> str:
        """Begin as ISO 8601 text."""
        return format_ns(self.tsbegin())

    def end(self) -> str:
        """End as ISO 8601 text, or ``'end'`` when the range is open."""
        return format_ns(self.tsend())

    def is_open(self) -> bool:
        return self.tsend() == OPEN_END

    def range(self) -> str:
        """The range's name (its HDF5 group name)."""
        return L.range_name(self.tsbegin(), self.tsend())

    name = property(range)

    def covers(self, tsp: TimeLike) -> bool:
        t = to_ns(tsp)
        end = self.tsend()
        if self._store._backend_for_read().end_inclusive and end != OPEN_END:
            return self.tsbegin() <= t <= end
        return self.tsbegin() <= t < end

    def versions(self) -> List["DCVersion"]:
        """All versions, by number."""
        vs = self._store._backend_for_read().versions(*self._key)
        return [DCVersion(self._store, self._key + (v,)) for v in vs]

    def __iter__(self):
        return iter(self.versions())

    def __len__(self) -> int:
        return len(self._store._backend_for_read().versions(*self._key))

    def versdef(self) -> int:
        """Number of the default version (0 if the range has no version)."""
        return self._store._default_of(self._key)

    def versobj(self, vers: Any = None) -> "DCVersion":
        """A version by number (``3``, ``'v0003'``); None gives the default version."""
        if vers is None:
            v = self.versdef()
            if v == 0:
                raise VersionNotFoundError(f"{self._describe()} has no versions")
            return DCVersion(self._store, self._key + (v,))
        v = _parse_vers(vers)
        if v not in self._store._backend_for_read().versions(*self._key):
            raise VersionNotFoundError(
                f"{self._describe()} has no version {vers!r}; versions: "
                f"{[x.version() for x in self.versions()] or 'none'}")
        return DCVersion(self._store, self._key + (v,))

    def version_at(self, tsprod: TimeLike, *, include: Any = ()) -> "DCVersion":
        """The newest valid version produced at or before ``tsprod``.

        Deprecated versions are skipped; candidates only with ``include=("candidate",)``.
        """
        t = to_ns(tsprod)
        ok = {VALID} | parse_include(include)
        be = self._store._backend_for_read()
        best = None
        for ver in self.versions():
            tp = ver.tsprod()
            if tp <= t and (best is None or (tp, ver.version()) > best[0]) and \
                    be.version_state(ver._key).state in ok:
                best = ((tp, ver.version()), ver)
        if best is None:
            raise VersionNotFoundError(f"{self._describe()} has no {' or '.join(sorted(ok))} "
                                       f"version produced at or before {format_ns(t)}")
        return best[1]

    def set_versdef(self, vers: Any) -> None:
        """Make ``vers`` the default version; recorded in history."""
        self._store._set_default(self._key, _parse_vers(vers))

    def add_version(self, data: Any, **kw) -> "DCVersion":
        """Add a version to this range (see :meth:`DCStore.add_constants`)."""
        # ns as datetime64: plain ints would be read as Unix seconds
        end = None if self.is_open() else np.datetime64(self.tsend(), "ns")
        return self._store.add_constants(self.ctype(), data,
                                         np.datetime64(self.tsbegin(), "ns"), end, **kw)

    def del_version(self, vers: Any) -> None:
        """Delete a version (history stays at this range)."""
        self._store._del_version(self.versobj(vers))

    def get(self, vers: Any = None) -> Payload:
        return self.versobj(vers).calib()

    def __repr__(self) -> str:
        return f"<DCRange {self.ctype()}/{self.range()} default v{self.versdef():04d}>"


class DCVersion(DCBase):
    """One version of a range: a payload (ndarray or text) and its production time."""

    __slots__ = ()

    def _describe(self) -> str:
        return (f"version {self.version()} of range {L.range_name(*self._key[1:3])} of "
                f"{self._key[0]!r}")

    def _require_exists(self) -> None:
        self._store._require_version(self._key)

    def ctype(self) -> str:
        return self._key[0]

    def rangeobj(self) -> DCRange:
        return DCRange(self._store, *self._key[:3])

    def version(self) -> int:
        return self._key[3]

    def info(self) -> VersionInfo:
        """Metadata without reading the payload: tsprod, kind, sha256, dtype, shape, nbytes."""
        return self._store._backend_for_read().version_info(self._key)

    def tsprod(self) -> int:
        """Production time stamp, int ns since the epoch."""
        return self.info().tsprod

    def kind(self) -> str:
        """``'ndarray'`` or ``'text'``."""
        return self.info().kind

    def is_default(self) -> bool:
        return self._store._default_of(self._key[:3]) == self.version()

    def tags(self) -> List[str]:
        """Names of the tags that reference this version (sorted; docs/reproducibility.rst)."""
        return version_tags(self._store, self._key)

    # ------------------------------------------------------------ states
    def state(self) -> str:
        """``'candidate'``, ``'valid'`` or ``'deprecated'`` (docs/format.rst)."""
        return self.state_info().state

    def state_info(self) -> StateInfo:
        """The state and its last change: ``StateInfo(state, tsns, user, reason)``."""
        return self._store._backend_for_read().version_state(self._key)

    def set_state(self, state: str, reason: str, *, make_default: bool = True) -> None:
        """Move to ``state`` if the rules allow it (else StateTransitionError).

        Allowed: candidate -> valid, candidate -> deprecated, valid -> deprecated. The
        reason, user and time go into the state attributes and the version's history.
        """
        check_state(state)
        check_reason(reason)
        with self._store.transaction():
            self._store.writer().set_state(self._key, state, reason, make_default)

    def validate(self, reason: str, *, make_default: bool = True) -> None:
        """candidate -> valid; it becomes the range's default (unless ``make_default`` is
        False and the range already has one)."""
        self.set_state(VALID, reason, make_default=make_default)

    def deprecate(self, reason: str) -> None:
        """candidate/valid -> deprecated (final): never selected again. If it was the
        default, the newest valid version of the range becomes the default (or none)."""
        self.set_state(DEPRECATED, reason)

    def calib(self) -> Payload:
        """The payload: numpy array or str."""
        return self._store._backend_for_read().payload(self._key)

    data = calib

    def __repr__(self) -> str:
        return (f"<DCVersion {self._key[0]}/{L.range_name(*self._key[1:3])}/"
                f"{L.version_name(self.version())}>")


def _parse_vers(vers: Any) -> int:
    if isinstance(vers, DCVersion):
        return vers.version()
    if isinstance(vers, str):
        text = vers.strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        parsed = int(digits) if digits.isascii() and digits.isdigit() else None
        if parsed is None:
            raise InvalidInputError(f"version {vers!r} is not a version number such as 3 or "
                                    f"'v0003'")
        vers = parsed
    if isinstance(vers, (bool, np.bool_)) or not isinstance(vers, (int, np.integer)):
        raise InvalidInputError(f"version must be a positive integer, got {vers!r}")
    if int(vers) < 1:
        raise InvalidInputError(f"version numbers start at 1, got {vers}")
    if int(vers) > 999_999_999:  # keeps 'last + 1' far from int64 overflow
        raise InvalidInputError(f"version number {vers} is too large (limit 999999999)")
    return int(vers)
