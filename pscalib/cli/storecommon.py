"""Shared parts of the store commands (:mod:`.cmd_store`, :mod:`.cmd_change`): time and
parameter parsing, object paths ``CTYPE[/RANGE[/VERSION]]``, shell completion, the
STORE argument and ``--json`` option, reading INPUT files and writing ``-o`` outputs.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, overload

import click
import numpy as np

from ..config import env_value, load_config
from ..errors import (InvalidInputError, InvalidParameterError, InvalidPayloadError,
                      PscalibError, StoreNotFoundError)
from ..ndarrio import (looks_like_ndarrio, ndarrio_line_count, ndarrio_lines, parse_ndarrio,
                       read_file_bytes, write_file_atomic, write_text_atomic)
from ..store import DCBase, DCRange, DCStore, DCType, DCVersion
from ..store.layout import version_name
from .common import open_store, progress

__all__ = ["parse_par", "read_input", "write_output", "object_path", "resolve_obj",
           "open_for_write", "sec_nsec", "human_bytes", "fmt_value", "fmt_pars", "json_pars",
           "complete_store", "complete_ctype", "complete_range", "complete_objpath",
           "STORE_ARG", "JSON_OPT"]

NPY_MAGIC = b"\x93NUMPY"
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.I)


# ---------------------------------------------------------------- small helpers
def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


@overload
def sec_nsec(ns: int) -> Tuple[int, int]: ...  # noqa: E704


@overload
def sec_nsec(ns: None) -> None: ...  # noqa: E704


@overload
def sec_nsec(ns: Optional[int]) -> Optional[Tuple[int, int]]: ...  # noqa: E704


def sec_nsec(ns: Optional[int]) -> Optional[Tuple[int, int]]:
    """int ns from TimeParam -> the (sec, nsec) form the library reads exactly."""
    return None if ns is None else divmod(int(ns), 1_000_000_000)


def fmt_value(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return "[" + ",".join(str(x) for x in v.tolist()) + "]"
    return str(v)


def fmt_pars(pars: Dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in pars.items())


def json_pars(pars: Dict[str, Any]) -> Dict[str, Any]:
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


def resolve_obj(cs: DCStore, path: Optional[str]) -> DCBase:
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


STORE_ARG: Dict[str, Any] = dict(shell_complete=complete_store)
JSON_OPT = click.option("--json", "as_json", is_flag=True,
                         help="Print JSON (schema in docs/cli.rst) instead of text.")


# ---------------------------------------------------------------- input / output
def read_input(path: Path, kind: str = "auto", **hints: Any) -> Tuple[Any, str]:
    """Read constants from a file: returns ``(payload, description of the format)``.

    ``kind='auto'``: ``.npy`` files (by extension or by the NumPy magic bytes) are arrays;
    other files must be UTF-8 text, read as an NDArrIO array when they look like one (a
    ``# DTYPE``/``# NDIM`` header, or only numbers) and as text constants otherwise.
    ``kind='array'`` forces an array (.npy or NDArrIO), ``kind='text'`` forces text.
    ``hints`` (``dettype``, ``ctype``, ``shape``, ``dtype``) give NDArrIO files without a
    shape/dtype header theirs (:func:`pscalib.ndarrio.parse_ndarrio`).
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
        arr, _ = parse_ndarrio(text, str(path), **hints)
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


def open_for_write(spec: str, create: bool) -> DCStore:
    try:
        open_store(spec, "r").close()
    except StoreNotFoundError as exc:
        if not create:
            raise StoreNotFoundError(f"{exc}; add --create to create a new store") from None
    return open_store(spec, "a")
