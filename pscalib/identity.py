"""Who and where: the user and host names recorded in history (stores and alias files)."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import pwd
import socket
from typing import Iterator, Optional

from .config import env_value

__all__ = ["whoami", "hostname", "acting_user"]

# A per-thread/per-task user for history records: a server acting for a logged-in web user
# cannot change the process-wide PSCALIB_USER while other requests run.
_ACTING_USER: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "pscalib_acting_user", default=None)


@contextlib.contextmanager
def acting_user(name: str) -> Iterator[None]:
    """Inside this block (this thread or task only) history records name ``name`` as the
    user, e.g. the web GUI's authenticated user."""
    token = _ACTING_USER.set(name)
    try:
        yield
    finally:
        _ACTING_USER.reset(token)


def whoami() -> str:
    """The user name recorded in history: the :func:`acting_user`, else ``PSCALIB_USER``,
    else the login name."""
    acting = _ACTING_USER.get()
    if acting:
        return acting
    user = env_value("PSCALIB_USER")
    if user:
        return user
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # getpass.getuser()'s order
        user = os.environ.get(name)
        if user:
            return user
    return _login_of(os.getuid())


@functools.lru_cache(maxsize=8)
def _login_of(uid: int) -> str:
    """The passwd name of ``uid``: one lookup per process, not one per history record (a
    10,000-range transaction writes 20,000 records)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except Exception:  # no passwd entry in some containers
        return f"uid{uid}"


def hostname() -> str:
    return socket.gethostname() or "unknown-host"
