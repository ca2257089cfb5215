"""The run table file: one run per line, ``RUN BEGIN [END]`` (see :mod:`pscalib.runs`).

Parsing and checking (begin times increase with the run number, a run ends before the next
begins, malformed lines named with ``file:line``), run numbers and run specs (``17-25``),
and the mapping of inclusive runs to a time window. Writing goes through
:func:`pscalib.runs.add_runs` (locked, atomic, with history).
"""
from __future__ import annotations

import bisect
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import InvalidInputError, RunNotFoundError, RunTableError
from .textfiles import (HISTORY_MARKER, FileChange, numbered_lines, parse_history_line,
                        read_text_file)
from .timestamps import OPEN_END, format_ns, to_ns

__all__ = ["RunRecord", "RunTable", "parse_run", "parse_runs", "UNKNOWN_WORDS"]

PathLike = Union[str, Path]

_HEADER = [
    "# pscalib run table: one run per line, fields separated by blanks:",
    "#   RUN  BEGIN  [END]",
    "# RUN: positive integer. BEGIN/END: ISO 8601 (no offset = UTC) or Unix seconds;",
    "# END '-' or missing = not known. Change this file only with 'dcs runs'.",
    "",
]
_FORMAT_HELP = "expected 'RUN BEGIN [END]' (e.g. '17 2024-05-01T00:00:00 2024-05-01T01:00')"
UNKNOWN_WORDS = ("-", "", "none", "unknown")
_SPEC_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+|end)\s*)?$", re.IGNORECASE)


# ----------------------------------------------------------------------- run numbers
def parse_run(value: object, what: str = "run") -> int:
    """A run number: a positive int (or a string of digits, as typed on a command line)."""
    if isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{what} {value!r} is a boolean, not a run number")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{what} {value!r} is not a run number: runs are positive "
                                f"integers (1, 2, ...)")
    run = int(value)
    if run <= 0:
        raise InvalidInputError(f"{what} {run} is not a run number: runs are positive "
                                f"integers (1, 2, ...)")
    return run


def parse_runs(spec: object) -> Tuple[int, Optional[int]]:
    """``'17-25'``, ``'17-end'``, ``'17'``, ``(17, 25)``, ``(17, None)`` -> ``(17, 25 | None)``.

    Inclusive, as in psana's ``17-25.data``; None (``end``) means open.
    """
    if isinstance(spec, str):
        m = _SPEC_RE.match(spec)
        if not m:
            raise InvalidInputError(f"runs {spec!r}: use FIRST-LAST (inclusive, e.g. '17-25'),"
                                    f" FIRST-end (e.g. '17-end') or one run ('17')")
        first = parse_run(m.group(1), "first run")
        last_s = m.group(2)
        last = (first if last_s is None else None if last_s.lower() == "end"
                else parse_run(last_s, "last run"))
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        first = parse_run(spec[0], "first run")
        end = spec[1]
        last = None if end is None or (isinstance(end, str) and end.strip().lower() == "end") \
            else parse_run(end, "last run")
    else:
        raise InvalidInputError(f"runs={spec!r}: give (first, last) (inclusive; last None for "
                                f"'end') or a string such as '17-25' or '17-end'")
    if last is not None and last < first:
        raise InvalidInputError(f"runs {first}-{last}: the last run is before the first")
    return first, last


# ----------------------------------------------------------------------- the file
@dataclass(frozen=True)
class RunRecord:
    """One run: ``begin`` (ns) and ``end`` (ns or None if not known); ``line`` in the file."""
    run: int
    begin: int
    end: Optional[int] = None
    line: int = 0

    def to_line(self) -> str:
        end = "-" if self.end is None else format_ns(self.end)
        return f"{self.run:<8d} {format_ns(self.begin):<25} {end}"

    def to_dict(self) -> dict:
        return {"run": self.run, "begin": format_ns(self.begin), "begin_ns": self.begin,
                "end": None if self.end is None else format_ns(self.end), "end_ns": self.end}

    def same_times(self, other: "RunRecord") -> bool:
        return (self.begin, self.end) == (other.begin, other.end)


