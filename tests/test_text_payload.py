"""Text payloads (geometry and the like): byte-exact round trip, rejected encodings."""
import h5py
import numpy as np
import pytest

from conftest import file_digest
from pscalib import DCStore
from pscalib.errors import InvalidPayloadError
from pscalib.store.payload import checksum


@pytest.fixture
def path(tmp_path):
    return tmp_path / "epix10ka-0001.h5"


def test_real_geometry_files_round_trip_byte_exact(path, geometry_files):
    assert geometry_files, "no geometry files found"
    raw = [p.read_bytes() for p in geometry_files]
    # the real files exercise what matters: a leading blank line, tabs, a trailing newline
    assert any(b.startswith(b"\n") for b in raw)
    assert any(b"\t" in b for b in raw)
    assert all(b.endswith(b"\n") for b in raw)
    with DCStore(path, mode="a") as cs:
        for i, b in enumerate(raw):
            cs.add_constants("geometry", b.decode("utf-8"), i * 100, i * 100 + 100)
        cs.add_constants("geometry", raw[0], 1000)  # bytes are accepted as UTF-8 text
    with DCStore(path) as cs:
        for i, b in enumerate(raw):
            got = cs.geometry(i * 100 + 50)
            assert isinstance(got, str)
            assert got.encode("utf-8") == b, geometry_files[i].name
            info = cs["geometry"].rangeobj(i * 100).versobj().info()
            assert info.kind == "text" and info.nbytes == len(b)
            assert info.sha256 == checksum(b.decode("utf-8"))
        assert cs.geometry(2000).encode("utf-8") == raw[0]


SYNTHETIC = {
    "unicode": "Ünïcødé ✓ 日本語 🙂\n",
    "crlf": "line1\r\nline2\r\n",
    "lone_cr": "a\rb\r",
    "no_trailing_newline": "last line without newline",
    "only_newlines": "\n\n\n",
    "blank_lines_and_tabs": "\n\n\ta\t\tb  \n\n  trailing spaces   \n\t\n",
    "single_char": "x",
    "long": ("0123456789\t" * 20 + "\n") * 2000,
    "control_chars": "bell\x07 esc\x1b del\x7f\n",
}


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_text_round_trip(path, name):
    text = SYNTHETIC[name]
    with DCStore(path, mode="a") as cs:
        cs.add_constants("geometry", text, 0)
    with DCStore(path) as cs:
        got = cs.geometry(1)
        assert got == text and got.encode("utf-8") == text.encode("utf-8")
    with h5py.File(path, "r") as f:  # stored as a scalar variable-length UTF-8 string
        ds = f["geometry/19700101T000000Z_end/v0001/data"]
        assert ds.shape == ()
        assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8"
        assert h5py.check_string_dtype(ds.dtype).length is None
        assert ds[()] == text.encode("utf-8")


def test_empty_text_round_trip(path):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("geometry", "", 0)
    with DCStore(path) as cs:
        assert cs.geometry(0) == ""
        assert cs["geometry"].rangeobj(0).versobj().info().nbytes == 0


@pytest.mark.parametrize("bad", [
    "nul\x00inside", "\x00", b"abc\x00def", b"\xff\xfe latin", b"caf\xe9\n", "\ud800 lone",
])
def test_nul_and_non_utf8_rejected(path, bad):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("geometry", "ok\n", 0)
    digest = file_digest(path)
    with DCStore(path, mode="a") as cs:
        with pytest.raises(InvalidPayloadError) as ei:
            cs.add_constants("geometry", bad, 0)
        msg = str(ei.value)
        assert "NUL" in msg or "UTF-8" in msg or "surrogate" in msg
    assert file_digest(path) == digest


def test_text_and_arrays_mix_in_one_ctype(path):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("geometry", "text v1\n", 0)
        cs.add_constants("geometry", np.arange(3), 0)
    with DCStore(path) as cs:
        r = cs["geometry"].rangeobj(0)
        assert r.versobj(1).calib() == "text v1\n" and r.versobj(1).kind() == "text"
        assert list(r.versobj(2).calib()) == [0, 1, 2] and r.versobj(2).kind() == "ndarray"
