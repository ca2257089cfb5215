"""Read and write psana1 NDArrIO-style text files of calibration arrays.

The format is plain text: header lines starting with ``#`` and whitespace-separated numbers::

    # TITLE      pedestals of CxiDs2.0:Cspad.0
    # DTYPE      float
    # NDIM       3
    # DIM:1      32
    # DIM:2      185
    # DIM:3      388
    1.5 2.25 ...      (one line per last-axis row: 32*185 lines of 388 numbers)

Header keys
    ``DTYPE`` (psana type name such as ``float``, ``double``, ``int``, ``uint16``, or a numpy
    name such as ``float64``; see :data:`PSANA_DTYPES`), ``NDIM`` and ``DIM:1`` ..
    ``DIM:<NDIM>`` define the array. Any other ``# KEY value`` line is a free header entry
    returned in a dict (``{'TITLE': 'pedestals of ...'}``; a repeated key keeps its last value,
    a line with only ``#`` or nothing after the key gives ``''``).

Missing header
    Old files often have no ``DTYPE``/``NDIM``: the dtype is then float64 and the shape is
    ``(rows, columns)`` from the layout of the numbers (a single line gives a 1-d array); every
    row must then have the same number of values.

Exact round trip
    :func:`format_ndarrio` writes float64 with Python's shortest round-trip ``repr``, float32
    with ``%.9g`` and integers in full, so parsing gives back the same values bit for bit
    (NaN payload bits excepted: every NaN is written as ``nan``). Supported dtypes are bool
    (written ``0``/``1``), int8..int64, uint8..uint64, float32 and float64 (any byte order;
    read back in native order).

Every parse error raises :class:`~pscalib.errors.InvalidPayloadError` naming the file (or
``<text>``) and the line.

Examples
--------
>>> arr, hdr = parse_ndarrio("# DTYPE int\\n# NDIM 2\\n# DIM:1 2\\n# DIM:2 3\\n1 2 3\\n4 5 6\\n")
>>> arr.dtype.name, arr.shape, hdr
('int32', (2, 3), {})
>>> print(format_ndarrio(arr, {"TITLE": "demo"}), end="")
# TITLE demo
# DTYPE int
# NDIM 2
# DIM:1 2
# DIM:2 3
1 2 3
4 5 6
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import (BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Tuple, Union)

import numpy as np

from .errors import InvalidInputError, InvalidPayloadError, StoreIOError
from .txn import atomic

__all__ = ["PSANA_DTYPES", "parse_ndarrio", "format_ndarrio", "load_ndarrio", "save_ndarrio",
           "ndarrio_lines", "ndarrio_line_count", "write_text_atomic", "write_file_atomic",
           "looks_like_ndarrio",
           "read_file_bytes",
           "dtype_from_name", "psana_dtype_name"]

PathLike = Union[str, Path]

#: psana type names (and numpy names) accepted in ``# DTYPE`` -> numpy dtype.
PSANA_DTYPES: Dict[str, np.dtype] = {
    "float": np.dtype(np.float32), "double": np.dtype(np.float64),
    "int": np.dtype(np.int32), "short": np.dtype(np.int16), "long": np.dtype(np.int64),
    "unsigned": np.dtype(np.uint32), "unsigned int": np.dtype(np.uint32),
    "unsigned short": np.dtype(np.uint16), "unsigned char": np.dtype(np.uint8),
    "char": np.dtype(np.int8), "bool": np.dtype(np.bool_),
    **{name: np.dtype(name) for name in (
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64")},
}

# Name written for each supported dtype: psana's own names where psana has one.
_WRITE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
                np.dtype(np.int32): "int", np.dtype(np.bool_): "bool"}

_RESERVED = re.compile(r"^(DTYPE|NDIM|DIM:\d+)$")
_KEY_RE = re.compile(r"^\S+$")


def dtype_from_name(name: str) -> np.dtype:
    """numpy dtype of a ``# DTYPE`` name (``'float'`` -> float32, ``'double'`` -> float64).

    Raises
    ------
    InvalidPayloadError
        For names that are not in :data:`PSANA_DTYPES`.
    """
    key = " ".join(name.split()).lower()
    if key not in PSANA_DTYPES:
        raise InvalidPayloadError(
            f"unknown DTYPE {name!r}; use one of {', '.join(sorted(PSANA_DTYPES))}")
    return PSANA_DTYPES[key]


def psana_dtype_name(dtype: np.dtype) -> str:
    """The ``# DTYPE`` name written for ``dtype`` (raises for unsupported dtypes)."""
    dt = np.dtype(dtype).newbyteorder("=")
    if dt.kind not in "biuf" or (dt.kind == "f" and dt.itemsize not in (4, 8)):
        raise InvalidPayloadError(
            f"arrays of dtype {np.dtype(dtype)} cannot be written as NDArrIO text; supported "
            f"are bool, int8..int64, uint8..uint64, float32, float64 (save as .npy instead)")
    return _WRITE_NAMES.get(dt, dt.name)


