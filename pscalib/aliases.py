"""Alias files: human-readable, time-dependent names for detectors.

Each ``<calib>/<dettype>/aliases.txt`` holds one record per line::

    # alias             detname      begin                      end
    CxiDs2.0:Cspad.0    cspad-0001   start                      2024-05-01T00:00:00+00:00
    CxiDs2.0:Cspad.0    cspad-0002   2024-05-01T00:00:00+00:00  end

Fields are separated by blanks. ``begin``/``end`` are optional (``start``/``end`` or ``-``
mean open); windows are half-open ``[begin, end)`` like validity ranges and times are
parsed by :func:`pscalib.timestamps.to_ns` (no offset means UTC). Lines starting with ``#``
and blank lines are comments. Lines starting with ``#@`` after the history marker are the
change history (``#@ <time> <user>@<host> <action> <what>``), one per change.

Files are changed only through :func:`add_alias` / :func:`remove_alias` (or ``dcs alias``):
under the file's :class:`~pscalib.txn.StoreLock`, into a private temporary copy renamed
atomically over the file, so readers see the old or the new file and a killed writer
changes nothing. Comments and blank lines written by hand are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

from .config import Config, load_config
from .errors import (AliasFileError, AliasNotFoundError, InvalidInputError, InvalidNameError,
                     StoreIOError)
from .names import split_detname, validate_alias, validate_dettype
from .locations import ALIAS_FILE_NAME, alias_file_in, is_detname, make_dirs, permission_error
from .identity import hostname, whoami
from .timestamps import OPEN_END, TS_MIN, TimeLike, format_ns, now_ns, to_ns
from .txn import StoreLock, cleanup_leftovers
from .txn.atomic import os_error, write_file_atomic

__all__ = ["AliasRecord", "AliasChange", "AliasFile", "add_alias", "remove_alias",
           "list_aliases", "resolve_alias", "find_alias", "alias_history", "alias_files",
           "HISTORY_MARKER"]

PathLike = Union[str, Path]

#: Line that starts the history section (written by pscalib, recognised on reading).
HISTORY_MARKER = "# ---- history (written by pscalib; do not edit) ----"
_FORMAT_HELP = "expected 'ALIAS DETNAME [BEGIN [END]]'"
_HEADER = [
    "# pscalib alias file: one record per line, fields separated by blanks:",
    "#   ALIAS  DETNAME  [BEGIN  [END]]",
    "# BEGIN/END: ISO 8601 times (no offset = UTC) or Unix seconds; 'start'/'end' = open.",
    "# The window [BEGIN, END) is half-open. Change this file only with 'dcs alias'.",
    "",
]
_OPEN_WORDS = ("-", "start", "begin", "end", "open")


@dataclass(frozen=True)
class AliasRecord:
    """One alias record: ``alias`` means ``detname`` during ``[begin, end)``.

    ``begin``/``end`` are int ns or None for an open side. ``path``/``line`` say where the
    record was read from (0 for a record not yet written).
    """
    alias: str
    detname: str
    begin: Optional[int] = None
    end: Optional[int] = None
    path: Optional[Path] = field(default=None, compare=False)
    line: int = field(default=0, compare=False)

    @property
    def begin_ns(self) -> int:
        return TS_MIN if self.begin is None else self.begin

    @property
    def end_ns(self) -> int:
        return OPEN_END if self.end is None else self.end

    def valid_at(self, t: int) -> bool:
        """True if ``begin <= t < end``."""
        return self.begin_ns <= t < self.end_ns

    def overlaps(self, other: "AliasRecord") -> bool:
        return self.begin_ns < other.end_ns and other.begin_ns < self.end_ns

    def window(self) -> str:
        b = "start" if self.begin is None else format_ns(self.begin)
        e = "end" if self.end is None else format_ns(self.end)
        return f"[{b}, {e})"

    def to_line(self) -> str:
        b = "start" if self.begin is None else format_ns(self.begin)
        e = "end" if self.end is None else format_ns(self.end)
        return f"{self.alias:<24} {self.detname:<16} {b:<25} {e}"

    def to_dict(self) -> dict:
        return {"alias": self.alias, "detname": self.detname,
                "begin": None if self.begin is None else format_ns(self.begin),
                "end": None if self.end is None else format_ns(self.end),
                "begin_ns": self.begin, "end_ns": self.end,
                "file": None if self.path is None else str(self.path), "line": self.line}


@dataclass(frozen=True)
class AliasChange:
    """One history record of an alias file: who changed what, when."""
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


def _token(text: str) -> str:
    """A history field without blanks or '@' (user/host names from the environment)."""
    out = "".join("_" if (c.isspace() or c == "@" or not c.isprintable()) else c for c in text)
    return out or "?"


def _parse_time(text: str, what: str, where: str) -> Optional[int]:
    if text.lower() in _OPEN_WORDS:
        return None
    try:
        return to_ns(text)
    except InvalidInputError as exc:
        raise AliasFileError(f"{where}: {what} {text!r} is not a time ({exc}); "
                             f"{_FORMAT_HELP}") from None


def _check_alias_name(alias: str) -> str:
    validate_alias(alias)
    if is_detname(alias):
        raise InvalidNameError(
            f"alias {alias!r} has the form of a detector name (<dettype>-<detid>); aliases must "
            f"not, or it would be ambiguous which one is meant")
    return alias


class AliasFile:
    """The parsed content of one alias file (kept in file order, comments included)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.dettype: Optional[str] = None
        try:
            self.dettype = validate_dettype(self.path.parent.name)
        except InvalidNameError:
            pass  # a file outside a <dettype>/ directory: no type check
        self.entries: List[Union[str, AliasRecord]] = []
        self.history: List[AliasChange] = []
        self.exists = False

    # ----------------------------------------------------------------- reading
    @classmethod
    def load(cls, path: PathLike) -> "AliasFile":
        """Read and check ``path`` (a missing file gives an empty AliasFile)."""
        af = cls(path)
        try:
            raw = af.path.read_bytes()
        except FileNotFoundError:
            return af
        except PermissionError:
            raise permission_error("read", af.path, None, "no read permission") from None
        af.exists = True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise AliasFileError(
                f"{af.path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                f"{exc.start}); alias files are UTF-8 text written by 'dcs alias'") from None
        af._parse(text)
        return af

    def _parse(self, text: str) -> None:
        in_history = False
        in_header = True
        # split on '\n' only: str.splitlines() would also split on U+2028, NEL, ...
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for lineno, line in enumerate(lines, 1):
            line = line[:-1] if line.endswith("\r") else line
            if line.strip() and not line.strip().startswith("#"):
                in_header = False
            where = f"{self.path}:{lineno}"
            stripped = line.strip()
            if stripped == HISTORY_MARKER:
                in_history = True
            elif stripped.startswith("#@"):
                self.history.append(self._parse_history(stripped, where))
            elif in_history and stripped:
                raise AliasFileError(f"{where}: only '#@' history lines may follow the history "
                                     f"marker; move records above it")
            elif not stripped or stripped.startswith("#"):
                in_header = in_header and lineno <= len(_HEADER) and line == _HEADER[lineno - 1]
                if not in_history and not in_header:  # the header is rewritten, not kept
                    self.entries.append(line)
            else:
                self.entries.append(self._parse_record(stripped, where, lineno))
        self._check_overlaps()

    def _parse_record(self, line: str, where: str, lineno: int) -> AliasRecord:
        fields = line.split()
        if not 2 <= len(fields) <= 4:
            raise AliasFileError(f"{where}: {len(fields)} field(s); {_FORMAT_HELP}")
        alias, detname = fields[0], fields[1]
        try:
            _check_alias_name(alias)
            dettype, _ = split_detname(detname)
        except InvalidNameError as exc:
            raise AliasFileError(f"{where}: {exc}") from None
        if self.dettype is not None and dettype != self.dettype:
            raise AliasFileError(f"{where}: detector {detname!r} is not a {self.dettype!r}; "
                                 f"its alias belongs in {dettype}/{ALIAS_FILE_NAME}")
        begin = _parse_time(fields[2], "begin", where) if len(fields) > 2 else None
        end = _parse_time(fields[3], "end", where) if len(fields) > 3 else None
        rec = AliasRecord(alias, detname, begin, end, self.path, lineno)
        if rec.begin_ns >= rec.end_ns:
            raise AliasFileError(f"{where}: begin is not before end in {rec.window()}")
        return rec

    @staticmethod
    def _parse_history(line: str, where: str) -> AliasChange:
        parts = line.split(None, 4)
        if len(parts) < 4 or parts[0] != "#@" or "@" not in parts[2]:
            raise AliasFileError(f"{where}: malformed history line; expected "
                                 f"'#@ TIME USER@HOST ACTION WHAT'")
        try:
            tsns = to_ns(parts[1])
        except InvalidInputError as exc:
            raise AliasFileError(f"{where}: history time {parts[1]!r}: {exc}") from None
        user, _, host = parts[2].rpartition("@")
        return AliasChange(tsns, user, host, parts[3], parts[4] if len(parts) > 4 else "")

    def _check_overlaps(self) -> None:
        recs = self.records
        for i, a in enumerate(recs):
            for b in recs[i + 1:]:
                if a.alias == b.alias and a.overlaps(b):
                    raise AliasFileError(
                        f"{self.path}:{b.line}: window {b.window()} of alias {a.alias!r} "
                        f"overlaps line {a.line} {a.window()}; an alias may mean one detector "
                        f"at a time")

    @property
    def records(self) -> List[AliasRecord]:
        return [e for e in self.entries if isinstance(e, AliasRecord)]

    def records_for(self, alias: str) -> List[AliasRecord]:
        return [r for r in self.records if r.alias == alias]

    # ----------------------------------------------------------------- writing
    def add(self, rec: AliasRecord) -> None:
        """Append ``rec``; AliasFileError if it overlaps a record of the same alias."""
        for other in self.records_for(rec.alias):
            if other.overlaps(rec):
                raise AliasFileError(
                    f"alias {rec.alias!r} already means {other.detname!r} during "
                    f"{other.window()} ({self.path}:{other.line}), which overlaps "
                    f"{rec.window()}; remove that record first or choose a window that "
                    f"does not overlap")
        last = max((i for i, e in enumerate(self.entries) if isinstance(e, AliasRecord)),
                   default=len(self.entries) - 1)
        self.entries.insert(last + 1, rec)

    def remove(self, alias: str, begin: Optional[int] = None,
               remove_all: bool = False) -> List[AliasRecord]:
        """Remove the record of ``alias`` beginning at ``begin`` (None: open start).

        With ``remove_all`` every record of the alias is removed.
        """
        gone = [r for r in self.records_for(alias) if remove_all or r.begin == begin]
        self.entries = [e for e in self.entries if not any(e is g for g in gone)]
        return gone

    def render(self) -> str:
        lines = list(_HEADER)
        lines += [e.to_line() if isinstance(e, AliasRecord) else e for e in self.entries]
        while len(lines) > 1 and lines[-1] == "":
            lines.pop()
        if self.history:
            lines += ["", HISTORY_MARKER] + [h.to_line() for h in self.history]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writers
