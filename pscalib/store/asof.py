"""As-of lookups: the version every form of ``get`` returned at a wall time ``T0``
(docs/reproducibility.rst, "As-of lookups").

Plain ``get(ctype, t, asof=T0)`` needs only the change log (``/_changelog``: the default of
every range then). The forms that look at more than the defaults - ``vers=N``,
``tsprod=``, ``include=("candidate",)`` - also replay the version log (``/_versionlog``:
the versions of every range then, with their states, production times and checksums) and
apply the same rules as :func:`pscalib.store.lookup.resolve` to them.

The replayed selections are cached per open store (dropped on every change and refresh).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..errors import DeprecatedVersionError, InvalidInputError, VersionNotFoundError
from ..timestamps import TimeLike, format_ns, to_ns
from . import layout as L
from .changelog import (Versions, check_asof, check_versionlog, index_of, payload_key, pick,
                        replay, replay_versions)
from .backend import Backend
from .selection import RangeIndex
from .states import CANDIDATE, DEPRECATED, VALID, parse_include

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["cached", "checked", "asof_version", "versions_then"]

#: range ``(ctype, tsbegin, tsend)`` -> its version numbers then, ascending
ByRange = Dict[Tuple[str, int, int], List[int]]


def cached(store: "DCStore", ck: tuple, build: Callable[[], Any]) -> Any:
    """``build()``, remembered in the store's lookup cache while the file is unchanged."""
    d = store._lookup.derived
    hit = d.get(ck)
    if hit is None:
        hit = d[ck] = build()
    return hit


def checked(store: "DCStore", be: Backend, key: tuple, sha: str,
            why: Callable[[], str]) -> tuple:
    """``payload_key``, remembered while the file is unchanged: repeated lookups cost no
    metadata reads (``why()``: what needs the version, for the error)."""
    return cached(store, ("present", key, sha), lambda: payload_key(be, key, sha, why()))


def _selection(store: "DCStore", be: Backend, t0: int):
    def build():
        _, log = check_asof(be, t0, store.tscfile(), str(store.path))
        return replay(log, t0)
    return cached(store, ("asof-sel", t0), build)


def versions_then(store: "DCStore", t0: int, why: str = ""
                  ) -> Optional[Tuple[Versions, ByRange]]:
    """The versions of the store at ``t0`` from its version log; when the log does not
    reach back to ``t0``: None, or (``why`` given: the form of get that needs it) the
    specific error."""
    be = store._backend_for_read()

    def build():  # False (cached too) when the version log does not reach back to t0
        start, rows = be.versionlog()
        if start is None or t0 < start:
            return False
        vmap = replay_versions(rows, t0)
        by: ByRange = {}
        for k in sorted(vmap):
            by.setdefault(k[:3], []).append(k[3])
        return vmap, by
    hit = cached(store, ("asof-v", t0), build)
    if hit is False and why:
        check_versionlog(be, t0, str(store.path), why)  # raises, naming the form
    return hit or None


def _index_including(sel, vmap: Versions, by: ByRange, ctype: str, inc: frozenset):
    """Ranges of ``ctype`` selectable then with ``include`` (the rule of
    :func:`pscalib.store.stateops.effective_version`) and their index."""
    rkeys = {k for k in sel if k[0] == ctype} | {k for k in by if k[0] == ctype}
    out = []
    for rk in sorted(rkeys, key=lambda k: (k[1], k[2])):
        d, sha = sel.get(rk, (0, ""))
        eff = d
        if CANDIDATE in inc:
            for v in reversed(by.get(rk, [])):
                if v <= d:
                    break
                vk = (rk[0], rk[1], rk[2], v)
                if vmap[vk][0] == CANDIDATE:
                    eff, sha = v, vmap[vk][2]
                    break
        if eff > 0:
            out.append((rk[1], rk[2], eff, sha))
    return out, RangeIndex([r[0] for r in out], [r[1] for r in out])


def asof_version(store: "DCStore", ctype: str, t: int, asof: TimeLike,
                 vers: Optional[int] = None,
                 tsprod: Optional[TimeLike] = None, include: Any = ()) -> tuple:
    """Key of the version ``get(ctype, t, vers, tsprod=, include=)``
    returned at wall time ``asof``.

    Raises the errors ``get`` raised then (NoValidConstantsError, VersionNotFoundError,
    DeprecatedVersionError) and, where the store cannot answer, AsOfUnavailableError (before
    the store, its change log or - for ``vers``/``tsprod``/``include`` - its version log)
    or PurgedVersionError (the version was deleted since).
    """
    t0 = to_ns(asof)
    if vers is not None and tsprod is not None:
        raise InvalidInputError("give either vers or tsprod, not both")
    inc = parse_include(include)
    be = store._backend_for_read()
    sel = _selection(store, be, t0)
    needs = [n for n, on in (("vers", vers is not None), ("tsprod", tsprod is not None),
                             ("include", bool(inc))) if on]
    # plain get needs only the change log (the version log may not reach back as far)
    vers_then = versions_then(store, t0, "/".join(needs)) if needs else None
    if inc:
        assert vers_then is not None
        ranges, idx = cached(store, ("asof-inc", t0, ctype, inc),
                             lambda: _index_including(sel, *vers_then, ctype, inc))
    else:
        ranges, idx = cached(store, ("asof", t0, ctype), lambda: index_of(sel, ctype))
    i = idx.find(t)
    if i is None:  # the error get gave then
        pick(ranges, idx, ctype, t, f"{store.path} as of {format_ns(t0)}")
    b, e, v, sha = ranges[i]
    c = ctype
    if vers is not None or tsprod is not None:
        assert vers_then is not None
        vmap, by = vers_then
        have = by.get((c, b, e), [])
        rng = f"range {L.range_name(b, e)} of {ctype!r} (valid at {format_ns(t)})"
        if tsprod is not None:
            tp0, ok = to_ns(tsprod), {VALID} | inc
            best = max(((vmap[(c, b, e, n)][1], n) for n in have
                        if vmap[(c, b, e, n)][1] <= tp0 and vmap[(c, b, e, n)][0] in ok),
                       default=None)
            if best is None:
                raise VersionNotFoundError(
                    f"{rng} had no {' or '.join(sorted(ok))} version produced at or before "
                    f"{format_ns(tp0)} as of {format_ns(t0)}")
            v = best[1]
        else:
            v = int(vers or 0)  # parsed by the caller (DCStore: dcobjects._parse_vers)
            if v not in have:
                raise VersionNotFoundError(f"{rng} had no version {v} as of {format_ns(t0)}; "
                                           f"it had {have}")
            if vmap[(c, b, e, v)][0] == DEPRECATED:
                raise DeprecatedVersionError(
                    f"version {v} of {rng} was deprecated as of {format_ns(t0)}: get never "
                    f"returned it then")
        sha = vmap[(c, b, e, v)][2]
    return checked(store, be, (c, b, e, v), sha, lambda: f"get as of {format_ns(t0)}")
