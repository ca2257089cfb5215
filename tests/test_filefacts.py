"""Opening an unchanged store again reuses what it said (pscalib.store.filefacts).

Root attributes, the head check and range indexes are kept per identity of the file a
reader opened (dev, inode, size, mtime, ctime of its descriptor). Every change must give a
new identity and new answers: another process's commits (copy-on-write: a new inode), a
same-size edit of the range index with plain h5py, a writer committing while this process
opens the store in a loop. A damaged file must be refused on every open, not only the
first.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from hostile import spinning_first_heap
from pscalib import DCStore
from pscalib.store import layout as L

T0 = 1_600_000_000


@pytest.fixture(autouse=True)
def copy_on_write(monkeypatch):
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "never")


def test_another_processes_commit_is_seen_on_the_next_open(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), T0)
    for i in range(1, 4):
        with DCStore(path) as cs:  # cached facts of the file as it is now
            assert cs.get("pedestals", T0 + 10**6)[0] == i - 1
            assert len(cs["pedestals"].ranges()) == i
        code = (f"import numpy as np; from pscalib import DCStore\n"
                f"with DCStore({str(path)!r}, mode='a') as cs:\n"
                f"    cs.add_constants('pedestals', np.full(4, {i}.0), {T0 + i})\n")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with DCStore(path) as cs:
        assert cs.get("pedestals", T0 + 10**6)[0] == 3
        assert len(cs["pedestals"].ranges()) == 4


def test_same_size_edit_of_the_range_index_is_seen(tmp_path):
    path = tmp_path / "cspad-0002.h5"
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), T0)
        cs.add_constants("pedestals", np.ones(4), T0)  # v2, the default
    with DCStore(path) as cs:
        assert cs.get("pedestals", T0 + 1)[0] == 1.0
    size = path.stat().st_size
    with h5py.File(path, "r+", locking=False) as f:  # a same-size edit in place
        ds = f["pedestals"][L.N_RANGE_INDEX]
        rows = ds[...]
        rows["defaultv"][0] = 1
        ds[...] = rows
    assert path.stat().st_size == size
    with DCStore(path) as cs:
        assert cs.get("pedestals", T0 + 1)[0] == 0.0


def test_cached_range_tables_cannot_be_changed_by_a_caller(tmp_path):
    path = tmp_path / "cspad-0003.h5"
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), T0)
    with DCStore(path) as cs:
        tab = cs.backend.range_table("pedestals")
        with pytest.raises(ValueError):
            tab.defaultv[0] = 7
    with DCStore(path) as cs:
        assert cs.backend.range_table("pedestals").defaultv[0] == 1


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from pscalib import DCStore
    end = time.monotonic() + float(sys.argv[2])
    i = 0
    with DCStore(sys.argv[1], mode="a") as cs:
        while time.monotonic() < end:
            i += 1
            cs.add_constants("pedestals", np.full(4, float(i)), 1600000000 + i)
""")


def test_open_in_a_loop_during_commits_never_answers_from_an_older_file(tmp_path):
    """Each open answers with a version at least as new as the last one seen, and the
    number of ranges it reports matches the value it reads (range i holds value i)."""
    path = tmp_path / "cspad-0004.h5"
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), T0)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "2"])
    last, opens = -1.0, 0
    try:
        time.sleep(0.3)
        while writer.poll() is None:
            with DCStore(path) as cs:
                v = float(cs.get("pedestals", T0 + 10**6)[0])
                n = len(cs["pedestals"].ranges())
            opens += 1
            assert v >= last, f"open {opens} read {v} after {last}"
            assert n == int(v) + 1, (n, v)
            last = v
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and opens > 20


def test_a_damaged_head_is_refused_on_every_open(tmp_path):
    """A head check that failed is never remembered as passed: the first heap collection
    of a real store gets a free-space record of size 0 (HDF5 would spin on it)."""
    good = tmp_path / "cspad-0005.h5"
    with DCStore(good, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), T0, dictpars={"note": "x" * 40})
    bad = tmp_path / "cspad-0006.h5"
    bad.write_bytes(spinning_first_heap(good.read_bytes()))
    # in a child: were the check skipped, HDF5 would spin forever on the second open
    code = textwrap.dedent(f"""
        from pscalib import DCStore
        from pscalib.errors import CorruptStoreError
        for i in range(3):
            try:
                DCStore({str(bad)!r})
            except CorruptStoreError:
                print("refused")
        with DCStore({str(good)!r}) as cs:  # the sound original still opens
            print(cs.get("pedestals", {T0})[0])
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["refused"] * 3 + ["0.0"], r.stdout