class RunTable:
    """The parsed run table of one experiment (records sorted by run, comments kept)."""

    def __init__(self, path: PathLike, experiment: Optional[str] = None):
        self.path = Path(path)
        self.experiment = experiment
        self.records: Dict[int, RunRecord] = {}
        self.comments: List[str] = []
        self.history: List[FileChange] = []
        self.exists = False
        self._sorted: Optional[Tuple[List[int], List[int]]] = None

    @property
    def label(self) -> str:
        return f"experiment {self.experiment}" if self.experiment else "the experiment"

    # ----------------------------------------------------------------- reading
    @classmethod
    def load(cls, path: PathLike, experiment: Optional[str] = None) -> "RunTable":
        """Read and check ``path`` (a missing file gives an empty table)."""
        rt = cls(path, experiment)
        text = read_text_file(rt.path, RunTableError, "run tables", "dcs runs")
        if text is None:
            return rt
        rt.exists = True
        rt._parse(text)
        return rt

    def _parse(self, text: str) -> None:
        in_history = False
        for lineno, line in numbered_lines(text):
            stripped = line.strip()
            where = f"{self.path}:{lineno}"
            if stripped == HISTORY_MARKER:
                in_history = True
            elif stripped.startswith("#@"):
                self.history.append(parse_history_line(stripped, where, RunTableError))
            elif in_history and stripped:
                raise RunTableError(f"{where}: only '#@' history lines may follow the history "
                                    f"marker; move runs above it")
            elif not stripped or stripped.startswith("#"):
                if not in_history and line not in _HEADER:
                    self.comments.append(line)
            else:
                rec = _parse_record(stripped, where, lineno)
                if rec.run in self.records:
                    raise RunTableError(f"{where}: run {rec.run} is listed twice (first on "
                                        f"line {self.records[rec.run].line})")
                self.records[rec.run] = rec
        try:
            self._check()
        except RunTableError as exc:
            raise RunTableError(f"{self.path}:{exc}") from None

    def _check(self) -> None:
        """Begin times increase with the run number; each run ends before the next begins.

        Raises RunTableError as ``'<line>: message'`` (the caller adds the file).
        """
        recs = [self.records[r] for r in sorted(self.records)]
        for a, b in zip(recs, recs[1:]):
            if b.begin <= a.begin:
                raise RunTableError(
                    f"{b.line or '?'}: run {b.run} begins at {format_ns(b.begin)}, not after "
                    f"run {a.run} ({format_ns(a.begin)}); begin times must increase with "
                    f"the run number")
            if a.end is not None and a.end > b.begin:
                raise RunTableError(
                    f"{a.line or '?'}: run {a.run} ends at {format_ns(a.end)}, after run "
                    f"{b.run} begins ({format_ns(b.begin)})")
        self._sorted = None

    # ----------------------------------------------------------------- lookups
    def _arrays(self) -> Tuple[List[int], List[int]]:
        if self._sorted is None:
            runs = sorted(self.records)
            self._sorted = (runs, [self.records[r].begin for r in runs])
        return self._sorted

    def _missing(self, run: int, why: str = "") -> RunNotFoundError:
        if not self.exists:
            return RunNotFoundError(
                f"run {run} of {self.label}: there is no run table {self.path}; add runs with "
                f"'dcs runs add' or 'dcs runs import FILE'")
        runs = self._arrays()[0]
        have = f"runs {runs[0]}..{runs[-1]} ({len(runs)} listed)" if runs else "no runs"
        return RunNotFoundError(f"run {run} is not in the run table of {self.label} "
                                f"({self.path}, which has {have}){why}; add it with "
                                f"'dcs runs add'")

    def get(self, run: int) -> RunRecord:
        """The record of ``run`` (RunNotFoundError naming run, experiment and file)."""
        rec = self.records.get(run)
        if rec is None:
            raise self._missing(run)
        return rec

    def begin_of(self, run: int) -> int:
        return self.get(run).begin

    def window(self, first: int, last: Optional[int]) -> Tuple[int, int]:
        """``(tsbegin, tsend)`` in ns of runs ``first..last`` inclusive (last None: open)."""
        b = self.get(first).begin
        if last is None:
            return b, OPEN_END
        rec = self.get(last)
        if rec.end is not None:  # stable: later runs added to the table do not move it
            return b, rec.end
        later = [r for r in self._arrays()[0] if r > last]
        if later:
            return b, self.records[later[0]].begin
        raise RunNotFoundError(
            f"the end of runs {first}-{last} is not known: run {last} has no end time and no "
            f"later run is in the run table of {self.label} ({self.path}); give run {last}'s "
            f"end ('dcs runs add {last} BEGIN END --replace') or use {first}-end")

    def run_at(self, t: int) -> Optional[int]:
        """The run during which ``t`` falls (begin <= t < end or next begin), or None."""
        runs, begins = self._arrays()
        i = bisect.bisect_right(begins, t) - 1
        if i < 0:
            return None
        rec = self.records[runs[i]]
        return rec.run if rec.end is None or t < rec.end else None

    # ----------------------------------------------------------------- writing
    def add(self, rec: RunRecord, replace: bool = False) -> str:
        """Add (or with ``replace`` change) one run; returns 'added'/'changed'/'unchanged'."""
        old = self.records.get(rec.run)
        if old is not None and old.same_times(rec):
            return "unchanged"
        if old is not None and not replace:
            raise RunTableError(
                f"run {rec.run} is already in {self.path} (line {old.line}: begin "
                f"{format_ns(old.begin)}"
                + (f", end {format_ns(old.end)}" if old.end is not None else "")
                + "); use --replace to change it")
        self.records[rec.run] = RunRecord(rec.run, rec.begin, rec.end, 0)
        try:
            self._check()
        except RunTableError as exc:
            msg = str(exc).split(": ", 1)[1]
            raise RunTableError(f"run {rec.run} cannot be added to {self.path}: {msg}") from None
        return "changed" if old is not None else "added"

    def render(self) -> str:
        lines = list(_HEADER) + [c for c in self.comments if c.strip()]
        lines += [self.records[r].to_line() for r in sorted(self.records)]
        if self.history:
            lines += ["", HISTORY_MARKER] + [h.to_line() for h in self.history]
        return "\n".join(lines) + "\n"


def _parse_record(line: str, where: str, lineno: int) -> RunRecord:
    fields = line.split()
    if not 2 <= len(fields) <= 3:
        raise RunTableError(f"{where}: {len(fields)} field(s); {_FORMAT_HELP}")
    try:
        run = parse_run(fields[0])
    except InvalidInputError as exc:
        raise RunTableError(f"{where}: {exc}") from None
    begin = _parse_time(fields[1], f"begin of run {run}", where)
    end = _parse_time(fields[2], f"end of run {run}", where) if len(fields) > 2 else None
    if begin is None:
        raise RunTableError(f"{where}: run {run} has no begin time; {_FORMAT_HELP}")
    if end is not None and end <= begin:
        raise RunTableError(f"{where}: run {run} ends ({format_ns(end)}) before it begins "
                            f"({format_ns(begin)})")
    return RunRecord(run, begin, end, lineno)


def _parse_time(text: str, what: str, where: str) -> Optional[int]:
    if text.strip().lower() in UNKNOWN_WORDS:
        return None
    try:
        return to_ns(text)
    except InvalidInputError as exc:
        raise RunTableError(f"{where}: {what} {text!r}: {exc}") from None


