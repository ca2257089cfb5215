"""Small text files pscalib manages (alias files, run tables): history and locked writes.

Both file kinds end with a history section: the line :data:`HISTORY_MARKER` followed by one
``#@ <time> <user>@<host> <action> <what>`` line per change. They are changed only through
:func:`locked_update`: under the file's :class:`~pscalib.txn.StoreLock`, into a private
temporary copy renamed atomically over the file, so readers see the old or the new file and
a killed (or failing) writer changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Protocol, Tuple, Type, TypeVar

from .config import Config
from .errors import InvalidInputError, PscalibError, StoreIOError
from .identity import hostname, whoami
from .locations import make_dirs, permission_error
from .timestamps import format_ns, now_ns, to_ns
from .txn import StoreLock, cleanup_leftovers
from .txn.atomic import os_error, write_file_atomic

__all__ = ["HISTORY_MARKER", "FileChange", "token", "parse_history_line", "write_text",
           "locked_update", "read_text_file", "numbered_lines"]

#: Line that starts the history section (written by pscalib, recognised on reading).
HISTORY_MARKER = "# ---- history (written by pscalib; do not edit) ----"


@dataclass(frozen=True)
class FileChange:
    """One history record of a managed text file: who changed what, when."""
    tsns: int
    user: str
    host: str
    action: str
    record: str

    def to_line(self) -> str:
        return f"#@ {format_ns(self.tsns)} {self.user}@{self.host} {self.action} {self.record}"

    def to_dict(self) -> dict:
        return {"time": format_ns(self.tsns), "tsns": self.tsns, "user": self.user,
                "host": self.host, "action": self.action, "record": self.record}


def token(text: str) -> str:
    """A history field without blanks or '@' (user/host names from the environment)."""
    out = "".join("_" if (c.isspace() or c == "@" or not c.isprintable()) else c for c in text)
    return out or "?"


def parse_history_line(line: str, where: str, error: Type[PscalibError]) -> FileChange:
    """Parse one ``#@ TIME USER@HOST ACTION WHAT`` line; ``error`` is raised with ``where``."""
    parts = line.split(None, 4)
    if len(parts) < 4 or parts[0] != "#@" or "@" not in parts[2]:
        raise error(f"{where}: malformed history line; expected '#@ TIME USER@HOST ACTION WHAT'")
    try:
        tsns = to_ns(parts[1])
    except InvalidInputError as exc:
        raise error(f"{where}: history time {parts[1]!r}: {exc}") from None
    user, _, host = parts[2].rpartition("@")
    return FileChange(tsns, user, host, parts[3], parts[4] if len(parts) > 4 else "")


def read_text_file(path: Path, error: Type[PscalibError], kind: str,
                   command: str) -> Optional[str]:
    """The UTF-8 text of a managed file, or None if it does not exist.

    A file that is not UTF-8 raises ``error`` naming the line and byte (``kind`` names the
    file kind, e.g. 'alias files', ``command`` the command that writes them).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not one of the {kind}") from None
    except PermissionError:
        raise permission_error("read", path, None, "no read permission") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                    f"{exc.start}); {kind} are UTF-8 text written by '{command}'") from None


def numbered_lines(text: str) -> List[Tuple[int, str]]:
    """``(line number, line)`` pairs, split on ``\n`` only (``str.splitlines()`` would also
    split on U+2028, NEL, ...), a trailing ``\r`` removed."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(n, ln[:-1] if ln.endswith("\r") else ln) for n, ln in enumerate(lines, 1)]


def write_text(path: Path, text: str, cfg: Config) -> None:
    """Write ``text`` atomically over ``path`` (caller holds the lock).

    An existing file keeps its permission bits; a new one gets ``PSCALIB_FILE_MODE`` (else
    0666 minus umask).
    """
    data = text.encode("utf-8")
    try:
        write_file_atomic(path, lambda fh: fh.write(data), new_file_mode=cfg.file_mode)
    except BaseException as exc:
        if isinstance(exc, PermissionError):
            raise permission_error("write", path, cfg,
                                   exc.strerror or "permission denied") from None
        if isinstance(exc, OSError) and not isinstance(exc, StoreIOError):
            raise os_error(exc, "write", path) from None
        raise


class HistoryFile(Protocol):
    """What :func:`locked_update` needs of a parsed file."""
    history: list

    def render(self) -> str: ...


F = TypeVar("F", bound=HistoryFile)


def locked_update(path: Path, load: Callable[[Path], F], change: Callable[[F], str],
                  action: str, lock_timeout: Optional[float], cfg: Config) -> F:
    """Lock ``path``, load it, apply ``change`` (returns the history text), record, write.

    ``change`` raising leaves the file exactly as it was.
    """
    if not path.parent.is_dir():
        make_dirs(path.parent, config=cfg)
    try:
        lock = StoreLock(path, lock_timeout).acquire()
    except PermissionError:
        raise permission_error("lock", path, cfg) from None
    try:
        cleanup_leftovers(path)
        doc = load(path)
        what = change(doc)
        doc.history.append(FileChange(now_ns(), token(whoami()), token(hostname()), action,
                                      what))
        write_text(path, doc.render(), cfg)
        return doc
    finally:
        lock.release()
