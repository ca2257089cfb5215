"""The right file for the time: lookup times, aliases at that time, per-ctype fall-through.

Used by :class:`pscalib.store.DCStore` lookups (``get``, ``version_at``, ``get_all``):

- :func:`lookup_time`: the time of a lookup from ``tsp`` (any time form, including psana
  event-time objects) or ``run=`` (the run's begin in the experiment's run table).
- :func:`check_alias_at`: a store opened through an alias answers only for times at which
  the alias means the detector it was opened for; otherwise :class:`AliasMismatchError`
  says which detector the alias means then and how to open it.
- :func:`retry_through`: a store found through the search order that lacks a ctype (or a
  range covering the time) defers, for that ctype, to the next place of the search order
  holding the detector's file. ``store.resolved.answers`` records which file answered
  which ctype; :func:`ctype_sources` computes the same table for ``dcs where``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import (AliasMismatchError, AliasNotFoundError, CtypeNotFoundError,
                     InvalidInputError, InvalidTimeError, NoValidConstantsError,
                     PscalibError)
from .paths import ResolvedStore, SearchStep
from .runs import run_time
from .timestamps import format_ns, to_ns

__all__ = ["lookup_time", "alias_at", "check_alias_at", "retry_through",
           "next_stores", "lookup_ctypes", "ctype_sources", "LOOKUP_MISSES", "as_pair"]

#: Errors of one file that let a lookup fall through to the next place.
LOOKUP_MISSES = (CtypeNotFoundError, NoValidConstantsError)


def as_pair(t: int) -> Tuple[int, int]:
    """int ns -> the exact ``(sec, nsec)`` form (a bare int would be read as seconds)."""
    return divmod(int(t), 1_000_000_000)


# ------------------------------------------------------------------ time of a lookup
def lookup_time(store: Any, tsp: Any, run: Any = None, experiment: Optional[str] = None) -> int:
    """ns of a lookup given a time or a run (not both), checked against the store's alias."""
    if run is None:
        if experiment is not None:
            raise InvalidInputError("experiment= is used only with run=; give run=N too")
        if tsp is None:
            raise InvalidTimeError("a lookup needs a time (tsp: ISO 8601, Unix seconds, "
                                    "(sec, nsec), datetime or an event-time object) or run=N")
        t = to_ns(tsp)
    else:
        if tsp is not None:
            raise InvalidInputError(f"give either a time ({tsp!r}) or run={run!r}, not both")
        t = run_time(run, experiment, store.path)
    check_alias_at(store.resolved, t)
    return t


# ------------------------------------------------------------------ aliases at a time
def alias_at(records: Sequence[tuple], t: int):
    """The record the alias resolves to at ``t`` (first place with a window holding it)."""
    for recs in records:
        for r in recs:
            if r.valid_at(t):
                return r
    return None


def check_alias_at(resolved: Optional[ResolvedStore], t: int) -> None:
    """Raise unless the alias the store was opened through means its detector at ``t``."""
    if resolved is None or resolved.alias is None or not resolved.alias_records:
        return
    rec = alias_at(resolved.alias_records, t)
    if rec is not None and rec.detname == resolved.detname:
        return
    opened = ("at its latest record" if resolved.alias_tsp is None
              else f"at {format_ns(resolved.alias_tsp)}")
    how = (f"open it for that time (DCStore(None, {resolved.alias!r}, tsp=...), or give the "
           f"time to 'dcs' so it resolves the alias then)")
    if rec is None:
        raise AliasNotFoundError(
            f"alias {resolved.alias!r} means no detector at {format_ns(t)}, but this store "
            f"{resolved.path} was opened for {resolved.detname!r} (the alias {opened}); "
            f"no constants of another time are answered through it")
    raise AliasMismatchError(
        f"alias {resolved.alias!r} means {rec.detname!r} at {format_ns(t)} ({rec.path}:"
        f"{rec.line}), but this store {resolved.path} was opened for {resolved.detname!r} "
        f"(the alias {opened}); {how}")


# ------------------------------------------------------------------ fall-through
def _found(steps: Sequence[SearchStep]) -> List[Tuple[SearchStep, Path]]:
    return [(s, s.path) for s in steps if s.status == "found" and s.path is not None]


def next_stores(store: Any) -> List[Any]:
    """The stores of the later places holding the detector's file (opened once, lazily)."""
    have = getattr(store, "_next", None)
    if have is None:
        have = []
        try:
            for _, path in _found(store.resolved.steps)[1:]:
                have.append(type(store)(path))
        except BaseException:
            for cs in have:
                cs.close()
            raise
        store._next = have
    return have


def lookup_ctypes(store: Any) -> List[str]:
    """Every ctype a lookup on ``store`` can answer: its own and, with the search order,
    those of the later places holding the detector's file (sorted)."""
    names = set(store.ctypes())
    if store.resolved.answers is not None:
        for cs in next_stores(store):
            names.update(cs.ctypes())
    return sorted(names)


def retry_through(store: Any, ctype: str, miss: PscalibError, call) -> Any:
    """``call(other_store)`` on each later store having ``ctype`` until one answers."""
    if store.resolved.answers is None:
        raise miss
    said: List[str] = []
    for cs in next_stores(store):
        if ctype not in cs:
            said.append(f"{cs.path} has no {ctype!r}")
            continue
        try:
            out = call(cs)
        except LOOKUP_MISSES as exc:
            said.append(str(exc))
            continue
        store.resolved.answers[ctype] = cs.path
        return out
    raise type(miss)(f"{miss}; the later places of the search order cannot answer either: "
                     + "; ".join(said)) from None


def ctype_sources(steps: Sequence[SearchStep], open_store: Callable[[Path], Any],
                  tsp: Any = None) -> Dict[str, Optional[Dict[str, Any]]]:
    """For ``dcs where``: ctype -> the file (and place) a lookup of it uses.

    Without ``tsp`` the first file holding the ctype; with ``tsp`` the first holding a range
    of it valid then (ctypes no file can answer then map to None). ``open_store(path)``
    opens a store read-only (``DCStore``).
    """
    t = None if tsp is None else to_ns(tsp)
    out: Dict[str, Optional[Dict[str, Any]]] = {}
    for s, path in _found(steps):
        with open_store(path) as cs:
            for c in cs.ctypes():
                if out.get(c) is not None:
                    continue
                ok = True
                if t is not None:
                    try:
                        cs.version_at(c, as_pair(t))
                    except LOOKUP_MISSES:
                        ok = False
                out[c] = ({"path": path, "kind": s.kind, "place": s.label}
                          if ok else None)
    return out
