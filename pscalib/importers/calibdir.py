"""Import psana1 text calibration directories into native stores (``dcs import-calibdir``).

Layout read::

    <calib>/<Group>::CalibV1/<DAQ source>/<ctype>/<run_begin>-<run_end|end>.data

Array files are NDArrIO text (:mod:`pscalib.ndarrio`); files of the text calibration types
(``geometry`` by default) are kept byte for byte. psana1 selects by run number: among the
files whose run range holds a run, the one with the latest begin run wins. pscalib selects
by time, so the import needs the begin time of every run involved (the *run table*):

- a file ``rb-re.data`` becomes the range ``[begin(rb), begin(re + 1))``, ``rb-end.data``
  the open range ``[begin(rb), end)``; both ``rb`` and (for a closed range) ``re + 1``
  must be in the table, otherwise the import stops with an error naming the run and file;
- with run begin times increasing with the run number, ``get`` at any time during run ``r``
  returns what psana1 returned for run ``r`` (latest begin run wins; for two files with the
  same begin run pscalib takes the one with the smaller end run);
- each file becomes version 1 of its range, ``tsprod`` = the file's modification time; the
  free ``# KEY value`` header lines become the version's dictpars (string values), plus
  ``psana1_file`` (path relative to the calib directory), ``run_begin`` (int) and
  ``run_end`` (int, or the string ``'end'``).

Run table (CSV): a header row naming at least the columns ``run`` and ``begin`` (others
are ignored), one row per run; ``begin`` is ISO 8601 (no offset = UTC) or Unix seconds;
blank lines and lines starting with ``#`` are skipped.

One new store per detector (``--detname SRC=DETNAME`` for every DAQ source in the directory;
several sources may map to one detector only if their files do not collide) and an alias
record ``SRC -> DETNAME`` (open window) in the target calib directory. Stores are never
overwritten; if any file fails, the stores created by this import are removed again and no
alias is written.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from ..aliases import add_alias, list_aliases
from ..errors import (AliasFileError, InvalidInputError, PscalibError, StoreExistsError)
from ..names import split_detname, validate_alias, validate_ctype
from ..ndarrio import load_ndarrio
from ..paths import is_detname, store_file_in
from ..runs import csv_lines
from ..store import DCStore
from ..store.payload import normalize_payload
from ..timestamps import format_ns, to_ns

__all__ = ["CalibFile", "CalibdirSummary", "read_run_table", "scan_calibdir", "run_window",
           "read_calib_file", "import_calibdir", "TEXT_CTYPES"]

PathLike = Union[str, Path]

#: Calibration types whose files are text kept as is rather than NDArrIO arrays.
TEXT_CTYPES: Tuple[str, ...] = ("geometry",)
GROUP_SUFFIX = "::CalibV1"
_NAME_RE = re.compile(r"^(\d+)-(\d+|end)\.data$")
IMPORT_ACTION = "import_calibdir"


class CalibFile(NamedTuple):
    """One psana1 calibration file and what its path says."""
    path: Path
    group: str
    source: str
    ctype: str
    run_begin: int
    run_end: Optional[int]  # None: 'end' (valid for all later runs)

    @property
    def runs(self) -> str:
        return f"{self.run_begin}-{'end' if self.run_end is None else self.run_end}"


class CalibdirSummary(NamedTuple):
    """What an import wrote: one entry per detector, plus files it did not recognise."""
    stores: Dict[str, Path]       # detname -> store file
    files: Dict[str, int]         # detname -> number of files imported
    aliases: List[Tuple[str, str]]  # (source, detname)
    skipped: List[Path]           # files/directories not following the layout


def read_run_table(path: PathLike) -> Dict[int, int]:
    """Read a run table CSV (columns ``run``, ``begin``) into ``{run: begin ns}``.

    Raises
    ------
    InvalidInputError
        Missing columns, a bad run number or time (naming file and line), a repeated run,
        or begin times that do not increase with the run number.
    """
    p = Path(path)
    rows = csv_lines(p, "run table")
    if not rows:
        raise InvalidInputError(f"run table {p} is empty; expected a header 'run,begin' and "
                                f"one row per run")
    header = [h.strip().lower() for h in next(csv.reader([rows[0][1]]))]
    if "run" not in header or "begin" not in header:
        raise InvalidInputError(f"{p}:{rows[0][0]}: header {rows[0][1]!r} must name the "
                                f"columns 'run' and 'begin' (e.g. 'run,begin')")
    ir, ib = header.index("run"), header.index("begin")
    out: Dict[int, int] = {}
    for n, line in rows[1:]:
        cells = next(csv.reader([line]))
        where = f"{p}:{n}"
        if len(cells) <= max(ir, ib):
            raise InvalidInputError(f"{where}: expected {len(header)} columns, got {line!r}")
        try:
            run = int(cells[ir].strip())
            if run < 0:
                raise ValueError
        except ValueError:
            raise InvalidInputError(f"{where}: run {cells[ir]!r} is not a run number") from None
        try:
            begin = to_ns(cells[ib].strip())
        except PscalibError as exc:
            raise InvalidInputError(f"{where}: begin time of run {run}: {exc}") from None
        if run in out:
            raise InvalidInputError(f"{where}: run {run} appears twice")
        out[run] = begin
    ordered = sorted(out.items())
    for (r1, t1), (r2, t2) in zip(ordered, ordered[1:]):
        if t2 <= t1:
            raise InvalidInputError(
                f"{p}: run {r2} begins at {format_ns(t2)}, not after run {r1} "
                f"({format_ns(t1)}); run begin times must increase with the run number")
    return out


def scan_calibdir(calib: PathLike) -> Tuple[List[CalibFile], List[Path]]:
    """All calibration files of a psana1 calib directory, and the paths not recognised."""
    root = Path(calib)
    if not root.is_dir():
        raise InvalidInputError(f"psana1 calib directory {root} does not exist or is not a "
                                f"directory")
    files: List[CalibFile] = []
    skipped: List[Path] = []
    for gdir in sorted(root.iterdir()):
        if not (gdir.is_dir() and gdir.name.endswith(GROUP_SUFFIX)):
            skipped.append(gdir)
            continue
        for sdir in sorted(gdir.iterdir()):
            if not sdir.is_dir():
                skipped.append(sdir)
                continue
            for cdir in sorted(sdir.iterdir()):
                if not cdir.is_dir():
                    skipped.append(cdir)
                    continue
                try:
                    ctype = validate_ctype(cdir.name)
                except PscalibError:
                    skipped.append(cdir)
                    continue
                for f in sorted(cdir.iterdir()):
                    m = _NAME_RE.match(f.name)
                    if not m or not f.is_file():
                        skipped.append(f)
                        continue
                    rb = int(m.group(1))
                    re_ = None if m.group(2) == "end" else int(m.group(2))
                    if re_ is not None and re_ < rb:
                        raise InvalidInputError(f"{f}: run range {f.name[:-5]} ends before it "
                                                f"begins")
                    files.append(CalibFile(f, gdir.name, sdir.name, ctype, rb, re_))
    return files, skipped


def run_window(cf: CalibFile, runs: Dict[int, int],
               runs_path: PathLike) -> Tuple[int, Optional[int]]:
    """``(tsbegin, tsend or None)`` in ns of a file's run range (see module docstring)."""
    if cf.run_begin not in runs:
        raise InvalidInputError(
            f"run {cf.run_begin} is not in the run table {runs_path}; it is needed as the "
            f"begin of {cf.path} (runs {cf.runs}) - add its begin time")
    if cf.run_end is None:
        return runs[cf.run_begin], None
    nxt = cf.run_end + 1
    if nxt not in runs:
        raise InvalidInputError(
            f"run {nxt} is not in the run table {runs_path}; its begin time is needed as the "
            f"end of {cf.path} (runs {cf.runs}, valid until run {nxt} begins) - add it")
    return runs[cf.run_begin], runs[nxt]


