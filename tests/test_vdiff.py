"""Version comparison (issue 16): pscalib.exchange.vdiff and `dcs diff STORE --versions N M`.

The statistics are checked against a plain-Python reference (exact integers, element by
element), on arrays of every dtype kind and on the real geometry files.
"""
import json
import math
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import InvalidInputError, VersionNotFoundError
from pscalib.exchange.vdiff import (array_stats, diff_payloads, diff_store_versions,
                                    diff_versions)

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))


def dcs(*args, timeout=60):
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _num(x):
    """Element -> exact Python number (int for ints/bools, complex/float otherwise)."""
    x = x.item() if hasattr(x, "item") else x
    return int(x) if isinstance(x, (bool, int)) else x


def reference(a: np.ndarray, b: np.ndarray) -> dict:
    """Element-by-element statistics in plain Python (the documented rule)."""
    changed = nanmis = 0
    diffs = []
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        x, y = _num(x), _num(y)
        xn = isinstance(x, (float, complex)) and x != x
        yn = isinstance(y, (float, complex)) and y != y
        if xn and yn:
            diffs_ok = False
        elif xn or yn:
            changed += 1
            nanmis += 1
            diffs_ok = False
        else:
            diffs_ok = True
            if x != y:
                changed += 1
        if diffs_ok:
            diffs.append(abs(x - y))
    size = a.size
    return {"size": size, "changed": changed, "fraction": changed / size,
            "nan_mismatch": nanmis, "max": max(diffs) if diffs else 0,
            "mean": (sum(diffs) / len(diffs)) if diffs else 0.0}


def check_against_reference(a, b):
    got = array_stats(a, b, segments=False)
    ref = reference(a, b)
    for k in ("size", "changed", "nan_mismatch"):
        assert got[k] == ref[k], (k, got, ref)
    assert got["fraction"] == pytest.approx(ref["fraction"])
    if a.dtype.kind in "iub" and b.dtype.kind in "iub" and \
            np.result_type(a.dtype, b.dtype).kind in "iu":
        assert isinstance(got["max_abs_diff"], int) and got["max_abs_diff"] == ref["max"]
    else:
        assert got["max_abs_diff"] == pytest.approx(float(ref["max"]), rel=1e-12)
    assert got["mean_abs_diff"] == pytest.approx(float(ref["mean"]), rel=1e-9, abs=1e-300)
    return got


DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", ">f8", ">i4", "<u2", "complex64", "complex128"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_kind_matches_reference(dtype):
    rng = np.random.default_rng(zlib.crc32(dtype.encode()))  # seeded, stable
    dt = np.dtype(dtype)
    shape = (3, 5, 7)
    if dt.kind == "b":
        a = rng.random(shape) < 0.5
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="),
                         endpoint=True).astype(dt)
    elif dt.kind == "c":
        a = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dt)
    else:
        a = rng.normal(size=shape).astype(dt)
    b = a.copy()
    flat = b.reshape(-1)
    idx = rng.choice(flat.size, size=11, replace=False)
    if dt.kind == "b":
        flat[idx] = ~flat[idx]
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat[idx] = rng.integers(info.min, info.max, size=idx.size,
                                 dtype=dt.newbyteorder("="), endpoint=True)
    else:
        flat[idx] = flat[idx] * 3 + 1
    if dt.kind in "fc":
        a.reshape(-1)[[0, 1]] = np.nan   # NaN facing NaN (equal) and NaN facing a number
        flat[0] = np.nan
    got = check_against_reference(a, b)
    assert got["changed"] >= 1
    res = diff_payloads(a, b)
    assert res.kind == "ndarray" and not res.same
    assert res.dtype_a == res.dtype_b == str(dt)
    assert [s["segment"] for s in res.values["segments"]] == [0, 1, 2]
    assert diff_payloads(a, a.copy()).same


