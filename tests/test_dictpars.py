"""dictpars: typed HDF5 attributes that round-trip with their type; bad values rejected early."""
import h5py
import numpy as np
import pytest

from conftest import file_digest
from pscalib import DCStore
from pscalib.errors import InvalidNameError, InvalidParameterError, NotFoundError

GOOD = {
    "s": "hello",
    "s_empty": "",
    "s_unicode": "Ünïcødé ✓ 日本",
    "s_multiline": "a\n\tb\n",
    "i": 42,
    "i_neg": -(2**63),
    "i_big": 2**63 - 1,
    "f": 3.25,
    "f_nan": float("nan"),
    "f_inf": -float("inf"),
    "b_true": True,
    "b_false": False,
    "np_i32": np.int32(-7),
    "np_u16": np.uint16(65535),
    "np_f32": np.float32(1.5),
    "np_bool": np.bool_(True),
    "l_int": [1, 2, 3],
    "l_float": [1.5, 2.0],
    "l_str": ["a", "bb", "ü"],
    "l_bool": [True, False, True],
    "t_int": (4, 5),
    "a_u8": np.array([1, 2, 255], dtype=np.uint8),
    "a_f4": np.array([0.5, 1.5], dtype=np.float32),
    "a_be": np.array([1, 2], dtype=">i4"),
    "a_str": np.array(["x", "yz"]),
    "a_bool": np.array([True, False]),
    "key with blanks, (punct.)": 1,
}

EXPECTED_TYPES = {
    "s": str, "s_empty": str, "s_unicode": str, "s_multiline": str, "i": int, "i_neg": int,
    "i_big": int, "f": float, "f_nan": float, "f_inf": float, "b_true": bool,
    "b_false": bool, "np_i32": int, "np_u16": int, "np_f32": float, "np_bool": bool,
}
EXPECTED_ARRAYS = {  # key: dtype kind, itemsize (None: str array)
    "l_int": np.dtype(np.int64), "l_float": np.dtype(np.float64), "l_bool": np.dtype(bool),
    "t_int": np.dtype(np.int64), "a_u8": np.dtype(np.uint8), "a_f4": np.dtype(np.float32),
    "a_be": np.dtype(">i4"), "a_bool": np.dtype(bool),
}


def _check_values(got):
    assert set(got) == set(GOOD)
    for k, t in EXPECTED_TYPES.items():
        assert type(got[k]) is t, (k, type(got[k]))
        want = GOOD[k]
        if isinstance(want, float) and np.isnan(want):
            assert np.isnan(got[k])
        else:
            assert got[k] == want, k
    for k, dt in EXPECTED_ARRAYS.items():
        a = got[k]
        assert isinstance(a, np.ndarray) and a.dtype == dt and a.ndim == 1, (k, a)
        assert list(a) == list(GOOD[k])
    for k in ("l_str", "a_str"):
        a = got[k]
        assert isinstance(a, np.ndarray) and a.dtype.kind == "U"
        assert list(a) == list(GOOD[k])


@pytest.fixture
def path(tmp_path):
    return tmp_path / "cspad-0001.h5"


def test_round_trip_at_every_level(path):
    with DCStore(path, mode="a") as cs:
        v = cs.add_constants("pedestals", np.ones(2), 0, dictpars=GOOD)
        cs.set_pars(GOOD)
        cs["pedestals"].set_pars(GOOD)
        v.rangeobj().set_pars(GOOD)
        _check_values(v.dictpars())  # before reopen (transaction result)
    with DCStore(path) as cs:
        r = cs["pedestals"].rangeobj(0)
        for obj in (cs, cs["pedestals"], r, r.versobj(1)):
            _check_values(obj.dictpars())
        assert cs.par("i") == 42 and r.versobj(1).par("l_str")[1] == "bb"


def test_replace_and_delete(path):
    with DCStore(path, mode="a") as cs:
        cs.set_par("x", 1)
        cs.set_par("x", "one")  # replacing changes the type too
        assert cs.par("x") == "one"
        cs.add_par("y", [1.0, 2.0])
        cs.del_par("x")
        with pytest.raises(NotFoundError):
            cs.par("x")
        with pytest.raises(NotFoundError):
            cs.del_par("x")
    with DCStore(path) as cs:
        assert list(cs.dictpars()) == ["y"]
        assert cs.dictpars()["y"].dtype == np.float64


def test_stored_as_plain_typed_attributes(path):
    with DCStore(path, mode="a") as cs:
        cs.set_pars({"s": "txt", "i": 3, "f": 0.5, "b": True, "ai": [1, 2], "as": ["p", "q"]})
    with h5py.File(path, "r") as f:
        a = f["_dictpars"].attrs
        assert h5py.check_string_dtype(a.get_id("s").dtype).encoding == "utf-8"
        assert a.get_id("i").dtype == np.dtype("<i8")
        assert a.get_id("f").dtype == np.dtype("<f8")
        assert a.get_id("b").dtype == np.dtype(bool)  # HDF5 enum FALSE/TRUE
        assert a.get_id("ai").dtype == np.dtype("<i8") and a.get_id("ai").shape == (2,)
        assert a.get_id("as").shape == (2,)


BAD = [
    None, {"a": 1}, {}, [1, [2]], [[1, 2], [3, 4]], [1, "a"], [1, True], [True, 1.0],
    [None], [], (), np.array([]), np.zeros((2, 2)), np.array(5), 1 + 2j, [1j],
    b"bytes", np.array([b"a"]), object(), {1, 2}, 2**64, -(2**63) - 1, [2**64],
    np.array([1 + 1j]), np.array([None, 1], dtype=object),
    np.float128(1.0) if hasattr(np, "float128") else object(),
    "nul\x00inside", ["ok", "nul\x00"], "\ud800",
]


@pytest.mark.parametrize("value", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_unsupported_values_rejected_before_writing(path, value):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(2), 0)
    digest = file_digest(path)
    with DCStore(path, mode="a") as cs:
        v = cs["pedestals"].rangeobj(0).versobj(1)
        with pytest.raises(InvalidParameterError):
            cs.set_par("k", value)
        with pytest.raises(InvalidParameterError):
            v.set_pars({"good": 1, "k": value})  # the good one is not written either
        with pytest.raises(InvalidParameterError):
            cs.add_constants("pedestals", np.ones(3), 5, dictpars={"good": 1, "k": value})
    assert file_digest(path) == digest


def test_error_message_names_key_and_type(path):
    with DCStore(path, mode="a") as cs:
        with pytest.raises(InvalidParameterError, match=r"'cfg'.*dict.*str, int, float, bool"):
            cs.set_par("cfg", {"a": 1})
        with pytest.raises(InvalidParameterError, match="None"):
            cs.set_par("n", [1, None])
        with pytest.raises(InvalidParameterError, match="must be a dict"):
            cs.set_pars([("a", 1)])


@pytest.mark.parametrize("key", ["", "a/b", ".", "..", "tab\there", "x" * 256, 5, None])
def test_bad_keys(path, key):
    with DCStore(path, mode="a") as cs:
        digest = file_digest(path)
        with pytest.raises(InvalidNameError):
            cs.set_par(key, 1)
    assert file_digest(path) == digest
