"""pscalib.store.fastread: the low-level reads of the hot paths give what h5py gives."""
import h5py
import numpy as np
import pytest

from pscalib import errors as E
from pscalib.store import fastread as fr
from pscalib.store import layout as L
from pscalib.store.dcstore import DCStore


@pytest.fixture
def h5file(tmp_path):
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f.attrs["i64"] = np.int64(2**62)
        f.attrs["i32"] = np.int32(-5)
        f.attrs["vstr"] = "pscalib-dcs"
        f.attrs["fixed"] = np.bytes_("fixed")
        f.attrs["ints"] = np.arange(1000)  # non-scalar: must not be read into one element
        f.attrs["strs"] = ["a", "b"]
        f.attrs["one"] = np.array([7])
        f.attrs["flt"] = 1.5
        f["scalar"] = np.float32(3.5)
        f["bools"] = np.array([True, False, True])
        f["cube"] = np.arange(24, dtype=">i2").reshape(2, 3, 4)
        f["text"] = "hello"
    return p


def test_root_attr_matches_h5py(h5file):
    with fr.open_readonly(h5file) as f:
        for name in ("i64", "i32", "vstr", "fixed", "ints", "one", "flt"):
            got, want = fr.root_attr(f, name), f.attrs[name]
            if isinstance(want, bytes):
                want = want.decode()
            assert np.array_equal(np.asarray(got), np.asarray(want)), name
        assert fr.root_attr(f, "i64") == 2**62 and isinstance(fr.root_attr(f, "vstr"), str)
        assert fr.root_attr(f, "missing") is None
        assert len(fr.root_attr(f, "strs")) == 2  # non-scalar strings: raw array, no overflow


def test_read_dataset_matches_h5py(h5file):
    with fr.open_readonly(h5file) as f:
        for name in ("scalar", "bools", "cube"):
            got, want = fr.read_dataset(f, name), f[name][()]
            assert got.dtype == want.dtype and got.shape == np.shape(want)
            assert np.array_equal(got, want)
        assert fr.is_string_dataset(h5py.h5d.open(f.id, b"text"))
        assert not fr.is_string_dataset(h5py.h5d.open(f.id, b"cube"))
        with pytest.raises(KeyError):
            fr.read_dataset(f, "nope")


def test_open_readonly_errors_like_h5py(tmp_path):
    with pytest.raises(FileNotFoundError):
        fr.open_readonly(tmp_path / "missing.h5")
    with pytest.raises(IsADirectoryError):
        fr.open_readonly(tmp_path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(OSError):
        fr.open_readonly(junk)


def test_store_with_array_root_attributes_is_refused(tmp_path):
    """Array-valued format attributes (another program's file) give a pscalib error."""
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", np.zeros((2, 2)), "2024-01-01")
    with h5py.File(p, "r+") as f:
        del f.attrs[L.A_FORMAT_VERSION]
        f.attrs[L.A_FORMAT_VERSION] = np.arange(100)
    with pytest.raises(E.CorruptStoreError):
        DCStore(p)
