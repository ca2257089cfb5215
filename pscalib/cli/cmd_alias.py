"""``dcs alias add|remove|list|resolve`` and ``dcs where``: aliases and name resolution.

Without ``--calib``, write commands use the first configured calib directory of the search
order (PSCALIB_SEARCH_ORDER over PSCALIB_EXPERIMENT_ROOT+PSCALIB_EXPERIMENT and
PSCALIB_REPOSITORY); read commands search all configured ones in that order.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import click

from .. import aliases as A
from ..config import load_config
from ..errors import InvalidInputError, PscalibError
from ..paths import Place, locate, place_of, search_places
from ..timestamps import to_ns
from .app import cli
from .common import echo_json, lock_timeout


class _WindowTime(click.ParamType):
    """A window side: ISO 8601 / Unix seconds, or 'start'/'end' (open); kept as text."""
    name = "TIME"

    def convert(self, value, param, ctx):
        text = str(value).strip()
        if text.lower() in ("-", "start", "begin", "end", "open"):
            return text.lower()
        try:
            to_ns(text)
        except PscalibError as exc:
            self.fail(str(exc), param, ctx)
        return text


WINDOW_TIME = _WindowTime()

_calib_option = click.option(
    "--calib", "calib", type=click.Path(file_okay=False, path_type=Path), default=None,
    metavar="DIR", help="Calib directory to use (default: the configured experiment "
                        "workspace / repository, see 'dcs where --help').")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _write_place(calib: Optional[Path]) -> Place:
    cfg = load_config()
    if calib is not None:
        return Place("local", calib, f"calib directory {calib}")
    places, skipped = search_places(cfg)
    if not places:
        raise InvalidInputError(
            "no calib directory: give --calib DIR or set PSCALIB_EXPERIMENT_ROOT + "
            "PSCALIB_EXPERIMENT or PSCALIB_REPOSITORY")
    return places[0]


def _read_places(calib: Optional[Path]) -> List[Tuple[str, Path]]:
    if calib is not None:
        return [(f"calib directory {calib}", calib)]
    places, _ = search_places(load_config())
    if not places:
        raise InvalidInputError(
            "no calib directory: give --calib DIR or set PSCALIB_EXPERIMENT_ROOT + "
            "PSCALIB_EXPERIMENT or PSCALIB_REPOSITORY")
    return [(p.label, p.calib) for p in places]


@cli.group("alias")
def alias_group():
    """Manage detector aliases (alias files <calib>/<dettype>/aliases.txt).

    An alias (a DAQ source such as CxiDs2.0:Cspad.0, or any short name) means one detector
    during a time window [BEGIN, END); see docs/paths.rst for the file format.

    \b
    Example:
      dcs alias add CxiDs2.0:Cspad.0 cspad-0001 --end 2024-05-01 --calib calib
      dcs alias resolve CxiDs2.0:Cspad.0 --time 2024-04-01 --calib calib
    """


@alias_group.command("add")
@click.argument("alias")
@click.argument("detname")
@click.option("--begin", type=WINDOW_TIME, default=None,
              help="Start of the window (default: open start).")
@click.option("--end", type=WINDOW_TIME, default=None, help="End of the window, exclusive "
                                                            "(default: open end).")
@_calib_option
def alias_add(alias: str, detname: str, begin, end, calib: Optional[Path]):
    """Make ALIAS mean DETNAME during [BEGIN, END).

    Overlapping windows of one alias are refused. The change is recorded in the file's
    history (who, when, what).

    \b
    Example:
      dcs alias add CxiDs2.0:Cspad.0 cspad-0002 --begin 2024-05-01T00:00:00 --calib calib
    """
    place = _write_place(calib)
    rec = A.add_alias(place.calib, alias, detname, begin, end, lock_timeout=lock_timeout())
    click.echo(f"added {rec.alias} -> {rec.detname} {rec.window()} in {rec.path}")


@alias_group.command("remove")
@click.argument("alias")
@click.option("--begin", type=WINDOW_TIME, default=None,
              help="Remove the record whose window begins at this time ('start' for an "
                   "open start); needed when the alias has several records.")
@click.option("--all", "remove_all", is_flag=True, help="Remove every record of ALIAS.")
@_calib_option
def alias_remove(alias: str, begin, remove_all: bool, calib: Optional[Path]):
    """Remove a record of ALIAS (recorded in the file's history).

    \b
    Example:
      dcs alias remove CxiDs2.0:Cspad.0 --begin 2024-05-01T00:00:00 --calib calib
    """
    if begin is not None and remove_all:
        raise click.UsageError("give either --begin or --all, not both")
    place = _write_place(calib)
    for rec in A.remove_alias(place.calib, alias, begin, remove_all=remove_all,
                              lock_timeout=lock_timeout()):
        click.echo(f"removed {rec.alias} -> {rec.detname} {rec.window()} from {rec.path}")


@alias_group.command("list")
@click.argument("alias", required=False)
@click.option("--history", is_flag=True, help="Show the change history instead.")
@_calib_option
@_json_option
def alias_list(alias: Optional[str], history: bool, calib: Optional[Path], as_json: bool):
    """List alias records (of ALIAS only, if given) of every calib directory searched.

    \b
    Example:
      dcs alias list --calib calib --json
    """
    out = []
    for label, cdir in _read_places(calib):
        if history:
            for path, h in A.alias_history(cdir):
                if alias is None or h.record.startswith(f"{alias} "):
                    out.append(dict(h.to_dict(), place=label, file=str(path)))
        else:
            for rec in A.list_aliases(cdir):
                if alias is None or rec.alias == alias:
                    out.append(dict(rec.to_dict(), place=label))
    if as_json:
        echo_json(out)
        return
    for d in out:
        if history:
            click.echo(f"{d['time']}  {d['user']}@{d['host']}  {d['action']}  {d['record']}"
                       f"  ({d['file']})")
        else:
            click.echo(f"{d['alias']:<24} {d['detname']:<16} {d['begin'] or 'start':<25} "
                       f"{d['end'] or 'end':<25} {d['file']}:{d['line']}")


@alias_group.command("resolve")
@click.argument("alias")
@click.option("--time", "tsp", type=WINDOW_TIME, default=None,
              help="Resolve at this time (default: the latest record).")
@_calib_option
@_json_option
def alias_resolve(alias: str, tsp, calib: Optional[Path], as_json: bool):
    """Print the detector name ALIAS means at --time (default: its latest record).

    \b
    Example:
      dcs alias resolve CxiDs2.0:Cspad.0 --time 2024-04-01T00:00:00 --calib calib
    """
    rec = A.find_alias(alias, _read_places(calib), tsp)
    if as_json:
        echo_json(dict(rec.to_dict(), place=place_of(rec.path).label if rec.path else None))
    else:
        click.echo(rec.detname)


@cli.command("where")
@click.argument("name")
@click.option("--time", "tsp", type=WINDOW_TIME, default=None,
              help="Time for resolving an alias (default: its latest record).")
@_calib_option
@_json_option
def where(name: str, tsp, calib: Optional[Path], as_json: bool):
    """Show which store file NAME (detname or alias) resolves to, and every place searched.

    Without --calib the places are those of PSCALIB_SEARCH_ORDER (default
    'experiment,repository'): the experiment workspace
    $PSCALIB_EXPERIMENT_ROOT/<INSTRUMENT>/<experiment>/calib and the repository
    $PSCALIB_REPOSITORY. Exit status 1 if no place has the file.

    \b
    Example:
      PSCALIB_EXPERIMENT=CXI/cxic0415 dcs where CxiDs2.0:Cspad.0 --time 2024-06-01
    """
    detname, alias_file, steps, _ = locate(calib, name, tsp=tsp)
    found = next((s for s in steps if s.status == "found"), None)
    if as_json:
        echo_json({"name": name, "detname": detname,
                   "alias_file": None if alias_file is None else str(alias_file),
                   "found": None if found is None else str(found.path),
                   "source": None if found is None else found.kind,
                   "searched": [{"kind": s.kind, "place": s.label,
                                 "path": None if s.path is None else str(s.path),
                                 "status": s.status} for s in steps]})
    else:
        if alias_file is not None:
            click.echo(f"{name} is an alias of {detname} ({alias_file})")
        for s in steps:
            click.echo(f"  {s.describe()}")
        click.echo(f"uses: {found.path}" if found else f"no store file for {detname}")
    if found is None:
        click.echo(f"dcs: error: no store file for {detname!r} in any place searched", err=True)
        return 1
    return 0
