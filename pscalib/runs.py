"""Run tables: when each run of an experiment began (and ended).

One run table per experiment, ``<experiment workspace>/runs.txt`` (the workspace is the
experiment's calib directory ``$PSCALIB_EXPERIMENT_ROOT/<INSTRUMENT>/<experiment>/calib``),
UTF-8 text, one run per line::

    # RUN  BEGIN                      [END]
    17     2024-05-01T00:00:00+00:00  2024-05-01T01:00:00+00:00
    18     2024-05-01T01:10:00+00:00  -

``RUN`` is a positive integer, ``BEGIN``/``END`` any form :func:`pscalib.timestamps.to_ns`
reads (no offset means UTC); ``END`` missing or ``-`` means not known. Begin times increase
with the run number, a run ends after it begins and before the next listed run begins. Lines
starting with ``#`` are comments; the history section (``#@`` lines after the marker) is
written by pscalib. Files change only through :func:`add_runs` / :func:`import_runs` (or
``dcs runs``): locked, atomic, recorded in the history (:mod:`pscalib.textfiles`, shared with
alias files).

The file format and its checks are in :mod:`pscalib.runtable` (re-exported here).

Validity by runs follows psana's inclusive convention: runs ``17-25`` are valid from the
begin of run 17 to the end of run 25 (if its end is not known: until the next listed run
begins); ``17-end`` is open. See docs/paths.rst.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union


from .config import Config, env_value, load_config, parse_experiment
from .errors import (InvalidInputError, PscalibError, RunNotFoundError)
from .locations import permission_error
from .runtable import UNKNOWN_WORDS, RunRecord, RunTable, parse_run, parse_runs
from .textfiles import locked_update
from .timestamps import OPEN_END, TimeLike, format_ns, to_ns

__all__ = ["RUN_TABLE_NAME", "RunRecord", "RunTable", "parse_run", "parse_runs",
           "run_table_path", "workspace_experiment", "find_run_table", "load_run_table",
           "add_runs", "import_runs", "read_runs_csv", "csv_lines", "run_time", "runs_window",
           "add_by_runs", "check_store_runs", "RUN_PARS"]

PathLike = Union[str, Path]

#: File name of the run table in an experiment workspace.
RUN_TABLE_NAME = "runs.txt"
#: Range dictpars recording validity by runs (names from the DCS design's metadata table).
RUN_PARS = ("runbegin", "runend", "experiment")
# ----------------------------------------------------------------------- locating
def run_table_path(calib: PathLike) -> Path:
    """``<calib>/runs.txt`` of an experiment workspace."""
    return Path(calib) / RUN_TABLE_NAME


def workspace_experiment(calib: Path) -> str:
    """The experiment name of a workspace ``.../<INSTRUMENT>/<experiment>/calib``."""
    return calib.parent.name if calib.name == "calib" else calib.name


def find_run_table(experiment: Optional[str] = None, store_path: Optional[PathLike] = None,
                   config: Optional[Config] = None) -> Tuple[str, Path]:
    """``(experiment name, run table path)`` for a lookup by run.

    The experiment comes from ``experiment`` (``'cxic0415'`` or ``'CXI/cxic0415'``, in
    ``$PSCALIB_EXPERIMENT_ROOT``), else from the store's workspace (the calib directory of
    ``store_path`` if it holds a run table, or is the configured experiment workspace), else
    from ``PSCALIB_EXPERIMENT``.

    Raises
    ------
    InvalidInputError
        No experiment is known, or an experiment is named without PSCALIB_EXPERIMENT_ROOT.
    """
    key = (experiment, None if store_path is None else str(store_path),
           env_value("PSCALIB_EXPERIMENT"), env_value("PSCALIB_EXPERIMENT_ROOT"),
           env_value("PSCALIB_INSTRUMENT"))
    hit = _FIND_CACHE.get(key) if config is None else None
    if hit is not None:
        return hit
    out = _find_run_table(experiment, store_path, config)
    if config is None and out[1].is_file():  # a table created later must still be found
        _FIND_CACHE[key] = out
    return out


_FIND_CACHE: Dict[tuple, Tuple[str, Path]] = {}


def _find_run_table(experiment: Optional[str], store_path: Optional[PathLike],
                    config: Optional[Config]) -> Tuple[str, Path]:
    if experiment is not None:
        if not isinstance(experiment, str):
            raise InvalidInputError(f"experiment must be a name such as 'cxic0415', got "
                                    f"{experiment!r}")
        cfg = load_config(experiment=experiment) if config is None else config
        instr, exp = parse_experiment(experiment, cfg.instrument)
        if store_path is not None:  # the store's own workspace, if it is that experiment's
            calib = Path(os.path.abspath(store_path)).parent.parent
            if workspace_experiment(calib) == exp and run_table_path(calib).is_file():
                return exp, run_table_path(calib)
        if cfg.experiment_root is None:
            raise InvalidInputError(
                f"experiment {experiment!r}: PSCALIB_EXPERIMENT_ROOT is not set, so its "
                f"workspace (and run table) cannot be found; set it, or give the run table's "
                f"calib directory (dcs runs --calib DIR)")
        return exp, run_table_path(cfg.experiment_root / instr / exp / "calib")
    cfg = config or load_config()
    if store_path is not None:
        calib = Path(os.path.abspath(store_path)).parent.parent
        if run_table_path(calib).is_file():
            return workspace_experiment(calib), run_table_path(calib)
        ws = cfg.experiment_calib
        if ws is not None and Path(os.path.abspath(ws)) == calib:
            return str(cfg.experiment), run_table_path(ws)
    if cfg.experiment is not None:
        if cfg.experiment_calib is None:
            raise InvalidInputError(
                f"experiment {cfg.experiment!r} (PSCALIB_EXPERIMENT): PSCALIB_EXPERIMENT_ROOT "
                f"is not set, so its run table cannot be found")
        return cfg.experiment, run_table_path(cfg.experiment_calib)
    where = f" and {Path(store_path).parent.parent} has no {RUN_TABLE_NAME}" \
        if store_path is not None else ""
    raise InvalidInputError(
        f"a run number needs an experiment: give experiment=... (dcs --experiment X) or set "
        f"PSCALIB_EXPERIMENT{where}")


_TABLE_CACHE: Dict[Path, Tuple[tuple, RunTable]] = {}


def load_run_table(experiment: Optional[str] = None, store_path: Optional[PathLike] = None,
                   config: Optional[Config] = None) -> RunTable:
    """The run table for a lookup by run (see :func:`find_run_table`), cached while the
    file is unchanged (one ``stat`` per call)."""
    exp, path = find_run_table(experiment, store_path, config)
    try:
        st = os.stat(path)
        sig: tuple = (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        sig = ()
    except OSError as exc:
        raise permission_error("read", path, config, exc.strerror or str(exc)) from None
    hit = _TABLE_CACHE.get(path)
    if hit is not None and hit[0] == sig and hit[1].experiment == exp:
        return hit[1]
    rt = RunTable.load(path, exp)
    if sig:
        _TABLE_CACHE[path] = (sig, rt)
    return rt


def run_time(run: object, experiment: Optional[str] = None,
             store_path: Optional[PathLike] = None) -> int:
    """Begin time (ns) of ``run``: the time a lookup by run uses.

    Repeated lookups cost one ``stat`` of the table (a changed table is reread).
    """
    key = None
    if type(run) is int and run > 0:  # fast path of analysis loops (not bool, not text)
        key = (run, experiment, store_path, env_value("PSCALIB_EXPERIMENT"),
               env_value("PSCALIB_EXPERIMENT_ROOT"))
        hit = _RUN_TIMES.get(key)
        if hit is not None:
            try:
                st = os.stat(hit[0])
                if (st.st_ino, st.st_mtime_ns, st.st_size) == hit[1]:
                    return hit[2]
            except OSError:
                pass
    r = parse_run(run)
    rt = load_run_table(experiment, store_path)
    ns = rt.begin_of(r)
    cached = _TABLE_CACHE.get(rt.path)
    if key is not None and cached is not None and cached[1] is rt:
        if len(_RUN_TIMES) > 100_000:  # bounded: a job over many runs and stores
            _RUN_TIMES.clear()
        _RUN_TIMES[key] = (rt.path, cached[0], ns)
    return ns


_RUN_TIMES: Dict[tuple, Tuple[Path, tuple, int]] = {}


def runs_window(runs: object, experiment: Optional[str] = None,
                store_path: Optional[PathLike] = None) -> Tuple[int, int, Dict[str, object]]:
    """``(tsbegin, tsend, pars)`` for ``add_constants(..., runs=...)``.

    ``pars`` are the range dictpars ``runbegin`` (int), ``runend`` (int or ``'end'``) and
    ``experiment`` (str) that keep the runs beside the times.
    """
    first, last = parse_runs(runs)
    rt = load_run_table(experiment, store_path)
    b, e = rt.window(first, last)
    pars: Dict[str, object] = {"runbegin": first, "runend": "end" if last is None else last,
                               "experiment": str(rt.experiment)}
    return b, e, pars


def add_by_runs(store: Any, ctype: str, data: Any, runs: object, experiment: Optional[str],
                tsbegin: Any, tsend: Any, **kw: Any) -> Any:
    """``store.add_constants(..., runs=..., experiment=...)``: one transaction adding the
    version to the runs' time range and the run dictpars to the range."""
    if runs is None:
        raise InvalidInputError("experiment= is used only with runs=; give runs=(first, last)")
    if tsbegin is not None or tsend is not None:
        raise InvalidInputError("give either tsbegin/tsend or runs=, not both")
    b, e, pars = runs_window(runs, experiment, store.path)
    with store.transaction():
        res = store.add_constants(ctype, data, divmod(b, 10**9),
                                  None if e == OPEN_END else divmod(e, 10**9), **kw)
        rng = res.rangeobj()
        have = rng.dictpars()
        if any(have.get(k) != v for k, v in pars.items()):
            rng.set_pars(pars)
    return res


