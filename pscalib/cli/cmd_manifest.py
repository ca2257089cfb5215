"""``dcs manifest CALIB|STORE... -o m.json``: checksums and coverage of stores for a job
(docs/reproducibility.rst, "Manifests")."""
from __future__ import annotations

import json
from typing import BinaryIO, Optional, Tuple

import click

from ..manifest import coverage_of, make_manifest, manifest_entry
from ..ndarrio import write_file_atomic
from ..store.changelog import current_selection
from .app import cli
from .cmd_tags import _open, store_paths


@cli.command("manifest")
@click.argument("targets", nargs=-1, required=True, metavar="CALIB|STORE...")
@click.option("--output", "-o", "out", default=None, metavar="FILE",
              help="Write the manifest here (default: print it).")
def manifest_cmd(targets: Tuple[str, ...], out: Optional[str]) -> None:
    """Record every store's sha256 and coverage; a job run with PSCALIB_MANIFEST=FILE then
    refuses a store changed since, or a lookup outside the coverage.

    \b
    Example:
      dcs manifest calib/ -o run17.manifest.json
      PSCALIB_MANIFEST=run17.manifest.json python my_job.py
    """
    entries = []
    for p in store_paths(targets):
        with _open(p) as cs:
            cov = coverage_of(current_selection(cs.backend, with_sha=False))
            det = cs.detname()
        entries.append(manifest_entry(p, det, cov))
    text = json.dumps(make_manifest(entries), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    data = text.encode("utf-8")

    def write(f: BinaryIO) -> None:
        f.write(data)
    write_file_atomic(out, write)
    click.echo(f"{out}: {len(entries)} stores")
