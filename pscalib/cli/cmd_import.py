"""``dcs import-legacy`` and ``dcs import-calibdir``: bring older calibrations in."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import click

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
    from ..importers.legacy import import_legacy_files
    done = import_legacy_files([Path(s) for s in sources], Path(calibdir),
                               lock_timeout=lock_timeout())
    if as_json:
        echo_json([s._asdict() for s in done])
        return
    for s in done:
        click.echo(f"{s.source} -> {s.store} ({s.ctypes} ctypes, {s.ranges} ranges, "
                   f"{s.versions} versions)")
