"""Who and where: the user and host names recorded in history (stores and alias files)."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import getpass
import os
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
    return _login()


@functools.lru_cache(maxsize=1)
def _login() -> str:
    """The login name (getpass: LOGNAME/USER/... else the passwd entry), looked up once per
    process rather than once per history record (a 10,000-range transaction writes 20,000
    records); ``PSCALIB_USER`` and :func:`acting_user` are still read on every call."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid{os.getuid()}"


def hostname() -> str:
    return socket.gethostname() or "unknown-host"
