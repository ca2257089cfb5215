"""Issue 13 rough edges: odd lock paths, soft-lock markers, a dangling store symlink.

Real files and the real ``dcs`` executable; every refused change leaves the files as they
were (digests) and nothing outside the calib directory is created or written.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import LockError, LockTimeoutError
from pscalib.txn.lock import lock_path_for, soft_lock_path_for

from conftest import file_digest

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))


def dcs(*args: str, cwd: Path, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    env.update(env_extra or {})
    return subprocess.run([DCS, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def store(tmp_path) -> Path:
    p = tmp_path / "calib" / "cspad" / "cspad-0001.h5"
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", np.zeros((2, 2)), "2024-01-01")
    np.save(tmp_path / "x.npy", np.ones((2, 2)))
    return p


def _one_error_line(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_lock_file_that_is_a_directory_is_named_as_such(store, tmp_path):
    lock_path_for(store).unlink(missing_ok=True)
    lock_path_for(store).mkdir()
    before = file_digest(store)
    res = dcs("add", str(store), "pedestals", str(tmp_path / "x.npy"), "-b", "2024-02-01",
              cwd=tmp_path)
    _one_error_line(res, "is a directory", "Remove it")
    assert "does not support file locks" not in res.stderr
    assert file_digest(store) == before


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(store, tmp_path):
    victim = tmp_path / "outside.txt"
    victim.write_text("keep me\n")
    lock_path_for(store).unlink(missing_ok=True)
    lock_path_for(store).symlink_to(victim)
    before = file_digest(store)
    res = dcs("add", str(store), "pedestals", str(tmp_path / "x.npy"), "-b", "2024-02-01",
              cwd=tmp_path)
    _one_error_line(res, "symbolic link", str(victim))
    assert victim.read_text() == "keep me\n"  # the holder note was not written through it
    assert file_digest(store) == before


def test_create_through_a_dangling_store_symlink_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "cspad-0002.h5"
    link = tmp_path / "calib" / "cspad" / "cspad-0002.h5"
    link.parent.mkdir(parents=True)
    outside.parent.mkdir()
    link.symlink_to(outside)
    np.save(tmp_path / "x.npy", np.ones((2, 2)))
    res = dcs("add", str(link), "pedestals", str(tmp_path / "x.npy"), "-b", "2024-01-01",
              "--create", cwd=tmp_path)
    _one_error_line(res, "symbolic link", "does not exist")
    assert not outside.exists() and link.is_symlink()
    assert sorted(p.name for p in outside.parent.iterdir()) == []


def _marker(store: Path, text: str) -> Path:
    m = soft_lock_path_for(store)
    m.write_text(text)
    return m


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_soft_marker_of_a_dead_writer_on_this_host_is_broken(store, monkeypatch):
    monkeypatch.setenv("PSCALIB_LOCK_FALLBACK", "soft")
    m = _marker(store, f"{_dead_pid()}\n{socket.gethostname()}\n123\n")
    with DCStore(store, mode="a", lock_timeout=2) as cs:
        cs.add_constants("pedestals", np.ones((2, 2)), "2024-02-01")
    assert not m.exists()  # broken, then the writer's own marker was removed on release


@pytest.mark.parametrize("text, words", [
    ("4242\nother-host.example\n99\n", ["pid 4242 on host other-host.example", "by hand"]),
    ("", ["names no owner", "by hand"]),
])
def test_soft_markers_that_cannot_be_checked_block_and_name_their_owner(store, monkeypatch,
                                                                       text, words):
    monkeypatch.setenv("PSCALIB_LOCK_FALLBACK", "soft")
    m = _marker(store, text)
    before = file_digest(store)
    with DCStore(store, mode="a", lock_timeout=0.3) as cs:
        with pytest.raises(LockTimeoutError) as ei:
            cs.add_constants("pedestals", np.ones((2, 2)), "2024-02-01")
    for w in words:
        assert w in str(ei.value)
    assert m.exists() and file_digest(store) == before


def test_library_error_class_for_odd_lock_paths(store):
    lock_path_for(store).unlink(missing_ok=True)
    os.mkfifo(lock_path_for(store))
    with DCStore(store, mode="a", lock_timeout=1) as cs:
        with pytest.raises(LockError, match="not a regular file"):
            cs.add_constants("pedestals", np.ones((2, 2)), "2024-02-01")
