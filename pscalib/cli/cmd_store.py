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

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import click
import numpy as np

from ..demo import DEMO_STEPS, build_demo, read_back
from ..display import show_ns
from ..errors import InvalidInputError
from ..locations import make_dirs
from ..names import validate_ctype
from ..ndarrio import write_text_atomic
from ..resolver import LOOKUP_MISSES, alias_at, as_pair, lookup_ctypes
from ..runs import RUN_PARS, parse_run, run_time
from ..store import DCBase, DCRange, DCStore, DCType, DCVersion
from ..store.layout import version_name
from ..store.lookups import provenance
from .app import cli
from .common import TimeParam, echo_json, open_store, progress
from .storecommon import (JSON_OPT, STORE_ARG, complete_ctype, complete_objpath, fmt_pars,
                          human_bytes, json_pars, object_path, resolve_obj, write_output)

__all__ = ["store_tree", "open_at", "runs_of", "merged_history"]


# ---------------------------------------------------------------- tree (print)
def _version_dict(v: DCVersion, default: int) -> Dict[str, Any]:
    info = v.info()
    st = v.state_info()
    return {"version": info.version, "default": info.version == default,
            "state": st.state, "state_time": None if st.tsns is None else show_ns(st.tsns),
            "state_user": st.user, "state_reason": st.reason,
            "tsprod": show_ns(info.tsprod), "tsprod_ns": info.tsprod, "kind": info.kind,
            "dtype": None if info.dtype is None else str(info.dtype),
            "shape": None if info.shape is None else list(info.shape),
            "nbytes": int(info.nbytes), "sha256": info.sha256,
            "dictpars": json_pars(v.dictpars())}


