"""Hostile input, files: damaged or foreign files, read-only and full file systems, permissions.

Every call must raise a specific pscalib error and leave every file byte-identical
(helpers in tests/hostile.py; real files and real processes only).
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from pscalib import DCStore, errors as E
from pscalib.store import layout as L

from hostile import (INSIDE, NOBODY, T0, check_rejected, make_store, on_store, snapshot,
                     spinning_first_heap)
from hostile import store_fixture, template_fixture  # noqa: F401 (fixtures)


# ----------------------------------------------------------------------------- files
def _expect_bad_file(path: Path, expected=E.StoreFormatError):
    """Every way of opening ``path`` fails with ``expected`` and leaves it unchanged."""
    folder = path.parent
    for mode in ("r", "a"):
        check_rejected(folder, lambda: DCStore(path, mode=mode), expected)
    check_rejected(folder, lambda: DCStore(path, mode="x"), E.StoreExistsError)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    p.write_bytes(b"")
    _expect_bad_file(p)


@pytest.mark.parametrize("keep", [0.01, 0.3, 0.6, 0.95])
def test_truncated_store(tmp_path, template, keep):
    data = template.read_bytes()
    bad = tmp_path / "cspad-0001.h5"
    bad.write_bytes(data[:max(1, int(len(data) * keep))])
    _expect_bad_file(bad)


@pytest.mark.parametrize("size", [1, 8, 512, 4096, 100_000])
def test_random_bytes(tmp_path, size):
    p = tmp_path / "cspad-0001.h5"
    p.write_bytes(np.random.default_rng(size).bytes(size))
    _expect_bad_file(p)


def test_text_file(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    p.write_text("# not a store\nQUAD 0 1\n")
    _expect_bad_file(p)


def test_hdf5_that_is_not_a_store(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    with h5py.File(p, "x") as f:
        f["data"] = np.arange(10)
        f.attrs["comment"] = "some other HDF5 file"
    _expect_bad_file(p)


def _edit_copy(tmp_path: Path, template: Path, edit) -> Path:
    """A store whose file was changed by ``edit(h5py.File)`` (simulating other software)."""
    p = tmp_path / "cspad-0001.h5"
    shutil.copyfile(template, p)
    with h5py.File(p, "r+") as f:
        edit(f)
    return p


def test_newer_format_version(tmp_path, template):
    p = _edit_copy(tmp_path, template, lambda f: f.attrs.modify(L.A_FORMAT_VERSION,
                                                      np.int64(L.FORMAT_VERSION + 1)))
    _expect_bad_file(p, E.UnsupportedFormatVersionError)


@pytest.mark.parametrize("name,edit,expected", [
    ("format name", lambda f: f.attrs.modify(L.A_FORMAT, "something-else"),
     E.StoreFormatError),
    ("no version", lambda f: f.attrs.__delitem__(L.A_FORMAT_VERSION), E.CorruptStoreError),
    ("text version", lambda f: (f.attrs.__delitem__(L.A_FORMAT_VERSION),
                                f.attrs.create(L.A_FORMAT_VERSION, "one")), E.CorruptStoreError),
    ("version 0", lambda f: f.attrs.modify(L.A_FORMAT_VERSION, np.int64(0)),
     E.CorruptStoreError),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_root_attributes(tmp_path, template, name, edit, expected):
    _expect_bad_file(_edit_copy(tmp_path, template, edit), expected)


def _drop_range_index(f):
    del f["pedestals"][L.N_RANGE_INDEX]


def _drop_payload(f):
    rg = [k for k in f["pedestals"] if not k.startswith("_")][0]
    for v in list(f["pedestals"][rg]):
        if v.startswith("v"):
            del f["pedestals"][rg][v][L.N_DATA]


def _bad_index_dtype(f):
    del f["pedestals"][L.N_RANGE_INDEX]
    f["pedestals"][L.N_RANGE_INDEX] = np.zeros(3)


def _index_points_nowhere(f):
    ds = f["pedestals"][L.N_RANGE_INDEX]
    row = ds[0]
    row["tsbegin"] = 12345
    ds[0] = row


@pytest.mark.parametrize("edit", [_drop_range_index, _drop_payload, _bad_index_dtype,
                                  _index_points_nowhere], ids=lambda f: f.__name__)
def test_inconsistent_store_reads(tmp_path, template, edit):
    p = _edit_copy(tmp_path, template, edit)
    before = snapshot(tmp_path)
    with DCStore(p) as cs:  # opening works: damage is found when the objects are read
        with pytest.raises(E.StoreFormatError):
            for t in (INSIDE, "2024-07-01"):
                cs.get("pedestals", t)
            for rng in cs["pedestals"].ranges():
                for ver in rng.versions():
                    ver.calib()
    assert snapshot(tmp_path) == before

# ----------------------------------------------------------------------------- filesystems


def test_array_too_big_for_small_filesystem(small_fs):
    p = make_store(small_fs / "cspad-0001.h5")
    big = np.ones(3 * 2**20)  # 24 MiB > the 20 MiB filesystem
    err = on_store(p, lambda cs: cs.add_constants("pedestals", big, T0), E.StoreIOError)
    assert "nothing was changed" in str(err)
    with DCStore(p) as cs:
        assert cs.get("pedestals", INSIDE).shape == (2, 3)


def test_read_only_filesystem(small_fs):
    p = make_store(small_fs / "cspad-0001.h5")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    before = snapshot(small_fs)
    for fn in (lambda: DCStore(p, mode="a").add_constants("pedestals", np.ones(3), T0),
               lambda: DCStore(small_fs / "cspad-0002.h5", mode="a"),
               lambda: DCStore(small_fs / "cspad-0003.h5", mode="x")):
        with pytest.raises(E.StorePermissionError):
            fn()
    with DCStore(p) as cs:  # reading still works
        assert cs.geometry(INSIDE).startswith("# geometry")
    assert snapshot(small_fs) == before


def _run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


_CHILD_PROLOGUE = """
    import os, sys, resource, signal
    import numpy as np, numpy.ma
    from pscalib import DCStore
    from pscalib.errors import PscalibError
    def expect(fn, name):
        try:
            fn()
        except PscalibError as exc:
            print(type(exc).__name__, exc, sep=": ")
            if type(exc).__name__ != name and name not in [c.__name__ for c in type(exc).__mro__]:
                sys.exit(3)
            return
        print("no error"); sys.exit(4)