# ----------------------------------------------------------------------- writing
def add_runs(path: PathLike, records: Iterable[Tuple[int, TimeLike, Optional[TimeLike]]], *,
             replace: bool = False, action: str = "add", note: str = "",
             lock_timeout: Optional[float] = None, config: Optional[Config] = None) -> RunTable:
    """Add runs ``(run, begin, end or None)`` to the run table at ``path`` in one change.

    All records are checked before anything is written; any error leaves the file as it
    was. A run already listed with the same times is left alone; with other times it is
    refused unless ``replace``.
    """
    cfg = config or load_config()
    recs = []
    for item in records:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise InvalidInputError(f"run record {item!r}: expected (run, begin[, end])")
        run = parse_run(item[0])
        begin = to_ns(item[1])
        end_v = item[2] if len(item) == 3 else None
        end = None if end_v is None or (isinstance(end_v, str) and end_v.strip().lower()
                                        in UNKNOWN_WORDS) else to_ns(end_v)
        if end is not None and end <= begin:
            raise InvalidInputError(f"run {run} ends ({format_ns(end)}) before it begins "
                                    f"({format_ns(begin)})")
        recs.append(RunRecord(run, begin, end))
    if not recs:
        raise InvalidInputError("no runs to add")

    def change(rt: RunTable) -> str:
        done: Dict[str, List[int]] = {"added": [], "changed": [], "unchanged": []}
        for rec in recs:
            done[rt.add(rec, replace)].append(rec.run)
        if not done["added"] and not done["changed"]:
            raise _Unchanged()
        parts = [f"{k} {_run_list(v)}" for k, v in done.items() if v and k != "unchanged"]
        return "; ".join(parts) + (f" ({note})" if note else "")

    try:
        return locked_update(Path(path), RunTable.load, change, action, lock_timeout, cfg)
    except _Unchanged:
        return RunTable.load(path)