def _write(path: Path, text: str, cfg: Config) -> None:
    """Write ``text`` atomically over ``path`` (the caller holds the lock)."""
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


def _update(path: Path, change: Callable[[AliasFile], str], action: str,
            lock_timeout: Optional[float], cfg: Config) -> AliasFile:
    """Lock ``path``, apply ``change`` (returns the history text), record it, write."""
    if not path.parent.is_dir():
        make_dirs(path.parent, config=cfg)
    try:
        lock = StoreLock(path, lock_timeout).acquire()
    except PermissionError:
        raise permission_error("lock", path, cfg) from None
    try:
        cleanup_leftovers(path)
        af = AliasFile.load(path)
        what = change(af)
        af.history.append(AliasChange(now_ns(), _token(whoami()), _token(hostname()),
                                      action, what))
        _write(path, af.render(), cfg)
        return af
    finally:
        lock.release()


def _time_or_none(value: Optional[TimeLike]) -> Optional[int]:
    if value is None or (isinstance(value, str) and value.strip().lower() in _OPEN_WORDS):
        return None
    return to_ns(value)


def add_alias(calib: PathLike, alias: str, detname: str, begin: Optional[TimeLike] = None,
              end: Optional[TimeLike] = None, *, lock_timeout: Optional[float] = None,
              config: Optional[Config] = None) -> AliasRecord:
    """Make ``alias`` mean ``detname`` during ``[begin, end)`` in calib directory ``calib``.

    The record goes to ``<calib>/<dettype of detname>/aliases.txt``. ``begin``/``end`` None
    leave that side open.

    Raises
    ------
    AliasFileError
        The window overlaps another record of the alias in this calib directory, or the
        file is malformed.
    InvalidNameError
        Bad alias (or one that looks like a detname) or detname.

    Examples
    --------
    >>> add_alias("calib", "CxiDs2.0:Cspad.0", "cspad-0001", end="2024-05-01")  # doctest: +SKIP
    >>> add_alias("calib", "CxiDs2.0:Cspad.0", "cspad-0002", begin="2024-05-01")  # doctest: +SKIP
    """
    cfg = config or load_config()
    _check_alias_name(alias)
    dettype, _ = split_detname(detname)
    rec = AliasRecord(alias, detname, _time_or_none(begin), _time_or_none(end))
    if rec.begin_ns >= rec.end_ns:
        raise InvalidInputError(f"alias window {rec.window()}: begin must be before end")
    path = alias_file_in(calib, dettype)

    def change(af: AliasFile) -> str:
        for other_path in alias_files(calib):  # one alias, one detector at a time per calib
            if other_path != path:
                for other in AliasFile.load(other_path).records_for(alias):
                    if other.overlaps(rec):
                        raise AliasFileError(
                            f"alias {alias!r} already means {other.detname!r} during "
                            f"{other.window()} ({other_path}:{other.line}), which overlaps "
                            f"{rec.window()}")
        af.add(rec)
        return f"{alias} -> {detname} {rec.window()}"

    _update(path, change, "add", lock_timeout, cfg)
    return next(r for r in AliasFile.load(path).records_for(alias) if r == rec)


