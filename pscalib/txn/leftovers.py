"""Remove temporary files of dead writers of *any* file in a directory.

:func:`pscalib.txn.atomic.cleanup_leftovers` removes the temporary copies beside one file
under that file's lock. A killed ``dcs copy`` (whose destination never appeared) or a
killed ``dcs get -o`` leaves a temporary file that no later writer of the same name may
ever come to remove. Temporary names carry the writer's host and pid
(``.<name>.pscalib-tmp-<host>-<pid>-<random>``), so any writer in the directory can tell
that one belongs to a process of this host that no longer runs, and delete it: a dead
process can never rename it over anything. Files of other hosts, of live processes (also
a reused pid) and anything not matching the pattern are left alone.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import List, Union

from .atomic import TMP_MARK

__all__ = ["remove_dead_tmp", "pid_alive", "this_host"]


def this_host() -> str:
    """The host token written into temporary names (as :func:`tmp_path_for` does)."""
    return socket.gethostname().split(".")[0][:20] or "host"


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def remove_dead_tmp(folder: Union[str, Path]) -> List[Path]:
    """Delete temporary files in ``folder`` left by dead processes of this host."""
    removed: List[Path] = []
    host = this_host()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        at = name.find(TMP_MARK)
        if not name.startswith(".") or at < 0:
            continue
        tail = name[at + len(TMP_MARK):].rsplit("-", 2)
        if len(tail) != 3 or tail[0] != host or not tail[1].isdigit():
            continue
        if int(tail[1]) == os.getpid() or pid_alive(int(tail[1])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass  # gone already, or not ours to remove
    return removed
