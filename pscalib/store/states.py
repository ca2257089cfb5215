"""Version states (docs/format.rst, "Version states"): names, order, allowed transitions and
their plain HDF5 attributes on a version group.

``candidate < valid < deprecated``; every allowed transition goes up the order, which lets a
merge take the higher of two states (docs/exchange.rst). A version group without a ``state``
attribute (format 1, or added as ``valid``) is ``valid``.
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Optional, Tuple

import numpy as np

from ..errors import InvalidInputError, StateTransitionError
from . import layout as L

__all__ = ["CANDIDATE", "VALID", "DEPRECATED", "STATES", "ADD_STATES", "TRANSITIONS",
           "StateInfo", "rank", "higher", "check_transition", "read_state", "write_state",
           "parse_include", "check_reason"]

CANDIDATE = "candidate"
VALID = "valid"
DEPRECATED = "deprecated"
#: Every state, in increasing order.
STATES: Tuple[str, ...] = (CANDIDATE, VALID, DEPRECATED)
#: States a new version may be added in.
ADD_STATES: Tuple[str, ...] = (VALID, CANDIDATE)
#: Allowed transitions -> the history action that records them.
TRANSITIONS = {(CANDIDATE, VALID): "validate", (CANDIDATE, DEPRECATED): "deprecate",
               (VALID, DEPRECATED): "deprecate"}
#: Longest reason kept (a history record, not a document).
MAX_REASON = 4096


class StateInfo(NamedTuple):
    """A version's state and its last change (None fields: never changed, e.g. format 1)."""
    state: str
    tsns: Optional[int] = None
    user: Optional[str] = None
    reason: Optional[str] = None


def rank(state: str) -> int:
    """Position in ``candidate < valid < deprecated``."""
    return STATES.index(state)


def higher(a: str, b: str) -> str:
    """The higher of two states (what a merge keeps)."""
    return a if rank(a) >= rank(b) else b


def check_state(state: Any) -> str:
    if state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    return state


def check_transition(old: str, new: str, what: str) -> str:
    """History action of ``old -> new`` for ``what`` (a description); refuses others.

    Raises
    ------
    StateTransitionError
        The transition is not allowed (including ``old == new``).
    """
    check_state(new)
    action = TRANSITIONS.get((old, new))
    if action is not None:
        return action
    if old == new:
        raise StateTransitionError(f"{what} is already {new}")
    if old == DEPRECATED:
        raise StateTransitionError(
            f"{what} is deprecated, and deprecation is final; to use its payload again add "
            f"it as a new version")
    raise StateTransitionError(f"{what} is {old}: it cannot become {new} (allowed: "
                               f"candidate -> valid, candidate -> deprecated, "
                               f"valid -> deprecated)")


def check_reason(reason: Any) -> str:
    """A non-empty one-paragraph reason (it goes into history and the state attributes)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInputError("give a reason for the state change (a non-empty text, "
                                "e.g. -m 'pedestal drifted after run 17')")
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"reason is {len(reason)} characters; at most {MAX_REASON}")
    return reason.strip()


def _text(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def read_state(attrs: Any) -> StateInfo:
    """State of a version group from its attributes (``h5py`` AttributeManager or dict)."""
    raw = attrs.get(L.A_STATE) if hasattr(attrs, "get") else None
    if raw is None:
        return StateInfo(VALID)
    state = _text(raw)
    if state not in STATES:
        raise InvalidInputError(f"unknown version state {state!r}")
    ts = attrs.get(L.A_STATE_TSNS)
    user = attrs.get(L.A_STATE_USER)
    reason = attrs.get(L.A_STATE_REASON)
    return StateInfo(state, None if ts is None else int(ts),
                     None if user is None else _text(user),
                     None if reason is None else _text(reason))


def write_state(attrs: Any, info: StateInfo) -> None:
    """Write the four state attributes on a version group (all together)."""
    attrs[L.A_STATE] = check_state(info.state)
    attrs[L.A_STATE_TSNS] = np.int64(0 if info.tsns is None else info.tsns)
    attrs[L.A_STATE_USER] = info.user or ""
    attrs[L.A_STATE_REASON] = info.reason or ""


def parse_include(include: Optional[Iterable[str]]) -> frozenset:
    """``get(..., include=...)`` -> frozenset of extra states; only ``candidate`` is allowed."""
    if include is None:
        return frozenset()
    if isinstance(include, str):
        include = (include,)
    out = frozenset(include)
    if DEPRECATED in out:
        raise InvalidInputError("deprecated versions are never selected; read one "
                                "explicitly with DCRange.versobj(N).calib()")
    bad = out - {CANDIDATE, VALID}
    if bad:
        raise InvalidInputError(f"include may name only 'candidate', got "
                                f"{', '.join(map(repr, sorted(bad)))}")
    return out - {VALID}
