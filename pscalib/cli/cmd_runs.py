"""``dcs runs import|add|list``: the run table of an experiment (see docs/paths.rst).

The table is ``<experiment workspace>/runs.txt``: of ``--experiment X`` (in
``$PSCALIB_EXPERIMENT_ROOT``), of the calib directory ``--calib DIR``, else of
``$PSCALIB_EXPERIMENT``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from ..display import show_ns
from ..errors import InvalidInputError
from ..runs import (RunTable, add_runs, find_run_table, import_runs, parse_run,
                    run_table_path, workspace_experiment)
from .app import cli
from .common import echo_json, lock_timeout

_experiment_option = click.option(
    "--experiment", "-E", default=None, metavar="EXP",
    help="Experiment (cxic0415 or CXI/cxic0415) whose workspace holds the run table "
         "(default: PSCALIB_EXPERIMENT).")
_calib_option = click.option(
    "--calib", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
    help="Experiment calib directory holding the run table (instead of --experiment).")


def table_of(experiment: Optional[str], calib: Optional[Path]) -> Tuple[str, Path]:
    """``(experiment name, run table path)`` chosen by --experiment / --calib / env."""
    if calib is not None:
        if experiment is not None:
            raise InvalidInputError("give either --experiment or --calib, not both")
        return workspace_experiment(Path(calib).absolute()), run_table_path(calib)
    return find_run_table(experiment)


@cli.group("runs")
def runs_group():
    """Manage an experiment's run table (run -> begin time, optional end time).

    Lookups by run ('dcs get ... --run 17') and validity by runs ('dcs add ... --runs 17-25')
    use it. Every change is locked, atomic and recorded in the table's history.

    \b
    Example:
      dcs runs import runs.csv --experiment CXI/cxic0415
      dcs runs add 17 2024-05-01T00:00:00 2024-05-01T01:00:00
      dcs runs list --json
    """


@runs_group.command("import")
@click.argument("csv_file", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Change runs already listed with other times.")
@_experiment_option
@_calib_option
def runs_import(csv_file: Path, replace: bool, experiment: Optional[str],
                calib: Optional[Path]) -> None:
    """Add every run of FILE (CSV 'run,begin[,end]', optional header row) to the table.

    All rows are checked first; any error (reported with its line number) changes nothing.
    """
    exp, path = table_of(experiment, calib)
    before = len(RunTable.load(path).records)
    rt = import_runs(csv_file, path, replace=replace, lock_timeout=lock_timeout())
    click.echo(f"run table of {exp} ({path}): {len(rt.records) - before} run(s) added, "
               f"{len(rt.records)} listed")


@runs_group.command("add")
@click.argument("run")
@click.argument("begin")
@click.argument("end", required=False, default=None)
@click.option("--replace", is_flag=True, help="Change the times of a run already listed.")
@_experiment_option
@_calib_option
def runs_add(run: str, begin: str, end: Optional[str], replace: bool,
             experiment: Optional[str], calib: Optional[Path]) -> None:
    """Add RUN beginning at BEGIN (and ending at END, if known) to the run table."""
    exp, path = table_of(experiment, calib)
    r = parse_run(run)
    rt = add_runs(path, [(r, begin, end)], replace=replace, lock_timeout=lock_timeout())
    rec = rt.get(r)
    click.echo(f"run {rec.run} of {exp}: {show_ns(rec.begin)} .. "
               f"{'?' if rec.end is None else show_ns(rec.end)} ({path})")


@runs_group.command("list")
@click.option("--history", is_flag=True, help="Show the change history instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_experiment_option
@_calib_option
def runs_list(history: bool, as_json: bool, experiment: Optional[str],
              calib: Optional[Path]) -> None:
    """List the runs of the table (or its history)."""
    exp, path = table_of(experiment, calib)
    rt = RunTable.load(path, exp)
    if not rt.exists:
        raise InvalidInputError(f"experiment {exp} has no run table {path}; create it with "
                                f"'dcs runs add' or 'dcs runs import FILE'")
    runs = [rt.records[r] for r in sorted(rt.records)]
    if as_json:
        doc: Dict[str, Any] = {"experiment": exp, "file": str(path)}
        if history:
            doc["history"] = [h.to_dict() for h in rt.history]
        else:
            doc["runs"] = [r.to_dict() for r in runs]
        echo_json(doc)
        return
    if history:
        for h in rt.history:
            click.echo(f"{show_ns(h.tsns)} {h.user}@{h.host} {h.action} {h.record}")
        return
    click.echo(f"run table of {exp}: {path} ({len(runs)} runs)")
    for r in runs:
        click.echo(f"  {r.run:>6d}  {show_ns(r.begin)}  .. "
                   f"{'?' if r.end is None else show_ns(r.end)}")