def runs_of(pars: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``{runbegin, runend, experiment}`` of a range added by runs, else None."""
    if "runbegin" not in pars:
        return None
    return {k: pars.get(k) for k in RUN_PARS}


def _runs_text(runs: Optional[Dict[str, Any]]) -> str:
    if not runs:
        return ""
    exp = f" of {runs['experiment']}" if runs.get("experiment") else ""
    return f"  runs {runs['runbegin']}-{runs['runend']}{exp}"


def _range_dict(r: DCRange) -> Dict[str, Any]:
    default = r.versdef()
    pars = r.dictpars()
    return {"range": r.range(), "begin": show_ns(r.tsbegin()),
            "end": None if r.is_open() else show_ns(r.tsend()),
            "tsbegin": r.tsbegin(), "tsend": None if r.is_open() else r.tsend(),
            "runs": runs_of(pars), "default": default or None, "dictpars": json_pars(pars),
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
            echo(f"    {r['begin']} .. {end}  [{r['range']}]{_runs_text(r['runs'])}"
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


_ALIAS_TIME_OPT = click.option(
    "--time", "-t", "at", type=TimeParam(), default=None,
    help="Resolve an alias STORE at this time (default: its latest record).")


@cli.command("print")
@click.argument("store", **STORE_ARG)
@click.option("--ctype", "-c", default=None, shell_complete=complete_ctype,
              help="Show only this calibration type.")
@_ALIAS_TIME_OPT
@JSON_OPT
def print_cmd(store: str, ctype: Optional[str], at, as_json: bool) -> None:
    """Show the tree of STORE: ctypes, ranges, versions (* = default), sizes, dictpars.

    \b
    Example:
      dcs print calib/epix10ka/epix10ka-0001.h5 --ctype pedestals
      dcs print epix10ka-0001 --json | jq '.ctypes[].ranges[].default'
      dcs print MfxEndstation.0:Epix10ka.0 --time 2024-06-01   (the alias's detector then)
    """
    with open_store(store, tsp=at) as cs:
        tree = store_tree(cs, ctype)
    if as_json:
        echo_json(tree)
    else:
        _print_tree(tree)


# ---------------------------------------------------------------- get
def _summary(ver: DCVersion, t: int, payload: Any) -> Dict[str, Any]:
    cs = ver._store  # the file that answered (a later place of the search order, maybe)
    rng = ver.rangeobj()
    info = ver.info()
    out: Dict[str, Any] = {
        "store": str(cs.path.absolute()), "detname": cs.detname(), "ctype": ver.ctype(),
        "time": show_ns(int(t)), "range": rng.range(), "begin": show_ns(rng.tsbegin()),
        "end": None if rng.is_open() else show_ns(rng.tsend()),
        "runs": runs_of(rng.dictpars()), "version": ver.version(),
        "default": ver.is_default(), "versions": [v.version() for v in rng.versions()],
        "state": ver.state(),
        "tsprod": show_ns(info.tsprod), "kind": info.kind, "sha256": info.sha256,
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
    run = f" (run {s['run']})" if s.get("run") else ""
    echo(f"{s['detname']} {s['ctype']} at {s['time']}{run}")
    echo(f"  store     {s['store']}")
    echo(f"  range     {s['begin']} .. {s['end'] or 'open'}  [{s['range']}]"
         f"{_runs_text(s['runs'])}")
    others = ", ".join(str(v) for v in s["versions"])
    state = "" if s["state"] == "valid" else f", {s['state'].upper()}"
    echo(f"  version   {version_name(s['version'])}"
         f"{' (default)' if s['default'] else ' (not the default)'}{state}; versions: {others}")
    echo(f"  produced  {s['tsprod']}")
    if s.get("asof"):
        echo(f"  as of     {s['asof']} (then {s['state_asof']})")
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


def open_at(store: str, tsp: Any, run: Optional[str],
            experiment: Optional[str]) -> Tuple[DCStore, int, Optional[int]]:
    """Open STORE for a lookup at a time or run: ``(store, ns, run)``.

    An alias is resolved at that time (for a run: at the run's begin, found through the
    table of the store's workspace or the experiment).
    """
    if run is None:
        if experiment is not None:
            raise click.UsageError("--experiment is used only with --run")
        return open_store(store, tsp=tsp), int(tsp), None
    r = parse_run(run)
    cs = open_store(store)
    try:
        t = run_time(r, experiment, cs.path)
        rec = alias_at(cs.resolved.alias_records, t) if cs.resolved.alias else None
    except BaseException:
        cs.close()
        raise
    if rec is not None and rec.detname != cs.resolved.detname:
        cs.close()
        cs = open_store(store, tsp=np.datetime64(t, "ns"))
    return cs, t, r


def _lookup_args(tsp: Any, run: Optional[str]) -> None:
    if (tsp is None) == (run is None):
        raise click.UsageError("give the time of the lookup: either --time T or --run N")


def _ctype_file(out_dir: Path, ctype: str, payload: Any) -> Path:
    # a ctype name read from a (legacy, crafted) file must not leave DIR
    return out_dir / f"{validate_ctype(ctype)}{'.txt' if isinstance(payload, str) else '.npy'}"


def _get_all(cs: DCStore, t: int, out: Optional[str], as_json: bool,
             head: Dict[str, Any]) -> None:
    """``dcs get --all``: every ctype valid at ``t``, one file each plus summary.json."""
    found: Dict[str, Dict[str, Any]] = {}
    missing: List[str] = []
    payloads: Dict[str, Any] = {}
    for c in lookup_ctypes(cs):
        try:
            ver = cs.version_at(c, as_pair(t))
        except LOOKUP_MISSES:
            missing.append(c)
            continue
        payloads[c] = ver.calib()
        found[c] = _summary(ver, t, payloads[c])
    doc = dict(head, ctypes=found, missing=missing)
    if out is not None:
        out_dir = Path(out)
        if out_dir.exists() and not out_dir.is_dir():
            raise InvalidInputError(f"--output {out} for --all must be a directory (one file "
                                    f"per ctype is written into it)")
        make_dirs(out_dir)
        for c, payload in payloads.items():
            dest = _ctype_file(out_dir, c, payload)
            found[c]["format"] = write_output(str(dest), payload, {
                "DETECTOR": found[c]["detname"], "CALIB_TYPE": c, "RANGE": found[c]["range"],
                "VERSION": version_name(found[c]["version"]), "TSPROD": found[c]["tsprod"]})
            found[c]["output"] = str(dest.absolute())
        summary = out_dir / "summary.json"
        write_text_atomic(summary, json.dumps(doc, indent=2, default=str) + "\n")
        doc["summary"] = str(summary.absolute())
    if as_json:
        echo_json(doc)
        return
    run = f" (run {head['run']})" if head.get("run") else ""
    click.echo(f"{head['name']} at {head['time']}{run}: {len(found)} ctype(s)"
               + (f"; none valid then: {', '.join(missing)}" if missing else ""))
    for c, s in found.items():
        where = f" -> {s['output']}" if "output" in s else ""
        click.echo(f"  {c:<16} {s['range']}/{version_name(s['version'])}  "
                   f"from {s['store']}{where}")
    if out is not None:
        click.echo(f"summary: {doc['summary']}")


@cli.command("get")
@click.argument("store", **STORE_ARG)
@click.argument("ctype", required=False, default=None, shell_complete=complete_ctype)
@click.option("--time", "-t", "tsp", type=TimeParam(), default=None,
              help="Time the constants must be valid at (ISO 8601, compact or Unix seconds).")
@click.option("--run", "-r", "run", default=None, metavar="N",
              help="Instead of --time: the begin of run N in the experiment's run table.")
@click.option("--experiment", "-E", default=None, metavar="EXP",
              help="Experiment of --run (default: the store's workspace, else "
                   "PSCALIB_EXPERIMENT).")
@click.option("--all", "all_ctypes", is_flag=True,
              help="Every ctype valid then (instead of CTYPE); -o names a directory.")
@click.option("--version", "-V", "vers", default=None, metavar="N",
              help="Version number (3 or v0003) instead of the range's default.")
@click.option("--output", "-o", "out", default=None, metavar="OUT",
              help="Write the constants: .npy (array), any other name (e.g. .data/.txt) "
                   "NDArrIO text for arrays or the exact text for text constants; '-' = "
                   "stdout. An existing file is replaced atomically. With --all: a "
                   "directory, receiving CTYPE.npy / CTYPE.txt and summary.json.")
@click.option("--candidates", is_flag=True,
              help="Also consider candidate versions (a range's newest candidate above its "
                   "default is chosen); deprecated versions are never chosen.")
@click.option("--asof", "asof", type=TimeParam(), default=None, metavar="T0",
              help="What get answered at wall time T0 (from the store's change log).")
@click.option("--tag", "tag", default=None, metavar="NAME",
              help="What tag NAME of the store selects (what get answered when it was made).")
@JSON_OPT
def get_cmd(store: str, ctype: Optional[str], tsp: Any, run: Optional[str],
            experiment: Optional[str], all_ctypes: bool, vers: Optional[str],
            out: Optional[str], candidates: bool, asof: Any, tag: Optional[str],
            as_json: bool) -> None:
    """Get the CTYPE constants of STORE valid at --time (or at the begin of --run).

    Without -o, prints a short summary (store, range, version, dtype/shape, statistics,
    dictpars). An alias STORE is resolved at that time. A store of the experiment
    workspace that lacks CTYPE (or a range valid then) answers from the next place of the
    search order; the summary names the file that answered.

    \b
    Example:
      dcs get epix10ka-0001 pedestals --time 2024-01-20T12:00:00 -o peds.npy
      dcs get epix10ka-0001 pedestals -t 1705752000 --version 2 -o peds.data
      dcs get epix10ka-0001 pedestals --run 17 --experiment CXI/cxic0415
      dcs get epix10ka-0001 --all -t 2024-06-01 -o constants/
    """
    _lookup_args(tsp, run)
    if all_ctypes == (ctype is not None):
        raise click.UsageError("give either CTYPE or --all")
    if all_ctypes and vers is not None:
        raise click.UsageError("--version applies to one CTYPE, not to --all")
    if all_ctypes and (asof is not None or tag is not None):
        raise click.UsageError("--asof/--tag apply to one CTYPE, not to --all")
    cs, t, r = open_at(store, tsp, run, experiment)
    with cs:
        if ctype is None:  # --all
            head = {"name": store, "detname": cs.resolved.detname or cs.detname(),
                    "time": show_ns(t), "tsns": t, "run": r,
                    "experiment": experiment}
            _get_all(cs, t, out, as_json, head)
            return
        ver = cs.version_at(ctype, as_pair(t), vers,
                            include=("candidate",) if candidates else (),
                            asof=None if asof is None else as_pair(int(asof)), tag=tag)
        payload = ver.calib()
        summary = _summary(ver, t, payload)
        if asof is not None:  # the state it had then (it may be deprecated since)
            summary.update(asof=show_ns(int(asof)),
                           state_asof=provenance(ver, asof=int(asof))["state"])
        if r is not None:
            summary["run"] = r
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


def merged_history(top: DCBase, recursive: bool = True) -> List[Tuple[str, Any]]:
    """``(object path, HistoryRecord)`` of ``top`` (and everything below it), by time."""
    objs = list(_walk(top)) if recursive else [top]
    recs = [(r.tsns, i, object_path(o), r) for i, o in enumerate(objs)
            for r in o.history_records()]
    recs.sort(key=lambda x: (x[0], x[1]))
    return [(p, r) for _, _, p, r in recs]


def _printable(text: str) -> str:
    """Control characters (BEL, CR, ESC, ...) of a record escaped: a record is one line on a
    terminal and cannot move the cursor or ring."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


@cli.command("history")
@click.argument("store", **STORE_ARG)
@click.argument("path", required=False, default=None, shell_complete=complete_objpath)
@click.option("--recursive", "-r", is_flag=True,
              help="Include the history of everything below PATH, merged by time.")
@_ALIAS_TIME_OPT
@JSON_OPT
def history_cmd(store: str, path: Optional[str], recursive: bool, at,
                as_json: bool) -> None:
    """Show the history (who, when, what) of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    \b
    Example:
      dcs history cspad-0001 -r
      dcs history cspad-0001 pedestals/20240501T000000Z_end --json
    """
    with open_store(store, tsp=at) as cs:
        top = resolve_obj(cs, path)
        recs = merged_history(top, recursive)
        top_path = object_path(top)
    if as_json:
        echo_json({"path": top_path, "recursive": recursive, "records": [
            {"path": p, "time": show_ns(r.tsns), "tsns": r.tsns, "user": r.user,
             "host": r.host, "action": r.action, "record": r.record}
            for p, r in recs]})
        return
    for p, r in recs:
        prefix = f"[{p or '/'}] " if recursive else ""
        click.echo(prefix + _printable(r.format()))


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
