"""Writes and reads that keep the state rules (docs/format.rst "Version states",
"Tombstones"): state changes, the default invariant, tombstones of deletions, and the
selection of a range's version when candidates are included.

The functions take the backend they read or write; DCStore calls them inside its
transactions (writes) or on its reader (lookups).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from ..errors import DeprecatedVersionError, StateTransitionError
from ..timestamps import now_ns
from . import layout as L
from ..identity import whoami
from .backend import Backend, Key, WritableBackend
from .states import CANDIDATE, DEPRECATED, VALID, StateInfo, check_reason, check_transition
from .tombstones import Tombstone, TombstoneIndex, make_tombstone

__all__ = ["newest_valid", "ensure_format", "change_state", "fix_default",
           "tombstones_for", "bury", "first_free_version", "effective_version",
           "require_valid_default", "check_not_deprecated"]


def newest_valid(be: Backend, rkey: tuple, exclude: int = 0) -> int:
    """Highest-numbered ``valid`` version of the range (0 if none), ignoring ``exclude``."""
    for v in sorted(be.versions(*rkey), reverse=True):
        if v != exclude and be.version_state(rkey + (v,)).state == VALID:
            return v
    return 0


def ensure_format(be: WritableBackend) -> None:
    """Upgrade the file to format 2 before a state or tombstone is written (recorded)."""
    if be.upgrade_format():
        be.append_history((), "format_upgrade",
                          f"format_version {L.FORMAT_PLAIN} -> {L.FORMAT_STATES} (version "
                          f"states and tombstones; older pscalib releases cannot open it)")


def describe(key: Key) -> str:
    return (f"version {key[3]} of range {L.range_name(key[1], key[2])} of {key[0]!r}")


def change_state(be: WritableBackend, key: Key, new: str, reason: str,
                 make_default: bool = True, *, note: str = "",
                 info: Optional[StateInfo] = None, defaults: bool = True
                 ) -> Tuple[str, int, int]:
    """Move one version to state ``new`` and keep the default invariant.

    Returns ``(old_state, old_default, new_default)``. ``info`` (merge) gives the time,
    user and reason to store instead of now / this user / ``reason``; ``note`` is appended
    to the history record. ``defaults=False`` leaves the default to the caller (a merge
    sets every default it planned afterwards).
    """
    reason = check_reason(reason) if info is None else (info.reason or reason)
    old = be.version_state(key).state
    action = check_transition(old, new, describe(key))
    ensure_format(be)
    st = info or StateInfo(new, now_ns(), whoami(), reason)
    st = StateInfo(new, st.tsns or now_ns(), st.user or whoami(), st.reason or reason)
    be.set_state(key, st)
    be.append_history(key, action, f"{old} -> {new}: {reason}{note}", tsns=st.tsns,
                      user=st.user)
    rkey = key[:3]
    old_default = default_of(be, rkey)
    new_default = old_default
    if not defaults:
        return old, old_default, new_default
    if new == VALID and (make_default or old_default == 0):
        new_default = key[3]
    elif new != VALID and old_default == key[3]:
        new_default = newest_valid(be, rkey, exclude=key[3])
    if new_default != old_default:
        set_default_recorded(be, rkey, old_default, new_default,
                             f"{L.version_name(key[3])} is {new}")
    return old, old_default, new_default


def default_of(be: Backend, rkey: tuple) -> int:
    tab = be.range_table(rkey[0])
    i = tab.row(rkey[1], rkey[2])
    return 0 if i is None else int(tab.defaultv[i])


def set_default_recorded(be: WritableBackend, rkey: tuple, old: int, new: int,
                         why: str) -> None:
    be.set_default(rkey[0], rkey[1], rkey[2], new)
    tail = "" if new else "; no valid version left: get ignores the range"
    be.append_history(rkey, "set_default", f"v{old:04d} -> v{new:04d} ({why}){tail}")


def fix_default(be: WritableBackend, rkey: tuple, why: str) -> int:
    """After a deletion: keep the default if it is still there and valid, else the newest
    valid version (0 if none); returns the default."""
    old = default_of(be, rkey)
    have = be.versions(*rkey)
    if old in have and be.version_state(rkey + (old,)).state == VALID:
        return old
    new = newest_valid(be, rkey)
    if new != old:
        be.set_default(rkey[0], rkey[1], rkey[2], new)
    return new


def check_not_deprecated(be: Backend, key: Key) -> None:
    """Refuse to return a deprecated version from ``get`` (asked for by number)."""
    st = be.version_state(key)
    if st.state == DEPRECATED:
        raise DeprecatedVersionError(
            f"{describe(key)} is deprecated ({st.reason or 'no reason given'}; by "
            f"{st.user}): get never returns it; read it explicitly with "
            f"store[{key[0]!r}].rangeobj({L.range_name(key[1], key[2])!r})"
            f".versobj({key[3]}).calib()")


def require_valid_default(be: Backend, key: Key) -> None:
    """Refuse to make a non-valid version the default."""
    st = be.version_state(key).state
    if st != VALID:
        raise StateTransitionError(
            f"cannot make {describe(key)} the default: it is {st}; only a valid version can "
            f"be the default" + (" (validate it first)" if st == CANDIDATE else ""))


def tombstones_for(be: Backend, key: Key, record: str) -> List[Tombstone]:
    """Rows recording the deletion of the object ``key`` and everything inside it."""
    rows: List[Tombstone] = []
    if len(key) == 4:
        return [make_tombstone(key, be.version_info(key).sha256, record)]
    if len(key) == 3:
        for v in be.versions(*key):
            rows += tombstones_for(be, key + (v,), record)
        return rows + [make_tombstone(key, None, record)]
    tab = be.range_table(key[0])
    for b, e in sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist())):
        rows += tombstones_for(be, (key[0], b, e), record)
    return rows + [make_tombstone(key, None, record)]


def bury(be: WritableBackend, rows: List[Tombstone]) -> None:
    """Write tombstones (before the objects are deleted: the rows read their checksums)."""
    if rows:
        ensure_format(be)
        be.add_tombstones(rows)


def first_free_version(be: Backend, rkey: tuple) -> int:
    """``lastv`` for a new range group: the highest number its tombstones mention."""
    return TombstoneIndex(be.tombstones()).max_version(*rkey)


def effective_version(be: Backend, rkey: tuple, default: int, include: frozenset) -> int:
    """The version the selection rule reads in a range (0: the range is not a candidate).

    Without ``include`` it is the default (always valid). With candidates included, the
    newest candidate numbered above the default replaces it.
    """
    if CANDIDATE not in include:
        return default
    for v in sorted(be.versions(*rkey), reverse=True):
        if v <= default:
            break
        if be.version_state(rkey + (v,)).state == CANDIDATE:
            return v
    return default
