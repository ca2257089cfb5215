"""Issue 18: ``get(..., out=arr)`` reads an array version into the caller's array."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import pscalib
from pscalib import DCStore
from pscalib.errors import OutArrayError
from pscalib.remote import RemoteStore
from pscalib.store.layout import h5path

from conftest import LEGACY_DIR

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4), (1, 2, 3, 4)]


def _array(dtype: str, shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if dtype.startswith("complex"):
        return (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(dtype).reshape(shape)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True).reshape(shape)
    return rng.normal(size=n).astype(dtype).reshape(shape)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "cspad-0001.h5"
    with DCStore(path, mode="x") as cs, cs.transaction():
        for dt in DTYPES:
            for j, shape in enumerate(SHAPES):
                cs.add_constants(f"c_{dt}", _array(dt, shape, j), f"2024-01-{j + 1:02d}",
                                 f"2024-01-{j + 2:02d}")
        cs.add_constants("geometry", "geo\n", "2024-01-01")
        cs.add_constants("bigendian", np.arange(12.0).astype(">f8").reshape(3, 4),
                         "2024-01-01")
    return path


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_reads_into_out(store, dtype):
    with DCStore(store) as cs:
        for j, shape in enumerate(SHAPES):
            t = f"2024-01-{j + 1:02d}T12"
            want = cs.get(f"c_{dtype}", t)
            out = np.full(shape, 1, dtype=dtype)
            got = cs.get(f"c_{dtype}", t, out=out)
            assert got is out
            assert out.dtype == want.dtype and out.shape == want.shape
            assert out.tobytes() == want.tobytes() == _array(dtype, shape, j).tobytes()
            ver = cs.version_at(f"c_{dtype}", t)
            out2 = np.zeros(shape, dtype)
            assert ver.data(out=out2) is out2 and out2.tobytes() == want.tobytes()
            out3 = np.zeros(shape, dtype)
            got3, info = cs.get(f"c_{dtype}", t, with_info=True, out=out3)
            assert got3 is out3 and info["version"] == 1
            assert out3.tobytes() == want.tobytes()


def test_other_byte_order_is_converted_into_out(store):
    with DCStore(store) as cs:
        want = cs.get("bigendian", "2024-02-01")
        for dt in ("<f8", ">f8"):
            out = np.zeros((3, 4), dt)
            assert cs.get("bigendian", "2024-02-01", out=out) is out
            assert np.array_equal(out, want) and np.array_equal(out, np.arange(12.0).reshape(3, 4))


def test_out_is_read_in_place_over_repeated_gets(store):
    """The same buffer serves many gets (the point of out=): no stale or partial data."""
    with DCStore(store) as cs:
        out = np.empty((2, 3, 4), "float64")
        for _ in range(3):
            out.fill(np.nan)
            cs.get("c_float64", "2024-01-05T12", out=out)
            assert np.array_equal(out, _array("float64", (2, 3, 4), 4))


@pytest.mark.parametrize("bad,words", [
    ([[0.0] * 5] * 3, ["numpy array", "got list", "(3, 5)", "float64"]),
    (np.zeros((5, 3)), ["shape (5, 3)", "of shape (3, 5)"]),
    (np.zeros((3, 5), np.float32), ["dtype float32", "dtype float64"]),
    (np.zeros((3, 10))[:, ::2], ["not C-contiguous"]),
    (np.zeros((5, 3)).T, ["not C-contiguous"]),
])
def test_wrong_out_arrays_are_refused_clearly(store, bad, words):
    with DCStore(store) as cs:
        for call in (lambda: cs.get("c_float64", "2024-01-04T12", out=bad),
                     lambda: cs.version_at("c_float64", "2024-01-04T12").data(out=bad)):
            with pytest.raises(OutArrayError) as err:
                call()
            for w in words:
                assert w in str(err.value), str(err.value)
            assert "version 1 of c_float64/20240104T000000Z_20240105T000000Z" in str(err.value)


def test_read_only_and_text_are_refused(store):
    ro = np.zeros((3, 5))
    ro.flags.writeable = False
    with DCStore(store) as cs:
        with pytest.raises(OutArrayError, match="read-only"):
            cs.get("c_float64", "2024-01-04T12", out=ro)
        assert not ro.any()
        with pytest.raises(OutArrayError, match="is text"):
            cs.get("geometry", "2024-02-01", out=np.zeros(4, "u1"))
        assert isinstance(pscalib.errors.OutArrayError("x"), pscalib.errors.InvalidInputError)


def test_inside_a_transaction_reads_through_hdf5(store, tmp_path):
    path = tmp_path / "cspad-0001.h5"
    path.write_bytes(store.read_bytes())
    with DCStore(path, mode="a") as cs, cs.transaction():
        cs.add_constants("c_int32", np.arange(15, dtype=np.int32).reshape(3, 5), "2024-03-01")
        out = np.zeros((3, 5), np.int32)
        cs.get("c_int32", "2024-03-02", out=out)
        assert np.array_equal(out, np.arange(15).reshape(3, 5))


def test_chunked_compressed_legacy_payloads_fall_back_to_hdf5(tmp_path):
    files = sorted(LEGACY_DIR.glob("epix100a-*.h5")) if LEGACY_DIR.is_dir() else []
    if not files:
        pytest.skip("needs the shared legacy DCS file")
    with DCStore(files[0]) as cs:
        n = 0
        for ctype in cs.ctypes():
            for r in cs.ctypeobj(ctype).ranges():
                rg = cs.ctypeobj(ctype).rangeobj(r)
                for v in rg.versions():
                    ver = rg.versobj(v)
                    want = ver.data()
                    if isinstance(want, str):
                        with pytest.raises(OutArrayError, match="is text"):
                            ver.data(out=np.zeros(1))
                        continue
                    out = np.empty(want.shape, want.dtype)
                    assert ver.data(out=out) is out and out.tobytes() == want.tobytes()
                    n += 1
        assert n > 0


def test_chunked_and_compressed_datasets_are_read_into_out(tmp_path):
    """A native-format file written by another tool may store a payload chunked and
    compressed: HDF5 fills the caller's buffer (the preadv path is for contiguous data)."""
    path = tmp_path / "cspad-0001.h5"
    arr = _array("float32", (16, 16), 3)
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", arr, "2024-01-01")
        key = cs.version_at("pedestals", "2024-02-01")._key
    with h5py.File(path, "r+") as f:
        dpath = h5path(key) + "/data"
        del f[dpath]
        f.create_dataset(dpath, data=arr, chunks=(4, 4), compression="gzip")
    with DCStore(path) as cs:
        out = np.zeros((16, 16), np.float32)
        assert cs.get("pedestals", "2024-02-01", out=out) is out
        assert np.array_equal(out, arr)