def test_integer_extremes_are_exact():
    for dt in ("int64", "uint64"):
        info = np.iinfo(dt)
        a = np.array([info.min, info.max, 0, info.max], dtype=dt)
        b = np.array([info.max, info.min, 0, info.max - 1], dtype=dt)
        got = check_against_reference(a, b)
        assert got["max_abs_diff"] == int(info.max) - int(info.min)  # 2**64 - 1
        assert got["changed"] == 3


def test_mixed_dtypes_and_zero_d():
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    b = a.astype(np.float32)
    b[1, 2] = 7.5
    got = check_against_reference(a, b)
    assert got["changed"] == 1 and got["max_abs_diff"] == pytest.approx(2.5)
    res = diff_payloads(a, a.astype(np.float32))
    assert not res.same and res.values["changed"] == 0   # values equal, dtype differs
    assert "dtype: A int16 != B float32" in res.format()
    check_against_reference(np.array(3.0), np.array(np.nan))
    check_against_reference(np.array(True), np.array(False))
    check_against_reference(np.array([1, 2], np.int64), np.array([1, 3], np.uint64))


def test_shape_mismatch_and_mixed_kinds():
    res = diff_payloads(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not res.same and res.values is None
    assert res.shape_a == [2, 3] and res.shape_b == [3, 2]
    assert "values not compared" in res.format()
    res = diff_payloads(np.zeros(3), "text\n")
    assert res.kind == "mixed" and not res.same
    assert res.to_dict()["kind_b"] == "text"
    with pytest.raises(InvalidInputError):
        array_stats(np.zeros(2), np.zeros(3))


def test_segments_3d_and_4d():
    a = np.zeros((4, 3, 5), np.float32)
    b = a.copy()
    b[2, 1, 1] = 5
    b[2, 0, 0] = -1
    res = diff_payloads(a, b)
    v = res.values
    assert v["segment_axis"] == 0 and len(v["segments"]) == 4
    seg2 = v["segments"][2]
    assert seg2["changed"] == 2 and seg2["size"] == 15 and seg2["max_abs_diff"] == 5
    assert seg2["mean_abs_diff"] == pytest.approx(6 / 15)
    assert all(s["changed"] == 0 for i, s in enumerate(v["segments"]) if i != 2)
    # 4-D: (gain ranges, segments, rows, cols); segments on axis 1
    a4 = np.zeros((3, 2, 4, 4), np.uint16)
    b4 = a4.copy()
    b4[0, 1, 0, 0] = 9
    b4[2, 1, 3, 3] = 1
    v4 = array_stats(a4, b4)
    assert v4["segment_axis"] == 1 and len(v4["segments"]) == 2
    assert v4["segments"][1]["changed"] == 2 and v4["segments"][1]["size"] == 48
    assert v4["segments"][1]["max_abs_diff"] == 9 and v4["segments"][0]["changed"] == 0
    assert "segments" not in array_stats(np.zeros((2, 2)), np.ones((2, 2)))
    txt = res.format()
    assert "segment 2: 2 of 15 differ" in txt


def test_real_geometry_files(geometry_files, tmp_path):
    p = tmp_path / "jungfrau-0001.h5"
    texts = [f.read_text() for f in geometry_files]
    assert len(texts) >= 2
    jf = next(t for f, t in zip(geometry_files, texts) if "jungfrau" in f.name)
    changed = jf.replace("-56807.1", "-56807.4", 1) + "# one more line\n"
    with DCStore(p, mode="a") as cs:
        cs.add_constants("geometry", jf, "2024-01-01")
        cs.add_constants("geometry", changed, "2024-01-01")
        cs.add_constants("geometry", texts[0] if texts[0] != jf else texts[1], "2024-01-01")
        res = diff_store_versions(cs, "geometry", 1, 2)
        assert res.kind == "text" and not res.same
        assert res.text["added"] == 2 and res.text["removed"] == 1
        assert any(ln.startswith("-") and "-56807.1" in ln for ln in res.text["diff"])
        assert any(ln.startswith("+") and "-56807.4" in ln for ln in res.text["diff"])
        assert "+# one more line" in res.text["diff"]
        other = diff_store_versions(cs, "geometry", "v0001", "3")
        assert other.text["added"] > 10 and other.text["removed"] > 10
        assert diff_store_versions(cs, "geometry", 2, 2).same
    r = dcs("diff", p, "--ctype", "geometry", "--versions", 1, 2)
    assert r.returncode == 1, r.stderr
    assert "text differs: +2 -1 lines" in r.stdout and "+# one more line" in r.stdout
    r = dcs("diff", p, "--ctype", "geometry", "--versions", 1, 2, "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["same"] is False and doc["text"]["added"] == 2
    r = dcs("diff", p, "--ctype", "geometry", "--versions", 2, 2, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["same"] is True


def test_diff_versions_across_stores_and_ranges(tmp_path):
    a, b = tmp_path / "cspad-0001.h5", tmp_path / "b" / "cspad-0001.h5"
    x = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    for p, arr in ((a, x), (b, x + 0.25)):
        with DCStore(p, mode="a", detname="cspad-0001") as cs:
            cs.add_constants("pedestals", arr, "2024-01-01", "2024-02-01")
            cs.add_constants("pedestals", arr, "2024-02-01")
    with DCStore(a) as sa, DCStore(b) as sb:
        ra = sa["pedestals"].rangeobj("2024-01-01")
        rb = sb["pedestals"].rangeobj("2024-01-01")
        res = diff_versions(ra.versobj(1), rb.versobj(1))
        assert res.values["changed"] == 60
        assert res.values["max_abs_diff"] == pytest.approx(0.25)
        assert res.values["mean_abs_diff"] == pytest.approx(0.25)
        # two ranges both have v0001: without a range the choice is ambiguous
        with pytest.raises(InvalidInputError, match="give the range"):
            diff_store_versions(sa, "pedestals", 1, 1)
        with pytest.raises(VersionNotFoundError):
            diff_store_versions(sa, "pedestals", 1, 2)
        assert diff_store_versions(sa, "pedestals", 1, 1, "2024-02-01").same


def test_cli_versions_form_and_store_form_coexist(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    q = tmp_path / "q" / "cspad-0001.h5"
    x = np.zeros((2, 3, 4), np.int32)
    y = x.copy()
    y[1, 2, 3] = -7
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", x, "2024-01-01")
        cs.add_constants("pedestals", y, "2024-01-01")
    q.parent.mkdir()
    shutil.copy(p, q)
    r = dcs("diff", p, "--ctype", "pedestals", "--range", "20240101T000000Z_end",
            "--versions", 1, 2)
    assert r.returncode == 1, r.stderr
    assert "1 of 24 differ" in r.stdout and "max |A-B| 7" in r.stdout
    assert "segment 1: 1 of 12 differ" in r.stdout
    doc = json.loads(dcs("diff", p, "--ctype", "pedestals", "--versions", 1, 2,
                         "--json").stdout)
    assert doc["values"]["changed"] == 1 and doc["values"]["max_abs_diff"] == 7
    assert math.isclose(doc["values"]["fraction"], 1 / 24)
    assert doc["values"]["segments"][1]["changed"] == 1
    # the two-store form still works
    r = dcs("diff", p, q, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["same"] is True
    # usage errors: exit 2, one line, no traceback
    for args in ((p, q, "--ctype", "pedestals", "--versions", 1, 2),
                 (p, "--versions", 1, 2),
                 (p, "--ctype", "a", "--ctype", "b", "--versions", 1, 2),
                 (p,),
                 (p, q, "--range", "2024-01-01")):
        r = dcs("diff", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
    r = dcs("diff", p, "--ctype", "pedestals", "--versions", 1, 9)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("dcs: error:") and len(r.stderr.strip().splitlines()) == 1
