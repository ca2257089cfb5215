"""Lookups of :class:`~pscalib.store.DCStore` by time, event or run, and of every ctype.

``get``/``version_at``/``get_all`` take the time of the lookup from ``tsp`` or ``run=``
(:func:`pscalib.resolver.lookup_time`: the alias the store was opened through must mean its
detector then), and fall through, ctype by ctype, to the later places of the search order
when the store was found through it (:func:`pscalib.resolver.retry_through`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ..manifest import check_lookup
from ..names import validate_ctype
from ..paths import ResolvedStore
from ..resolver import LOOKUP_MISSES, as_pair, lookup_ctypes, lookup_time, retry_through
from ..errors import InvalidInputError
from ..timestamps import TimeLike, format_ns, to_ns
from . import layout as L
from .dcobjects import DCVersion, _parse_vers
from .lookup import resolve
from .backend import Backend
from .payload import Payload
from .asof import asof_version, versions_then
from .tags import tag_key, tags_of_version

__all__ = ["TimedLookups", "provenance"]


class TimedLookups:
    """Mixin of :class:`~pscalib.store.DCStore` (needs ``_select``, ``resolved``, ``path``
    and ``_backend_for_read``)."""

    __slots__ = ()

    if TYPE_CHECKING:  # provided by StoreFile / DCStore
        path: Path
        resolved: ResolvedStore

        def _select(self, ctype: str, t: int, include: frozenset = frozenset()
                    ) -> Tuple[int, int, int]: ...

        def _backend_for_read(self) -> Backend: ...

    def _store_self(self) -> Any:
        """``self`` as the DCStore it is part of (for the handles' type)."""
        return self

    def get(self, ctype: str, tsp: Optional[TimeLike] = None, vers: Any = None, *,
            tsprod: Optional[TimeLike] = None, run: Optional[int] = None,
            experiment: Optional[str] = None, include: Any = (),
            asof: Optional[TimeLike] = None, tag: Optional[str] = None,
            with_info: bool = False) -> Any:
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
        include
            ``("candidate",)``: candidates may be chosen too (docs/format.rst, "Selection
            rule"); deprecated versions never are.
        asof
            Wall time: what this ``get`` (with the same ``vers``, ``tsprod``, ``include``)
            returned then, from the store's change and version logs
            (docs/reproducibility.rst).
        tag
            Name of a tag of this store: what plain ``get`` returned when the tag was made
            (with ``vers``, ``tsprod``, ``include`` or ``asof``: InvalidInputError).
        with_info
            Return ``(constants, info)``; ``info`` (dict) says where they came from:
            detname, ctype, range, tsbegin, tsend, version, state, tags, sha256, store
            (with ``asof``: the state and tags of then, see :func:`provenance`).

        Returns
        -------
        numpy.ndarray or str (``with_info``: a tuple of it and the info dict)

        Raises
        ------
        NoValidConstantsError
            No range covers ``tsp`` (with a valid version, or a candidate if included).
        DeprecatedVersionError
            ``vers`` names a deprecated version.
        CtypeNotFoundError, VersionNotFoundError
        RunNotFoundError
            ``run`` is not in the run table (the message names the table file).
        AliasMismatchError
            The store was opened through an alias meaning another detector at ``tsp``.
        AsOfUnavailableError, PurgedVersionError, TagNotFoundError
            ``asof``/``tag`` cannot be answered (before the log, version deleted since).

        Found through the search order, a store lacking ``ctype`` (or a range valid then)
        answers from the next place having it (:mod:`pscalib.resolver`).
        """
        validate_ctype(ctype)
        t = lookup_time(self, tsp, run, experiment)
        check_lookup(self.path, ctype, t)  # PSCALIB_MANIFEST (nothing to do when unset)
        if asof is None and tag is None and not with_info:
            return self._get_at(ctype, t, vers, tsprod, include)  # the hot path
        ver = self._version_at(ctype, t, vers, include, tsprod, asof, tag)
        payload = ver._store._backend_for_read().payload(ver._key)
        if not with_info:
            return payload
        return payload, provenance(ver, asof=None if asof is None else to_ns(asof))

    def _key_at(self, ctype: str, t: int, vers: Any, tsprod: Optional[TimeLike],
                include: Any, again: Any) -> Any:
        """The key ``get`` reads at ``t`` here, or ``again(cs)`` of the next place having
        ``ctype`` when this store misses it."""
        try:
            key = resolve(self._store_self(), ctype, as_pair(t), vers, tsprod, include)
        except LOOKUP_MISSES as miss:
            return retry_through(self, ctype, miss, again)
        self._answered(ctype)
        return key

    def _get_at(self, ctype: str, t: int, vers: Any, tsprod: Optional[TimeLike],
                include: Any = ()) -> Payload:
        key = self._key_at(ctype, t, vers, tsprod, include,
                           lambda cs: cs._get_at(ctype, t, vers, tsprod, include))
        if not isinstance(key, tuple):
            return key  # answered by a later place
        return self._backend_for_read().payload(key)

    def _answered(self, ctype: str) -> None:
        # a store read over HTTP has no resolution of its own (the service resolved it)
        if self.resolved is not None and self.resolved.answers is not None:
            self.resolved.answers[ctype] = self.path

    def version_at(self, ctype: str, tsp: Optional[TimeLike] = None, vers: Any = None, *,
                   run: Optional[int] = None, experiment: Optional[str] = None,
                   include: Any = (), asof: Optional[TimeLike] = None,
                   tag: Optional[str] = None, tsprod: Optional[TimeLike] = None
                   ) -> DCVersion:
        """The :class:`DCVersion` that :meth:`get` would read (maybe of a later place; same
        ``vers``, ``tsprod``, ``include``, ``asof`` and ``tag`` rules);
        ``provenance(ver)`` describes it."""
        validate_ctype(ctype)
        t = lookup_time(self, tsp, run, experiment)
        check_lookup(self.path, ctype, t)
        return self._version_at(ctype, t, vers, include, tsprod, asof, tag)

    def _version_at(self, ctype: str, t: int, vers: Any, include: Any = (),
                    tsprod: Optional[TimeLike] = None, asof: Optional[TimeLike] = None,
                    tag: Optional[str] = None) -> DCVersion:
        if tag is not None:
            if asof is not None:
                raise InvalidInputError("give either asof or tag, not both (a tag already "
                                        "is a time: the one it was made at)")
            if vers is not None or tsprod is not None or include:
                raise InvalidInputError(
                    "a tag is a frozen selection of plain get: tag takes no vers, tsprod or "
                    "include; ask get(..., asof=<the tag's time>) for those forms")
            return DCVersion(self._store_self(), tag_key(self._store_self(), ctype, t, tag))
        if asof is not None:
            me = self._store_self()
            v = None if vers is None else _parse_vers(vers)
            return DCVersion(me, asof_version(me, ctype, t, asof, v, tsprod, include))
        key = self._key_at(ctype, t, vers, tsprod, include,
                           lambda cs: cs._version_at(ctype, t, vers, include, tsprod))
        if isinstance(key, DCVersion):
            return key
        return DCVersion(self._store_self(), key)

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



def provenance(ver: DCVersion, asof: Optional[int] = None) -> Dict[str, Any]:
    """Where a version's constants come from (``get(..., with_info=True)``).

    With ``asof`` (wall time, ns): as ``get(..., asof=)`` describes it - ``state`` is the
    version's state then (from the version log; the default then was valid), ``tags`` the
    tags made by then that reference it, and ``asof`` is set.
    """
    st = ver._store
    be = st._backend_for_read()
    c, b, e, v = ver._key
    tags = tags_of_version(be, ver._key)
    state = be.version_state(ver._key).state
    if asof is not None:
        then = versions_then(st, asof)
        state = "valid" if then is None else then[0].get(ver._key, ("valid",))[0]
        made = {r.name: r.tscreated for r in be.tag_rows() if not r.ctype}
        tags = [n for n in tags if made.get(n, 0) <= asof]
    out = {"detname": st.detname(), "ctype": c, "range": L.range_name(b, e),
           "tsbegin": b, "tsend": e, "begin": format_ns(b), "end": format_ns(e),
           "version": v, "state": state, "tags": tags,
           "sha256": be.version_info(ver._key).sha256, "store": str(st.path.absolute())}
    if asof is not None:
        out["asof"] = format_ns(asof)
    return out
