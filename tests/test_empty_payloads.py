"""Issue 13, items 7 and 8: empty arrays are ordinary constants; empty input files need
--text; killed writers leave nothing behind that no later writer removes."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.exchange.copy import copy_store
from pscalib.exchange.verify import verify
from pscalib.ndarrio import format_ndarrio, parse_ndarrio

T0, T = "2024-01-01T00:00:00", "2024-02-01T00:00:00"
EMPTY = [np.zeros(0), np.zeros((0, 3), np.int32), np.zeros((4, 0, 2), np.uint16),
         np.zeros((0,), bool)]


@pytest.mark.parametrize("arr", EMPTY, ids=lambda a: f"{a.dtype}{a.shape}")
def test_empty_array_round_trip_verify_copy_export(tmp_path, arr):
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pixel_status", arr, T0)
        back = cs.get("pixel_status", T)
        assert back.shape == arr.shape and back.dtype == arr.dtype
        assert cs.version_at("pixel_status", T).info().nbytes == 0
    assert verify(p).ok
    copy_store(p, tmp_path / "copy" / "cspad-0001.h5")
    assert verify(tmp_path / "copy" / "cspad-0001.h5").ok
    text = format_ndarrio(arr)
    again, _ = parse_ndarrio(text)
    assert again.shape == arr.shape


def _dcs(args, cwd):
    return subprocess.run(["dcs", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_dcs_get_and_add_empty_array(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pixel_status", np.zeros((0, 3), np.int32), T0)
    r = _dcs(["get", str(p), "pixel_status", "-t", T, "-o", "bad.data"], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _dcs(["add", str(p), "pixel_mask", "bad.data", "-b", T0], tmp_path)
    assert r.returncode == 0, r.stderr
    with DCStore(p) as cs:
        assert cs.get("pixel_mask", T).shape == (0, 3)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"], ids=["zero-bytes", "white-space"])
def test_empty_input_file_needs_text(tmp_path, content):
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="x"):
        pass
    (tmp_path / "in.txt").write_bytes(content)
    before = p.read_bytes()
    r = _dcs(["add", str(p), "geometry", "in.txt", "-b", T0], tmp_path)
    assert r.returncode == 1 and "--text" in r.stderr and len(r.stderr.splitlines()) == 1
    assert p.read_bytes() == before
    r = _dcs(["add", str(p), "geometry", "in.txt", "-b", T0, "--text"], tmp_path)
    assert r.returncode == 0, r.stderr
    with DCStore(p) as cs:
        assert cs.get("geometry", T) == content.decode()


def _killed(code: str, cwd, marker: str) -> None:
    """Run ``code`` in a real process and SIGKILL it once it printed ``marker``."""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == marker
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _names(folder):
    """Files in ``folder`` but the writer lock files (kept by design, docs/transactions)."""
    return sorted(q.name for q in folder.iterdir() if not q.name.endswith(".lock"))


def test_leftovers_of_a_killed_copy_and_get_o_are_removed(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pedestals", np.arange(1000.0), T0)
    dest = tmp_path / "copies"
    dest.mkdir()
    # a writer killed half-way leaves its temporary file (here: made the way the copy and
    # get -o make theirs, then killed before the rename)
    code = textwrap.dedent(f"""
        from pscalib.txn.atomic import tmp_path_for
        for name in ("cspad-0001-a.h5", "out.data"):
            open(tmp_path_for({str(dest)!r} + "/" + name), "wb").write(b"partial")
        print("READY", flush=True)
        import time; time.sleep(60)
    """)
    _killed(code, tmp_path, "READY")
    assert len([q for q in dest.iterdir() if ".pscalib-tmp-" in q.name]) == 2
    copy_store(p, dest / "cspad-0001-b.h5")  # another name: cleans the dead writer's files
    assert _names(dest) == ["cspad-0001-b.h5"]
    code = textwrap.dedent(f"""
        from pscalib.txn.atomic import tmp_path_for
        open(tmp_path_for({str(dest)!r} + "/x.data"), "wb").write(b"partial")
        print("READY", flush=True)
        import time; time.sleep(60)
    """)
    _killed(code, tmp_path, "READY")
    r = _dcs(["get", str(p), "pedestals", "-t", T, "-o", str(dest / "peds.npy")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert _names(dest) == ["cspad-0001-b.h5", "peds.npy"]


def test_live_writers_files_are_kept(tmp_path):
    """A temporary file of a running process (or of another host) is never removed."""
    from pscalib.txn.atomic import TMP_MARK, tmp_path_for
    from pscalib.txn.leftovers import remove_dead_tmp
    mine = tmp_path_for(tmp_path / "a.h5")
    mine.write_bytes(b"x")
    other = tmp_path / f".b.h5{TMP_MARK}otherhost-1-abcd"
    other.write_bytes(b"x")
    assert remove_dead_tmp(tmp_path) == []
    assert mine.exists() and other.exists()
