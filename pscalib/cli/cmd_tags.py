"""``dcs tag create|list|show|publish|delete|diff``: named frozen selections across one or
many stores (docs/reproducibility.rst). TARGET is a store (file, detname) or a calib
directory (every ``<dettype>/<detname>.h5`` in it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from ..errors import TagNotFoundError
from ..exchange.impact import NOW, changed_windows, runs_in, selection_of, workspace_runs
from ..runs import RunTable
from ..store.dcstore import DCStore
from ..store.layout import h5path, range_name
from ..store.purge import (deprecated_versions, describe_losses, purge, reachable_windows,
                           selected_windows)
from ..store.tags import (check_create_tag, check_delete_tag, create_tag, delete_tag,
                          publish_tag, rows_of, tag_names)
from ..timestamps import OPEN_END, format_ns
from .app import cli
from .common import TimeParam, echo_json, lock_timeout, open_store

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_TARGETS = click.argument("targets", nargs=-1, required=True, metavar="CALIB|STORE...")


def store_paths(targets: Tuple[str, ...]) -> List[Path]:
    """Store files of the targets (a directory: every ``*/*.h5`` and ``*.h5`` in it)."""
    out: List[Path] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            out += sorted(set(p.glob("*/*.h5")) | set(p.glob("*.h5")))
        else:
            with open_store(t) as cs:
                out.append(cs.path)
    if not out:
        raise click.UsageError(f"no store files in {' '.join(targets)}")
    return out


def _open(p: Path, mode: str = "r") -> DCStore:
    return DCStore(p, mode=mode, lock_timeout=lock_timeout())


def _with_tag(paths: List[Path], name: str) -> List[Path]:
    have = []
    for p in paths:
        with _open(p) as cs:
            if name in tag_names(cs.backend):
                have.append(p)
    if not have:
        raise TagNotFoundError(f"no store of {len(paths)} has a tag {name!r}")
    return have


@cli.group("tag")
def tag_group() -> None:
    """Tags: named, frozen selections (what get answers) of one or many stores."""


@tag_group.command("create")
@click.argument("name")
@_TARGETS
@click.option("--at", "at", type=TimeParam(), default=None,
              help="Freeze what get answered at this wall time (from the change log) "
                   "instead of now.")
@click.option("--message", "-m", "note", default="", help="Note kept with the tag.")
def create_cmd(name: str, targets: Tuple[str, ...], at: Any, note: str) -> None:
    """Create tag NAME in every store of CALIB|STORE.

    \b
    Example:
      dcs tag create run17-prod calib/ -m "constants of the run 17 reprocessing"
    """
    t = None if at is None else int(at)
    paths = store_paths(targets)
    for p in paths:  # every store first: a refusal in one changes no file
        with _open(p) as cs:
            check_create_tag(cs, name, t)
    for p in paths:
        with _open(p, "a") as cs:
            n = create_tag(cs, name, t, note)
        click.echo(f"{p}: tag {name} created ({n} ranges)")


@tag_group.command("publish")
@click.argument("name")
@_TARGETS
def publish_cmd(name: str, targets: Tuple[str, ...]) -> None:
    """Publish tag NAME: it and the versions it references become immutable."""
    for p in _with_tag(store_paths(targets), name):
        with _open(p, "a") as cs:
            new = publish_tag(cs, name)
        click.echo(f"{p}: tag {name} {'published' if new else 'was already published'}")


@tag_group.command("delete")
@click.argument("name")
@_TARGETS
def delete_cmd(name: str, targets: Tuple[str, ...]) -> None:
    """Delete the unpublished tag NAME (a published tag is refused)."""
    paths = _with_tag(store_paths(targets), name)
    for p in paths:  # a published tag in one store refuses them all
        with _open(p) as cs:
            check_delete_tag(cs, name)
    for p in paths:
        with _open(p, "a") as cs:
            delete_tag(cs, name)
        click.echo(f"{p}: tag {name} deleted")


def _summary(paths: List[Path]) -> List[Dict[str, Any]]:
    tags: Dict[str, Dict[str, Any]] = {}
    for p in paths:
        with _open(p) as cs:
            for r in cs.backend.tag_rows():
                d = tags.setdefault(r.name, {"name": r.name, "at": format_ns(r.tsat),
                                             "created": format_ns(r.tscreated),
                                             "user": r.user, "published": None,
                                             "note": r.note, "stores": [], "ranges": 0})
                if not r.ctype:
                    d["stores"].append(str(p))
                    if r.published:
                        d["published"] = format_ns(r.published)
                else:
                    d["ranges"] += 1
    return list(tags.values())


@tag_group.command("list")
@_TARGETS
@_JSON
def list_cmd(targets: Tuple[str, ...], as_json: bool) -> None:
    """List the tags of CALIB|STORE."""
    tags = _summary(store_paths(targets))
    if as_json:
        echo_json(tags)
        return
    for d in tags:
        pub = f"published {d['published']}" if d["published"] else "open"
        click.echo(f"{d['name']}  at {d['at']}  {pub}  {len(d['stores'])} stores, "
                   f"{d['ranges']} ranges  by {d['user']}"
                   + (f"  - {d['note']}" if d["note"] else ""))


@tag_group.command("show")
@click.argument("name")
@_TARGETS
@_JSON
def show_cmd(name: str, targets: Tuple[str, ...], as_json: bool) -> None:
    """What tag NAME selects: per store, ctype and range the version and its sha256."""
    out: List[Dict[str, Any]] = []
    for p in _with_tag(store_paths(targets), name):
        with _open(p) as cs:
            for r in rows_of(cs.backend, name):
                if r.ctype:
                    out.append({"store": str(p), "detname": cs.detname(), "ctype": r.ctype,
                                "range": range_name(r.tsbegin, r.tsend), "version": r.version,
                                "sha256": r.sha256, "published": bool(r.published)})
    if as_json:
        echo_json(out)
        return
    for d in out:
        click.echo(f"{d['detname']}  {d['ctype']}  {d['range']}  v{d['version']:04d}  "
                   f"{d['sha256'][:16]}")


@tag_group.command("diff")
@click.argument("a")
@click.argument("b")
@_TARGETS
@click.option("--run-table", "run_table", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Name the runs in each changed window (default: the run "
                                 "table of each store's workspace, if it has one).")
@_JSON
def diff_cmd(a: str, b: str, targets: Tuple[str, ...], run_table: Optional[str],
             as_json: bool) -> None:
    """Impact: per detector and ctype, the time windows whose get answer differs between
    tag A and tag B ('now': what get answers now), with the runs of a run table beginning
    in each window (get(run=R) differs) and those running into it. Exit 0 also when
    windows differ.

    \b
    Example:
      dcs tag diff run17-prod now calib/ --run-table calib/runs.txt
    """
    table = None if run_table is None else RunTable.load(Path(run_table), None)
    out = []
    for p in store_paths(targets):
        with _open(p) as cs:
            names = tag_names(cs.backend)
            if (a != NOW and a not in names) and (b != NOW and b not in names):
                continue
            known = table if table is not None else workspace_runs(p)
            for w in changed_windows(selection_of(cs, a), selection_of(cs, b)):
                if known is not None:
                    runs_in(known, w)
                out.append(dict(w.to_dict(), detname=cs.detname(), store=str(p)))
    if as_json:
        echo_json({"a": a, "b": b, "windows": out})
        return
    if not out:
        click.echo(f"{a} and {b} answer the same everywhere")
    for d in out:
        end = "end" if d["end_ns"] == OPEN_END else d["end"]
        runs = f"  runs {d['runs'][0]}..{d['runs'][-1]} ({len(d['runs'])})" if d["runs"] else ""
        if d["runs_partly"]:
            runs += f"  (partly: runs {', '.join(map(str, d['runs_partly']))})"
        click.echo(f"{d['detname']}  {d['ctype']}  {d['begin']} .. {end}: "
                   f"{d['a'] or 'none'} -> {d['b'] or 'none'}{runs}")


@cli.command("purge")
@click.argument("store")
@click.option("--deprecated", is_flag=True, required=True,
              help="Delete every deprecated version (the only purge there is).")
@click.option("--dry-run", is_flag=True, help="Say what would be purged; write nothing.")
def purge_cmd(store: str, deprecated: bool, dry_run: bool) -> None:
    """Reclaim the space of deprecated versions of STORE; prints, per version, the wall
    times whose 'get --asof' answers become unanswerable. Refused (nothing written) when a
    published tag references one. Recorded in the root history.

    \b
    Example:
      dcs purge cspad-0001 --deprecated --dry-run
    """
    with open_store(store, "r" if dry_run else "a") as cs:
        if dry_run:
            out = [(k, selected_windows(cs.backend.changelog()[1]).get(k, []))
                   for k in deprecated_versions(cs.backend)]
        else:
            out = purge(cs)
        reach = reachable_windows(cs.backend.versionlog()[1])
    verb = "would purge" if dry_run else "purged"
    for k, ws in out:
        lost = describe_losses(ws, reach.get(k, []))
        click.echo(f"{verb} {h5path(k)}" + (f"; as-of answers lost for {lost}" if lost else ""))
    click.echo(f"{len(out)} deprecated versions {verb}")
