"""Import psana1 text calibration directories into native stores (``dcs import-calibdir``).

Layout read::

    <calib>/<Group>::CalibV1/<DAQ source>/<ctype>/<run_begin>-<run_end|end>.data
    <calib>/<Group>::CalibV1/<DAQ source>/<ctype>/HISTORY

Which files psana1 reads (``PSCalib/src/CalibFileFinder.py``, also its C++ twin):

- only the calib group of the source's detector type (:func:`pscalib.psana_shapes.calib_group`:
  ``CsPad::CalibV1`` for ``CxiDs2.0:Cspad.0``); a source directory under another group is
  skipped and reported;
- file names ``<begin>-<end>.data`` with decimal run numbers up to 9999 (``end`` = open);
  among the files with ``begin <= run <= end`` the highest begin wins, for equal begins the
  smaller end; a run above 9999 is looked up as 9999. A file whose end is before its begin
  is never selected: it is skipped with a warning.

pscalib selects by time, so the import needs the begin time of the runs (the *run table*).
A file becomes the range ``[begin(m(b)), begin(m(e + 1)))`` where ``m(x)`` is the first
listed run at or after ``x``; the range is open for ``end`` files and when no listed run
follows ``e``. A file that psana1 selects for no listed run (shadowed by others, or its runs
are not in the table) is skipped and reported. With these rules ``get`` at any time of every
listed run returns exactly the file psana1 picks for that run (tested against an independent
implementation of the rule over random directories).

Each imported file becomes version 1 of its range, ``tsprod`` = the file's modification
time; its free ``# KEY value`` header lines become the version's dictpars (string values),
plus ``psana1_file`` (path relative to the calib directory), ``run_begin`` (int) and
``run_end`` (int, or the string ``'end'``). Array files are NDArrIO text in any of psana's
variants; headerless files get shape and dtype from the detector type and ctype
(:mod:`pscalib.psana_shapes`) or from ``shapes``/``dtypes`` (``--shape``/``--dtype``).
Each line of a ``HISTORY`` file becomes a history record (action ``psana1_history``) of the
range of the file it names (``file:<name>``), or of the ctype if that file was not imported.

Run table (CSV): a header row naming at least the columns ``run`` and ``begin`` (others
are ignored), one row per run; ``begin`` is ISO 8601 (no offset = UTC) or Unix seconds;
blank lines and lines starting with ``#`` are skipped.

One new store per detector (``--detname SRC=DETNAME`` for every DAQ source in the directory;
several sources may map to one detector only if their ranges do not collide) and an alias
record ``SRC -> DETNAME`` (open window) in the target calib directory. Stores are never
overwritten; if anything fails, everything this import created (stores, their lock files,
directories, alias records) is removed again.
"""
from __future__ import annotations

import bisect
import csv
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..aliases import add_alias, list_aliases
from ..errors import (AliasFileError, InvalidInputError, PscalibError, StoreExistsError)
from ..names import split_detname, validate_alias, validate_ctype
from ..ndarrio import load_ndarrio
from ..paths import alias_file_in, is_detname, store_file_in
from ..psana_shapes import RUN_MAX, calib_group, dettype_of_source
from ..store import DCStore
from ..store.payload import normalize_payload
from ..timestamps import format_ns, to_ns
from ..txn.lock import lock_path_for, soft_lock_path_for

__all__ = ["CalibFile", "Skipped", "CalibdirSummary", "read_run_table", "scan_calibdir",
           "psana1_pick", "plan_windows", "read_calib_file", "import_calibdir", "TEXT_CTYPES"]

PathLike = Union[str, Path]

#: Calibration types whose files are text kept as is rather than NDArrIO arrays.
TEXT_CTYPES: Tuple[str, ...] = ("geometry",)
GROUP_SUFFIX = "::CalibV1"
_NAME_RE = re.compile(r"^([0-9]+)-([0-9]+|end)\.data$")
_HISTORY_FILE_RE = re.compile(r"(?:^|\s)file:(\S+)")
IMPORT_ACTION = "import_calibdir"
HISTORY_ACTION = "psana1_history"


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

    @property
    def last_run(self) -> int:
        """psana1's end run: ``end`` means 9999."""
        return RUN_MAX if self.run_end is None else self.run_end


class Skipped(NamedTuple):
    """A path the import did not take, and why."""
    path: Path
    reason: str
    warning: bool = False  # True: psana1 itself would never use it (a stray file)


class CalibdirSummary(NamedTuple):
    """What an import wrote: one entry per detector, plus what it did not take."""
    stores: Dict[str, Path]       # detname -> store file
    files: Dict[str, int]         # detname -> number of files imported
    aliases: List[Tuple[str, str]]  # (source, detname)
    skipped: List[Skipped]        # paths not imported, with the reason


