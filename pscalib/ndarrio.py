"""Read and write NDArrIO text files of calibration arrays, as psana's own code does.

The format is plain text: ``#`` header lines, then whitespace-separated numbers, one row of
the last axis per line. pscalib reads every variant psana writes or reads:

psana's Python writer (``PSCalib/src/NDArrIO.py`` ``save_txt``, lcls2's copy)::

    # TITLE      pedestals               (free comment lines)
    # HOST        psana-node
    # SHAPE       (32,185,388)
    # DATATYPE    float32
    # DTYPE       float32                (numpy names)
    # NDIM        3
    # DIM:0       32                     (dimensions numbered from 0)
    # DIM:1       185
    # DIM:2       388

psana1's C++ writer (``pdscalibdata/src/NDArrIOV1.cpp`` ``save_ndarray``): ``# Metadata for
ndarray<float,3>``, ``# DTYPE    float`` with C++ type names (:data:`CXX_DTYPES`), ``# NDIM``,
``# DIM:0 ...`` and values right-aligned in width 10 with a trailing space.

pscalib's own earlier files: ``# DTYPE float`` / ``int`` and ``# DIM:1`` .. ``# DIM:<NDIM>``.

Headerless files (only numbers, as most files of psana1 calib directories): the shape and
dtype come from the detector type and calibration type (:mod:`pscalib.psana_shapes`) when
``dettype``/``ctype`` are given, or from ``shape=``/``dtype=``; without any of these the
array is float64 shaped as laid out in the file (one line: 1-d, else rows x columns).

Header keys
    ``DTYPE``, ``DATATYPE``, ``NDIM``, ``DIM:n``, ``SHAPE`` and the C++ ``Metadata for ...``
    line describe the array (they must agree with each other). Any other ``# KEY value``
    line is a free header entry returned in a dict (``{'TITLE': 'pedestals'}``; a repeated
    key keeps its last value, a line with only ``#`` or nothing after the key gives ``''``).

Writing
    :func:`format_ndarrio` writes the Python writer's layout: the free header, ``SHAPE``,
    ``DATATYPE``, ``DTYPE`` (numpy names, which psana's Python readers map back to the same
    dtype), ``NDIM``, ``DIM:0`` ..; float64 with Python's shortest round-trip ``repr``,
    float32 with ``%.9g`` and integers in full, so parsing gives back the same values bit
    for bit (NaN payload bits excepted: every NaN is written as ``nan``). Supported dtypes
    are bool (written ``0``/``1``), int8..int64, uint8..uint64, float32 and float64 (any
    byte order; read back in native order).

Every parse error raises :class:`~pscalib.errors.InvalidPayloadError` naming the file (or
``<text>``) and the line.

Examples
--------
>>> arr, hdr = parse_ndarrio("# DTYPE int\\n# NDIM 2\\n# DIM:0 2\\n# DIM:1 3\\n1 2 3\\n4 5 6\\n")
>>> arr.dtype.name, arr.shape, hdr
('int32', (2, 3), {})
>>> print(format_ndarrio(arr, {"TITLE": "demo"}), end="")
# TITLE demo
<BLANKLINE>
# SHAPE       (2,3)
# DATATYPE    int32
<BLANKLINE>
# DTYPE       int32
# NDIM        2
# DIM:0       2
# DIM:1       3
<BLANKLINE>
1 2 3
4 5 6
"""
from __future__ import annotations

