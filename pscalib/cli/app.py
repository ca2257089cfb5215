"""The root ``dcs`` click group and its global options.

Command modules (``cmd_*.py``) attach their commands to :data:`cli`. The group loads a
command's module only when that command runs (or ``--help`` lists them all), following
click's "lazily loading subcommands" pattern: ``dcs get`` then pays neither for the web
server (uvicorn, starlette) nor for matplotlib, about a third of a ``dcs`` call's start-up.
:mod:`pscalib.cli.main` runs the group with uniform error handling.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Optional

import click

from ..display import set_display_tz
from ..errors import PscalibError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


#: command name -> module of this package that defines it (tests/test_cli_lazy.py checks
#: that this table and the commands the modules register are the same)
COMMAND_MODULES: Dict[str, str] = {
    "alias": "cmd_alias", "where": "cmd_alias",
    "add": "cmd_change", "delete": "cmd_change", "set-default": "cmd_change",
    "par": "cmd_change",
    "verify": "cmd_exchange", "diff": "cmd_exchange", "copy": "cmd_exchange",
    "merge": "cmd_exchange",
    "web-user": "cmd_gui",
    "import-legacy": "cmd_import", "import-calibdir": "cmd_import",
    "manifest": "cmd_manifest",
    "plot": "cmd_plot", "timeline": "cmd_plot",
    "runs": "cmd_runs",
    "serve": "cmd_serve",
    "validate": "cmd_states", "deprecate": "cmd_states",
    "print": "cmd_store", "get": "cmd_store", "history": "cmd_store", "demo": "cmd_store",
    "tag": "cmd_tags", "purge": "cmd_tags",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module on first use of the command."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            # the module registers its commands on `cli` when imported
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)


def load_all_commands() -> None:
    """Import every command module (for tools that need the whole command tree)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__package__}.{module}")


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
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
