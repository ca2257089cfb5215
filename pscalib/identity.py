"""Who and where: the user and host names recorded in history (stores and alias files)."""
from __future__ import annotations

import getpass
import os
import socket

from .config import env_value

__all__ = ["whoami", "hostname"]


def whoami() -> str:
    """The user name recorded in history (``PSCALIB_USER`` overrides the login name)."""
    user = env_value("PSCALIB_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid{os.getuid()}"


def hostname() -> str:
    return socket.gethostname() or "unknown-host"
