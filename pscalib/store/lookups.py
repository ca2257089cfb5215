"""Lookups of :class:`~pscalib.store.DCStore` by time, event or run, and of every ctype.

``get``/``version_at``/``get_all`` take the time of the lookup from ``tsp`` or ``run=``
(:func:`pscalib.resolver.lookup_time`: the alias the store was opened through must mean its
detector then), and fall through, ctype by ctype, to the later places of the search order
when the store was found through it (:func:`pscalib.resolver.retry_through`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ..errors import InvalidInputError, VersionNotFoundError
from ..names import validate_ctype
from ..paths import ResolvedStore
from ..resolver import LOOKUP_MISSES, lookup_ctypes, lookup_time, retry_through
from ..timestamps import TimeLike, format_ns
from . import layout as L
from .backend import Backend
from .dcobjects import DCRange, DCVersion, _parse_vers
from .payload import Payload

__all__ = ["TimedLookups"]


class TimedLookups:
    """Mixin of :class:`~pscalib.store.DCStore` (needs ``_select``, ``resolved``, ``path``
    and ``_backend_for_read``)."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by StoreFile / DCStore
        path: Path
        resolved: ResolvedStore

        def _select(self, ctype: str, t: int) -> Tuple[int, int, int]: ...

        def _backend_for_read(self) -> Backend: ...

    def _store_self(self) -> Any:
        """``self`` as the DCStore it is part of (for the handles' type)."""
        return self

    def get(self, ctype: str, tsp: Optional[TimeLike] = None, vers: Any = None, *,
            tsprod: Optional[TimeLike] = None, run: Optional[int] = None,
            experiment: Optional[str] = None) -> Payload:
        """The constants of ``ctype`` valid at ``tsp`` (or at the begin of ``run``).

        Parameters
        ----------
        ctype
            Calibration type, e.g. ``'pedestals'``.
        tsp
            The time (any form :func:`pscalib.timestamps.to_ns` accepts, including psana
            event-time objects such as ``evt.get(psana.EventId)``).
        vers
            None for the range's default version, or a version number (``3``/``'v0003'``).
        tsprod
            Instead of ``vers``: the newest version of the range produced at or before this
            time (reproduce what was current then).
        run, experiment
            Instead of ``tsp``: a run of ``experiment``'s run table (default: the store's
            workspace, else ``PSCALIB_EXPERIMENT``; see :mod:`pscalib.runs`).

        Returns
        -------
        numpy.ndarray or str

        Raises
        ------
        NoValidConstantsError
            No range covers ``tsp``.
        CtypeNotFoundError, VersionNotFoundError
        RunNotFoundError
            ``run`` is not in the run table (the message names the table file).
        AliasMismatchError
            The store was opened through an alias meaning another detector at ``tsp``.

        Found through the search order, a store lacking ``ctype`` (or a range valid then)
        answers from the next place having it (:mod:`pscalib.resolver`).
        """
        validate_ctype(ctype)
        return self._get_at(ctype, lookup_time(self, tsp, run, experiment), vers, tsprod)

    def _get_at(self, ctype: str, t: int, vers: Any, tsprod: Optional[TimeLike]) -> Payload:
        if vers is not None and tsprod is not None:
            raise InvalidInputError("give either vers or tsprod, not both")
        try:
            b, e, v = self._select(ctype, t)
        except LOOKUP_MISSES as miss:
            return retry_through(self, ctype, miss,
                                 lambda cs: cs._get_at(ctype, t, vers, tsprod))
        self._answered(ctype)
        be = self._backend_for_read()
        if tsprod is not None:
            v = DCRange(self._store_self(), ctype, b, e).version_at(tsprod).version()
        elif vers is not None:
            v = _parse_vers(vers)
            if v not in be.versions(ctype, b, e):
                raise VersionNotFoundError(
                    f"range {L.range_name(b, e)} of {ctype!r} (valid at {format_ns(t)}) has no "
                    f"version {v}; it has {be.versions(ctype, b, e)}")
        return be.payload((ctype, b, e, v))

    def _answered(self, ctype: str) -> None:
        # a store read over HTTP has no resolution of its own (the service resolved it)
        if self.resolved is not None and self.resolved.answers is not None:
            self.resolved.answers[ctype] = self.path

    def version_at(self, ctype: str, tsp: Optional[TimeLike] = None, vers: Any = None, *,
                   run: Optional[int] = None, experiment: Optional[str] = None) -> DCVersion:
        """The :class:`DCVersion` that :meth:`get` would read (maybe of a later place)."""
        validate_ctype(ctype)
        return self._version_at(ctype, lookup_time(self, tsp, run, experiment), vers)

    def _version_at(self, ctype: str, t: int, vers: Any) -> DCVersion:
        try:
            b, e, v = self._select(ctype, t)
        except LOOKUP_MISSES as miss:
            return retry_through(self, ctype, miss, lambda cs: cs._version_at(ctype, t, vers))
        self._answered(ctype)
        return DCRange(self._store_self(), ctype, b, e).versobj(v if vers is None else vers)

    def get_all(self, tsp: Optional[TimeLike] = None, *, run: Optional[int] = None,
                experiment: Optional[str] = None) -> Dict[str, Payload]:
        """Every ctype's constants valid at ``tsp`` (or ``run``): ``{ctype: constants}``.

        Ctypes without constants valid then are absent; found through the search order,
        ctypes only later places have are included (see :meth:`get`).
        """
        t = lookup_time(self, tsp, run, experiment)
        out: Dict[str, Payload] = {}
        for c in lookup_ctypes(self):
            try:
                out[c] = self._get_at(c, t, None, None)
            except LOOKUP_MISSES:
                continue
        return out

