"""``dcs`` commands that change one store: add, delete, set-default, par, upgrade.

Each change is one DCStore call, so one transaction (see :mod:`.cmd_store` for the
conventions of STORE, object paths and ``--json``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import click

from ..errors import InvalidInputError, InvalidParameterError, PscalibError, StoreNotFoundError
from ..names import split_detname
from ..ndarrio import dtype_from_name, parse_shape
from ..runs import parse_runs
from ..store import DCBase, DCRange, DCType, DCVersion
from ..store.layout import h5path, version_name
from ..store.upgrade import upgrade_store
from .app import cli
from .common import OptionalTimeParam, TimeParam, echo_json, open_store
from .storecommon import (JSON_OPT, STORE_ARG, complete_ctype, complete_objpath,
                          complete_range, fmt_pars, fmt_value, json_pars, object_path,
                          open_for_write, parse_par, read_input, resolve_obj, sec_nsec)


_REASON_OPT = click.option("--message", "-m", "reason", default=None, metavar="REASON",
                           help="Why: recorded in the history with the change.")


# ---------------------------------------------------------------- add
def _dettype_for(spec: str) -> Optional[str]:
    """Detector type of STORE (for headerless NDArrIO input), also before --create."""
    try:
        with open_store(spec, "r") as cs:
            return cs.dettype()
    except StoreNotFoundError:
        name = Path(spec).name
        try:
            return split_detname(name[:-3] if name.endswith(".h5") else name)[0]
        except PscalibError:
            return None


@cli.command("add")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.argument("input_file", metavar="INPUT",
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--begin", "-b", type=TimeParam(), default=None,
              help="Start of the validity range (ISO 8601 or Unix seconds).")
@click.option("--end", "-e", type=OptionalTimeParam(), default=None,
              help="End of the validity range (exclusive); omit or 'open' for no end.")
@click.option("--runs", "runs", default=None, metavar="FIRST-LAST",
              help="Instead of --begin/--end: runs FIRST..LAST inclusive ('17-25') or "
                   "'17-end', mapped to times through the experiment's run table.")
@click.option("--experiment", "-E", default=None, metavar="EXP",
              help="Experiment of --runs (default: the store's workspace, else "
                   "PSCALIB_EXPERIMENT).")
@click.option("--par", "-p", "pars", multiple=True, metavar="K=V",
              help="Parameter of the new version; repeatable. Values are typed: int, float, "
                   "true/false -> bool, otherwise str ('quoted' stays str).")
@click.option("--message", "-m", default=None, help="Comment for the history record.")
@click.option("--no-default", is_flag=True,
              help="Do not make the new version the range's default (a range's first "
                   "version always becomes the default).")
@click.option("--text", "kind", flag_value="text", help="Read INPUT as text constants.")
@click.option("--array", "kind", flag_value="array",
              help="Read INPUT as an array (.npy or NDArrIO text), never as text.")
@click.option("--create", is_flag=True,
              help="Create STORE if it does not exist (path, or detname in the repository).")
@click.option("--force", is_flag=True,
              help="Add a new version even if INPUT is identical to the range's current "
                   "default (otherwise that is reported as unchanged and nothing is added).")
@click.option("--candidate", is_flag=True,
              help="Add the version as a candidate: get ignores it (unless asked with "
                   "--candidates) until 'dcs validate' makes it valid.")
@click.option("--shape", default=None, metavar="D1,D2,...",
              help="Shape of an NDArrIO INPUT without a shape header (default: psana1's "
                   "shape for the store's detector type and CTYPE).")
@click.option("--dtype", default=None, metavar="NAME",
              help="dtype of an NDArrIO INPUT without a DTYPE header (e.g. float32).")
@JSON_OPT
def add_cmd(store: str, ctype: str, input_file: Path, begin: int, end: Optional[int],
            runs: Optional[str], experiment: Optional[str], pars: Tuple[str, ...],
            message: Optional[str], no_default: bool, kind: Optional[str], create: bool,
            force: bool, candidate: bool, shape: Optional[str], dtype: Optional[str],
            as_json: bool) -> None:
    """Add INPUT as a new version of CTYPE constants valid from --begin to --end.

    INPUT is a .npy file, an NDArrIO text file (# DTYPE/# NDIM/# DIM:n header, or only
    numbers) or any other UTF-8 text (stored as text, e.g. geometry). The kind is decided
    from the content; --array/--text override.

    \b
    Example:
      dcs add calib/cspad/cspad-0001.h5 pedestals peds.npy --begin 2024-05-01T00:00:00 \\
          --par run=17 --par experiment=cxic0415 -m "dark run 17" --create
      dcs add cspad-0001 geometry geo.data --begin 2024-05-01 --end 2024-06-01
      dcs add cspad-0001 pedestals peds.npy --runs 17-25 --experiment CXI/cxic0415
    """
    if runs is None and begin is None:
        raise click.UsageError("give the validity: --begin T [--end T] or --runs FIRST-LAST")
    if runs is not None and (begin is not None or end is not None):
        raise click.UsageError("give either --begin/--end or --runs, not both")
    if experiment is not None and runs is None:
        raise click.UsageError("--experiment is used only with --runs")
    spec = None if runs is None else parse_runs(runs)
    hints = {"shape": None if shape is None else parse_shape(shape),
             "dtype": None if dtype is None else dtype_from_name(dtype)}
    payload, fmt = read_input(input_file, kind or "auto", dettype=_dettype_for(store),
                              ctype=ctype, **hints)
    dictpars = dict(parse_par(p) for p in pars)
    when: Dict[str, Any] = ({"runs": spec, "experiment": experiment} if spec is not None else
                            {"tsbegin": sec_nsec(begin), "tsend": sec_nsec(end)})
    with open_for_write(store, create) as cs:
        ver = cs.add_constants(ctype, payload, dictpars=dictpars or None, comment=message,
                               make_default=not no_default, force=force,
                               state="candidate" if candidate else "valid", **when)
        default = ver.is_default()
        path = object_path(ver)
        where = cs.path
    if as_json:
        echo_json({"store": str(where), "path": path, "version": ver.version(),
                   "unchanged": bool(ver.unchanged), "default": default, "format": fmt,
                   "shared_with": h5path(ver.linked_to) if ver.linked_to else None})
        return
    if ver.unchanged:
        click.echo(f"unchanged: {path} in {where} already holds identical constants and "
                   f"parameters (use --force to add a new version anyway)")
        return
    shared = (f", payload shared with {h5path(ver.linked_to)}"
              if ver.linked_to else "")
    click.echo(f"added {path} ({fmt}{', candidate' if candidate else ''}"
               f"{', default' if default else ', not the default'}"
               f"{shared}) to {where}")


# ---------------------------------------------------------------- delete
def _count_versions(obj: DCBase) -> Tuple[int, int]:
    if isinstance(obj, DCType):
        rs = obj.ranges()
        return len(rs), sum(len(r) for r in rs)
    if isinstance(obj, DCRange):
        return 1, len(obj)
    return 0, 1


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInputError(f"refusing to delete without confirmation: stdin is not a "
                                f"terminal; add --yes to {question[0].lower()}{question[1:-1]}")
    click.confirm(question, default=False, abort=True, err=True)


@cli.command("delete")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.option("--range", "-r", "rng", default=None, shell_complete=complete_range,
              help="Delete only this range (name, or a begin time that identifies it).")
@click.option("--version", "-V", "vers", default=None, metavar="N",
              help="Delete only this version of --range.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_REASON_OPT
@JSON_OPT
def delete_cmd(store: str, ctype: str, rng: Optional[str], vers: Optional[str],
               yes: bool, reason: Optional[str], as_json: bool) -> None:
    """Delete a calibration type, one range of it, or one version of a range.

    Asks for confirmation on the terminal; --yes skips the question. Without a terminal
    and without --yes nothing is deleted (exit 1). History records stay with the parent.

    \b
    Example:
      dcs delete cspad-0001 pedestals --range 20240501T000000Z_end --version 2
      dcs delete cspad-0001 pixel_mask --yes
    """
    if vers is not None and rng is None:
        raise click.UsageError("--version needs --range (the range the version belongs to)")
    with open_for_write(store, create=False) as cs:
        t = cs.ctypeobj(ctype)
        obj: DCBase = t
        if rng is not None:
            r = t.rangeobj(rng)
            obj = r if vers is None else r.versobj(vers)
        nr, nv = _count_versions(obj)
        what = {DCType: f"calibration type {ctype!r} with {nr} range(s) and {nv} version(s)",
                DCRange: f"range {object_path(obj)} with {nv} version(s)",
                DCVersion: f"version {object_path(obj)}"}[type(obj)]
        _confirm(f"Delete {what} from {cs.path}?", yes)
        gone = object_path(obj)
        parent: DCBase = cs
        with cs.transaction():  # the deletion and its reason in one atomic step
            if isinstance(obj, DCType):
                cs.del_ctype(ctype)
            elif isinstance(obj, DCRange):
                t.del_range(obj.range())
                parent = t
            elif isinstance(obj, DCVersion):
                parent = obj.rangeobj()
                obj.rangeobj().del_version(obj.version())
            if reason:
                parent.add_history(f"deleted {gone}: {reason}", action="delete_reason")
    if as_json:
        echo_json({"store": str(cs.path), "deleted": gone, "ranges": nr, "versions": nv,
                   "reason": reason})
        return
    click.echo(f"deleted {what}")


# ---------------------------------------------------------------- set-default
@cli.command("set-default")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.argument("version")
@click.option("--range", "-r", "rng", required=True, shell_complete=complete_range,
              help="The range (name, or a begin time that identifies it).")
@_REASON_OPT
@JSON_OPT
def set_default_cmd(store: str, ctype: str, version: str, rng: str, reason: Optional[str],
                    as_json: bool) -> None:
    """Make VERSION the default version of a range (what 'get' returns without --version).

    \b
    Example:
      dcs set-default epix10ka-0001 pedestals --range 20240110T000000Z_20240301T000000Z 2
    """
    with open_for_write(store, create=False) as cs:
        r = cs.ctypeobj(ctype).rangeobj(rng)
        old = r.versdef()
        with cs.transaction():  # the change and its reason in one atomic step
            r.set_versdef(version)
            if reason:
                r.add_history(reason, action="set_default_reason")
        new = r.versdef()
        path = object_path(r)
    if as_json:
        echo_json({"store": str(cs.path), "path": path, "old_default": old or None,
                   "default": new, "reason": reason})
        return
    click.echo(f"default of {path}: {version_name(old)} -> {version_name(new)}")


# ---------------------------------------------------------------- par
@cli.command("par")
@click.argument("store", **STORE_ARG)
@click.argument("words", nargs=-1, metavar="[PATH] [set K=V... | del K...]",
                shell_complete=complete_objpath)
@JSON_OPT
def par_cmd(store: str, words: Tuple[str, ...], as_json: bool) -> None:
    """Show, set or delete dictpars of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    Values of 'set' are typed like --par of 'dcs add': int, float, true/false, else str.

    \b
    Example:
      dcs par cspad-0001                                  (show the store's pars)
      dcs par cspad-0001 pedestals set units=ADU gain=1.5
      dcs par cspad-0001 pedestals/20240501T000000Z_end/v0002 del reviewed
    """
    action_at = next((i for i, w in enumerate(words) if w in ("set", "del")), None)
    items: Tuple[str, ...]
    if action_at is None:
        if len(words) > 1:
            raise click.UsageError(f"expected [PATH] set K=V... or [PATH] del K..., got "
                                   f"{' '.join(words)!r}")
        path, action, items = (words[0] if words else None), None, ()
    else:
        if action_at > 1:
            raise click.UsageError(f"only one PATH may come before {words[action_at]!r}")
        path = words[0] if action_at == 1 else None
        action, items = words[action_at], words[action_at + 1:]
        if not items:
            raise click.UsageError(f"'{action}' needs at least one "
                                   f"{'K=V' if action == 'set' else 'K'}")
    with (open_for_write(store, False) if action else open_store(store)) as cs:
        obj = resolve_obj(cs, path)
        where = object_path(obj) or "(store)"
        if action == "set":
            obj.set_pars(dict(parse_par(it) for it in items))
        elif action == "del":
            missing = [k for k in items if k not in obj.dictpars()]
            if missing:
                raise InvalidParameterError(f"{where} has no parameter {missing[0]!r}; it has "
                                            f"{sorted(obj.dictpars()) or 'none'}")
            with cs.transaction():  # all deletions in one atomic change
                for k in items:
                    obj.del_par(k)
        pars = obj.dictpars()
    if as_json:
        echo_json({"path": object_path(obj), "dictpars": json_pars(pars)})
    elif action:
        click.echo(f"{where}: {fmt_pars(pars) or '(no pars)'}")
    else:
        for k, v in pars.items():
            click.echo(f"{k}={fmt_value(v)}  ({type(v).__name__})")
        if not pars:
            click.echo(f"{where} has no pars")



# ---------------------------------------------------------------- upgrade
@cli.command("upgrade")
@click.argument("store", **STORE_ARG)
@JSON_OPT
def upgrade_cmd(store: str, as_json: bool) -> None:
    """Convert STORE to the newest file format (3: one history table per store).

    Everything in the store stays as it is (constants, parameters, history, states, tags,
    change log); the root history gets a 'format_upgrade' record. Older pscalib releases
    cannot open the file afterwards. Nothing to do for a store already in the newest format.

    \b
    Example:
      dcs upgrade cspad-0001
    """
    with open_for_write(store, create=False) as cs:
        before, after = upgrade_store(cs)
    if as_json:
        echo_json({"store": str(cs.path), "format_before": before, "format": after,
                   "upgraded": after != before})
        return
    if after == before:
        click.echo(f"{cs.path}: already format {after}, nothing to do")
    else:
        click.echo(f"{cs.path}: format {before} -> {after}")