def read_calib_file(cf: CalibFile, calib: PathLike, text_ctypes: Iterable[str] = TEXT_CTYPES):
    """``(payload, dictpars)`` of one file: an array with its header, or exact text."""
    pars: Dict[str, object] = {}
    if cf.ctype in tuple(text_ctypes):
        raw = cf.path.read_bytes()
        try:
            payload = normalize_payload(raw)
        except PscalibError as exc:
            raise type(exc)(f"{cf.path}: {exc}") from None
    else:
        payload, header = load_ndarrio(cf.path)
        pars.update(header)
    pars.update({"psana1_file": str(cf.path.relative_to(calib)), "run_begin": cf.run_begin,
                 "run_end": "end" if cf.run_end is None else cf.run_end})
    return payload, pars


def _plan(files: List[CalibFile], detnames: Dict[str, str], runs: Dict[int, int],
          runs_path: PathLike, calib: Path, to: Path):
    """Check names, mapping, run table and targets; nothing is written here."""
    for src, det in detnames.items():
        validate_alias(src)
        if is_detname(src):  # the alias file would refuse it after the stores are written
            raise InvalidInputError(f"DAQ source {src!r} has the form of a detector name and "
                                    f"cannot become an alias")
        split_detname(det)
    sources = sorted({cf.source for cf in files})
    unmapped = [s for s in sources if s not in detnames]
    if unmapped:
        raise InvalidInputError(
            f"no detector name for DAQ source(s) {', '.join(unmapped)} of {calib}; give "
            f"--detname SRC=DETNAME for each (e.g. --detname {unmapped[0]}=cspad-0001)")
    unused = sorted(set(detnames) - set(sources))
    if unused:
        raise InvalidInputError(f"DAQ source(s) {', '.join(unused)} given with --detname have "
                                f"no files in {calib} (it has {', '.join(sources) or 'none'})")
    plan: Dict[str, List[Tuple[CalibFile, int, Optional[int]]]] = {}
    seen: Dict[Tuple[str, str, int, Optional[int]], CalibFile] = {}
    for cf in files:
        det = detnames[cf.source]
        b, e = run_window(cf, runs, runs_path)
        k = (det, cf.ctype, b, e)
        if k in seen:
            raise InvalidInputError(f"{seen[k].path} and {cf.path} are both {cf.ctype} of "
                                    f"{det} for runs {cf.runs}; keep one of them")
        seen[k] = cf
        plan.setdefault(det, []).append((cf, b, e))
    for det in plan:
        dest = store_file_in(to, det)
        if dest.exists():
            raise StoreExistsError(f"{dest} already exists; an import never overwrites or "
                                   f"merges into a store - move it away or import elsewhere")
    return plan