def remove_alias(calib: PathLike, alias: str, begin: Optional[TimeLike] = None, *,
                 remove_all: bool = False, lock_timeout: Optional[float] = None,
                 config: Optional[Config] = None) -> List[AliasRecord]:
    """Remove records of ``alias`` from the alias files of ``calib``; return them.

    ``begin`` selects the record whose window begins then (``'start'`` for an open start);
    without it the alias must have exactly one record. ``remove_all`` removes every record.

    Raises
    ------
    AliasNotFoundError
        Nothing matches; the message lists the alias's records.
    InvalidInputError
        ``begin`` was not given and the alias has several records.
    """
    cfg = config or load_config()
    validate_alias(alias)
    have = [r for p in alias_files(calib) for r in AliasFile.load(p).records_for(alias)]
    if not have:
        raise AliasNotFoundError(f"no alias {alias!r} in {calib} (alias files: "
                                 f"{', '.join(map(str, alias_files(calib))) or 'none'})")
    if begin is None and not remove_all:
        if len(have) > 1:
            raise InvalidInputError(
                f"alias {alias!r} has {len(have)} records "
                f"({', '.join(r.window() for r in have)}); say which with begin=... "
                f"('start' for an open start) or remove all of them")
        b = have[0].begin
    else:
        b = _time_or_none(begin)
    removed: List[AliasRecord] = []
    for path in sorted({r.path for r in have if r.path is not None}):
        def change(af: AliasFile) -> str:
            gone = af.remove(alias, b, remove_all)
            if not gone:
                raise _NothingToDo()
            removed.extend(gone)
            return "; ".join(f"{r.alias} -> {r.detname} {r.window()}" for r in gone)
        try:
            _update(path, change, "remove", lock_timeout, cfg)
        except _NothingToDo:
            continue
    if not removed:
        when = "start" if b is None else format_ns(b)
        raise AliasNotFoundError(
            f"alias {alias!r} has no record beginning at {when}; its records are "
            f"{', '.join(r.window() for r in have)}")
    return removed


