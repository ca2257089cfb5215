"""NDArrIO text files: exact round trips, header handling and error messages."""
import numpy as np
import pytest

from pscalib.errors import InvalidInputError, InvalidPayloadError
from pscalib.ndarrio import (PSANA_DTYPES, dtype_from_name, format_ndarrio, load_ndarrio,
                             looks_like_ndarrio, parse_ndarrio, save_ndarrio)
from conftest import GEOMETRY_DIR

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64"]


def _extremes(dtype):
    dt = np.dtype(dtype)
    rng = np.random.default_rng(7)
    if dt.kind == "b":
        return rng.integers(0, 2, size=(3, 4, 5)).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=(3, 4, 5), dtype=dt, endpoint=True)
        a.flat[:2] = [info.min, info.max]
        return a
    info = np.finfo(dt)
    a = (rng.standard_normal((3, 4, 5)) * 10.0 ** rng.integers(-30, 30, (3, 4, 5))).astype(dt)
    a.flat[:7] = [info.max, info.min, info.tiny, np.nextafter(dt.type(1), dt.type(2)),
                  -0.0, np.inf, -np.inf]
    return a


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_exact_every_dtype(tmp_path, dtype):
    a = _extremes(dtype)
    p = save_ndarrio(tmp_path / f"a_{dtype}.data", a, {"TITLE": "round trip", "RUN": 12})
    b, hdr = load_ndarrio(p)
    assert b.dtype == a.dtype and b.shape == a.shape
    assert a.tobytes() == b.tobytes()  # bit-exact, -0.0 and infinities included
    assert hdr == {"TITLE": "round trip", "RUN": "12"}


def test_nan_round_trips_as_nan():
    a = np.array([1.0, np.nan, 2.0], dtype=np.float32)
    b, _ = parse_ndarrio(format_ndarrio(a))
    assert b.dtype == np.float32 and np.isnan(b[1]) and b[0] == 1 and b[2] == 2


def test_zero_d_one_d_and_big_endian():
    b, _ = parse_ndarrio(format_ndarrio(np.float64(0.1)))
    assert b.shape == () and b == 0.1
    b, _ = parse_ndarrio(format_ndarrio(np.arange(5, dtype=">i4")))
    assert b.dtype == np.int32 and b.tolist() == [0, 1, 2, 3, 4]


def test_header_layout_is_psana_python_writers():
    text = format_ndarrio(np.zeros((2, 3, 4), np.float32), {"TITLE": "x y"})
    lines = text.splitlines()
    assert lines[:10] == ["# TITLE x y", "", "# SHAPE       (2,3,4)", "# DATATYPE    float32",
                          "", "# DTYPE       float32", "# NDIM        3", "# DIM:0       2",
                          "# DIM:1       3", "# DIM:2       4"]
    assert len(lines) == 11 + 2 * 3 and lines[11] == "0 0 0 0"
    assert "# DTYPE       float64" in format_ndarrio(np.zeros(2))
    assert "# DTYPE       uint16" in format_ndarrio(np.zeros(2, np.uint16))


def test_psana_dtype_names_map_to_numpy():
    assert dtype_from_name("float") == np.float32
    assert dtype_from_name("double") == np.float64
    assert dtype_from_name("int") == np.int32
    assert dtype_from_name("uint16") == np.uint16
    assert dtype_from_name("unsigned  short") == np.uint16
    assert set(DTYPES) <= set(PSANA_DTYPES)


def test_parse_psana_style_file_with_free_header():
    text = ("# TITLE      File to load ndarray of calibration parameters\n"
            "#\n# EXPERIMENT amo12345\n# DETECTOR   Camp.0:pnCCD.1\n# CALIB_TYPE pedestals\n\n"
            "# DTYPE      float\n# NDIM       2\n# DIM:1      2\n# DIM:2      3\n\n"
            "1.5  2   -3e-2\n   4 5 6\n")
    a, hdr = parse_ndarrio(text)
    assert a.dtype == np.float32 and a.shape == (2, 3)
    assert a.tolist() == np.array([[1.5, 2, -0.03], [4, 5, 6]], np.float32).tolist()
    assert hdr == {"TITLE": "File to load ndarray of calibration parameters",
                   "EXPERIMENT": "amo12345", "DETECTOR": "Camp.0:pnCCD.1",
                   "CALIB_TYPE": "pedestals"}


