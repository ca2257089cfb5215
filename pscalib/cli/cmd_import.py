"""``dcs import-legacy`` and ``dcs import-calibdir``: bring older calibrations in."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import click

from ..errors import PscalibError
from ..importers.calibdir import import_calibdir
from ..importers.legacy import import_legacy_files
from ..ndarrio import dtype_from_name, parse_shape
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


def _ctype_pairs(kind: str):
    """click callback: ``CTYPE=VALUE`` options -> {ctype: parsed value}."""
    def parse(ctx, param, values: Tuple[str, ...]):
        out = {}
        for v in values:
            ctype, sep, rest = v.partition("=")
            if not sep or not ctype or not rest:
                raise click.BadParameter(f"{v!r} is not CTYPE={kind} (e.g. pedestals="
                                         f"{'32,185,388' if kind == 'SHAPE' else 'float32'})",
                                         ctx, param)
            try:
                if kind == "DTYPE":
                    dtype_from_name(rest)  # checked here for a one-line usage error
                out[ctype] = parse_shape(rest) if kind == "SHAPE" else rest
            except PscalibError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return out
    return parse


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
@click.option("--shape", "shapes", multiple=True, callback=_ctype_pairs("SHAPE"),
              metavar="CTYPE=D1,D2,...",
              help="Shape of headerless CTYPE files (when psana1's table has none).")
@click.option("--dtype", "dtypes", multiple=True, callback=_ctype_pairs("DTYPE"),
              metavar="CTYPE=NAME", help="dtype of headerless CTYPE files (e.g. float32).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def import_calibdir_cmd(calib: str, runs_csv: str, detnames, calibdir: str,
                        text_ctypes: Tuple[str, ...], shapes, dtypes, as_json: bool) -> None:
    """Import a psana1 text calib directory CALIB into native stores in CALIBDIR.

    Only what psana1 reads is imported: the calib group of each source's detector type and
    the files psana1 selects for some run of the run table. A file <b>-<e|end>.data
    becomes the range from the begin time of the first listed run at or after b to the
    begin time of the first listed run at or after e+1 (or open). Header lines become
    parameters, HISTORY lines history records; geometry text is kept byte for byte.
    Headerless files get shape and dtype from psana1's detector tables (--shape/--dtype
    otherwise). An alias SRC -> DETNAME is recorded for every source.
    """
    s = import_calibdir(Path(calib), Path(runs_csv), detnames, Path(calibdir),
                        text_ctypes=text_ctypes, shapes=shapes, dtypes=dtypes,
                        lock_timeout=lock_timeout())
    if as_json:
        echo_json({"stores": s.stores, "files": s.files, "aliases": s.aliases,
                   "skipped": [k._asdict() for k in s.skipped]})
        return
    for det, path in sorted(s.stores.items()):
        click.echo(f"{det}: {s.files[det]} files -> {path}")
    for src, det in s.aliases:
        click.echo(f"alias {src} -> {det}")
    for k in s.skipped:
        click.echo(f"{'warning: ' if k.warning else ''}skipped {k.path}: {k.reason}", err=True)