class _NothingToDo(Exception):
    """Internal: a change found nothing to change (the file is not rewritten)."""


# --------------------------------------------------------------------------- readers
def alias_files(calib: PathLike) -> List[Path]:
    """The alias files of a calib directory, sorted (``<calib>/*/aliases.txt``)."""
    try:
        return sorted(Path(calib).glob(f"*/{ALIAS_FILE_NAME}"))
    except PermissionError:
        raise permission_error("read", Path(calib), None, "cannot list directory") from None


def list_aliases(calib: PathLike) -> List[AliasRecord]:
    """All alias records of a calib directory, file by file in file order."""
    return [r for p in alias_files(calib) for r in AliasFile.load(p).records]


def alias_history(calib: PathLike) -> List[Tuple[Path, AliasChange]]:
    """All history records of the alias files of ``calib``, oldest first."""
    out = [(p, h) for p in alias_files(calib) for h in AliasFile.load(p).history]
    return sorted(out, key=lambda x: x[1].tsns)


def _pick(records: Sequence[AliasRecord], t: Optional[int]) -> Optional[AliasRecord]:
    if t is None:
        return max(records, key=lambda r: r.begin_ns, default=None)
    valid = [r for r in records if r.valid_at(t)]
    if len(valid) > 1:
        raise AliasFileError(
            f"alias {valid[0].alias!r} is defined twice at {format_ns(t)}: "
            + ", ".join(f"{r.path}:{r.line}" for r in valid))
    return valid[0] if valid else None