def read_run_table(path: PathLike) -> Dict[int, int]:
    """Read a run table CSV (columns ``run``, ``begin``) into ``{run: begin ns}``.

    Raises
    ------
    InvalidInputError
        Missing columns, a bad run number or time (naming file and line), a repeated run,
        or begin times that do not increase with the run number.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"run table {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read run table {p}: {exc}") from None
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
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


def _sorted_dir(d: Path) -> List[Path]:
    try:
        return sorted(d.iterdir())
    except OSError as exc:
        raise InvalidInputError(f"cannot list {d}: {exc.strerror or exc}") from None


def scan_calibdir(calib: PathLike) -> Tuple[List[CalibFile], List[Skipped]]:
    """The files psana1 could read in a calib directory, and the paths it never reads.

    A path is skipped when it is not in the layout, is under a calib group psana1 does
    not search for its source, or is a file name psana1 rejects or can never select
    (end before begin, run numbers above 9999). ``HISTORY`` files are not listed (they
    are read by :func:`import_calibdir`).
    """
    root = Path(calib)
    if not root.is_dir():
        raise InvalidInputError(f"psana1 calib directory {root} does not exist or is not a "
                                f"directory")
    files: List[CalibFile] = []
    skipped: List[Skipped] = []
    for gdir in _sorted_dir(root):
        if not (gdir.is_dir() and gdir.name.endswith(GROUP_SUFFIX)):
            skipped.append(Skipped(gdir, "not a <Group>::CalibV1 directory"))
            continue
        for sdir in _sorted_dir(gdir):
            if not sdir.is_dir():
                skipped.append(Skipped(sdir, "not a DAQ source directory"))
                continue
            dettype = dettype_of_source(sdir.name)
            group = calib_group(dettype)
            if group != gdir.name:
                why = (f"psana1 reads {group}/{sdir.name} for this {dettype} source, not "
                       f"{gdir.name}" if group else
                       f"psana1 knows no detector type for source {sdir.name!r}")
                skipped.append(Skipped(sdir, why, warning=True))
                continue
            for cdir in _sorted_dir(sdir):
                try:
                    ctype = validate_ctype(cdir.name) if cdir.is_dir() else None
                except PscalibError:
                    ctype = None
                if ctype is None:
                    skipped.append(Skipped(cdir, "not a calibration type directory"))
                    continue
                for f in _sorted_dir(cdir):
                    if f.name == "HISTORY" and f.is_file():
                        continue
                    cf = _calib_file(f, gdir.name, sdir.name, ctype, skipped)
                    if cf is not None:
                        files.append(cf)
    return files, skipped


def _calib_file(f: Path, group: str, source: str, ctype: str,
                skipped: List[Skipped]) -> Optional[CalibFile]:
    m = _NAME_RE.match(f.name)
    if not m or not f.is_file():
        skipped.append(Skipped(f, "not <begin>-<end|end>.data"))
        return None
    rb = int(m.group(1))
    re_ = None if m.group(2) == "end" else int(m.group(2))
    if rb > RUN_MAX or (re_ is not None and re_ > RUN_MAX):
        skipped.append(Skipped(f, f"psana1 rejects run numbers above {RUN_MAX}",
                               warning=True))
        return None
    if re_ is not None and re_ < rb:
        skipped.append(Skipped(f, f"run range {f.name[:-5]} ends before it begins; psana1 "
                                  f"never selects it", warning=True))
        return None
    return CalibFile(f, group, source, ctype, rb, re_)


def psana1_pick(files: Sequence[CalibFile], run: int) -> Optional[CalibFile]:
    """The file psana1 selects for ``run`` among the files of one source and ctype."""
    r = min(run, RUN_MAX)
    best: Optional[CalibFile] = None
    for cf in files:
        if cf.run_begin <= r <= cf.last_run and (
                best is None or (cf.run_begin, -cf.last_run) > (best.run_begin, -best.last_run)):
            best = cf
    return best


def plan_windows(files: Sequence[CalibFile], runs: Dict[int, int]
                 ) -> Tuple[List[Tuple[CalibFile, int, Optional[int]]], List[Skipped]]:
    """Time windows of the files of ONE source and ctype that psana1 uses for listed runs.

    Returns ``([(file, tsbegin ns, tsend ns or None)], skipped)``; see the module docstring.

    Raises
    ------
    InvalidInputError
        Two files psana1 cannot tell apart (same begin and end run, e.g. ``5-end`` and
        ``05-end``): its choice would depend on the directory order.
    """
    seen: Dict[Tuple[int, int], CalibFile] = {}
    for cf in files:
        k = (cf.run_begin, cf.last_run)
        if k in seen:
            raise InvalidInputError(
                f"{seen[k].path} and {cf.path} both cover runs {cf.run_begin}-{cf.last_run}; "
                f"psana1's choice between them depends on the directory order - keep one")
        seen[k] = cf
    listed = sorted(runs)
    used = {psana1_pick(files, r) for r in listed} - {None}
    out: List[Tuple[CalibFile, int, Optional[int]]] = []
    skipped: List[Skipped] = []
    for cf in files:
        if cf not in used:
            skipped.append(Skipped(cf.path, f"psana1 selects it for no run of the run table "
                                            f"(runs {cf.runs})"))
            continue
        first = listed[bisect.bisect_left(listed, cf.run_begin)]
        end: Optional[int] = None
        if cf.run_end is not None and cf.run_end < RUN_MAX:
            i = bisect.bisect_left(listed, cf.run_end + 1)
            end = runs[listed[i]] if i < len(listed) else None
        out.append((cf, runs[first], end))
    return out, skipped


def read_calib_file(cf: CalibFile, calib: PathLike, text_ctypes: Iterable[str] = TEXT_CTYPES,
                    shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                    dtypes: Optional[Dict[str, str]] = None):
    """``(payload, dictpars)`` of one file: an array with its header, or exact text.

    Headerless arrays get shape and dtype from ``shapes``/``dtypes`` (by ctype), else from
    psana1's table for the source's detector type and the ctype.
    """
    pars: Dict[str, object] = {}
    if cf.ctype in tuple(text_ctypes):
        raw = cf.path.read_bytes()
        try:
            payload = normalize_payload(raw)
        except PscalibError as exc:
            raise type(exc)(f"{cf.path}: {exc}") from None
    else:
        payload, header = load_ndarrio(cf.path, dettype=dettype_of_source(cf.source),
                                       ctype=cf.ctype, shape=(shapes or {}).get(cf.ctype),
                                       dtype=(dtypes or {}).get(cf.ctype))
        pars.update(header)
    pars.update({"psana1_file": str(cf.path.relative_to(calib)), "run_begin": cf.run_begin,
                 "run_end": "end" if cf.run_end is None else cf.run_end})
    return payload, pars


def _check_names(files: List[CalibFile], detnames: Dict[str, str], calib: Path) -> None:
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


def _plan(files: List[CalibFile], detnames: Dict[str, str], runs: Dict[int, int],
          calib: Path, to: Path, skipped: List[Skipped]):
    """Check names, mapping, run table and targets; nothing is written here."""
    _check_names(files, detnames, calib)
    groups: Dict[Tuple[str, str], List[CalibFile]] = {}
    for cf in files:
        groups.setdefault((cf.source, cf.ctype), []).append(cf)
    plan: Dict[str, List[Tuple[CalibFile, int, Optional[int]]]] = {}
    seen: Dict[Tuple[str, str, int, Optional[int]], CalibFile] = {}
    for (src, _), group in sorted(groups.items()):
        det = detnames[src]
        windows, skip = plan_windows(group, runs)
        skipped.extend(skip)
        for cf, b, e in windows:
            k = (det, cf.ctype, b, e)
            if k in seen:
                raise InvalidInputError(f"{seen[k].path} and {cf.path} both become {cf.ctype} "
                                        f"of {det} for the same time range; keep one of them")
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


def _history_lines(cdir: Path) -> List[str]:
    """Non-blank lines of ``cdir/HISTORY`` (psana1's deploy log), or [] without one."""
    p = cdir / "HISTORY"
    if not p.is_file():
        return []
    text = p.read_bytes().decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _add_histories(cs: DCStore, entries, ranges: Dict[Path, object], calib: Path) -> int:
    """HISTORY lines -> history records of the imported ranges (or their ctype)."""
    count = 0
    for cdir in sorted({cf.path.parent for cf, _, _ in entries}):
        ctype = cdir.name
        for line in _history_lines(cdir):
            m = _HISTORY_FILE_RE.search(line)
            rng = ranges.get(cdir / m.group(1)) if m else None
            if rng is not None:
                rng.add_history(line, action=HISTORY_ACTION)  # type: ignore[attr-defined]
            else:
                rel = (cdir / "HISTORY").relative_to(calib)
                cs.ctypeobj(ctype).add_history(f"{rel}: {line}", action=HISTORY_ACTION)
            count += 1
    return count


class _Undo:
    """What an import created, to remove it all again if the import fails."""

    def __init__(self) -> None:
        self.files: List[Path] = []
        self.dirs: List[Path] = []
        self.restore: Dict[Path, Optional[bytes]] = {}

    def note_dirs(self, d: Path) -> None:
        missing = []
        while not d.exists() and d.parent != d:
            missing.append(d)
            d = d.parent
        self.dirs.extend(p for p in missing if p not in self.dirs)

    def _note_new(self, paths: Iterable[Path]) -> None:
        # only files that do not exist yet: another writer's lock file is never removed
        self.files += [p for p in paths if not p.exists() and p not in self.files]

    def note_store(self, path: Path) -> None:
        self._note_new([path, lock_path_for(path), soft_lock_path_for(path)])

    def note_file(self, path: Path) -> None:
        if path not in self.restore:
            self.restore[path] = path.read_bytes() if path.exists() else None
            self._note_new([lock_path_for(path), soft_lock_path_for(path)])

    def run(self) -> None:
        for p, data in self.restore.items():
            try:
                if data is None:
                    p.unlink()
                else:
                    p.write_bytes(data)
            except OSError:
                pass
        for p in self.files:
            if p not in self.restore:
                try:
                    p.unlink()
                except OSError:
                    pass
        for d in sorted(self.dirs, key=lambda x: len(x.parts), reverse=True):
            try:
                d.rmdir()  # only if empty: never removes anything else
            except OSError:
                pass


def import_calibdir(calib: PathLike, runs_csv: PathLike, detnames: Dict[str, str],
                    to: PathLike, *, text_ctypes: Iterable[str] = TEXT_CTYPES,
                    shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                    dtypes: Optional[Dict[str, str]] = None,
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
    shapes, dtypes
        ``{ctype: shape}`` / ``{ctype: dtype name}`` for headerless files whose detector
        type and ctype are not in psana1's table (or differ from it).

    Returns
    -------
    CalibdirSummary

    Raises
    ------
    InvalidInputError
        Unmapped sources, bad run table, files psana1 cannot tell apart.
    InvalidPayloadError
        A malformed NDArrIO file (naming file and line), or a headerless file without a
        known shape/dtype.
    StoreExistsError, AliasFileError
        A target store or a conflicting alias exists; nothing is written.
    """
    calib, to = Path(calib), Path(to)
    runs = read_run_table(runs_csv)
    files, skipped = scan_calibdir(calib)
    if not files:
        raise InvalidInputError(f"{calib} holds no psana1 calibration files "
                                f"(<Group>::CalibV1/<source>/<ctype>/<runs>.data)")
    plan = _plan(files, detnames, runs, calib, to, skipped)
    pairs = sorted({(cf.source, detnames[cf.source]) for e in plan.values() for cf, _, _ in e})
    alias_todo = _check_aliases(to, pairs)
    undo = _Undo()
    stores: Dict[str, Path] = {}
    try:
        for det, entries in sorted(plan.items()):
            dest = store_file_in(to, det)
            undo.note_dirs(dest.parent)
            undo.note_store(dest)
            cs = DCStore(to, det, mode="x", lock_timeout=lock_timeout)
            try:
                with cs.transaction():
                    ranges: Dict[Path, object] = {}
                    for cf, b, e in sorted(entries, key=lambda x: (x[0].ctype, x[1])):
                        payload, pars = read_calib_file(cf, calib, text_ctypes, shapes, dtypes)
                        tsprod = os.stat(cf.path).st_mtime_ns
                        ver = cs.add_constants(
                            cf.ctype, payload, (b // 10**9, b % 10**9),
                            None if e is None else (e // 10**9, e % 10**9), dictpars=pars,
                            tsprod=(tsprod // 10**9, tsprod % 10**9),
                            comment=f"imported from {cf.path} (runs {cf.runs})")
                        ranges[cf.path] = ver.rangeobj()
                    nhist = _add_histories(cs, entries, ranges, calib)
                    srcs = sorted({cf.source for cf, _, _ in entries})
                    cs.add_history(f"imported {len(entries)} files ({nhist} HISTORY lines) of "
                                   f"{', '.join(srcs)} from psana1 calib directory "
                                   f"{calib.resolve()} with run table "
                                   f"{Path(runs_csv).resolve()}", action=IMPORT_ACTION)
            finally:
                cs.close()
            stores[det] = cs.path
        for src, det in alias_todo:
            path = alias_file_in(to, split_detname(det)[0])
            undo.note_dirs(path.parent)
            undo.note_file(path)
            add_alias(to, src, det, lock_timeout=lock_timeout)
    except BaseException:
        undo.run()  # exact or nothing: remove what this import created
        raise
    return CalibdirSummary(stores, {d: len(v) for d, v in plan.items()}, pairs, skipped)