def _check_aliases(to: Path, pairs: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """Alias records still to write; errors on a conflict before anything is written."""
    have = list_aliases(to) if to.is_dir() else []
    todo = []
    for src, det in pairs:
        recs = [r for r in have if r.alias == src]
        if any(r.detname == det and r.begin is None and r.end is None for r in recs):
            continue  # already there (e.g. an earlier import of another experiment)
        if recs:
            now = ", ".join(f"{r.detname} {r.window()}" for r in recs)
            raise AliasFileError(
                f"alias {src!r} already exists in {to} ({now}); "
                f"cannot also map it to {det!r} for all times - remove it with 'dcs alias' first")
        todo.append((src, det))
    return todo


def import_calibdir(calib: PathLike, runs_csv: PathLike, detnames: Dict[str, str],
                    to: PathLike, *, text_ctypes: Iterable[str] = TEXT_CTYPES,
                    lock_timeout: Optional[float] = None) -> CalibdirSummary:
    """Import a psana1 calib directory into one new store per detector in ``to``.

    Parameters
    ----------
    calib
        The psana1 calib directory (holding ``<Group>::CalibV1`` directories).
    runs_csv
        Run table, CSV with columns ``run`` and ``begin`` (see module docstring).
    detnames
        ``{DAQ source: detname}`` for every source in ``calib``.
    to
        Target calib directory (created as needed).
    text_ctypes
        Calibration types whose files are kept as text (default: geometry).

    Returns
    -------
    CalibdirSummary

    Raises
    ------
    InvalidInputError
        A run missing from the table (naming run and file), unmapped sources, bad table.
    InvalidPayloadError
        A malformed NDArrIO file (naming file and line).
    StoreExistsError, AliasFileError
        A target store or a conflicting alias exists; nothing is written.
    """
    calib, to = Path(calib), Path(to)
    runs = read_run_table(runs_csv)
    files, skipped = scan_calibdir(calib)
    if not files:
        raise InvalidInputError(f"{calib} holds no psana1 calibration files "
                                f"(<Group>::CalibV1/<source>/<ctype>/<runs>.data)")
    plan = _plan(files, detnames, runs, runs_csv, calib, to)
    pairs = sorted({(cf.source, detnames[cf.source]) for cf in files})
    alias_todo = _check_aliases(to, pairs)
    created: List[Path] = []
    stores: Dict[str, Path] = {}
    try:
        for det, entries in sorted(plan.items()):
            cs = DCStore(to, det, mode="x", lock_timeout=lock_timeout)
            created.append(cs.path)
            try:
                with cs.transaction():
                    for cf, b, e in sorted(entries, key=lambda x: (x[0].ctype, x[1])):
                        payload, pars = read_calib_file(cf, calib, text_ctypes)
                        tsprod = os.stat(cf.path).st_mtime_ns
                        cs.add_constants(cf.ctype, payload, (b // 10**9, b % 10**9),
                                         None if e is None else (e // 10**9, e % 10**9),
                                         dictpars=pars, tsprod=(tsprod // 10**9,
                                                                tsprod % 10**9),
                                         comment=f"imported from {cf.path} (runs {cf.runs})")
                    srcs = sorted({cf.source for cf, _, _ in entries})
                    cs.add_history(f"imported {len(entries)} files of {', '.join(srcs)} from "
                                   f"psana1 calib directory {calib.resolve()} with run table "
                                   f"{Path(runs_csv).resolve()}", action=IMPORT_ACTION)
            finally:
                cs.close()
            stores[det] = cs.path
    except BaseException:
        for p in created:  # new files of this import only: exact or nothing
            try:
                os.unlink(p)
            except OSError:
                pass
        raise
    for src, det in alias_todo:
        add_alias(to, src, det, lock_timeout=lock_timeout)
    return CalibdirSummary(stores, {d: len(v) for d, v in plan.items()}, pairs, skipped)