"""


@pytest.fixture
def shared_dir():
    """A directory an unprivileged uid can reach (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="pscalib-perm-"))
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


def _drop_privileges_code() -> str:
    if os.geteuid() != 0:
        return ""
    return f"os.setgid({NOBODY}); os.setuid({NOBODY})"


def test_read_only_file_unprivileged(shared_dir):
    """A store with mode 0444 in a writable directory: the rename trick must not bypass it."""
    folder = shared_dir / "calib"
    folder.mkdir()
    p = make_store(folder / "cspad-0001.h5")
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)
        os.chown(p, NOBODY, NOBODY)
    os.chmod(p, 0o444)
    before = snapshot(folder)
    r = _run_child(_CHILD_PROLOGUE + f"""
    {_drop_privileges_code()}
    assert os.access({str(folder)!r}, os.W_OK)  # the directory is writable for us
    cs = DCStore({str(p)!r}, mode="r")
    assert cs.get("pedestals", {INSIDE!r}).shape == (2, 3)
    cs.close()
    expect(lambda: DCStore({str(p)!r}, mode="a").add_constants("pedestals", np.ones(3), 0),
           "StorePermissionError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "read-only" in r.stdout
    assert snapshot(folder) == before


def test_read_only_directory_unprivileged(shared_dir):
    folder = shared_dir / "calib"
    folder.mkdir()
    p = make_store(folder / "cspad-0001.h5")
    os.chmod(folder, 0o555)
    before = snapshot(folder)
    r = _run_child(_CHILD_PROLOGUE + f"""
    {_drop_privileges_code()}
    expect(lambda: DCStore({str(p)!r}, mode="a").add_constants("pedestals", np.ones(3), 0),
           "StorePermissionError")
    expect(lambda: DCStore({str(folder / 'cspad-0002.h5')!r}, mode="a"), "StorePermissionError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(folder) == before


@pytest.mark.parametrize("limit_mib,nbytes", [(1, 2 * 2**20), (2, 4 * 2**20)])
def test_full_disk_during_write(tmp_path, store, limit_mib, nbytes):
    """RLIMIT_FSIZE (SIGXFSZ ignored) stops the write of the private copy with EFBIG.

    Whether the library sees it coming (free-space / limit check) or the write fails half
    way, the outcome must be a StoreIOError, an unchanged file and no crash of the process.
    """
    p = store
    before = snapshot(p.parent)
    r = _run_child(_CHILD_PROLOGUE + f"""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    lim = {limit_mib} * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))
    cs = DCStore({str(p)!r}, mode="a")
    expect(lambda: cs.add_constants("pedestals", np.ones({nbytes // 8}), 0), "StoreIOError")
    expect(lambda: cs.add_constants("geometry", "x" * {nbytes}, 0), "StoreIOError")
    def many():  # each piece is small; together they outgrow the limit within one transaction
        with cs.transaction():
            for i in range(40):
                cs.add_constants("pixel_gain", np.full(2**14, float(i)), i + 1)
    expect(many, "StoreIOError")
    assert cs.get("pedestals", {INSIDE!r}).shape == (2, 3)  # the open store still reads
    assert "pixel_gain" not in cs.ctypes()
    """)
    assert r.returncode == 0, f"exit status {r.returncode}: {r.stdout}{r.stderr}"
    assert r.stderr == "", r.stderr  # no traceback, no 'Exception ignored' noise from HDF5
    assert r.stdout.count("StoreIOError") == 3
    assert snapshot(p.parent) == before
    with DCStore(p) as cs:
        assert cs.get("pedestals", INSIDE).shape == (2, 3)


def test_full_disk_when_copying(tmp_path):
    """The store itself is bigger than the file size limit: the copy step fails."""
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", np.random.default_rng(0).random(2**18), T0)  # 2 MiB
    before = snapshot(tmp_path)
    r = _run_child(_CHILD_PROLOGUE + f"""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
    expect(lambda: DCStore({str(p)!r}, mode="a").set_par("k", 1), "StoreIOError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(tmp_path) == before


def test_damaged_global_heap_does_not_hang(tmp_path, template):
    """A free-space record of size 0 in the heap holding the root attributes makes HDF5
    spin forever (found by scripts/fuzz_files.py); opening must refuse the file instead."""
    bad = tmp_path / "cspad-0001.h5"
    bad.write_bytes(spinning_first_heap(template.read_bytes()))
    before = snapshot(tmp_path)
    r = _run_child(_CHILD_PROLOGUE + f"""
    for mode in ("r", "a"):
        expect(lambda: DCStore({str(bad)!r}, mode=mode), "CorruptStoreError")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(tmp_path) == before


def _collection(size: int, objects) -> bytes:
    body = b"".join(struct.pack("<HHIQ", i, 1, 0, n) + bytes((n + 7) & ~7) for i, n in objects)
    return b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", size) + body


@pytest.mark.parametrize("name,size,objects,spins", [
    ("sound", 4096, [(1, 11), (2, 5), (0, 4096 - 16 - 32 - 24)], False),
    ("free space of size 0", 4096, [(1, 11), (0, 0)], True),
    ("size runs into zeros", 8192, [(1, 11), (0, 4096 - 16 - 32)], True),
    ("object size wraps", 8192, [(1, 11), (2, 2**64 - 1)], True),
])
def test_heapcheck_emulates_hdf5_heap_walk(tmp_path, name, size, objects, spins):
    from pscalib.store.heapcheck import check_file, check_head
    data = bytes(2048) + _collection(size, [o for o in objects if o[1] < 2**63])
    if objects[-1][1] >= 2**63:  # header only: the wrapped size must not allocate anything
        data += struct.pack("<HHIQ", objects[-1][0], 1, 0, objects[-1][1])
    p = tmp_path / "heap.bin"
    p.write_bytes(data.ljust(2048 + size + 4096, b"\x00"))
    for check in (check_head, check_file):
        if spins:
            with pytest.raises(E.CorruptStoreError):
                check(p)
        else:
            check(p)
