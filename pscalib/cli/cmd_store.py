"""``dcs`` commands that read one store: print, get, history, and demo.

Conventions shared with the other command modules (see docs/cli.rst):

* STORE is a file path, a detname or an alias (:func:`.common.open_store`); read commands
  open it read-only, changes go through DCStore methods (one transaction each).
* Object paths inside a store are ``CTYPE[/RANGE[/VERSION]]``, e.g.
  ``pedestals/20240110T000000Z_20240301T000000Z/v0002``; RANGE is a range name or a begin
  time that identifies one range.
* ``--json`` on every read command prints one JSON document (schemas in docs/cli.rst).
* Progress bars go to stderr and only when stderr is a terminal.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import click
import numpy as np

from ..demo import DEMO_STEPS, build_demo, read_back
from ..store import DCBase, DCRange, DCStore, DCType, DCVersion
from ..store.layout import version_name
from ..timestamps import format_ns
from .app import cli
from .common import TimeParam, echo_json, open_store, progress
from .storecommon import (JSON_OPT, STORE_ARG, complete_ctype, complete_objpath, fmt_pars,
                          human_bytes, json_pars, object_path, resolve_obj, sec_nsec,
                          write_output)

__all__ = ["store_tree"]


# ---------------------------------------------------------------- tree (print)
def _version_dict(v: DCVersion, default: int) -> Dict[str, Any]:
    info = v.info()
    st = v.state_info()
    return {"version": info.version, "default": info.version == default,
            "state": st.state, "state_time": None if st.tsns is None else format_ns(st.tsns),
            "state_user": st.user, "state_reason": st.reason,
            "tsprod": format_ns(info.tsprod), "tsprod_ns": info.tsprod, "kind": info.kind,
            "dtype": None if info.dtype is None else str(info.dtype),
            "shape": None if info.shape is None else list(info.shape),
            "nbytes": int(info.nbytes), "sha256": info.sha256,
            "dictpars": json_pars(v.dictpars())}


def _range_dict(r: DCRange) -> Dict[str, Any]:
    default = r.versdef()
    return {"range": r.range(), "begin": r.begin(), "end": None if r.is_open() else r.end(),
            "tsbegin": r.tsbegin(), "tsend": None if r.is_open() else r.tsend(),
            "default": default or None, "dictpars": json_pars(r.dictpars()),
            "versions": [_version_dict(v, default) for v in r.versions()]}


def store_tree(cs: DCStore, ctype: Optional[str] = None) -> Dict[str, Any]:
    """The JSON document of ``dcs print --json`` (schema in docs/cli.rst)."""
    ctypes = [cs.ctypeobj(ctype)] if ctype else [cs.ctypeobj(c) for c in cs.ctypes()]
    return {
        "store": str(cs.path.absolute()), "detname": cs.detname(), "dettype": cs.dettype(),
        "detid": cs.detid(), "format": cs.backend.format_description,
        "file_bytes": cs.path.stat().st_size, "dictpars": json_pars(cs.dictpars()),
        "ctypes": [{"ctype": t.ctype(), "dictpars": json_pars(t.dictpars()),
                    "ranges": [_range_dict(r) for r in t.ranges()]} for t in ctypes],
    }


def _print_tree(tree: Dict[str, Any]) -> None:
    echo = click.echo
    echo(f"{tree['detname']}  {tree['store']}  ({tree['format']}, "
         f"{human_bytes(tree['file_bytes'])})")
    if tree["dictpars"]:
        echo(f"  pars: {fmt_pars(tree['dictpars'])}")
    for t in tree["ctypes"]:
        n = len(t["ranges"])
        echo(f"  {t['ctype']}  ({n} range{'s' if n != 1 else ''})"
             + (f"  pars: {fmt_pars(t['dictpars'])}" if t["dictpars"] else ""))
        for r in t["ranges"]:
            end = r["end"] or "open"
            echo(f"    {r['begin']} .. {end}  [{r['range']}]"
                 + (f"  pars: {fmt_pars(r['dictpars'])}" if r["dictpars"] else ""))
            if not r["versions"]:
                echo("      (no versions: ignored by get)")
            for v in r["versions"]:
                mark = "*" if v["default"] else " "
                what = ("text" if v["kind"] == "text" else
                        f"{v['dtype']} {tuple(v['shape'])}")
                pars = f"  {fmt_pars(v['dictpars'])}" if v["dictpars"] else ""
                state = "" if v["state"] == "valid" else f"  [{v['state'].upper()}]"
                echo(f"     {mark} {version_name(v['version'])}  {what}  "
                     f"{human_bytes(v['nbytes'])}  produced {v['tsprod']}{state}{pars}")
                if v["state"] != "valid" and v["state_reason"]:
                    echo(f"         {v['state']} by {v['state_user']} at {v['state_time']}: "
                         f"{v['state_reason']}")
    echo("  (* = default version; versions without a mark are valid)")


@cli.command("print")
@click.argument("store", **STORE_ARG)
@click.option("--ctype", "-c", default=None, shell_complete=complete_ctype,
              help="Show only this calibration type.")
@JSON_OPT
def print_cmd(store: str, ctype: Optional[str], as_json: bool) -> None:
    """Show the tree of STORE: ctypes, ranges, versions (* = default), sizes, dictpars.

    \b
    Example:
      dcs print calib/epix10ka/epix10ka-0001.h5 --ctype pedestals
      dcs print epix10ka-0001 --json | jq '.ctypes[].ranges[].default'
    """
    with open_store(store) as cs:
        tree = store_tree(cs, ctype)
    if as_json:
        echo_json(tree)
    else:
        _print_tree(tree)


# ---------------------------------------------------------------- get
def _summary(cs: DCStore, ver: DCVersion, t: int, payload: Any) -> Dict[str, Any]:
    rng = ver.rangeobj()
    info = ver.info()
    out: Dict[str, Any] = {
        "store": str(cs.path.absolute()), "detname": cs.detname(), "ctype": ver.ctype(),
        "time": format_ns(t), "range": rng.range(), "begin": rng.begin(),
        "end": None if rng.is_open() else rng.end(), "version": ver.version(),
        "default": ver.is_default(), "versions": [v.version() for v in rng.versions()],
        "state": ver.state(),
        "tsprod": format_ns(info.tsprod), "kind": info.kind, "sha256": info.sha256,
        "dictpars": json_pars(ver.dictpars()),
    }
    if isinstance(payload, str):
        out.update(dtype=None, shape=None, nbytes=len(payload.encode("utf-8")),
                   lines=len(payload.splitlines()), stats=None)
    else:
        stats = None
        if payload.dtype.kind in "biuf" and payload.size:
            a = payload.astype(np.float64) if payload.dtype.kind == "b" else payload
            stats = {"min": float(np.nanmin(a)), "max": float(np.nanmax(a)),
                     "mean": float(np.nanmean(a))} if not np.all(np.isnan(a)) else None
        out.update(dtype=str(payload.dtype), shape=list(payload.shape),
                   nbytes=int(payload.nbytes), lines=None, stats=stats)
    return out


def _print_summary(s: Dict[str, Any], payload: Any) -> None:
    echo = click.echo
    echo(f"{s['detname']} {s['ctype']} at {s['time']}")
    echo(f"  range     {s['begin']} .. {s['end'] or 'open'}  [{s['range']}]")
    others = ", ".join(str(v) for v in s["versions"])
    state = "" if s["state"] == "valid" else f", {s['state'].upper()}"
    echo(f"  version   {version_name(s['version'])}"
         f"{' (default)' if s['default'] else ' (not the default)'}{state}; versions: {others}")
    echo(f"  produced  {s['tsprod']}")
    if s["kind"] == "text":
        first = next((ln for ln in payload.splitlines() if ln.strip()), "")
        echo(f"  data      text, {s['lines']} lines, {human_bytes(s['nbytes'])}")
        echo(f"  first     {first[:90]}")
    else:
        st = s["stats"]
        extra = (f"; min {st['min']:.6g} max {st['max']:.6g} mean {st['mean']:.6g}"
                 if st else "")
        echo(f"  data      {s['dtype']} {tuple(s['shape'])}, {human_bytes(s['nbytes'])}{extra}")
    echo(f"  sha256    {s['sha256']}")
    if s["dictpars"]:
        echo(f"  pars      {fmt_pars(s['dictpars'])}")


@cli.command("get")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.option("--time", "-t", "tsp", type=TimeParam(), required=True,
              help="Time the constants must be valid at (ISO 8601 or Unix seconds).")
@click.option("--version", "-V", "vers", default=None, metavar="N",
              help="Version number (3 or v0003) instead of the range's default.")
@click.option("--output", "-o", "out", default=None, metavar="OUT",
              help="Write the constants: .npy (array), any other name (e.g. .data/.txt) "
                   "NDArrIO text for arrays or the exact text for text constants; '-' = "
                   "stdout. An existing file is replaced atomically.")
@click.option("--candidates", is_flag=True,
              help="Also consider candidate versions (a range's newest candidate above its "
                   "default is chosen); deprecated versions are never chosen.")
@JSON_OPT
def get_cmd(store: str, ctype: str, tsp: int, vers: Optional[str], out: Optional[str],
            candidates: bool, as_json: bool) -> None:
    """Get the CTYPE constants of STORE valid at --time.

    Without -o, prints a short summary (range, version, dtype/shape, statistics, dictpars).

    \b
    Example:
      dcs get epix10ka-0001 pedestals --time 2024-01-20T12:00:00 -o peds.npy
      dcs get epix10ka-0001 pedestals -t 1705752000 --version 2 -o peds.data
      dcs get jungfrau-0001 geometry -t 2024-06-01 -o geometry.txt
    """
    with open_store(store) as cs:
        ver = cs.version_at(ctype, sec_nsec(tsp), vers,
                            include=("candidate",) if candidates else ())
        payload = ver.calib()
        summary = _summary(cs, ver, tsp, payload)
    if out is not None:
        header = {"DETECTOR": summary["detname"], "CALIB_TYPE": ctype,
                  "RANGE": summary["range"], "VERSION": version_name(summary["version"]),
                  "TSPROD": summary["tsprod"]}
        fmt = write_output(out, payload, header)
        summary.update(output=None if out == "-" else str(Path(out).absolute()), format=fmt)
        if as_json and out != "-":
            echo_json(summary)
        elif out != "-":
            click.echo(f"wrote {summary['ctype']} {summary['range']}/"
                       f"{version_name(summary['version'])} to {out} ({fmt})")
        return
    if as_json:
        echo_json(summary)
    else:
        _print_summary(summary, payload)


# ---------------------------------------------------------------- history
def _walk(obj: DCBase) -> Iterator[DCBase]:
    yield obj
    if isinstance(obj, DCStore):
        for c in obj.ctypes():
            yield from _walk(obj.ctypeobj(c))
    elif isinstance(obj, DCType):
        for r in obj.ranges():
            yield from _walk(r)
    elif isinstance(obj, DCRange):
        yield from obj.versions()


@cli.command("history")
@click.argument("store", **STORE_ARG)
@click.argument("path", required=False, default=None, shell_complete=complete_objpath)
@click.option("--recursive", "-r", is_flag=True,
              help="Include the history of everything below PATH, merged by time.")
@JSON_OPT
def history_cmd(store: str, path: Optional[str], recursive: bool, as_json: bool) -> None:
    """Show the history (who, when, what) of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    \b
    Example:
      dcs history cspad-0001 -r
      dcs history cspad-0001 pedestals/20240501T000000Z_end --json
    """
    with open_store(store) as cs:
        top = resolve_obj(cs, path)
        objs = list(_walk(top)) if recursive else [top]
        recs = [(r.tsns, i, object_path(o), r) for i, o in enumerate(objs)
                for r in o.history_records()]
        top_path = object_path(top)
    recs.sort(key=lambda x: (x[0], x[1]))
    if as_json:
        echo_json({"path": top_path, "recursive": recursive, "records": [
            {"path": p, "time": format_ns(r.tsns), "tsns": r.tsns, "user": r.user,
             "host": r.host, "action": r.action, "record": r.record}
            for _, _, p, r in recs]})
        return
    for _, _, p, r in recs:
        prefix = f"[{p or '/'}] " if recursive else ""
        click.echo(prefix + r.format())


# ---------------------------------------------------------------- demo
@cli.command("demo")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@JSON_OPT
def demo_cmd(directory: Optional[Path], as_json: bool) -> None:
    """Build a demo calib directory in DIRECTORY (default: a new temporary directory)
    and show how to query it.

    Two detectors (epix10ka quad, jungfrau 4M), several ctypes, overlapping and open
    ranges, versions with a non-latest default, dictpars, real geometry text; about 12 MB.

    \b
    Example:
      dcs demo                  (into a fresh temporary directory)
      dcs demo ./demo-calib
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="pscalib-demo-"))
    with progress(range(len(DEMO_STEPS)), len(DEMO_STEPS), "building demo") as bar:
        it = iter(bar)
        info = build_demo(directory, progress=lambda name: next(it, None))
        for _ in it:  # finish the bar
            pass
    checks = read_back(info)
    if as_json:
        echo_json({"root": str(info.root), "stores": {k: str(v) for k, v in
                                                     info.stores.items()},
                   "alias": info.alias, "bytes": info.nbytes(),
                   "examples": [{"what": w, "command": c}
                                for w, c in info.example_commands()],
                   "read_back": checks})
        return
    echo = click.echo
    echo(f"Demo calib directory: {info.root}  ({human_bytes(info.nbytes())})")
    for det, p in info.stores.items():
        echo(f"  {det:15s} {p}")
    if info.alias:
        echo(f"  alias {info.alias} -> epix10ka-0001")
    echo("")
    echo("Read back:")
    for line in checks:
        echo(f"  {line}")
    echo("")
    echo("Try:")
    for what, cmd in info.example_commands():
        echo(f"  # {what}")
        echo(f"  {cmd}")