def test_headerless_file_is_float64_rows_by_columns():
    a, hdr = parse_ndarrio("1 2 3\n4 5 6\n")
    assert a.dtype == np.float64 and a.shape == (2, 3) and hdr == {}
    a, _ = parse_ndarrio("1 2 3 4\n")
    assert a.shape == (4,)


@pytest.mark.parametrize("text, line, words", [
    ("# DTYPE float\n# NDIM 1\n# DIM:1 3\n1 2 x\n", 4, "'x' is not a valid float32"),
    ("# DTYPE int\n# NDIM 1\n# DIM:1 2\n1 2.5\n", 4, "'2.5' is not a valid int32"),
    ("# DTYPE uint8\n# NDIM 1\n# DIM:1 2\n1\n300\n", 5, "'300'"),
    ("# DTYPE bool\n# NDIM 1\n# DIM:1 2\n1 2\n", 4, "'2'"),
    ("# DTYPE quad\n1 2\n", 1, "unknown DTYPE 'quad'"),
    ("# NDIM two\n1 2\n", 1, "NDIM must be a non-negative integer"),
    ("# NDIM 2\n# DIM:1 2\n1 2\n", 1, "no DIM:2"),
    ("# NDIM 1\n# DIM:1 2\n# DIM:3 2\n1 2\n", 3, "DIM:3 does not fit NDIM 1"),
    ("# NDIM 1\n# DIM:1 2\n1 2 3\n", 3, "shape (2,) (2 values) but the file holds 3"),
    ("1 2 3\n4 5\n", 2, "2 values where earlier rows have 3"),
])
def test_parse_errors_name_file_and_line(tmp_path, text, line, words):
    p = tmp_path / "bad.data"
    p.write_text(text)
    with pytest.raises(InvalidPayloadError) as err:
        load_ndarrio(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}, line {line}: "), msg
    assert words in msg


def test_empty_and_binary_files(tmp_path):
    with pytest.raises(InvalidPayloadError, match="no values found"):
        parse_ndarrio("# DTYPE float\n\n", "x.data")
    p = tmp_path / "b.data"
    p.write_bytes(b"1 2\n\xff\xfe\n")
    with pytest.raises(InvalidPayloadError, match=r"line 2: not UTF-8"):
        load_ndarrio(p)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_ndarrio(tmp_path / "missing.data")


def test_unsupported_writes_are_refused(tmp_path):
    with pytest.raises(InvalidPayloadError, match="complex128"):
        format_ndarrio(np.zeros(2, complex))
    with pytest.raises(InvalidPayloadError, match="float16"):
        format_ndarrio(np.zeros(2, np.float16))
    with pytest.raises(InvalidPayloadError, match="empty"):
        format_ndarrio(np.zeros((0, 3)))
    for bad in ({"DTYPE": "x"}, {"DIM:1": 3}, {"two words": 1}, {"K": "a\nb"}):
        with pytest.raises(InvalidInputError):
            format_ndarrio(np.zeros(2), bad)
    target = tmp_path / "keep.data"
    target.write_text("old")
    with pytest.raises(InvalidPayloadError):
        save_ndarrio(target, np.zeros(2, complex))
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["keep.data"]  # no temp file left


def test_looks_like_ndarrio_tells_arrays_from_geometry_text():
    assert looks_like_ndarrio("# DTYPE float\n# NDIM 1\n# DIM:1 1\n1\n")
    assert looks_like_ndarrio("# any comment\n1 2 3\n-4e5 nan 6\n")
    assert not looks_like_ndarrio("hello world\n")
    assert not looks_like_ndarrio("# only comments\n")
    for p in sorted(GEOMETRY_DIR.glob("*.data")):
        assert not looks_like_ndarrio(p.read_text())


def test_large_cspad_shape_round_trip(tmp_path):
    a = np.random.default_rng(1).normal(1000, 30, (4, 185, 388)).astype(np.float32)
    b, _ = load_ndarrio(save_ndarrio(tmp_path / "peds.txt", a))
    assert a.tobytes() == b.tobytes()
