"""NDArrIO text exactly as psana writes and reads it (issue 14).

Files come from the shared real samples and from generators that follow psana's writers
(tests/psana_writers.py); pscalib's output is read back with readers that follow psana's
Python readers.
"""
from pathlib import Path

import numpy as np
import pytest

from psana_writers import (CXX_READ_ONLY_NAMES, CXX_WRITE_NAMES, cxx_reader_shape,
                           cxx_writer_text, headerless_text, lcls2_load_txt, old_pscalib_text,
                           psana1_load_txt, py_writer_text)
from pscalib.errors import InvalidPayloadError
from pscalib.ndarrio import format_ndarrio, load_ndarrio, ndarrio_line_count, parse_ndarrio
from pscalib.psana_shapes import CTYPE_DTYPES, DETTYPE_SHAPES, headerless_layout

SAMPLES = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "ndarrio-psana"
NUMPY_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float32", "float64"]
SHAPES = [(7,), (1,), (1, 6), (6, 1), (3, 4), (2, 3, 4), (1, 1, 5), (2, 1, 3, 4),
          (3, 2, 2, 2)]


def sample(dtype, shape, seed=0, exact_fmt=True):
    """Random values of ``dtype``; with ``exact_fmt=False`` values that '%.1f' keeps."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = (info.min, info.max) if exact_fmt else (max(info.min, -9999), min(info.max,
                                                                                    9999))
        a = rng.integers(lo, hi, shape, dtype=dt, endpoint=True)
        a.flat[0] = hi
        return a
    if exact_fmt:
        a = (rng.standard_normal(shape) * 10.0 ** rng.integers(-20, 20, shape)).astype(dt)
        a.flat[0] = -0.0
        return a
    return (rng.integers(-99999, 99999, shape) / 10).astype(dt)


def exact_fmt(dtype):
    dt = np.dtype(dtype)
    return {"f": "%.17g" if dt.itemsize == 8 else "%.9g"}.get(dt.kind, "%d")


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ psana's Python writer
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_python_writer_files_read_bit_exact(dtype, shape):
    a = sample(dtype, shape, seed=len(shape))
    text = py_writer_text(a, ["TITLE pedestals", "EXPERIMENT cxi12345"], exact_fmt(dtype))
    b, hdr = parse_ndarrio(text, "py.data")
    assert same(a, b), (text[:400], b)
    assert hdr["TITLE"] == "pedestals" and hdr["HOST"] == "psana-node"
    assert not {"SHAPE", "DATATYPE", "DTYPE", "NDIM", "DIM:0"} & set(hdr)


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_python_writer_default_format_one_decimal(dtype):
    """save_txt's default fmt '%.1f' writes integers as '2.0': read as the integers."""
    a = sample(dtype, (3, 5), seed=3, exact_fmt=False)
    text = py_writer_text(a)
    assert "." in text.splitlines()[-1]
    b, _ = parse_ndarrio(text)
    assert same(a, b)


def test_python_writer_without_metadata_uses_shape_and_datatype():
    a = sample("uint16", (2, 3, 4), seed=5)
    b, _ = parse_ndarrio(py_writer_text(a, fmt="%d", addmetad=False))
    assert same(a, b)


# ------------------------------------------------------------------ psana1's C++ writer
@pytest.mark.parametrize("dtype", sorted(CXX_WRITE_NAMES, key=str))
@pytest.mark.parametrize("shape", SHAPES)
def test_cxx_writer_files_read_bit_exact(dtype, shape):
    a = sample(dtype, shape, seed=11)
    if a.dtype.kind == "f":  # what a C++ ostream writes (6 digits) is what there is to read
        a = np.array(["%g" % x for x in a.ravel()], dtype=np.float64).astype(a.dtype)
        a = a.reshape(shape)
    text = cxx_writer_text(a, comments=["cspad2x2 dark run 12"])
    assert all(line.endswith(" ") for line in text.splitlines() if line[:1] not in "#")
    b, hdr = parse_ndarrio(text, "cxx.data")
    assert same(a, b)
    assert hdr["AUTHOR"] == "calibman" and "Metadata" not in hdr


@pytest.mark.parametrize("name", sorted(CXX_READ_ONLY_NAMES))
def test_cxx_type_names_the_cxx_reader_knows(name):
    want = np.dtype(CXX_READ_ONLY_NAMES[name])
    a = sample(want, (4, 3), seed=2)
    b, _ = parse_ndarrio(cxx_writer_text(a, cxx_name=name))
    assert same(a, b)


# ------------------------------------------------------------------ pscalib's earlier files
@pytest.mark.parametrize("name,dtype", [("float", "float32"), ("double", "float64"),
                                        ("int", "int32"), ("uint16", "uint16"),
                                        ("bool", "bool")])
@pytest.mark.parametrize("shape", [(5,), (1, 4), (4, 1), (2, 3, 4), (2, 2, 3, 2)])
def test_earlier_pscalib_files_dim_from_one(name, dtype, shape):
    a = sample(dtype, shape, seed=4)
    b, hdr = parse_ndarrio(old_pscalib_text(a, name, [("TITLE", "old")]))
    assert same(a, b) and hdr == {"TITLE": "old"}


