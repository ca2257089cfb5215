"""Test helpers: NDArrIO text written and read by psana's rules, independently of pscalib.

The writers follow psana's writers line by line:

- :func:`py_writer_text`: ``PSCalib/src/NDArrIO.py`` ``save_txt`` (and lcls2's copy): comment
  lines, HOST/WORK_DIR/FILE_NAME/DATE_TIME/UID, SHAPE, DATATYPE, then (metadata on) DTYPE,
  NDIM, DIM:0.. with numpy dtype names; the values by ``numpy.savetxt`` of the array
  reshaped to 2-d (1-d arrays on one line, space after each value).
- :func:`cxx_writer_text`: ``pdscalibdata/src/NDArrIOV1.cpp`` ``save_ndarray``: comments, a
  blank line, DATE_TIME, AUTHOR, blank, ``Metadata for ndarray<T,N>``, DTYPE with the C++
  type name, NDIM, DIM:0.., blank, then each value right-aligned in width 10 plus a space,
  a newline after every last-axis row (after every 10 values for 1-d arrays). Floats are
  formatted like a default C++ ostream (6 significant digits, ``%g``).
- :func:`old_pscalib_text`: pscalib's earlier files (``# DTYPE float``, DIM:1..DIM:n).

The readers follow psana's Python readers:

- :func:`psana1_load_txt`: ``PSCalib/src/NDArrIO.py`` ``load_txt``: comment lines (``#`` in
  the first column) split as ``rec.split(' ', 2)``; DTYPE via ``numpy.dtype(name)``
  (float32 without one), DIM lines appended in order, ``numpy.loadtxt`` for the values,
  reshaped only for NDIM > 2.
- :func:`lcls2_load_txt`: lcls2's ``psana/pscalib/calib/NDArrIO.py`` ``load_txt``: DATATYPE
  before DTYPE, SHAPE (a tuple) before the DIM lines, float() of every value, reshaped for
  NDIM > 1.
"""
import ast
import io

import numpy as np

#: numpy dtype -> the C++ type name psana1's C++ writer writes (GlobalMethods.h strDataType:
#: int16_t is 'short', int32_t is 'int', uint32_t is 'unsigned').
CXX_WRITE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
                   np.dtype(np.int16): "short", np.dtype(np.int32): "int",
                   np.dtype(np.uint32): "unsigned", np.dtype(np.uint8): "uint8_t",
                   np.dtype(np.uint16): "uint16_t"}
#: C++ names psana1's C++ reader also knows (GlobalMethods.cpp enumDataTypeForString).
CXX_READ_ONLY_NAMES = {"int16_t": np.int16, "int32_t": np.int32, "uint": np.uint32,
                       "uint32_t": np.uint32}


def py_writer_text(arr, cmts=(), fmt="%.1f", addmetad=True):
    """NDArrIO text as psana's Python ``save_txt(fname, arr, cmts, fmt)`` writes it."""
    arr = np.asarray(arr)
    recs = [f"# {c}" for c in cmts]
    recs.append("\n# HOST        psana-node")
    recs.append("# WORK_DIR    /reg/neh/home/calibman")
    recs.append("# FILE_NAME   nda.data")
    recs.append("# DATE_TIME   2017-03-02T14:05:11")
    recs.append("# UID         calibman")
    recs.append("# SHAPE       %s" % str(arr.shape).replace(" ", ""))
    recs.append("# DATATYPE    %s" % str(arr.dtype))
    if addmetad:
        recs.append("\n# DTYPE       %s" % str(arr.dtype))
        recs.append("# NDIM        %s" % len(arr.shape))
        for i in range(arr.ndim):
            recs.append("# DIM:%d       %s" % (i, arr.shape[i]))
    arr2d = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 2 else arr
    recs.append("" if arr.ndim > 1 else "\n")
    nline = "\n" if arr.ndim > 1 else " "
    out = io.StringIO()
    np.savetxt(out, arr2d, fmt, delimiter=" ", newline=nline, header="\n".join(recs),
               comments="")
    return out.getvalue()


def _cxx_value(v, dtype):
    if dtype.kind == "f":
        return "%g" % v  # default ostream precision: 6 significant digits
    return str(int(v))


def cxx_writer_text(arr, cxx_name=None, comments=()):
    """NDArrIO text as psana1's C++ ``NDArrIOV1<T,N>::save_ndarray`` writes it."""
    arr = np.asarray(arr)
    name = cxx_name or CXX_WRITE_NAMES[arr.dtype]
    out = []
    if comments:
        out += [f"# {c}\n" for c in comments] + ["\n"]
    out.append("# DATE_TIME  2015-11-20 09:14:02\n# AUTHOR     calibman\n\n")
    out.append(f"# Metadata for ndarray<{name},{arr.ndim}>\n")
    out.append(f"# DTYPE    {name}\n# NDIM     {arr.ndim}\n")
    out += [f"# DIM:{i}    {n}\n" for i, n in enumerate(arr.shape)]
    out.append("\n")
    nmax = arr.shape[-1] if arr.ndim > 1 else 10
    count = 0
    for v in arr.flat:
        out.append(f"{_cxx_value(v, arr.dtype):>10} ")
        count += 1
        if count == nmax:
            count = 0
            out.append("\n")
    return "".join(out)


