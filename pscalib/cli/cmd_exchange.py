"""``dcs verify``, ``dcs diff``, ``dcs copy`` and ``dcs merge`` (see docs/exchange.rst).

Exit status of the checking commands follows ``dcs``'s convention (0 success, 1 user/data
error, 2 usage): ``verify`` exits 1 if any store has a problem and ``diff`` exits 1 when
the stores differ, ``merge`` exits 1 when conflicts were left untouched. A script tells
"found differences/problems" from "could not run" by ``--json``: a JSON document on stdout
means the command ran (see its ``same`` / ``ok`` / ``unresolved`` fields); on an error
stdout is empty and one ``dcs: error:`` line goes to stderr.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from ..exchange.copy import copy_store
from ..exchange.diff import diff_stores, jsonable
from ..exchange.merge import merge_stores
from ..exchange.vdiff import diff_store_versions, versions_to_compare
from ..exchange.verify import verify
from ..plot import arrays as plot_arrays  # matplotlib only when a picture is drawn
from ..plot import output as plot_output
from .app import cli
from .common import (OptionalTimeParam, TimeParam, echo_json, lock_timeout, open_store,
                     progress)


def _path_of(spec: str) -> Path:
    """STORE argument (file path, detname or alias) -> its file, via the library resolver."""
    p = Path(spec)
    if p.suffix == ".h5" or p.exists() or "/" in spec:
        return p
    with open_store(spec) as st:
        return Path(st.path)


@cli.command("verify")
@click.argument("stores", nargs=-1, required=True, metavar="STORE...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per store.")
@click.option("--no-checksums", is_flag=True,
              help="Skip recomputing payload checksums (structure and indexes only).")
def verify_cmd(stores: Tuple[str, ...], as_json: bool, no_checksums: bool) -> int:
    """Check stores for damage and inconsistencies; never changes them.

    Checks structure, every payload's checksum, the range indexes against the range groups,
    defaults and version counters, dictpars, history, the payload index, alias files
    beside the store, and ranges added by runs against the run table (a range whose runs
    now mean other times is an error). Exits 1 if any error was found.
    """
    with progress(stores, len(stores), "verifying") as items:
        reports = [verify(_path_of(s), checksums=not no_checksums) for s in items]
    if as_json:
        echo_json({"ok": all(r.ok for r in reports), "stores": [r.to_dict() for r in reports]})
    else:
        for r in reports:
            click.echo(r.format())
    return 0 if all(r.ok for r in reports) else 1


def _plot_versions(st, ctype: str, versions: Tuple[str, str], rng: Optional[str],
                   out: str) -> None:
    """The picture of ``dcs diff --versions N M --plot FILE`` (like ``dcs plot
    --diff-version``: placed by the store's geometry at the range's begin when it fits)."""
    va, vb = versions_to_compare(st, ctype, versions[0], versions[1], rng)
    geo = plot_arrays.geometry_for(st, va.rangeobj().begin()) if ctype != "geometry" \
        else None
    fig = plot_arrays.plot_diff(va.calib(), vb.calib(), (f"v{va.version()}",
                                                         f"v{vb.version()}"), geo)
    plot_output.save_figure(fig, out)
    click.echo(f"wrote {out}", err=True)  # stdout stays the difference (or its JSON)


@cli.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="[B]", required=False)
@click.option("--ctype", "ctypes", multiple=True, metavar="CTYPE",
              help="Only compare this calibration type (repeatable; exactly one with "
                   "--versions).")
@click.option("--versions", "versions", nargs=2, default=None, metavar="N M",
              help="Compare versions N and M of one range of store A (no B).")
@click.option("--range", "-r", "rng", default=None,
              help="With --versions: the range (name, or a begin time that identifies it); "
                   "default the one range that has both versions.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="With --versions: also draw the difference v(M) - v(N) "
                                   "into FILE (.png, .svg or .pdf; needs pscalib[plot]).")
def diff_cmd(a: str, b: Optional[str], ctypes: Tuple[str, ...],
             versions: Optional[Tuple[str, str]], rng: Optional[str], as_json: bool,
             plot_out: Optional[str]) -> int:
    """Show what differs between stores A and B, or between two versions of store A.

    Exit 0 same, 1 different.

    \b
    Examples:
      dcs diff repo/cspad/cspad-0001.h5 exp/calib/cspad/cspad-0001.h5 --ctype pedestals
      dcs diff cspad-0001 --ctype pedestals --range 20240501T000000Z_end --versions 1 2
      dcs diff epix10ka-0001 --ctype pedestals --versions 1 2 --plot d.png
    """
    if versions is not None:
        if b is not None:
            raise click.UsageError("--versions compares two versions of one store: give "
                                   "one STORE, not two")
        if len(ctypes) != 1:
            raise click.UsageError("--versions needs exactly one --ctype")
        with open_store(a) as st:
            vd = diff_store_versions(st, ctypes[0], versions[0], versions[1], rng)
            if plot_out is not None:
                _plot_versions(st, ctypes[0], versions, rng, plot_out)
        if as_json:
            echo_json(vd.to_dict())
        else:
            click.echo(vd.format())
        return 0 if vd.same else 1
    if rng is not None or plot_out is not None:
        raise click.UsageError(f"{'--range' if rng is not None else '--plot'} is only used "
                               f"with --versions")
    if b is None:
        raise click.UsageError("give two stores A B, or one store with --ctype C "
                               "--versions N M")
    rep = diff_stores(_path_of(a), _path_of(b), ctypes=list(ctypes) or None)
    if as_json:
        echo_json(jsonable(rep.to_dict()))
    else:
        click.echo(rep.format())
    return 0 if rep.same else 1


@cli.command("copy")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("--ctype", "ctypes", multiple=True, metavar="CTYPE",
              help="Copy only this calibration type (repeatable; default all).")
@click.option("--begin", type=TimeParam(), default=None,
              help="Window start: only ranges valid at some time in [begin, end].")
@click.option("--end", type=OptionalTimeParam(), default=None, help="Window end.")
@click.option("--defaults-only", is_flag=True, help="Copy only the default version of each range.")
@click.option("-m", "--comment", default=None, help="Text for the history record.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def copy_cmd(src: str, dest: str, ctypes: Tuple[str, ...], begin: Optional[int],
             end: Optional[int], defaults_only: bool, comment: Optional[str],
             as_json: bool) -> int:
    """Make a new store DEST (file or calib directory) from a selection of SRC.

    History is preserved and a 'copy_from' record says where the copy came from.
    """
    res = copy_store(_path_of(src), dest, ctypes=list(ctypes) or None, begin=begin, end=end,
                     defaults_only=defaults_only, lock_timeout=lock_timeout(),
                     comment=comment)
    if as_json:
        echo_json(res.to_dict())
    else:
        click.echo(res.format())
    return 0


@cli.command("merge")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("--ctype", "ctypes", multiple=True, metavar="CTYPE",
              help="Merge only this calibration type (repeatable; default all).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--prefer", type=click.Choice(["source", "dest"]), default=None,
              help="Resolve conflicting dictpars and default versions this way.")
@click.option("--renumber", is_flag=True,
              help="Add conflicting source versions under new version numbers.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan/result as JSON.")
def merge_cmd(src: str, dest: str, ctypes: Tuple[str, ...], dry_run: bool,
              prefer: Optional[str], renumber: bool, as_json: bool) -> int:
    """Bring new ranges, versions and parameters from SRC into the existing store DEST.

    Identical versions are skipped; conflicts are reported and left untouched unless
    --prefer/--renumber resolve them. Exits 1 if conflicts were left unresolved.
    """
    rep = merge_stores(_path_of(src), _path_of(dest), ctypes=list(ctypes) or None,
                       prefer=prefer, renumber=renumber, dry_run=dry_run,
                       lock_timeout=lock_timeout())
    if as_json:
        echo_json(rep.to_dict())
    else:
        click.echo(rep.format())
    return 1 if rep.unresolved else 0