# ------------------------------------------------------------------ real samples
@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.data")))
def test_shared_samples_read_as_their_names_say(name):
    """``<writer>-<ctype>-<type>-<shape>.data``: dtype and shape from the name; values by
    an independent parse of the data lines."""
    path = SAMPLES / name
    writer, _ctype, tname, dims = name[:-5].split("-")
    shape = tuple(int(x) for x in dims.split("x"))
    want_dtype = np.dtype({"float": "float32", "uint8_t": "uint8",
                           "uint16_t": "uint16"}.get(tname, tname))
    arr, hdr = load_ndarrio(path)
    assert arr.dtype == want_dtype and arr.shape == shape
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    tokens = " ".join(lines).split()
    want = np.array([float(t) for t in tokens]).astype(want_dtype).reshape(shape)
    assert same(arr, want)
    assert ("UID" if writer == "py" else "AUTHOR") in hdr


def test_shared_headerless_calib_files_get_psana1_shapes():
    root = SAMPLES / "psana1-calib"
    cases = [("CsPad::CalibV1/CxiDs2.0:Cspad.0/pedestals/1-end.data", "cspad", "pedestals",
              np.float32, (32, 185, 388)),
             ("CsPad2x2::CalibV1/CxiDg2.0:Cspad2x2.0/pixel_status/1-end.data", "cspad2x2",
              "pixel_status", np.uint16, (185, 388, 2)),
             ("CsPad2x2::CalibV1/CxiDg2.0:Cspad2x2.0/pedestals/30-45.data", "cspad2x2",
              "pedestals", np.float32, (185, 388, 2)),
             ("Epix100a::CalibV1/MfxEndstation.0:Epix100a.0/pedestals/5-end.data",
              "epix100a", "pedestals", np.float32, (704, 768))]
    for rel, det, ctype, dtype, shape in cases:
        arr, hdr = load_ndarrio(root / rel, dettype=det, ctype=ctype)
        assert arr.dtype == dtype and arr.shape == shape and hdr == {}
        flat = np.loadtxt(root / rel, dtype=np.float64).ravel().astype(dtype)
        assert arr.tobytes() == flat.tobytes()


# ------------------------------------------------------------------ headerless table
# every ctype for the small variable-shape types; the big fixed/segment shapes with ctypes
# of each dtype (float32, uint16, uint8, float64)
TABLE_CASES = [(d, c) for d in sorted(DETTYPE_SHAPES) for c in sorted(CTYPE_DTYPES)
               if DETTYPE_SHAPES[d][0] == "text" or c in ("pedestals", "pixel_status",
                                                          "pixel_mask", "common_mode")]


@pytest.mark.parametrize("dettype,ctype", TABLE_CASES)
def test_headerless_files_follow_the_table(dettype, ctype):
    layout = headerless_layout(dettype, ctype)
    kind, seg = DETTYPE_SHAPES[dettype]
    if ctype == "common_mode":
        shape, text_shape = (16,), (16,)
    elif kind == "fixed":
        shape, text_shape = seg, None
    elif kind == "segments":
        shape, text_shape = (2,) + seg, None
    else:
        shape, text_shape = (3, 5), (3, 5)
    a = sample(layout.dtype, shape, seed=9)
    b, _ = parse_ndarrio(headerless_text(a), "h.data", dettype=dettype, ctype=ctype)
    assert b.dtype == CTYPE_DTYPES[ctype] and b.shape == (text_shape or shape)
    assert b.tobytes() == a.tobytes()


def test_headerless_errors_and_hints():
    a = np.arange(12, dtype=np.float32)
    text = headerless_text(a.reshape(3, 4))
    with pytest.raises(InvalidPayloadError) as ei:
        parse_ndarrio(text, "h.data", dettype="cspad", ctype="pedestals")
    assert "h.data" in str(ei.value) and "(32, 185, 388)" in str(ei.value)
    assert "--shape" in str(ei.value)
    with pytest.raises(InvalidPayloadError, match=r"h\.data: .*--dtype.*--shape"):
        parse_ndarrio(text, "h.data", dettype="mydet", ctype="pedestals")
    with pytest.raises(InvalidPayloadError, match="--dtype"):
        parse_ndarrio(text, "h.data", dettype="cspad", ctype="my_table")
    b, _ = parse_ndarrio(text, "h.data", dettype="mydet", ctype="x", shape=(2, 6),
                         dtype="int16")
    assert b.dtype == np.int16 and b.shape == (2, 6) and b.ravel().tolist() == list(range(12))
    b, _ = parse_ndarrio(text, "h.data", dettype="mydet", ctype="x", dtype="float32")
    assert b.shape == (3, 4)  # only a dtype: the numbers' layout gives the shape
    with pytest.raises(InvalidPayloadError, match=r"says float32, but int16"):
        parse_ndarrio(format_ndarrio(a), dtype="int16")
    with pytest.raises(InvalidPayloadError, match=r"shape \(12,\), but \(3, 4\)"):
        parse_ndarrio(format_ndarrio(a), shape=(3, 4))
    epix = np.zeros(352 * 384 * 3, np.float32)
    with pytest.raises(InvalidPayloadError, match="multiple of the segment shape"):
        parse_ndarrio(headerless_text(epix[:-384].reshape(-1, 384)), dettype="epix10ka",
                      ctype="pedestals")


