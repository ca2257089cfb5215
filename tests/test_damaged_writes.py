"""Issue 13, item 1: every write path refuses a store with a damaged string heap.

The fuzzer's case 1351 of seed 4711 (``scripts/fuzz_files.py``) made ``dcs add`` hang
forever while holding the lock: the read-side heap check was skipped for the writer's copy,
and the dedup lookup read strings from the damaged heap. The fixture makes the same kind of
damage in a store of today's format.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import CorruptStoreError
from pscalib.store.heapcheck import HEAD_BYTES, check_file

from conftest import LEGACY_DIR, ROOT, file_digest

SEED, CASE = 4711, 1351
sys.path.insert(0, str(ROOT))
fuzz = pytest.importorskip("scripts.fuzz_files")


def test_fuzzer_case_1351_passes():
    """The fuzzer's own run of the case: no timeout (it was one before the fix)."""
    if not LEGACY_DIR.is_dir():
        pytest.skip("the case numbering needs the shared legacy file as fourth input")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_files.py"), "--cases",
                        "1", "--seed", str(SEED), "--first", str(CASE), "--timeout", "60",
                        "--jobs", "1", "--quiet"], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failures: 0" in r.stdout


def _spinning_heap(data: bytes) -> bytes:
    """``data`` with its last global heap collection beyond the open-time check damaged the
    way case 1351 damaged one: its first object becomes a free-space record of size 0, on
    which HDF5 2.0 loops forever (see pscalib/store/heapcheck.py)."""
    pos = data.rfind(b"GCOL\x01")
    assert pos > HEAD_BYTES, "the store has no heap collection beyond the head"
    buf = bytearray(data)
    struct.pack_into("<HHIQ", buf, pos + 16, 0, 0, 0, 0)
    return bytes(buf)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """A store whose string heap would hang HDF5, past the bytes checked at open.

    The fuzzer's case 1351 produced such a file from the stores of its day; its byte
    offsets move whenever the format grows (change log, tags), so the damage is made here
    at a heap collection found in the file instead (the fuzzer case itself still runs in
    test_fuzzer_case_1351_passes).
    """
    work = tmp_path_factory.mktemp("fuzzin")
    src = work / "calib" / "epix10ka" / "epix10ka-0002.h5"
    with DCStore(src, mode="x") as cs:
        for i in range(40):  # enough history strings for collections past the head
            cs.add_constants("pedestals", np.full((2, 2), float(i)), f"2024-01-{1 + i % 28:02d}",
                             comment="x" * 200)
        cs.add_constants("pixel_mask", np.ones((2, 2), np.uint8), "2024-01-01")
    data = _spinning_heap(src.read_bytes())
    out = tmp_path_factory.mktemp("damaged") / "calib" / "epix10ka" / src.name
    out.parent.mkdir(parents=True)
    out.write_bytes(data)
    with pytest.raises(CorruptStoreError, match="heap"):
        check_file(out)  # the damage is one the scan knows
    return out


def _dcs(args, cwd):
    env = dict(os.environ, PSCALIB_LOCK_TIMEOUT="5")
    return subprocess.run(["dcs", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


WRITES = [
    ["add", "{s}", "pixel_rms", "x.npy", "--begin", "2024-01-01"],
    ["add", "{s}", "pedestals", "x.npy", "--begin", "2024-01-01", "--force"],
    ["par", "{s}", "set", "fuzz=1"],
    ["set-default", "{s}", "pedestals", "1", "--range", "2024-01-01"],
    ["delete", "{s}", "pixel_mask", "--yes"],
    # --prefer: the plan reads only what it compares (the read path no longer scans the
    # whole file, issue 18) and would stop at a conflict before writing
    ["merge", "{o}", "{s}", "--prefer", "source"],
    ["copy", "{s}", "copied/epix10ka-0002.h5"],
]


@pytest.mark.parametrize("argv", WRITES, ids=lambda a: a[0])
def test_every_write_refuses_the_damaged_store(damaged, tmp_path, argv):
    work = tmp_path / "w"
    work.mkdir()
    store = work / damaged.name
    store.write_bytes(damaged.read_bytes())
    np.save(work / "x.npy", np.ones((2, 2)))
    other = work / "other" / damaged.name
    with DCStore(other, mode="x") as cs:  # a healthy store of the same detector
        cs.add_constants("pedestals", np.zeros((2, 2)), "2024-01-01")
    before = file_digest(store)
    r = _dcs([a.format(s=store, o=other) for a in argv], work)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and "heap" in lines[0], r.stderr
    assert str(damaged.name) in lines[0] and "pscalib-tmp" not in lines[0]
    assert file_digest(store) == before
    assert not (work / "copied" / damaged.name).exists()
    assert not [p for p in work.rglob("*pscalib-tmp*")]


def test_library_add_refuses(damaged, tmp_path):
    store = tmp_path / damaged.name
    store.write_bytes(damaged.read_bytes())
    before = file_digest(store)
    with pytest.raises(CorruptStoreError, match="heap"):
        with DCStore(store, mode="a", lock_timeout=5) as cs:
            cs.add_constants("pixel_rms", np.ones((2, 2)), "2024-01-01")
    assert file_digest(store) == before
