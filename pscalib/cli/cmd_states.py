"""``dcs validate`` and ``dcs deprecate``: change a version's state (docs/format.rst,
"Version states"). The reason (``-m``), the user and the time go into the version's state
attributes and history; refused transitions exit 1 and change nothing.
"""
from __future__ import annotations

import click

from ..store.layout import version_name
from .app import cli
from .storecommon import (STORE_ARG, complete_ctype, complete_range, object_path,
                          open_for_write)


def _change(store: str, ctype: str, rng: str, vers: str, reason: str, state: str,
            make_default: bool = True) -> None:
    with open_for_write(store, create=False) as cs:
        v = cs.ctypeobj(ctype).rangeobj(rng).versobj(vers)
        old = v.state()
        if state == "valid":
            v.validate(reason, make_default=make_default)
        else:
            v.deprecate(reason)
        r = v.rangeobj()
        default = r.versdef()
        path = object_path(v)
    click.echo(f"{path}: {old} -> {state}; default of the range is "
               f"{version_name(default) if default else 'none (get ignores the range)'}")


_RANGE = click.option("--range", "-r", "rng", required=True, shell_complete=complete_range,
                      help="The range (name, or a begin time that identifies it).")
_VERSION = click.option("--version", "-V", "vers", required=True, metavar="N",
                        help="The version (3 or v0003).")
_REASON = click.option("--message", "-m", "reason", required=True, metavar="REASON",
                       help="Why (kept in history with your user name and the time).")


@cli.command("validate")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@_RANGE
@_VERSION
@_REASON
@click.option("--no-default", is_flag=True,
              help="Keep the range's current default (a range without one still gets it).")
def validate_cmd(store: str, ctype: str, rng: str, vers: str, reason: str,
                 no_default: bool) -> None:
    """Make a candidate version valid (production); it becomes the range's default.

    \b
    Example:
      dcs validate cspad-0001 pedestals --range 20240501T000000Z_end --version 3 \\
          -m "checked against run 18"
    """
    _change(store, ctype, rng, vers, reason, "valid", make_default=not no_default)


@cli.command("deprecate")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@_RANGE
@_VERSION
@_REASON
def deprecate_cmd(store: str, ctype: str, rng: str, vers: str, reason: str) -> None:
    """Retire a version without deleting it: get never selects it again (final).

    When it was the range's default, the newest valid version of the range becomes the
    default; with none left the range is ignored by get and the next covering range is used.

    \b
    Example:
      dcs deprecate cspad-0001 pedestals --range 20240501T000000Z_end --version 2 \\
          -m "bad pedestal: hot pixels after run 17"
    """
    _change(store, ctype, rng, vers, reason, "deprecated")


__all__ = ["validate_cmd", "deprecate_cmd"]