def find_alias(alias: str, places: Sequence[Tuple[str, PathLike]],
               tsp: Optional[TimeLike] = None) -> AliasRecord:
    """Resolve ``alias`` in the first of ``places`` (``(label, calib)`` pairs) defining it.

    At ``tsp`` the record whose window contains it is taken (a place that defines the alias
    only at other times is skipped); without ``tsp``, the record with the latest begin.

    Raises AliasNotFoundError naming the alias files searched and the windows that exist.
    """
    validate_alias(alias)
    t = None if tsp is None else to_ns(tsp)
    searched: List[str] = []
    elsewhere: List[AliasRecord] = []
    for label, calib in places:
        files = alias_files(calib)
        searched.append(f"{label} ({', '.join(map(str, files)) or f'no alias files in {calib}'})")
        recs = [r for p in files for r in AliasFile.load(p).records_for(alias)]
        rec = _pick(recs, t)
        if rec is not None:
            return rec
        elsewhere += recs
    when = "" if t is None else f" at {format_ns(t)}"
    hint = ""
    if elsewhere:
        hint = "; it is defined only during " + ", ".join(
            f"{r.window()} -> {r.detname} ({r.path}:{r.line})" for r in elsewhere)
    raise AliasNotFoundError(f"{alias!r} is not a detector name and no alias file defines it"
                             f"{when}; searched: {'; '.join(searched) or 'nothing'}{hint}")


def resolve_alias(alias: str, calib: Union[PathLike, Sequence[PathLike]],
                  tsp: Optional[TimeLike] = None) -> AliasRecord:
    """Resolve ``alias`` at ``tsp`` in one calib directory (or several, first wins)."""
    dirs = [calib] if isinstance(calib, (str, Path)) else list(calib)
    return find_alias(alias, [(f"calib directory {d}", d) for d in dirs], tsp)
