"""Issue 13, item 1: every write path refuses a store with a damaged string heap.

The damaged file is the fuzzer's case 1351 of seed 4711 (``scripts/fuzz_files.py``), which
made ``dcs add`` hang forever while holding the lock: the read-side heap check was skipped
for the writer's copy, and the dedup lookup read strings from the damaged heap.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import CorruptStoreError

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


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """The damaged store of the case, rebuilt the way the fuzzer builds it."""
    if not LEGACY_DIR.is_dir():
        pytest.skip("the case numbering needs the shared legacy file as fourth input")
    work = tmp_path_factory.mktemp("fuzzin")
    inputs = fuzz.build_inputs(work, "small")
    master = random.Random(SEED)
    seeds = [master.getrandbits(64) for _ in range(CASE + 1)]
    src = inputs[random.Random(seeds[CASE]).randrange(len(inputs))]
    data, _ = fuzz.corrupt(src.read_bytes(), random.Random(seeds[CASE]))
    out = tmp_path_factory.mktemp("damaged") / "calib" / "epix10ka" / src.name
    out.parent.mkdir(parents=True)
    out.write_bytes(data)
    np.save(out.parent.parent.parent / "x.npy", np.ones((2, 2)))
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
    ["merge", "{o}", "{s}"],
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