def _fail(source: str, lineno: Optional[int], msg: str) -> InvalidPayloadError:
    where = f"{source}, line {lineno}" if lineno else source
    return InvalidPayloadError(f"{where}: {msg}")


def _parse_header_line(line: str) -> Tuple[str, str]:
    body = line.lstrip()[1:].strip()
    if not body:
        return "", ""
    parts = body.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _to_array(tokens: List[str], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "b":
        raw = np.array(tokens, dtype=np.int64)
        if raw.size and (raw.min() < 0 or raw.max() > 1):
            raise ValueError("bool values must be 0 or 1")
        return raw.astype(np.bool_)
    return np.array(tokens, dtype=dtype)


def _locate_bad_value(rows: List[Tuple[int, List[str]]], dtype: np.dtype,
                      source: str) -> InvalidPayloadError:
    """Find the first token that does not convert, for an error naming its line."""
    for lineno, toks in rows:
        for tok in toks:
            try:
                _to_array([tok], dtype)
            except (ValueError, OverflowError):
                return _fail(source, lineno, f"{tok!r} is not a valid {dtype.name} value")
    return _fail(source, None, f"values cannot be read as {dtype.name}")  # pragma: no cover


def parse_ndarrio(text: str, source: str = "<text>") -> Tuple[np.ndarray, Dict[str, str]]:
    """Parse NDArrIO text into ``(array, free header dict)``.

    Parameters
    ----------
    text
        The whole file content.
    source
        Name used in error messages (the file path).

    Returns
    -------
    (numpy.ndarray, dict)
        The array (dtype from ``# DTYPE``, shape from ``# NDIM``/``# DIM:n``) and the free
        header entries (every ``# KEY value`` line other than DTYPE/NDIM/DIM:n), as strings.

    Raises
    ------
    InvalidPayloadError
        Malformed header, a value that is not a number of the dtype, a count of values that
        does not match the dimensions, or no values at all.
    """
    header: Dict[str, str] = {}
    dtype_name: Optional[Tuple[int, str]] = None
    ndim: Optional[Tuple[int, int]] = None
    dims: Dict[int, Tuple[int, int]] = {}
    rows: List[Tuple[int, List[str]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if rows:  # psana writes the header first; a later '#' line is a comment
                continue
            key, value = _parse_header_line(stripped)
            if key == "DTYPE":
                dtype_name = (lineno, value)
            elif key == "NDIM" or key.startswith("DIM:"):
                try:
                    n = int(value)
                    if n < 0:
                        raise ValueError
                except ValueError:
                    raise _fail(source, lineno, f"{key} must be a non-negative integer, "
                                                f"got {value!r}") from None
                if key == "NDIM":
                    ndim = (lineno, n)
                else:
                    try:
                        axis = int(key[4:])
                    except ValueError:
                        raise _fail(source, lineno, f"bad dimension key {key!r} "
                                                    f"(expected DIM:1, DIM:2, ...)") from None
                    dims[axis] = (lineno, n)
            elif key:
                header[key] = value
            continue
        rows.append((lineno, stripped.split()))
    if dtype_name is None:
        dtype = np.dtype(np.float64)
    else:
        try:
            dtype = dtype_from_name(dtype_name[1])
        except InvalidPayloadError as exc:
            raise _fail(source, dtype_name[0], str(exc)) from None
    if not rows:
        raise _fail(source, None, "no values found (only header lines or an empty file)")
    shape = _shape(rows, ndim, dims, source)
    tokens = [t for _, toks in rows for t in toks]
    count = int(np.prod(shape, dtype=np.int64))
    if len(tokens) != count:
        raise _fail(source, rows[-1][0] if len(tokens) > count else None,
                    f"the header gives shape {shape} ({count} values) but the file holds "
                    f"{len(tokens)} values")
    try:
        arr = _to_array(tokens, dtype)
    except (ValueError, OverflowError):
        raise _locate_bad_value(rows, dtype, source) from None
    return arr.reshape(shape), header


def _shape(rows: List[Tuple[int, List[str]]], ndim: Optional[Tuple[int, int]],
           dims: Dict[int, Tuple[int, int]], source: str) -> Tuple[int, ...]:
    if ndim is None:
        if dims:
            line = min(ln for ln, _ in dims.values())
            raise _fail(source, line, "DIM:n lines without an NDIM line")
        if len(rows) == 1:
            return (len(rows[0][1]),)
        width = len(rows[0][1])
        for lineno, toks in rows:
            if len(toks) != width:
                raise _fail(source, lineno, f"{len(toks)} values where earlier rows have "
                                            f"{width} (no NDIM/DIM header to give the shape)")
        return (len(rows), width)
    n = ndim[1]
    wanted = set(range(1, n + 1))
    extra = sorted(set(dims) - wanted)
    if extra:
        raise _fail(source, dims[extra[0]][0], f"DIM:{extra[0]} does not fit NDIM {n}")
    missing = sorted(wanted - set(dims))
    if missing:
        raise _fail(source, ndim[0], f"NDIM {n} but no DIM:{missing[0]} line")
    return tuple(dims[i][1] for i in range(1, n + 1))


def _format_row(values: list, fmt) -> str:
    return " ".join(map(fmt, values))


def format_ndarrio(arr: np.ndarray, header: Optional[Mapping[str, object]] = None) -> str:
    """NDArrIO text of ``arr``: free header lines, DTYPE/NDIM/DIM:n, then the values.

    Values are written one row of the last axis per line (a 0-d array as one value, a 1-d
    array on one line). See the module docstring for the exact number formats.

    Raises
    ------
    InvalidPayloadError
        For dtypes without an exact text form (complex, float16, objects ...) or an empty array.
    InvalidInputError
        For header keys that contain white space, are DTYPE/NDIM/DIM:n, or values with
        line breaks.
    """
    return "".join(ndarrio_lines(arr, header))


def ndarrio_line_count(arr: np.ndarray, header: Optional[Mapping[str, object]] = None) -> int:
    """Number of lines :func:`ndarrio_lines` yields (for progress bars)."""
    arr = np.asarray(arr)
    rows = 1 if arr.ndim < 2 else int(np.prod(arr.shape[:-1], dtype=np.int64))
    return len(header or {}) + 2 + arr.ndim + rows


def ndarrio_lines(arr: np.ndarray, header: Optional[Mapping[str, object]] = None
                  ) -> Iterator[str]:
    """The lines of :func:`format_ndarrio` (each ending in a newline), produced lazily.

    All checks happen before the first line is yielded, so a consumer writing the lines
    out never writes a partial file because of a bad argument.

    Raises
    ------
    InvalidPayloadError
        For dtypes without an exact text form (complex, float16, objects ...) or an empty array.
    InvalidInputError
        For header keys that contain white space, are DTYPE/NDIM/DIM:n, or values with
        line breaks.
    """
    lines = _header_lines(np.asarray(arr), header)
    return _lines_gen(np.asarray(arr), lines)


def _header_lines(arr: np.ndarray, header: Optional[Mapping[str, object]]) -> List[str]:
    name = psana_dtype_name(arr.dtype)
    if arr.size == 0:
        raise InvalidPayloadError(f"cannot write an empty array (shape {arr.shape})")
    lines: List[str] = []
    for key, value in (header or {}).items():
        key = str(key)
        value = str(value)
        if not _KEY_RE.match(key) or key.startswith("#"):
            raise InvalidInputError(f"header key {key!r} must be one word without '#'")
        if _RESERVED.match(key):
            raise InvalidInputError(f"header key {key!r} is written from the array itself")
        if "\n" in value or "\r" in value:
            raise InvalidInputError(f"header value of {key!r} must be a single line")
        lines.append(f"# {key} {value}".rstrip())
    lines.append(f"# DTYPE {name}")
    lines.append(f"# NDIM {arr.ndim}")
    lines.extend(f"# DIM:{i} {n}" for i, n in enumerate(arr.shape, 1))
    return lines


def _lines_gen(arr: np.ndarray, lines: List[str]) -> Iterator[str]:
    for line in lines:
        yield line + "\n"
    dt = arr.dtype.newbyteorder("=")
    data = np.ascontiguousarray(arr, dtype=dt)
    if dt.kind == "f":
        fmt = repr if dt.itemsize == 8 else "%.9g".__mod__  # 9 digits: exact for float32
    elif dt.kind == "b":
        data = data.astype(np.uint8)
        fmt = str
    else:
        fmt = str
    rows = data.reshape(1, -1) if data.ndim < 2 else data.reshape(-1, data.shape[-1])
    for row in rows:
        yield _format_row(row.tolist(), fmt) + "\n"


def read_file_bytes(path: Path) -> bytes:
    """Bytes of an input file; missing files, directories and I/O errors are pscalib errors."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise StoreIOError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_text(path: Path) -> str:
    raw = read_file_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _fail(str(path), line, "not UTF-8/ASCII text; is this a binary file "
                                     "(use .npy for binary arrays)?") from None


def load_ndarrio(path: PathLike) -> Tuple[np.ndarray, Dict[str, str]]:
    """Read an NDArrIO text file; returns ``(array, free header dict)``.

    See :func:`parse_ndarrio` for the rules and errors.
    """
    p = Path(path)
    return parse_ndarrio(_read_text(p), str(p))


def save_ndarrio(path: PathLike, arr: np.ndarray,
                 header: Optional[Mapping[str, object]] = None) -> Path:
    """Write ``arr`` (and free ``header`` entries) as an NDArrIO text file.

    The file is written to a temporary name in the same directory and renamed into place,
    so an interrupted write never leaves a partial file; an existing file is replaced.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    p = Path(path)
    write_text_atomic(p, ndarrio_lines(arr, header))
    return p


def write_file_atomic(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` atomically with what ``write(binary_file)`` writes.

    One writer for every file (:func:`pscalib.txn.atomic.write_file_atomic`): a temporary
    file in the same directory, fsynced and renamed over ``path`` only when complete; on
    any error (or interrupt) it is removed and ``path`` is unchanged. A new file gets the
    usual mode (``0o666`` minus umask), an existing one keeps its mode. OSErrors become
    StoreIOError.
    """
    p = Path(path)
    try:
        atomic.write_file_atomic(p, write)
    except OSError as exc:
        if isinstance(exc, StoreIOError):
            raise
        raise StoreIOError(f"cannot write {p}: {exc.strerror or exc}") from None


def write_text_atomic(path: PathLike, text: Union[str, Iterable[str]]) -> None:
    """Write UTF-8 ``text`` (a str or an iterable of str) to ``path`` atomically."""
    def write(fh: BinaryIO) -> None:
        tf = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        if isinstance(text, str):
            tf.write(text)
        else:
            tf.writelines(text)
        tf.flush()
        tf.detach()  # leave closing the binary file to write_file_atomic
    write_file_atomic(path, write)


def looks_like_ndarrio(text: str) -> bool:
    """True if ``text`` is NDArrIO array data rather than free text (e.g. geometry).

    It is when it has a ``# DTYPE`` or ``# NDIM`` header line, or when every non-comment
    token is a number (and there is at least one).
    """
    numbers = 0
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            key, _ = _parse_header_line(s)
            if key in ("DTYPE", "NDIM") and numbers == 0:
                return True
            continue
        for tok in s.split():
            try:
                float(tok)
            except ValueError:
                return False
            numbers += 1
    return numbers > 0