import io
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import (BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import numpy as np

from .errors import InvalidInputError, InvalidPayloadError, StoreIOError
from .psana_shapes import headerless_layout, shape_for_count
from .txn import atomic

__all__ = ["PSANA_DTYPES", "CXX_DTYPES", "parse_ndarrio", "format_ndarrio", "load_ndarrio",
           "save_ndarrio", "ndarrio_lines", "ndarrio_line_count", "write_text_atomic",
           "write_file_atomic", "looks_like_ndarrio", "read_file_bytes", "dtype_from_name",
           "psana_dtype_name", "parse_shape"]

PathLike = Union[str, Path]

#: C++ type names of psana1's ``# DTYPE`` lines (pdscalibdata GlobalMethods.cpp
#: ``enumDataTypeForString``) -> numpy dtype. ``float`` is the C++ float (float32).
CXX_DTYPES: Dict[str, np.dtype] = {
    "float": np.dtype(np.float32), "double": np.dtype(np.float64),
    "short": np.dtype(np.int16), "unsigned": np.dtype(np.uint32), "int": np.dtype(np.int32),
    "int16_t": np.dtype(np.int16), "int32_t": np.dtype(np.int32),
    "uint": np.dtype(np.uint32), "uint8_t": np.dtype(np.uint8),
    "uint16_t": np.dtype(np.uint16), "uint32_t": np.dtype(np.uint32),
}

#: Every name accepted in ``# DTYPE``/``# DATATYPE`` -> numpy dtype: the C++ names, numpy
#: names as psana's Python writer writes them (``str(arr.dtype)``), and a few C spellings.
PSANA_DTYPES: Dict[str, np.dtype] = {
    **CXX_DTYPES,
    "long": np.dtype(np.int64), "unsigned int": np.dtype(np.uint32),
    "unsigned short": np.dtype(np.uint16), "unsigned char": np.dtype(np.uint8),
    "char": np.dtype(np.int8), "bool": np.dtype(np.bool_),
    **{name: np.dtype(name) for name in (
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64")},
}

_RESERVED = re.compile(r"^(DTYPE|DATATYPE|NDIM|SHAPE|Metadata|DIM:\d+)$")
_KEY_RE = re.compile(r"^\S+$")
_SHAPE_RE = re.compile(r"^\(\s*(\d+\s*(,\s*\d+\s*)*,?\s*)?\)$")


def dtype_from_name(name: str) -> np.dtype:
    """numpy dtype of a ``# DTYPE`` name (``'float'`` -> float32, ``'uint16_t'`` -> uint16).

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
    """The ``# DTYPE`` name written for ``dtype``: its numpy name (raises if unsupported)."""
    dt = np.dtype(dtype).newbyteorder("=")
    if dt.kind not in "biuf" or (dt.kind == "f" and dt.itemsize not in (4, 8)):
        raise InvalidPayloadError(
            f"arrays of dtype {np.dtype(dtype)} cannot be written as NDArrIO text; supported "
            f"are bool, int8..int64, uint8..uint64, float32, float64 (save as .npy instead)")
    return dt.name


def parse_shape(text: str) -> Tuple[int, ...]:
    """``'32,185,388'`` or ``'(32,185,388)'`` -> ``(32, 185, 388)`` (``--shape`` values).

    Raises
    ------
    InvalidInputError
        If it is not a list of non-negative integers.
    """
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
        if any(d < 0 for d in dims):
            raise ValueError
    except ValueError:
        raise InvalidInputError(f"shape {text!r} must be non-negative integers separated by "
                                f"commas, e.g. 32,185,388") from None
    return dims


def _fail(source: str, lineno: Optional[int], msg: str) -> InvalidPayloadError:
    where = f"{source}, line {lineno}" if lineno else source
    return InvalidPayloadError(f"{where}: {msg}")


def _parse_header_line(line: str) -> Tuple[str, str]:
    body = line.lstrip()[1:].strip()
    if not body:
        return "", ""
    parts = body.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _integers(tokens: List[str], dtype: np.dtype) -> np.ndarray:
    """Integer tokens; psana's Python writer's default format writes them as ``2.0``."""
    try:
        return np.array(tokens, dtype=dtype)
    except ValueError:
        pass
    info = np.iinfo(dtype)
    vals = []
    for tok in tokens:
        try:
            v = int(tok)
        except ValueError:
            try:
                d = Decimal(tok)
            except InvalidOperation:
                raise ValueError(tok) from None
            if not d.is_finite() or d != d.to_integral_value():
                raise ValueError(tok) from None
            v = int(d)
        if not info.min <= v <= info.max:
            raise OverflowError(tok)
        vals.append(v)
    return np.array(vals, dtype=dtype)


def _to_array(tokens: List[str], dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "b":
        raw = _integers(tokens, np.dtype(np.int64))
        if raw.size and (raw.min() < 0 or raw.max() > 1):
            raise ValueError("bool values must be 0 or 1")
        return raw.astype(np.bool_)
    if dtype.kind in "iu":
        return _integers(tokens, dtype)
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


class _Header:
    """What the ``#`` lines of a file say about its array, with the line of each fact."""

    def __init__(self) -> None:
        self.free: Dict[str, str] = {}
        self.dtypes: List[Tuple[int, str, np.dtype]] = []   # (line, key, dtype)
        self.ndim: Optional[Tuple[int, int]] = None
        self.dims: Dict[int, Tuple[int, int]] = {}
        self.shape_line: Optional[Tuple[int, Tuple[int, ...]]] = None

    def add(self, lineno: int, key: str, value: str, source: str) -> None:
        if key in ("DTYPE", "DATATYPE"):
            try:
                self.dtypes.append((lineno, key, dtype_from_name(value)))
            except InvalidPayloadError as exc:
                raise _fail(source, lineno, str(exc)) from None
        elif key == "NDIM" or key.startswith("DIM:"):
            try:
                n = int(value)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise _fail(source, lineno, f"{key} must be a non-negative integer, "
                                            f"got {value!r}") from None
            if key == "NDIM":
                self.ndim = (lineno, n)
                return
            try:
                axis = int(key[4:])
                if axis < 0:
                    raise ValueError
            except ValueError:
                raise _fail(source, lineno, f"bad dimension key {key!r} (expected DIM:0, "
                                            f"DIM:1, ...)") from None
            self.dims[axis] = (lineno, n)
        elif key == "SHAPE":
            if not _SHAPE_RE.match(value):
                raise _fail(source, lineno, f"SHAPE must look like (32,185,388), got "
                                            f"{value!r}")
            self.shape_line = (lineno, tuple(int(x) for x in value[1:-1].split(",")
                                             if x.strip()))
        elif key == "Metadata":
            pass  # C++ writer's '# Metadata for ndarray<float,3>': DTYPE/NDIM say the same
        elif key:
            self.free[key] = value

    def dtype(self, source: str) -> Optional[np.dtype]:
        if not self.dtypes:
            return None
        line0, key0, dt0 = self.dtypes[0]
        for line, key, dt in self.dtypes[1:]:
            if dt != dt0:
                raise _fail(source, line, f"{key} says {dt.name} but {key0} (line {line0}) "
                                          f"says {dt0.name}")
        return dt0

    def shape(self, source: str) -> Optional[Tuple[int, ...]]:
        dims_shape = self._dims_shape(source)
        if self.shape_line is not None:
            line, sh = self.shape_line
            if dims_shape is not None and dims_shape != sh:
                raise _fail(source, line, f"SHAPE {sh} disagrees with NDIM/DIM lines "
                                          f"{dims_shape}")
            return sh
        return dims_shape

    def _dims_shape(self, source: str) -> Optional[Tuple[int, ...]]:
        if self.ndim is None:
            if self.dims:
                line = min(ln for ln, _ in self.dims.values())
                raise _fail(source, line, "DIM:n lines without an NDIM line")
            return None
        n = self.ndim[1]
        # psana writes DIM:0..DIM:n-1 (its C++ reader uses the number as the index);
        # pscalib's earlier files have DIM:1..DIM:n: both are read, in index order.
        base = 0 if 0 in self.dims else 1
        wanted = set(range(base, base + n))
        extra = sorted(set(self.dims) - wanted)
        if extra:
            raise _fail(source, self.dims[extra[0]][0],
                        f"DIM:{extra[0]} does not fit NDIM {n} (expected DIM:0..DIM:{n - 1})")
        missing = sorted(wanted - set(self.dims))
        if missing:
            raise _fail(source, self.ndim[0], f"NDIM {n} but no DIM:{missing[0]} line")
        return tuple(self.dims[i][1] for i in range(base, base + n))


def _text_shape(rows: List[Tuple[int, List[str]]], source: str) -> Tuple[int, ...]:
    """Shape of the numbers as laid out: one line -> 1-d, else rows x columns."""
    if len(rows) == 1:
        return (len(rows[0][1]),)
    width = len(rows[0][1])
    for lineno, toks in rows:
        if len(toks) != width:
            raise _fail(source, lineno, f"{len(toks)} values where earlier rows have "
                                        f"{width} (no NDIM/DIM header to give the shape)")
    return (len(rows), width)


def parse_ndarrio(text: str, source: str = "<text>", *, dettype: Optional[str] = None,
                  ctype: Optional[str] = None, shape: Optional[Sequence[int]] = None,
                  dtype: Optional[Union[str, np.dtype]] = None
                  ) -> Tuple[np.ndarray, Dict[str, str]]:
    """Parse NDArrIO text into ``(array, free header dict)``.

    Parameters
    ----------
    text
        The whole file content.
    source
        Name used in error messages (the file path).
    dettype, ctype
        Detector type (``cspad``) and calibration type (``pedestals``): a file without
        shape/dtype header lines gets them from psana1's table
        (:func:`pscalib.psana_shapes.headerless_layout`).
    shape, dtype
        Shape and dtype for files whose header does not give them (``--shape``/``--dtype``);
        a header that gives a different one is an error.

    Returns
    -------
    (numpy.ndarray, dict)
        The array and the free header entries (every ``# KEY value`` line other than the
        ones describing the array), as strings.

    Raises
    ------
    InvalidPayloadError
        Malformed or contradicting header, a value that is not a number of the dtype, a
        count of values that does not match the shape, no values at all, or (with
        ``dettype``/``ctype``) a headerless file of a combination not in psana1's table and
        no ``dtype``.
    """
    hdr = _Header()
    rows: List[Tuple[int, List[str]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if rows:  # psana writes the header first; a later '#' line is a comment
                continue
            key, value = _parse_header_line(stripped)
            hdr.add(lineno, key, value, source)
            continue
        rows.append((lineno, stripped.split()))
    file_dtype = hdr.dtype(source)
    file_shape = hdr.shape(source)
    if not rows:
        raise _fail(source, None, "no values found (only header lines or an empty file)")
    want_dtype = None if dtype is None else (
        dtype if isinstance(dtype, np.dtype) else dtype_from_name(str(dtype)))
    want_shape = None if shape is None else tuple(int(n) for n in shape)
    if file_dtype is not None and want_dtype is not None and file_dtype != want_dtype:
        raise _fail(source, None, f"the file's header says {file_dtype.name}, but "
                                  f"{want_dtype.name} was asked for (--dtype)")
    if file_shape is not None and want_shape is not None and file_shape != want_shape:
        raise _fail(source, None, f"the file's header says shape {file_shape}, but "
                                  f"{want_shape} was asked for (--shape)")
    tokens = [t for _, toks in rows for t in toks]
    final_dtype = file_dtype if file_dtype is not None else want_dtype
    final_shape = file_shape if file_shape is not None else want_shape
    if final_dtype is None or final_shape is None:
        final_dtype, final_shape = _from_table(final_dtype, final_shape, len(tokens), rows,
                                               dettype, ctype, source)
    count = int(np.prod(final_shape, dtype=np.int64))
    if len(tokens) != count:
        raise _fail(source, rows[-1][0] if len(tokens) > count else None,
                    f"the header gives shape {final_shape} ({count} values) but the file "
                    f"holds {len(tokens)} values")
    try:
        arr = _to_array(tokens, final_dtype)
    except (ValueError, OverflowError):
        raise _locate_bad_value(rows, final_dtype, source) from None
    return arr.reshape(final_shape), hdr.free


def _from_table(dtype: Optional[np.dtype], shape: Optional[Tuple[int, ...]], count: int,
                rows: List[Tuple[int, List[str]]], dettype: Optional[str],
                ctype: Optional[str], source: str) -> Tuple[np.dtype, Tuple[int, ...]]:
    """Complete a missing dtype/shape from psana1's table, or the text layout."""
    context = dettype is not None or ctype is not None
    layout = headerless_layout(dettype, ctype or "") if context else None
    if dtype is None:
        if layout is not None:
            dtype = layout.dtype
        elif context:
            raise _fail(source, None, f"no DTYPE header, and psana1's table of headerless "
                                      f"files has no {dettype or '?'}/{ctype or '?'}; give "
                                      f"--dtype NAME and --shape D1,D2,...")
        else:
            dtype = np.dtype(np.float64)
    if shape is None:
        if layout is not None:
            shape = shape_for_count(layout, count, _text_shape(rows, source)
                                    if layout.kind == "text" else (), source)
        else:
            shape = _text_shape(rows, source)
    return dtype, shape


def _format_row(values: list, fmt) -> str:
    return " ".join(map(fmt, values))


def format_ndarrio(arr: np.ndarray, header: Optional[Mapping[str, object]] = None) -> str:
    """NDArrIO text of ``arr`` in psana's Python writer's layout (see the module docstring).

    Values are written one row of the last axis per line (a 0-d array as one value, a 1-d
    array on one line).

    Raises
    ------
    InvalidPayloadError
        For dtypes without an exact text form (complex, float16, objects ...) or an empty array.
    InvalidInputError
        For header keys that contain white space, describe the array (DTYPE, DATATYPE, NDIM,
        SHAPE, DIM:n, Metadata), or values with line breaks.
    """
    return "".join(ndarrio_lines(arr, header))


def _row_count(arr: np.ndarray) -> int:
    return 1 if arr.ndim < 2 else int(np.prod(arr.shape[:-1], dtype=np.int64))


def ndarrio_line_count(arr: np.ndarray, header: Optional[Mapping[str, object]] = None) -> int:
    """Number of lines :func:`ndarrio_lines` yields (for progress bars)."""
    arr = np.asarray(arr)
    return len(header or {}) + (1 if header else 0) + 6 + arr.ndim + _row_count(arr)


def ndarrio_lines(arr: np.ndarray, header: Optional[Mapping[str, object]] = None
                  ) -> Iterator[str]:
    """The lines of :func:`format_ndarrio` (each ending in a newline), produced lazily.

    All checks happen before the first line is yielded, so a consumer writing the lines
    out never writes a partial file because of a bad argument.

    Raises
    ------
    InvalidPayloadError, InvalidInputError
        As :func:`format_ndarrio`.
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
    if lines:
        lines.append("")
    # The Python writer's lines: SHAPE/DATATYPE (read by lcls2's reader), then
    # DTYPE/NDIM/DIM:0.. (read by psana1's Python and C++ readers).
    lines.append(f"# SHAPE       {str(tuple(arr.shape)).replace(' ', '')}")
    lines.append(f"# DATATYPE    {name}")
    lines.append("")
    lines.append(f"# DTYPE       {name}")
    lines.append(f"# NDIM        {arr.ndim}")
    lines.extend(f"# DIM:{i}       {n}" for i, n in enumerate(arr.shape))
    lines.append("")
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


def load_ndarrio(path: PathLike, **hints) -> Tuple[np.ndarray, Dict[str, str]]:
    """Read an NDArrIO text file; returns ``(array, free header dict)``.

    ``hints`` are the keyword arguments of :func:`parse_ndarrio` (``dettype``, ``ctype``,
    ``shape``, ``dtype``); see there for the rules and errors.
    """
    p = Path(path)
    return parse_ndarrio(_read_text(p), str(p), **hints)


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

    It is when it has a ``# DTYPE``, ``# DATATYPE``, ``# SHAPE`` or ``# NDIM`` header line,
    or when every non-comment token is a number (and there is at least one).
    """
    numbers = 0
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            key, _ = _parse_header_line(s)
            if key in ("DTYPE", "NDIM", "DATATYPE", "SHAPE") and numbers == 0:
                return True
            continue
        for tok in s.split():
            try:
                float(tok)
            except ValueError:
                return False
            numbers += 1
    return numbers > 0