def test_contradicting_header_lines_are_errors():
    a = sample("float32", (2, 3), seed=1)
    text = py_writer_text(a, fmt="%.9g")
    with pytest.raises(InvalidPayloadError, match=r"line \d+: DTYPE says float64 but "
                                                  r"DATATYPE"):
        parse_ndarrio(text.replace("# DTYPE       float32", "# DTYPE       float64"))
    with pytest.raises(InvalidPayloadError, match="SHAPE .* disagrees"):
        parse_ndarrio(text.replace("# SHAPE       (2,3)", "# SHAPE       (3,2)"))
    with pytest.raises(InvalidPayloadError, match="DIM:3 does not fit NDIM 2"):
        parse_ndarrio(text.replace("# DIM:1 ", "# DIM:3 "))


# ------------------------------------------------------------------ what psana reads back
@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pscalib_files_read_by_psana_python_readers(dtype, shape):
    a = sample(dtype, shape, seed=21)
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8:  # lcls2 parses values with float()
        a = (a // 2**12).astype(a.dtype)
    text = format_ndarrio(a, {"DETECTOR": "cspad-0001", "CALIB_TYPE": "pedestals"})
    assert len(text.splitlines()) == ndarrio_line_count(a, {"D": 1, "C": 2})
    got2 = lcls2_load_txt(text)
    assert same(a, got2)
    got1 = psana1_load_txt(text)
    assert got1.dtype == a.dtype and got1.tobytes() == a.tobytes()
    if len(shape) == 2 and 1 in shape or shape == (1,):
        # psana1's load_txt reshapes only NDIM > 2 arrays; numpy.loadtxt squeezes
        # one-line/one-column files: (1, N) and (N, 1) come back as (N,), (1,) as ().
        assert got1.shape == tuple(n for n in shape if n != 1)
    else:
        assert got1.shape == a.shape


def test_int64_beyond_2_53_is_exact_for_psana1_but_not_lcls2():
    a = np.array([2**62 + 1, -(2**62) - 1], np.int64)
    text = format_ndarrio(a)
    assert same(psana1_load_txt(text), a)
    assert parse_ndarrio(text)[0].tolist() == a.tolist()
    assert lcls2_load_txt(text).tolist() != a.tolist()  # documented: float() per value


@pytest.mark.parametrize("shape", SHAPES)
def test_psana1_cxx_reader_gets_the_shape_from_dim_lines(shape):
    a = sample("float32", shape, seed=6)
    assert cxx_reader_shape(format_ndarrio(a), len(shape)) == shape
    # pscalib's earlier DIM:1..DIM:n files ran past the C++ reader's shape array
    assert cxx_reader_shape(old_pscalib_text(a, "float"), len(shape)) is None


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [()])
def test_round_trip_bit_identical(dtype, shape):
    a = np.asarray(sample(dtype, shape or (1,), seed=30)).reshape(shape)
    b, _ = parse_ndarrio(format_ndarrio(a))
    assert same(a, b)


# ------------------------------------------------------------------ dcs add / dcs get
def test_dcs_add_headerless_and_get_for_psana(tmp_path):
    import subprocess
    import sys
    dcs = Path(sys.executable).with_name("dcs")
    exe = str(dcs) if dcs.exists() else "dcs"

    def run(*args):
        return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                              timeout=300)

    src = SAMPLES / "psana1-calib" / "Epix100a::CalibV1" / "MfxEndstation.0:Epix100a.0" \
        / "pedestals" / "5-end.data"
    store = tmp_path / "calib" / "epix100a" / "epix100a-0001.h5"
    res = run("add", store, "pedestals", src, "-b", "2017-03-01", "--create")
    assert res.returncode == 0, res.stderr
    res = run("get", store, "pedestals", "-t", "2017-03-02", "-o", tmp_path / "out.data")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "out.data").read_text()
    want = np.loadtxt(src, dtype=np.float64).astype(np.float32)
    for reader in (psana1_load_txt, lcls2_load_txt):
        got = reader(text)
        assert got.dtype == np.float32 and got.shape == (704, 768)
        assert got.tobytes() == want.tobytes()
    other = tmp_path / "calib" / "mydet" / "mydet-0001.h5"
    res = run("add", other, "pedestals", src, "-b", "2017-03-01", "--create")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "--shape" in res.stderr and "--dtype" in res.stderr and not other.exists()
    res = run("add", other, "pedestals", src, "-b", "2017-03-01", "--create",
              "--shape", "704,768", "--dtype", "float32")
    assert res.returncode == 0, res.stderr
    res = run("add", other, "pedestals", src, "-b", "2017-03-01", "--dtype", "quad")
    assert res.returncode == 1 and "unknown DTYPE 'quad'" in res.stderr
