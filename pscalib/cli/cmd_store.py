"""``dcs`` commands that read and change one store: demo, print, get, add, delete,
set-default, par, history.

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

import io
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import click
import numpy as np

from ..config import env_value, load_config
from ..demo import DEMO_STEPS, build_demo, read_back
from ..errors import (InvalidInputError, InvalidParameterError, InvalidPayloadError,
                      PscalibError, StoreNotFoundError)
from ..ndarrio import (looks_like_ndarrio, ndarrio_line_count, ndarrio_lines, parse_ndarrio,
                       read_file_bytes, write_file_atomic, write_text_atomic)
from ..store import DCBase, DCRange, DCStore, DCType, DCVersion
from ..store.layout import h5path, version_name
from ..display import show_ns
from ..locations import make_dirs
from ..resolver import LOOKUP_MISSES, alias_at, as_pair, lookup_ctypes
from ..runs import RUN_PARS, parse_run, parse_runs, run_time
from .app import cli
from .common import OptionalTimeParam, TimeParam, echo_json, open_store, progress

__all__ = ["parse_par", "read_input", "write_output", "store_tree", "object_path"]

NPY_MAGIC = b"\x93NUMPY"
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.I)


# ---------------------------------------------------------------- small helpers
def _human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def _t(ns: Optional[int]) -> Optional[Tuple[int, int]]:
    """int ns from TimeParam -> the (sec, nsec) form the library reads exactly."""
    return None if ns is None else divmod(int(ns), 1_000_000_000)


def _fmt_value(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return "[" + ",".join(str(x) for x in v.tolist()) + "]"
    return str(v)


def _fmt_pars(pars: Dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in pars.items())


def _json_pars(pars: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in pars.items()}


def parse_par(text: str) -> Tuple[str, Any]:
    """``'key=value'`` -> ``(key, typed value)``.

    Typing: integers (``17``, ``-3``) -> int; decimal/exponent numbers and ``nan``/``inf``
    -> float; ``true``/``false`` (any case) -> bool; anything else -> str. Quote a value
    (``run='17'``, shell-quoted as ``"run='17'"``) to keep it a string.
    """
    if "=" not in text:
        raise InvalidParameterError(f"parameter {text!r} must look like key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return key, value[1:-1]
    if _INT_RE.match(value):
        return key, int(value)
    if _FLOAT_RE.match(value):
        return key, float(value)
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value


def object_path(obj: DCBase) -> str:
    """``''`` for the store, else ``ctype[/range[/vNNNN]]``."""
    if isinstance(obj, DCStore):
        return ""
    if isinstance(obj, DCType):
        return obj.ctype()
    if isinstance(obj, DCRange):
        return f"{obj.ctype()}/{obj.range()}"
    assert isinstance(obj, DCVersion)
    return f"{obj.ctype()}/{obj.rangeobj().range()}/{version_name(obj.version())}"


def _resolve_obj(cs: DCStore, path: Optional[str]) -> DCBase:
    if not path or path.strip("/") == "":
        return cs
    parts = path.strip("/").split("/")
    if len(parts) > 3:
        raise InvalidInputError(f"object path {path!r} has too many parts; use "
                                f"CTYPE[/RANGE[/VERSION]], e.g. pedestals/<range>/v0002")
    obj: DCBase = cs.ctypeobj(parts[0])
    if len(parts) > 1:
        obj = obj.rangeobj(parts[1])  # type: ignore[union-attr]
    if len(parts) > 2:
        obj = obj.versobj(parts[2])  # type: ignore[union-attr]
    return obj


# ---------------------------------------------------------------- completion
def _detnames() -> List[str]:
    dirs: List[Path] = []
    try:
        cfg = load_config()
        dirs = [d for d in (cfg.calib_dir(k) for k in cfg.search_order) if d is not None]
    except Exception:  # completion must never fail; fall back to the repository variable
        repo = env_value("PSCALIB_REPOSITORY")
        if repo:
            dirs = [Path(repo)]
    names = set()
    for d in dirs:
        try:
            names.update(p.name[:-3] for p in Path(d).glob("*/*.h5"))
        except OSError:
            continue
    return sorted(names)


def complete_store(ctx, param, incomplete: str):
    """Shell completion of STORE: detnames of the configured calib dirs, else file paths."""
    from click.shell_completion import CompletionItem
    if "/" in incomplete or incomplete.startswith(".") or incomplete.endswith(".h5"):
        return [CompletionItem(incomplete, type="file")]
    hits = [CompletionItem(n) for n in _detnames() if n.startswith(incomplete)]
    return hits or [CompletionItem(incomplete, type="file")]


def _store_for_completion(ctx) -> Optional[DCStore]:
    spec = ctx.params.get("store")
    if not spec:
        return None
    try:
        return open_store(spec, "r")
    except Exception:
        return None


def complete_ctype(ctx, param, incomplete: str):
    """Shell completion of CTYPE from the store given earlier on the command line."""
    cs = _store_for_completion(ctx)
    if cs is None:
        return []
    with cs:
        return [c for c in cs.ctypes() if c.startswith(incomplete)]


def complete_range(ctx, param, incomplete: str):
    cs = _store_for_completion(ctx)
    if cs is None or not ctx.params.get("ctype"):
        return []
    try:
        with cs:
            return [r.range() for r in cs.ctypeobj(ctx.params["ctype"]).ranges()
                    if r.range().startswith(incomplete)]
    except PscalibError:
        return []


def complete_objpath(ctx, param, incomplete: str):
    """Completion of CTYPE[/RANGE[/VERSION]] one level at a time."""
    cs = _store_for_completion(ctx)
    if cs is None:
        return []
    try:
        with cs:
            parts = incomplete.split("/")
            if len(parts) == 1:
                cands = [c + "/" for c in cs.ctypes()] + ["set", "del"]
            elif len(parts) == 2:
                cands = [f"{parts[0]}/{r.range()}/" for r in cs.ctypeobj(parts[0]).ranges()]
            else:
                rng = cs.ctypeobj(parts[0]).rangeobj(parts[1])
                cands = [f"{parts[0]}/{parts[1]}/{version_name(v.version())}"
                         for v in rng.versions()]
            return [c for c in cands if c.startswith(incomplete)]
    except PscalibError:
        return []


_STORE_ARG = dict(shell_complete=complete_store)
_JSON_OPT = click.option("--json", "as_json", is_flag=True,
                         help="Print JSON (schema in docs/cli.rst) instead of text.")


# ---------------------------------------------------------------- input / output
def read_input(path: Path, kind: str = "auto") -> Tuple[Any, str]:
    """Read constants from a file: returns ``(payload, description of the format)``.

    ``kind='auto'``: ``.npy`` files (by extension or by the NumPy magic bytes) are arrays;
    other files must be UTF-8 text, read as an NDArrIO array when they look like one (a
    ``# DTYPE``/``# NDIM`` header, or only numbers) and as text constants otherwise.
    ``kind='array'`` forces an array (.npy or NDArrIO), ``kind='text'`` forces text.
    """
    raw = read_file_bytes(path)
    is_npy = raw.startswith(NPY_MAGIC)
    if kind != "text" and (is_npy or path.suffix.lower() == ".npy"):
        if not is_npy:
            raise InvalidPayloadError(f"{path} has the .npy extension but is not a NumPy "
                                      f".npy file")
        try:
            arr = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidPayloadError(f"{path}: cannot read the .npy file ({exc}); only "
                                      f"plain numeric arrays are supported") from None
        return arr, "npy"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InvalidPayloadError(f"{path}, line {line}: not UTF-8 text and not a .npy file; "
                                  f"convert it to .npy or UTF-8 text") from None
    if kind == "array" or (kind == "auto" and looks_like_ndarrio(text)):
        arr, _ = parse_ndarrio(text, str(path))
        return arr, "ndarrio"
    return text, "text"


def _write_npy(out: Path, arr: np.ndarray) -> None:
    write_file_atomic(out, lambda fh: np.save(fh, arr, allow_pickle=False))


def write_output(out: str, payload: Any, header: Dict[str, Any]) -> str:
    """Write a payload to ``out`` (``-`` = stdout); returns the format used.

    Arrays: ``.npy`` -> NumPy file, anything else -> NDArrIO text with ``header``.
    Text: written exactly as stored (``.npy`` is refused).
    """
    if isinstance(payload, str):
        if out.lower().endswith(".npy"):
            raise InvalidInputError(f"these constants are text, not an array: write them to "
                                    f"a .txt/.data file instead of {out}")
        if out == "-":
            click.echo(payload, nl=False)
        else:
            write_text_atomic(Path(out), payload)
        return "text"
    if out.lower().endswith(".npy"):
        if out == "-":
            raise InvalidInputError("cannot write .npy to stdout")
        _write_npy(Path(out), payload)
        return "npy"
    lines = ndarrio_lines(payload, header)  # checks dtype/header before writing anything
    n = ndarrio_line_count(payload, header)
    with progress(lines, n, f"writing {out}") as bar:
        if out == "-":
            for line in bar:
                click.echo(line, nl=False)
        else:
            write_text_atomic(Path(out), bar)
    return "ndarrio"


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
            "dictpars": _json_pars(v.dictpars())}


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
            "runs": runs_of(pars), "default": default or None, "dictpars": _json_pars(pars),
            "versions": [_version_dict(v, default) for v in r.versions()]}


def store_tree(cs: DCStore, ctype: Optional[str] = None) -> Dict[str, Any]:
    """The JSON document of ``dcs print --json`` (schema in docs/cli.rst)."""
    ctypes = [cs.ctypeobj(ctype)] if ctype else [cs.ctypeobj(c) for c in cs.ctypes()]
    return {
        "store": str(cs.path.absolute()), "detname": cs.detname(), "dettype": cs.dettype(),
        "detid": cs.detid(), "format": cs.backend.format_description,
        "file_bytes": cs.path.stat().st_size, "dictpars": _json_pars(cs.dictpars()),
        "ctypes": [{"ctype": t.ctype(), "dictpars": _json_pars(t.dictpars()),
                    "ranges": [_range_dict(r) for r in t.ranges()]} for t in ctypes],
    }


def _print_tree(tree: Dict[str, Any]) -> None:
    echo = click.echo
    echo(f"{tree['detname']}  {tree['store']}  ({tree['format']}, "
         f"{_human_bytes(tree['file_bytes'])})")
    if tree["dictpars"]:
        echo(f"  pars: {_fmt_pars(tree['dictpars'])}")
    for t in tree["ctypes"]:
        n = len(t["ranges"])
        echo(f"  {t['ctype']}  ({n} range{'s' if n != 1 else ''})"
             + (f"  pars: {_fmt_pars(t['dictpars'])}" if t["dictpars"] else ""))
        for r in t["ranges"]:
            end = r["end"] or "open"
            echo(f"    {r['begin']} .. {end}  [{r['range']}]{_runs_text(r['runs'])}"
                 + (f"  pars: {_fmt_pars(r['dictpars'])}" if r["dictpars"] else ""))
            if not r["versions"]:
                echo("      (no versions: ignored by get)")
            for v in r["versions"]:
                mark = "*" if v["default"] else " "
                what = ("text" if v["kind"] == "text" else
                        f"{v['dtype']} {tuple(v['shape'])}")
                pars = f"  {_fmt_pars(v['dictpars'])}" if v["dictpars"] else ""
                state = "" if v["state"] == "valid" else f"  [{v['state'].upper()}]"
                echo(f"     {mark} {version_name(v['version'])}  {what}  "
                     f"{_human_bytes(v['nbytes'])}  produced {v['tsprod']}{state}{pars}")
                if v["state"] != "valid" and v["state_reason"]:
                    echo(f"         {v['state']} by {v['state_user']} at {v['state_time']}: "
                         f"{v['state_reason']}")
    echo("  (* = default version; versions without a mark are valid)")


_ALIAS_TIME_OPT = click.option(
    "--time", "-t", "at", type=TimeParam(), default=None,
    help="Resolve an alias STORE at this time (default: its latest record).")


@cli.command("print")
@click.argument("store", **_STORE_ARG)
@click.option("--ctype", "-c", default=None, shell_complete=complete_ctype,
              help="Show only this calibration type.")
@_ALIAS_TIME_OPT
@_JSON_OPT
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
        "dictpars": _json_pars(ver.dictpars()),
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
    if s["kind"] == "text":
        first = next((ln for ln in payload.splitlines() if ln.strip()), "")
        echo(f"  data      text, {s['lines']} lines, {_human_bytes(s['nbytes'])}")
        echo(f"  first     {first[:90]}")
    else:
        st = s["stats"]
        extra = (f"; min {st['min']:.6g} max {st['max']:.6g} mean {st['mean']:.6g}"
                 if st else "")
        echo(f"  data      {s['dtype']} {tuple(s['shape'])}, {_human_bytes(s['nbytes'])}{extra}")
    echo(f"  sha256    {s['sha256']}")
    if s["dictpars"]:
        echo(f"  pars      {_fmt_pars(s['dictpars'])}")


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
    return out_dir / f"{ctype}{'.txt' if isinstance(payload, str) else '.npy'}"


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
@click.argument("store", **_STORE_ARG)
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
@_JSON_OPT
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
        if all_ctypes:
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


# ---------------------------------------------------------------- add
def _open_for_write(spec: str, create: bool) -> DCStore:
    try:
        open_store(spec, "r").close()
    except StoreNotFoundError as exc:
        if not create:
            raise StoreNotFoundError(f"{exc}; add --create to create a new store") from None
    return open_store(spec, "a")


@cli.command("add")
@click.argument("store", **_STORE_ARG)
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
def add_cmd(store: str, ctype: str, input_file: Path, begin: int, end: Optional[int],
            runs: Optional[str], experiment: Optional[str],
            pars: Tuple[str, ...], message: Optional[str], no_default: bool,
            kind: Optional[str], create: bool, force: bool, candidate: bool) -> None:
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
    payload, fmt = read_input(input_file, kind or "auto")
    dictpars = dict(parse_par(p) for p in pars)
    with _open_for_write(store, create) as cs:
        when = ({"runs": spec, "experiment": experiment} if spec is not None else
                {"tsbegin": _t(begin), "tsend": _t(end)})
        ver = cs.add_constants(ctype, payload, dictpars=dictpars or None, comment=message,
                               make_default=not no_default, force=force,
                               state="candidate" if candidate else "valid", **when)
        default = ver.is_default()
        path = object_path(ver)
        where = cs.path
    if ver.unchanged:
        click.echo(f"unchanged: {path} in {where} already holds identical constants and "
                   f"parameters (use --force to add a new version anyway)")
        return
    shared = (f", payload shared with {h5path(ver.linked_to)}"
              if ver.linked_to else "")
    click.echo(f"added {path} ({fmt}{', candidate' if candidate else ''}"
               f"{', default' if default else ', not the default'}{shared}) to {where}")


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
@click.argument("store", **_STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.option("--range", "-r", "rng", default=None, shell_complete=complete_range,
              help="Delete only this range (name, or a begin time that identifies it).")
@click.option("--version", "-V", "vers", default=None, metavar="N",
              help="Delete only this version of --range.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete_cmd(store: str, ctype: str, rng: Optional[str], vers: Optional[str],
               yes: bool) -> None:
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
    with _open_for_write(store, create=False) as cs:
        t = cs.ctypeobj(ctype)
        obj: DCBase = t
        if rng is not None:
            obj = t.rangeobj(rng)
            if vers is not None:
                obj = obj.versobj(vers)  # type: ignore[union-attr]
        nr, nv = _count_versions(obj)
        what = {DCType: f"calibration type {ctype!r} with {nr} range(s) and {nv} version(s)",
                DCRange: f"range {object_path(obj)} with {nv} version(s)",
                DCVersion: f"version {object_path(obj)}"}[type(obj)]
        _confirm(f"Delete {what} from {cs.path}?", yes)
        if isinstance(obj, DCType):
            cs.del_ctype(ctype)
        elif isinstance(obj, DCRange):
            t.del_range(obj.range())
        else:
            obj.rangeobj().del_version(obj.version())  # type: ignore[union-attr]
    click.echo(f"deleted {what}")


# ---------------------------------------------------------------- set-default
@cli.command("set-default")
@click.argument("store", **_STORE_ARG)
@click.argument("ctype", shell_complete=complete_ctype)
@click.argument("version")
@click.option("--range", "-r", "rng", required=True, shell_complete=complete_range,
              help="The range (name, or a begin time that identifies it).")
def set_default_cmd(store: str, ctype: str, version: str, rng: str) -> None:
    """Make VERSION the default version of a range (what 'get' returns without --version).

    \b
    Example:
      dcs set-default epix10ka-0001 pedestals --range 20240110T000000Z_20240301T000000Z 2
    """
    with _open_for_write(store, create=False) as cs:
        r = cs.ctypeobj(ctype).rangeobj(rng)
        old = r.versdef()
        r.set_versdef(version)
        new = r.versdef()
        path = object_path(r)
    click.echo(f"default of {path}: {version_name(old)} -> {version_name(new)}")


# ---------------------------------------------------------------- par
@cli.command("par")
@click.argument("store", **_STORE_ARG)
@click.argument("words", nargs=-1, metavar="[PATH] [set K=V... | del K...]",
                shell_complete=complete_objpath)
@_JSON_OPT
def par_cmd(store: str, words: Tuple[str, ...], as_json: bool) -> None:
    """Show, set or delete dictpars of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    Values of 'set' are typed like --par of 'dcs add': int, float, true/false, else str.

    \b
    Example:
      dcs par cspad-0001                                  (show the store's pars)
      dcs par cspad-0001 pedestals set units=ADU gain=1.5
      dcs par cspad-0001 pedestals/20240501T000000Z_end/v0002 del reviewed
    """
    words = list(words)
    action_at = next((i for i, w in enumerate(words) if w in ("set", "del")), None)
    if action_at is None:
        if len(words) > 1:
            raise click.UsageError(f"expected [PATH] set K=V... or [PATH] del K..., got "
                                   f"{' '.join(words)!r}")
        path, action, items = (words[0] if words else None), None, []
    else:
        if action_at > 1:
            raise click.UsageError(f"only one PATH may come before {words[action_at]!r}")
        path = words[0] if action_at == 1 else None
        action, items = words[action_at], words[action_at + 1:]
        if not items:
            raise click.UsageError(f"'{action}' needs at least one "
                                   f"{'K=V' if action == 'set' else 'K'}")
    with (_open_for_write(store, False) if action else open_store(store)) as cs:
        obj = _resolve_obj(cs, path)
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
        echo_json({"path": object_path(obj), "dictpars": _json_pars(pars)})
    elif action:
        click.echo(f"{where}: {_fmt_pars(pars) or '(no pars)'}")
    else:
        for k, v in pars.items():
            click.echo(f"{k}={_fmt_value(v)}  ({type(v).__name__})")
        if not pars:
            click.echo(f"{where} has no pars")


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
@click.argument("store", **_STORE_ARG)
@click.argument("path", required=False, default=None, shell_complete=complete_objpath)
@click.option("--recursive", "-r", is_flag=True,
              help="Include the history of everything below PATH, merged by time.")
@_ALIAS_TIME_OPT
@_JSON_OPT
def history_cmd(store: str, path: Optional[str], recursive: bool, at,
                as_json: bool) -> None:
    """Show the history (who, when, what) of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    \b
    Example:
      dcs history cspad-0001 -r
      dcs history cspad-0001 pedestals/20240501T000000Z_end --json
    """
    with open_store(store, tsp=at) as cs:
        top = _resolve_obj(cs, path)
        objs = list(_walk(top)) if recursive else [top]
        recs = [(r.tsns, i, object_path(o), r) for i, o in enumerate(objs)
                for r in o.history_records()]
        top_path = object_path(top)
    recs.sort(key=lambda x: (x[0], x[1]))
    if as_json:
        echo_json({"path": top_path, "recursive": recursive, "records": [
            {"path": p, "time": show_ns(r.tsns), "tsns": r.tsns, "user": r.user,
             "host": r.host, "action": r.action, "record": r.record}
            for _, _, p, r in recs]})
        return
    for _, _, p, r in recs:
        prefix = f"[{p or '/'}] " if recursive else ""
        click.echo(prefix + r.format())


# ---------------------------------------------------------------- demo
@cli.command("demo")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@_JSON_OPT
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
    echo(f"Demo calib directory: {info.root}  ({_human_bytes(info.nbytes())})")
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