class _Unchanged(Exception):
    """Internal: every run was already listed with the same times (nothing is written)."""


def _run_list(runs: Sequence[int]) -> str:
    return f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} runs {runs[0]}..{runs[-1]}"


def csv_lines(path: Path, what: str) -> List[Tuple[int, str]]:
    """``(line number, line)`` of the rows of a CSV file (blank and ``#`` lines skipped);
    ``what`` names the file in errors ('run list', 'run table')."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc}") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def read_runs_csv(path: PathLike) -> List[Tuple[int, int, Optional[int]]]:
    """Rows ``(run, begin ns, end ns or None)`` of a CSV ``run,begin[,end]``.

    A header row naming the columns is optional; blank lines and ``#`` lines are skipped.
    Errors name the file and line.
    """
    p = Path(path)
    rows = csv_lines(p, "run list")
    if not rows:
        raise InvalidInputError(f"run list {p} is empty; expected lines 'run,begin[,end]'")
    cols = {"run": 0, "begin": 1, "end": 2}
    first = [c.strip().lower() for c in next(csv.reader([rows[0][1]]))]
    if "run" in first:
        if "begin" not in first:
            raise InvalidInputError(f"{p}:{rows[0][0]}: header {rows[0][1]!r} must name the "
                                    f"columns 'run' and 'begin' (and optionally 'end')")
        cols = {k: first.index(k) for k in ("run", "begin", "end") if k in first}
        rows = rows[1:]
    out: List[Tuple[int, int, Optional[int]]] = []
    for n, line in rows:
        cells = [c.strip() for c in next(csv.reader([line]))]
        where = f"{p}:{n}"
        if len(cells) <= max(cols["run"], cols["begin"]):
            raise InvalidInputError(f"{where}: expected 'run,begin[,end]', got {line!r}")
        try:
            run = parse_run(cells[cols["run"]])
            begin = to_ns(cells[cols["begin"]])
            ie = cols.get("end")
            raw_end = cells[ie] if ie is not None and ie < len(cells) else ""
            end = None if raw_end.lower() in UNKNOWN_WORDS else to_ns(raw_end)
        except PscalibError as exc:
            raise InvalidInputError(f"{where}: {exc}") from None
        out.append((run, begin, end))
    return out


def import_runs(csv_path: PathLike, table: PathLike, *, replace: bool = False,
                lock_timeout: Optional[float] = None,
                config: Optional[Config] = None) -> RunTable:
    """Add every run of a CSV ``run,begin[,end]`` to the run table at ``table`` at once."""
    rows = read_runs_csv(csv_path)
    seen: Dict[int, int] = {}
    for i, (run, _, _) in enumerate(rows):
        if run in seen:
            raise InvalidInputError(f"{csv_path}: run {run} appears twice")
        seen[run] = i
    return add_runs(table, [(r, (b // 10**9, b % 10**9),
                             None if e is None else (e // 10**9, e % 10**9))
                            for r, b, e in rows],
                    replace=replace, action="import", note=f"from {Path(csv_path).name}",
                    lock_timeout=lock_timeout, config=config)


# ----------------------------------------------------------------------- verify
def check_store_runs(store) -> List[Tuple[str, str, bool]]:
    """Ranges of an open store whose ``runbegin``/``runend`` disagree with the run table.

    Returns ``(object path, message, is_error)``; ranges without run parameters are
    skipped. A run missing from the table is an error; a table that cannot be found (no
    experiment root configured here) only a warning.
    """
    out: List[Tuple[str, str, bool]] = []
    for ctype in store.ctypes():
        for rng in store.ctypeobj(ctype).ranges():
            pars = rng.dictpars()
            if "runbegin" not in pars:
                continue
            where = f"{ctype}/{rng.range()}"
            exp = pars.get("experiment")
            spec = (pars.get("runbegin"), None if pars.get("runend") in (None, "end")
                    else pars.get("runend"))
            try:
                b, e, _ = runs_window(spec, exp if isinstance(exp, str) and exp else None,
                                      store.path)
            except RunNotFoundError as exc:
                out.append((where, f"runs {_spec_text(spec)} no longer agree with the run "
                                   f"table: {exc}", True))
                continue
            except PscalibError as exc:
                out.append((where, f"runs {_spec_text(spec)} cannot be checked against the "
                                   f"run table: {exc}", False))
                continue
            if (b, e) != (rng.tsbegin(), rng.tsend()):
                out.append((where, f"runs {_spec_text(spec)} of experiment {exp} now mean "
                                   f"[{format_ns(b)}, {format_ns(e)}) in the run table, but "
                                   f"the range is [{rng.begin()}, {rng.end()})", True))
    return out


def _spec_text(spec: Tuple[object, object]) -> str:
    return f"{spec[0]}-{'end' if spec[1] is None else spec[1]}"