def test_remote_get_fills_out(tmp_path):
    import test_remote as tr
    calib = tr._small_calib(tmp_path)
    srv = tr.Served(calib)
    try:
        cs = RemoteStore(srv.base, "cspad-0001", cache_dir=tmp_path / "c")
        out = np.zeros((4, 4))
        assert cs.get("pedestals", "2024-02-01", out=out) is out
        assert np.array_equal(out, np.arange(16.0).reshape(4, 4))
        with pytest.raises(OutArrayError, match="shape"):
            cs.get("pedestals", "2024-02-01", out=np.zeros(16))
        with pytest.raises(OutArrayError, match="is text"):
            cs.get("geometry", "2024-02-01", out=np.zeros(16))
    finally:
        srv.stop()


def test_repeated_reads_into_out_stay_exact_and_checked(tmp_path):
    """The second read of a version goes straight to its bytes (their place is kept per
    open handle); it must still check ``out``, read what the version holds, and follow a
    newer file after refresh()."""
    path = tmp_path / "jungfrau-0001.h5"
    a, b = _array("float32", (3, 4, 5), 1), _array("float32", (3, 4, 5), 2)
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pixel_gain", a, "2024-01-01")
    out = np.empty_like(a)
    with DCStore(path) as reader:
        for _ in range(3):
            out.fill(0)
            assert reader.get("pixel_gain", "2024-02-01", out=out) is out
            np.testing.assert_array_equal(out, a)
        with pytest.raises(OutArrayError, match="shape"):
            reader.get("pixel_gain", "2024-02-01", out=np.empty((3, 4, 6), np.float32))
        with pytest.raises(OutArrayError, match="read-only"):
            ro = np.empty_like(a)
            ro.flags.writeable = False
            reader.get("pixel_gain", "2024-02-01", out=ro)
        swapped = np.empty(a.shape, a.dtype.newbyteorder())  # converted by HDF5
        reader.get("pixel_gain", "2024-02-01", out=swapped)
        np.testing.assert_array_equal(swapped, a)
        with DCStore(path, mode="a") as w:  # another handle commits a new default
            w.add_constants("pixel_gain", b, "2024-01-01")
        reader.get("pixel_gain", "2024-02-01", out=out)
        np.testing.assert_array_equal(out, a)  # the snapshot it has open
        assert reader.refresh()
        reader.get("pixel_gain", "2024-02-01", out=out)
        np.testing.assert_array_equal(out, b)
