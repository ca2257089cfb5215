"""``dcs import-legacy`` and ``dcs import-calibdir``: bring older calibrations in."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import click

from ..importers.calibdir import import_calibdir
from ..importers.legacy import import_legacy_files
from .app import cli
from .common import echo_json, lock_timeout


@cli.command("import-legacy")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False),
                metavar="SRC...")
@click.option("--to", "calibdir", required=True, type=click.Path(file_okay=False),
              help="Calib directory receiving one new store per file.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def import_legacy_cmd(sources: Tuple[str, ...], calibdir: str, as_json: bool) -> None:
    """Convert original LCLS DCS files (SRC...) into native stores in CALIBDIR.

    The copy is exact (arrays bit-identical, text byte-identical, parameters and history
    with their time stamps) and checked before it is kept. Inclusive legacy range ends e
    become half-open ends e + 1 ns. Every file is checked before anything is written; an
    existing store is never overwritten.
    """
    done = import_legacy_files([Path(s) for s in sources], Path(calibdir),
                               lock_timeout=lock_timeout())
    if as_json:
        echo_json([s._asdict() for s in done])
        return
    for s in done:
        click.echo(f"{s.source} -> {s.store} ({s.ctypes} ctypes, {s.ranges} ranges, "
                   f"{s.versions} versions)")


def _detname_pairs(ctx, param, values: Tuple[str, ...]):
    out: Dict[str, str] = {}
    for v in values:
        src, sep, det = v.partition("=")
        if not sep or not src or not det:
            raise click.BadParameter(f"{v!r} is not SRC=DETNAME (e.g. "
                                     f"CxiDs2.0:Cspad.0=cspad-0001)", ctx, param)
        if src in out and out[src] != det:
            raise click.BadParameter(f"source {src!r} is given twice", ctx, param)
        out[src] = det
    return out


@cli.command("import-calibdir")
@click.argument("calib", type=click.Path(file_okay=False))
@click.option("--runs", "runs_csv", required=True, type=click.Path(dir_okay=False),
              help="Run table CSV with columns run,begin (ISO 8601 or Unix seconds).")
@click.option("--detname", "detnames", multiple=True, required=True, callback=_detname_pairs,
              metavar="SRC=DETNAME", help="Detector name of a DAQ source (repeat per source).")
@click.option("--to", "calibdir", required=True, type=click.Path(file_okay=False),
              help="Calib directory receiving one new store per detector and the aliases.")
@click.option("--text-ctype", "text_ctypes", multiple=True, default=("geometry",),
              show_default=True, help="Calibration type whose files are kept as text.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def import_calibdir_cmd(calib: str, runs_csv: str, detnames, calibdir: str,
                        text_ctypes: Tuple[str, ...], as_json: bool) -> None:
    """Import a psana1 text calib directory CALIB into native stores in CALIBDIR.

    Files CALIB/<Group>::CalibV1/<SRC>/<ctype>/<first>-<last|end>.data become ranges from
    the begin time of run <first> to the begin time of run <last>+1 (or open), taken from
    the run table. Header lines become parameters; geometry text is kept byte for byte. An
    alias SRC -> DETNAME is recorded for every source.
    """
    s = import_calibdir(Path(calib), Path(runs_csv), detnames, Path(calibdir),
                        text_ctypes=text_ctypes, lock_timeout=lock_timeout())
    if as_json:
        echo_json({"stores": s.stores, "files": s.files, "aliases": s.aliases,
                   "skipped": s.skipped})
        return
    for det, path in sorted(s.stores.items()):
        click.echo(f"{det}: {s.files[det]} files -> {path}")
    for src, det in s.aliases:
        click.echo(f"alias {src} -> {det}")
    for p in s.skipped:
        click.echo(f"skipped (not <first>-<last|end>.data in the psana1 layout): {p}", err=True)
