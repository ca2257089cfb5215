"""A commit's bookkeeping does not read the store's whole history (issue 18).

Two caches make a single add cost the same in a young and in an old store:

- the replays of ``/_changelog`` and ``/_versionlog`` are kept per store path after each
  commit and reused when the logs' tails (start, rows, last row's fixed fields) still match;
- the payload index is read lazily: its checksum column once, rows only where a checksum
  matches.

Each must never give a different log than reading everything would: other writers'
commits (real ``dcs`` processes), rolled-back transactions and both engines are checked
against a replay of the logs from scratch.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.exchange import verify
from pscalib.store import changelog as CL
from pscalib.store import records
from pscalib.store.backends import open_backend
from pscalib.timestamps import now_ns

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
S = 10**9


def logs_agree_with_store(path: Path) -> None:
    """Replaying both logs from scratch gives what the store holds now."""
    be = open_backend(path)
    try:
        start, rows = be.changelog()
        vstart, vrows = be.versionlog()
        assert start is not None and vstart is not None
        sel = CL.replay(rows)
        cur = CL.current_selection(be)
        assert {k: v[0] for k, v in sel.items()} == {k: v[0] for k, v in cur.items()}
        vers = CL.replay_versions(vrows)
        now = {(c, b, e, v): be.version_state((c, b, e, v)).state
               for c in be.ctypes() for b, e, _ in zip(*be.range_table(c))
               for v in be.versions(c, b, e)}
        assert {k: x[0] for k, x in vers.items()} == now
        tsns = [r.tsns for r in rows]
        assert tsns == sorted(tsns) and [r.tsns for r in vrows] == sorted(r.tsns for r in vrows)
    finally:
        be.close()


@pytest.fixture(params=["copy-on-write", "in-place"])
def engine(request, monkeypatch):
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "0" if request.param == "in-place" else "never")
    return request.param


def test_other_writers_between_commits_are_never_missed(tmp_path, engine):
    path = tmp_path / "epix100a-0001.h5"
    with DCStore(path, mode="a", detname="epix100a-0001") as cs:
        cs.add_constants("pedestals", np.zeros((4, 4)), "2024-01-01")
        cs.add_constants("pedestals", np.ones((4, 4)), "2024-02-01")  # cached replay now
        assert str(path) in CL._REPLAYS or str(path.resolve()) in CL._REPLAYS
        np.save(tmp_path / "two.npy", np.full((4, 4), 2.0))
        # another process commits twice: a new default and a deprecation
        times = []
        for args in (["add", str(path), "pedestals", str(tmp_path / "two.npy"),
                      "-b", "2024-01-01"],
                     ["deprecate", str(path), "pedestals", "-r", "20240201T000000Z_end",
                      "-V", "1", "-m", "bad"]):
            r = subprocess.run([DCS, *args], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            times.append(divmod(now_ns(), S))
        # this process's next commit must see them (its cache no longer matches the
        # tails): setting January's default back to v1 is a change only against the log
        # as the other process left it (a stale replay would log nothing)
        cs["pedestals"].rangeobj("20240101T000000Z_end").set_versdef(1)
        logs_agree_with_store(path)
        t_back = divmod(now_ns(), S)
        cs.add_constants("pixel_rms", np.ones((4, 4)), "2024-01-01")
        logs_agree_with_store(path)
        assert cs.get("pedestals", "2024-01-15", asof=t_back)[0, 0] == 0.0
        # as-of answers from both logs: after the add, March still reads the February
        # range; after the deprecation that range is ignored and January's v2 answers
        assert cs.get("pedestals", "2024-01-15", asof=times[0])[0, 0] == 2.0
        assert cs.get("pedestals", "2024-03-01", asof=times[0])[0, 0] == 1.0
        assert cs.get("pedestals", "2024-03-01", asof=times[1])[0, 0] == 2.0
        assert cs.get("pedestals", "2024-01-15", vers=1, asof=times[1])[0, 0] == 0.0
    assert verify(path).ok


def test_rolled_back_commit_leaves_no_stale_replay(tmp_path, engine):
    path = tmp_path / "epix100a-0002.h5"
    with DCStore(path, mode="a", detname="epix100a-0002") as cs:
        cs.add_constants("pedestals", np.zeros((4, 4)), "2024-01-01")
        with pytest.raises(RuntimeError):
            with cs.transaction():
                cs.add_constants("pedestals", np.ones((4, 4)), "2024-02-01")
                raise RuntimeError("give up")
        cs.add_constants("pedestals", np.full((4, 4), 3.0), "2024-03-01")
        logs_agree_with_store(path)
        assert [v.version() for v in cs["pedestals"].ranges()[-1].versions()] == [1]


def test_single_add_reads_no_log_whole(tmp_path, engine, monkeypatch):
    """After the first commit, a commit decodes only the logs' last rows."""
    path = tmp_path / "epix100a-0003.h5"
    with DCStore(path, mode="a", detname="epix100a-0003") as cs:
        with cs.transaction():
            for i in range(40):
                cs.add_constants("pixel_status", np.full((4, 4), i, np.uint32),
                                 1_600_000_000 + 3600 * i, 1_600_000_000 + 3600 * (i + 1))
        cs.add_constants("common_mode", np.zeros((4, 4)), "2024-01-01")
        decoded: list = []
        orig = records._rows_of

        def spy(data, cls, dtype):
            decoded.append(len(data))
            return orig(data, cls, dtype)
        monkeypatch.setattr(records, "_rows_of", spy)
        for i in range(3):
            cs.add_constants("common_mode", np.full((4, 4), i + 1.0), "2024-01-01")
        assert decoded == [], decoded  # tails read fixed fields only; no log decoded
        logs_agree_with_store(path)


def test_payload_index_read_lazily_still_links_and_forgets(tmp_path, engine):
    path = tmp_path / "epix100a-0004.h5"
    arr = np.arange(16.0).reshape(4, 4)
    with DCStore(path, mode="a", detname="epix100a-0004") as cs:
        with cs.transaction():
            for i in range(30):
                cs.add_constants("pixel_status", np.full((4, 4), i, np.uint32),
                                 1_600_000_000 + 3600 * i, 1_600_000_000 + 3600 * (i + 1))
        first = cs.add_constants("pedestals", arr, "2024-01-01")
        # an identical payload in a later transaction is found through the index on disk
        again = cs.add_constants("pixel_rms", arr.copy(), "2024-01-01")
        assert again.linked_to is not None and again.linked_to[0] == "pedestals"
        # twice in one transaction: the second finds the first (a row not yet on disk)
        with cs.transaction():
            a = cs.add_constants("pixel_gain", arr + 1, "2024-01-01")
            b = cs.add_constants("pixel_mask", arr + 1, "2024-01-01")
        assert a.linked_to is None and b.linked_to is not None
        assert b.linked_to[0] == "pixel_gain"
        # deleting the first holder drops its rows; the next identical add links to a survivor
        cs["pedestals"].del_range(cs["pedestals"].ranges()[0].range())
        c = cs.add_constants("common_mode", arr.copy(), "2024-01-01")
        assert c.linked_to is not None and c.linked_to[0] == "pixel_rms"
        assert first is not None
    rep = verify(path)
    assert rep.ok and not rep.problems, rep.format()
