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
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, overload

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
from ..timestamps import format_ns
from .app import cli
from .common import OptionalTimeParam, TimeParam, echo_json, open_store, progress

__all__ = ["parse_par", "read_input", "write_output", "store_tree", "object_path"]

NPY_MAGIC = b"\x93NUMPY"
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.I)


# ---------------------------------------------------------------- small helpers
def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


@overload
def _t(ns: int) -> Tuple[int, int]: ...  # noqa: E704


@overload
def _t(ns: None) -> None: ...  # noqa: E704


@overload
def _t(ns: Optional[int]) -> Optional[Tuple[int, int]]: ...  # noqa: E704


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
    t = cs.ctypeobj(parts[0])
    if len(parts) == 1:
        return t
    r = t.rangeobj(parts[1])
    return r if len(parts) == 2 else r.versobj(parts[2])


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
    names: set = set()
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


_STORE_ARG: Dict[str, Any] = dict(shell_complete=complete_store)
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
            "state": st.state, "state_time": None if st.tsns is None else format_ns(st.tsns),
            "state_user": st.user, "state_reason": st.reason,
            "tsprod": format_ns(info.tsprod), "tsprod_ns": info.tsprod, "kind": info.kind,
            "dtype": None if info.dtype is None else str(info.dtype),
            "shape": None if info.shape is None else list(info.shape),
            "nbytes": int(info.nbytes), "sha256": info.sha256,
            "dictpars": _json_pars(v.dictpars())}


def _range_dict(r: DCRange) -> Dict[str, Any]:
    default = r.versdef()
    return {"range": r.range(), "begin": r.begin(), "end": None if r.is_open() else r.end(),
            "tsbegin": r.tsbegin(), "tsend": None if r.is_open() else r.tsend(),
            "default": default or None, "dictpars": _json_pars(r.dictpars()),
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
            echo(f"    {r['begin']} .. {end}  [{r['range']}]"
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


@cli.command("print")
@click.argument("store", **_STORE_ARG)
@click.option("--ctype", "-c", default=None, shell_complete=complete_ctype,
              help="Show only this calibration type.")
@_JSON_OPT
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
    echo(f"{s['detname']} {s['ctype']} at {s['time']}")
    echo(f"  range     {s['begin']} .. {s['end'] or 'open'}  [{s['range']}]")
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


@cli.command("get")
@click.argument("store", **_STORE_ARG)
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
@_JSON_OPT
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
        ver = cs.version_at(ctype, _t(tsp), vers,
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
@click.option("--begin", "-b", type=TimeParam(), required=True,
              help="Start of the validity range (ISO 8601 or Unix seconds).")
@click.option("--end", "-e", type=OptionalTimeParam(), default=None,
              help="End of the validity range (exclusive); omit or 'open' for no end.")
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
    """
    payload, fmt = read_input(input_file, kind or "auto")
    dictpars = dict(parse_par(p) for p in pars)
    with _open_for_write(store, create) as cs:
        ver = cs.add_constants(ctype, payload, _t(begin), _t(end), dictpars or None, message,
                               make_default=not no_default, force=force,
                               state="candidate" if candidate else "valid")
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
            r = t.rangeobj(rng)
            obj = r if vers is None else r.versobj(vers)
        nr, nv = _count_versions(obj)
        what = {DCType: f"calibration type {ctype!r} with {nr} range(s) and {nv} version(s)",
                DCRange: f"range {object_path(obj)} with {nv} version(s)",
                DCVersion: f"version {object_path(obj)}"}[type(obj)]
        _confirm(f"Delete {what} from {cs.path}?", yes)
        if isinstance(obj, DCType):
            cs.del_ctype(ctype)
        elif isinstance(obj, DCRange):
            t.del_range(obj.range())
        elif isinstance(obj, DCVersion):
            obj.rangeobj().del_version(obj.version())
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
@_JSON_OPT
def history_cmd(store: str, path: Optional[str], recursive: bool, as_json: bool) -> None:
    """Show the history (who, when, what) of the store or of PATH (CTYPE[/RANGE[/VERSION]]).

    \b
    Example:
      dcs history cspad-0001 -r
      dcs history cspad-0001 pedestals/20240501T000000Z_end --json
    """
    with open_store(store) as cs:
        top = _resolve_obj(cs, path)
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