def old_pscalib_text(arr, name, header=()):
    """pscalib's earlier writer: free header, DTYPE name, NDIM, DIM:1..DIM:n, values."""
    arr = np.asarray(arr)
    lines = [f"# {k} {v}" for k, v in header]
    lines += [f"# DTYPE {name}", f"# NDIM {arr.ndim}"]
    lines += [f"# DIM:{i + 1} {n}" for i, n in enumerate(arr.shape)]
    rows = arr.reshape(1, -1) if arr.ndim < 2 else arr.reshape(-1, arr.shape[-1])
    fmt = (lambda x: repr(float(x))) if arr.dtype == np.float64 else (
        (lambda x: "%.9g" % x) if arr.dtype.kind == "f" else (lambda x: str(int(x))))
    lines += [" ".join(fmt(x) for x in row) for row in rows]
    return "\n".join(lines) + "\n"


def headerless_text(arr, per_line=None):
    """Bare numbers, one last-axis row per line (``per_line`` values per line if given)."""
    arr = np.asarray(arr)
    n = per_line or (arr.shape[-1] if arr.ndim > 1 else arr.size)
    fmt = "%.17g" if arr.dtype == np.float64 else ("%.9g" if arr.dtype.kind == "f" else "%d")
    data = arr.astype(np.float64) if arr.dtype == np.float64 else (
        arr if arr.dtype.kind == "f" else arr.astype(object))
    out = io.StringIO()
    np.savetxt(out, data.reshape(-1, n), fmt, delimiter=" ")
    return out.getvalue()


def _comments(text):
    return [rec.rstrip("\n") for rec in text.splitlines(True) if rec[:1] == "#"]


def psana1_load_txt(text):
    """Array as psana1's Python ``PSCalib.NDArrIO.load_txt`` returns it."""
    str_dtype, ndim, shape = "", None, []
    for rec in _comments(text):
        fields = rec.split(" ", 2)
        if len(fields) < 3:
            continue
        if fields[1] == "DTYPE":
            str_dtype = fields[2].rstrip("\n").strip(" ")
        elif fields[1] == "NDIM":
            ndim = int(fields[2])
        elif fields[1][:4] == "DIM:":
            shape.append(int(fields[2]))
    dtype = np.dtype(str_dtype) if str_dtype else np.float32
    nparr = np.loadtxt(io.StringIO(text), dtype=dtype, comments="#")
    if ndim is None or shape == []:
        return nparr
    assert ndim == len(shape), "psana1: Inconsistent metadata (ndim != len(shape))"
    if ndim > 2:
        nparr.shape = shape
    return nparr


def lcls2_load_txt(text):
    """Array as lcls2's ``psana.pscalib.calib.NDArrIO.load_txt`` returns it."""
    cmts, data = [], []
    for rec in text.splitlines(True):
        if rec.isspace():
            continue
        (cmts if rec[0] == "#" else data).append(rec)
    str_dtype = str_dtype0 = str_shape0 = ""
    ndim, shape = None, []
    for rec in cmts:
        fields = rec.split(" ", 2)
        if len(fields) < 3:
            continue
        if fields[1] == "DTYPE":
            str_dtype = fields[2].rstrip("\n").strip(" ")
        elif fields[1] == "NDIM":
            ndim = int(fields[2])
        elif fields[1][:4] == "DIM:":
            shape.append(int(fields[2]))
        elif fields[1] == "SHAPE":
            str_shape0 = fields[2].rstrip("\n").strip(" ")
        elif fields[1] == "DATATYPE":
            str_dtype0 = fields[2].rstrip("\n").strip(" ")
    dtype = np.dtype(str_dtype0) if str_dtype0 else (
        np.dtype(str_dtype) if str_dtype else np.float32)
    if str_shape0:
        shape = list(ast.literal_eval(str_shape0))  # lcls2 uses eval() of the same text
    if len(shape):
        ndim = len(shape)
    if len(data) == 1:
        values = [float(v) for v in data[0].split()]
    else:
        values = [[float(v) for v in rec.split()] for rec in data]
    nparr = np.array(values, dtype)
    if ndim is None or shape == []:
        return nparr
    if ndim > 1:
        nparr.shape = shape
    return nparr


def cxx_reader_shape(text, ndim):
    """Shape psana1's C++ ``NDArrIOV1<T,NDIM>`` sets from DIM lines (number = index).

    Returns None where the C++ reader would index outside its ``shape[NDIM]`` array.
    """
    shape = [0] * ndim
    for rec in text.splitlines():
        if rec[:1] != "#":
            continue
        parts = rec[1:].split()
        if parts and parts[0][:4] == "DIM:":
            dim = int(parts[0][4:])
            if dim >= ndim:
                return None
            shape[dim] = int(parts[1])
    return tuple(shape)
