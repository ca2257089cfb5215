"""The root ``dcs`` click group and its global options.

Command modules (``cmd_*.py``) attach their commands to :data:`cli`;
:mod:`pscalib.cli.main` imports them all and runs the group with uniform error handling.
"""
from __future__ import annotations

import click

from ..display import set_display_tz
from ..errors import PscalibError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, envvar="PSCALIB_DEBUG",
              help="Show full tracebacks on errors (env PSCALIB_DEBUG=1).")
@click.option("--lock-timeout", type=float, default=None, metavar="SECONDS",
              help="How long a write waits for another writer (default 120 s, env "
                   "PSCALIB_LOCK_TIMEOUT).")
@click.option("--tz", default=None, metavar="ZONE",
              help="Show times in this time zone (Europe/Berlin, UTC, +02:00; env PSCALIB_TZ). "
                   "Times typed without an offset are still UTC.")
@click.version_option(package_name="pscalib", prog_name="dcs")
@click.pass_context
def cli(ctx: click.Context, debug: bool, lock_timeout, tz):
    """dcs - manage detector calibration constants (pscalib stores).

    STORE arguments accept a store file path, a detector name (cspad-0001) or an alias;
    names are resolved like the library does (see 'dcs where --help').

    Times are ISO 8601 (2024-05-01, 2024-05-01T12, 2024-05-01T12:00:00, optional fraction
    and Z/+HH:MM; no offset means UTC), the compact form of range names (20240501T120000Z)
    or Unix seconds.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["lock_timeout"] = lock_timeout
    try:
        set_display_tz(tz)
    except PscalibError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from None
