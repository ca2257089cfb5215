"""``dcs`` entry point: runs the command group (:mod:`.app`) and maps errors to exit codes.

Exit status: 0 success, 1 user/data error (any :class:`pscalib.errors.PscalibError`,
"different" for comparison commands), 2 usage error. Errors print one line to stderr and
no traceback unless ``--debug`` (or ``PSCALIB_DEBUG=1``) is given.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import click

from ..config import debug_enabled
from ..errors import PscalibError
from ..txn.atomic import copy_progress
from .app import cli
from .common import CopyProgressBar

__all__ = ["main", "cli"]


def _debug_requested(args: List[str]) -> bool:
    return debug_enabled(args)


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        bar = CopyProgressBar()
        try:
            with copy_progress(bar):
                rv = cli.main(args=args, prog_name="dcs", standalone_mode=False)
        finally:
            bar.close()
    except click.exceptions.Abort:
        click.echo("dcs: aborted, nothing was changed", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage errors: exit 2 (click's convention)
        if debug:
            raise
        msg = exc.format_message().replace("\n", " ")
        click.echo(f"dcs: error: {msg} (see 'dcs --help')", err=True)
        sys.exit(exc.exit_code)
    except PscalibError as exc:
        if debug:
            raise
        click.echo(f"dcs: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(1)
    except MemoryError as exc:  # e.g. an input file whose header promises terabytes
        if debug:
            raise
        click.echo(f"dcs: error: not enough memory ({' '.join(str(exc).split())}); "
                   f"nothing was changed", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("dcs: interrupted, nothing was changed", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            raise
        click.echo(f"dcs: internal error: {type(exc).__name__}: {exc} "
                   f"(rerun with --debug and report it)", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
