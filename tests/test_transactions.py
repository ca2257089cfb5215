"""Transactions: atomic, serialized, durable changes of real store files (issue 3).

Second writers, killed writers and disk-full writers are real processes.
"""
import ast
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, file_digest
from pscalib.errors import InvalidInputError, LockTimeoutError, VersionNotFoundError
from pscalib.store.dcstore import DCStore
from pscalib.txn.lock import lock_path_for, soft_lock_path_for

T0 = "2024-01-01T00:00:00"
T1 = "2024-06-01T00:00:00"
LATER = "2025-01-01T00:00:00"


def _tmp_files(path: Path):
    return sorted(p.name for p in path.parent.iterdir() if ".pscalib-tmp-" in p.name)


def _make(path, n=1):
    with DCStore(path, mode="a") as cs:
        for i in range(n):
            cs.add_constants("pedestals", np.full((4, 4), i, dtype="i8"), T0)
    return path


def _child(code, *args, env=None):
    """Start a real second process running ``code``."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)


def _wait_line(proc, expected):
    line = proc.stdout.readline().strip()
    if line != expected:
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"child said {line!r} instead of {expected!r}: {out} {err}")


# A process that holds the writer lock of a store until its stdin closes.
HOLD_LOCK = """
    import sys
    from pscalib.txn.lock import StoreLock
    with StoreLock(sys.argv[1], timeout=10):
        print("LOCKED", flush=True)
        sys.stdin.read()
"""


def _hold_lock(path, env=None):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))
    _wait_line(proc, "LOCKED")
    return proc


def _release(proc):
    proc.stdin.close()
    proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()


# ------------------------------------------------------------------ atomicity
def test_single_call_is_a_transaction(store_path):
    _make(store_path)
    ino = store_path.stat().st_ino
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
        assert store_path.stat().st_ino != ino  # committed on return: a new file
        assert cs.get("pedestals", LATER).sum() == 16  # and the store reads it
    with DCStore(store_path) as cs:
        assert [r.action for r in cs["pedestals"].ranges()[1].history_records()] == \
            ["add_version"]
        assert [r.action for r in cs["pedestals"].history_records()].count("add_range") == 2
    assert _tmp_files(store_path) == []


def test_grouped_changes_replace_the_file_once(store_path):
    _make(store_path)
    before = store_path.stat().st_ino
    with DCStore(store_path, mode="a") as cs:
        with cs.transaction():
            cs.add_constants("pedestals", np.ones((4, 4)), T1)
            cs.add_constants("pixel_status", np.zeros((4, 4), dtype="u2"), T0)
            cs["pedestals"].ranges()[0].set_par("gain", 2.5)
            assert store_path.stat().st_ino == before  # nothing visible yet
            with DCStore(store_path) as other:
                assert other.ctypes() == ["pedestals"]
            assert cs.ctypes() == ["pedestals", "pixel_status"]  # the writer sees its changes
        after = store_path.stat().st_ino
        assert after != before
    with DCStore(store_path) as cs:
        assert cs.ctypes() == ["pedestals", "pixel_status"]
        assert cs["pedestals"].ranges()[0].par("gain") == 2.5
    assert store_path.stat().st_ino == after


def test_exception_leaves_file_byte_identical(store_path):
    _make(store_path, 2)
    digest = file_digest(store_path)
    cs = DCStore(store_path, mode="a")
    with pytest.raises(ZeroDivisionError):
        with cs.transaction():
            cs.add_constants("pedestals", np.ones((4, 4)), T1)
            cs.del_ctype("pedestals")
            raise ZeroDivisionError("a failure inside the transaction")
    assert file_digest(store_path) == digest
    assert _tmp_files(store_path) == []
    # the store's reader was reopened on the unchanged file and the lock released
    assert cs.get("pedestals", LATER)[0, 0] == 1
    cs.add_constants("pedestals", np.full((4, 4), 7), T1)
    assert cs.get("pedestals", LATER)[0, 0] == 7
    cs.close()


def test_failed_change_inside_a_transaction_rolls_back_all(store_path):
    """A nested call that fails may have half-applied: the outer transaction must not commit
    it even when the caller catches the error."""
    _make(store_path)
    digest = file_digest(store_path)
    with DCStore(store_path, mode="a") as cs:
        with pytest.raises(VersionNotFoundError) as info:
            with cs.transaction():
                cs.add_constants("pedestals", np.ones((4, 4)), T1)
                try:
                    cs["pedestals"].ranges()[0].set_versdef(99)
                except VersionNotFoundError:
                    pass  # caught, but the transaction is doomed
        assert "rolled back" in " ".join(getattr(info.value, "__notes__", []))
        assert file_digest(store_path) == digest
        cs.add_constants("pedestals", np.ones((4, 4)), T1)  # the next one is independent
    with DCStore(store_path) as cs:
        assert len(cs["pedestals"].ranges()) == 2


def test_read_only_store_cannot_start_a_transaction(store_path):
    _make(store_path)
    from pscalib.errors import ReadOnlyError
    with DCStore(store_path) as cs:
        with pytest.raises(ReadOnlyError, match="mode='a'"):
            with cs.transaction():
                pass
        assert cs.get("pedestals", LATER).shape == (4, 4)


# ------------------------------------------------------------------ locking
def test_lock_timeout_names_file_and_wait(store_path):
    _make(store_path)
    digest = file_digest(store_path)
    holder = _hold_lock(store_path)
    try:
        cs = DCStore(store_path, mode="a", lock_timeout=0.5)
        t = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            cs.add_constants("pedestals", np.ones((4, 4)), T1)
        waited = time.monotonic() - t
        msg = str(info.value)
        assert str(store_path) in msg and str(lock_path_for(store_path)) in msg
        assert re.search(r"waited (0\.[5-9]|[1-4]\.\d) s", msg) and "PSCALIB_LOCK_TIMEOUT" in msg
        assert 0.5 <= waited < 5
        assert cs.get("pedestals", LATER).shape == (4, 4)  # readers never wait
    finally:
        _release(holder)
    assert file_digest(store_path) == digest
    cs.add_constants("pedestals", np.ones((4, 4)), T1)  # free again
    cs.close()


def test_lock_timeout_from_environment(store_path, monkeypatch):
    _make(store_path)
    holder = _hold_lock(store_path)
    try:
        monkeypatch.setenv("PSCALIB_LOCK_TIMEOUT", "0.3")
        with DCStore(store_path, mode="a") as cs:
            t = time.monotonic()
            with pytest.raises(LockTimeoutError, match=r"waited (0\.[3-9]|[1-4]\.\d) s"):
                cs.set_par("x", 1)
            assert time.monotonic() - t >= 0.3
        # an explicit lock_timeout= wins over the environment
        monkeypatch.setenv("PSCALIB_LOCK_TIMEOUT", "60")
        with DCStore(store_path, mode="a", lock_timeout=0.2) as cs:
            t = time.monotonic()
            with pytest.raises(LockTimeoutError, match=r"waited [0-4]\.\d s"):
                cs.set_par("x", 1)
            assert time.monotonic() - t < 10
    finally:
        _release(holder)


def test_writer_waits_for_the_lock_then_commits(store_path):
    _make(store_path)
    holder = _hold_lock(store_path)
    writer = _child("""
        import sys, numpy as np
        from pscalib.store.dcstore import DCStore
        with DCStore(sys.argv[1], mode="a", lock_timeout=30) as cs:
            print("WAITING", flush=True)
            cs.add_constants("pedestals", np.full((4, 4), 5), "2024-06-01T00:00:00")
        print("DONE", flush=True)
    """, store_path)
    _wait_line(writer, "WAITING")
    time.sleep(0.5)
    assert writer.poll() is None  # blocked by the holder
    with DCStore(store_path) as cs:
        assert len(cs["pedestals"].ranges()) == 1
    _release(holder)
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0 and "DONE" in out, err
    with DCStore(store_path) as cs:
        assert cs.get("pedestals", LATER)[0, 0] == 5


def test_lock_file_is_never_deleted(store_path):
    _make(store_path)
    lock = lock_path_for(store_path)
    assert lock.name == ".cspad-0001.h5.lock" and lock.parent == store_path.parent
    ino = lock.stat().st_ino
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
        with pytest.raises(RuntimeError):
            with cs.transaction():
                raise RuntimeError("abort")
        cs["pedestals"].ranges()[1].del_version(1)
        cs.compact()
    assert lock.stat().st_ino == ino  # same file all along: waiters never split


def test_lock_file_gets_the_store_permissions(store_path):
    """Whoever may write the store must be able to open its lock file for writing."""
    _make(store_path)
    lock_path_for(store_path).unlink()
    os.chmod(store_path, 0o664)
    with DCStore(store_path, mode="a") as cs:
        cs.set_par("x", 1)
    assert stat.S_IMODE(lock_path_for(store_path).stat().st_mode) == 0o664


def test_soft_lock_fallback(store_path, monkeypatch):
    """PSCALIB_LOCK_FALLBACK=soft: marker-file lock, still excluding flock-mode writers."""
    _make(store_path)  # the flock lock file exists now: the soft lock must not mistake it
    soft = {"PSCALIB_LOCK_FALLBACK": "soft"}
    monkeypatch.setenv("PSCALIB_LOCK_FALLBACK", "soft")
    with DCStore(store_path, mode="a", lock_timeout=2) as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
    assert not soft_lock_path_for(store_path).exists()  # marker removed on release
    assert lock_path_for(store_path).exists()

    # a soft-mode holder blocks a soft-mode writer and a flock-mode writer
    holder = _hold_lock(store_path, env=soft)
    try:
        assert soft_lock_path_for(store_path).exists()
        with DCStore(store_path, mode="a", lock_timeout=0.3) as cs:
            with pytest.raises(LockTimeoutError, match=r"\.softlock"):
                cs.set_par("x", 1)
        monkeypatch.delenv("PSCALIB_LOCK_FALLBACK")
        with DCStore(store_path, mode="a", lock_timeout=0.3) as cs:
            with pytest.raises(LockTimeoutError):
                cs.set_par("x", 1)
    finally:
        _release(holder)
    # a flock-mode holder blocks a soft-mode writer
    holder = _hold_lock(store_path)
    try:
        monkeypatch.setenv("PSCALIB_LOCK_FALLBACK", "soft")
        with DCStore(store_path, mode="a", lock_timeout=0.3) as cs:
            with pytest.raises(LockTimeoutError):
                cs.set_par("x", 1)
        assert not soft_lock_path_for(store_path).exists()  # given back on the timeout
    finally:
        _release(holder)


def test_soft_lock_of_a_killed_writer_is_broken(store_path, monkeypatch):
    _make(store_path)
    holder = _hold_lock(store_path, env={"PSCALIB_LOCK_FALLBACK": "soft"})
    holder.kill()
    holder.wait(timeout=30)
    assert soft_lock_path_for(store_path).exists()  # the dead writer's marker stays ...
    monkeypatch.setenv("PSCALIB_LOCK_FALLBACK", "soft")
    with DCStore(store_path, mode="a", lock_timeout=10) as cs:
        cs.set_par("x", 1)  # ... and is broken: its pid is dead on this host
        assert cs.par("x") == 1
    assert not soft_lock_path_for(store_path).exists()


# ------------------------------------------------------------------ leftovers
def test_fake_leftover_is_removed_and_never_used(store_path):
    _make(store_path)
    fake = store_path.with_name(f".{store_path.name}.pscalib-tmp-otherhost-99999-deadbeef")
    fake.write_bytes(b"not a store")
    unrelated = store_path.with_name(".other-0001.h5.pscalib-tmp-host-1-cafebabe")
    unrelated.write_bytes(b"belongs to another store")
    with DCStore(store_path) as cs:  # readers never touch leftovers
        cs.get("pedestals", LATER)
    assert fake.exists()
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
    assert not fake.exists()
    assert unrelated.exists()  # only this store's leftovers are removed
    with DCStore(store_path) as cs:
        assert cs.get("pedestals", LATER).sum() == 16


def test_leftover_of_a_killed_writer(store_path):
    _make(store_path)
    digest = file_digest(store_path)
    writer = _child("""
        import sys, time, numpy as np
        from pscalib.store.dcstore import DCStore
        cs = DCStore(sys.argv[1], mode="a")
        with cs.transaction():
            cs.add_constants("pedestals", np.full((4, 4), 9), "2024-06-01T00:00:00")
            cs.del_ctype("pedestals")
            print("INSIDE", flush=True)
            time.sleep(60)
    """, store_path)
    _wait_line(writer, "INSIDE")
    left = _tmp_files(store_path)
    assert len(left) == 1 and f"-{writer.pid}-" in left[0]
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert file_digest(store_path) == digest  # the store was never touched
    assert _tmp_files(store_path) == left
    with DCStore(store_path, mode="a", lock_timeout=5) as cs:  # the kill freed the lock
        assert cs.get("pedestals", LATER)[0, 0] == 0
        cs.add_constants("pedestals", np.full((4, 4), 3), T1)
    assert _tmp_files(store_path) == []
    with DCStore(store_path) as cs:
        assert cs.get("pedestals", LATER)[0, 0] == 3
        assert cs.get("pedestals", "2024-03-01")[0, 0] == 0


# ------------------------------------------------------------------ readers
def test_reader_keeps_its_snapshot_until_refresh(store_path):
    _make(store_path)
    reader = DCStore(store_path)
    assert reader.get("pedestals", LATER)[0, 0] == 0
    writer = _child("""
        import sys, numpy as np
        from pscalib.store.dcstore import DCStore
        with DCStore(sys.argv[1], mode="a") as cs:
            cs.add_constants("pedestals", np.full((4, 4), 42), "2024-06-01T00:00:00")
    """, store_path)
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    # the open reader still reads the file it opened: a consistent old snapshot
    assert reader.get("pedestals", LATER)[0, 0] == 0
    assert len(reader["pedestals"].ranges()) == 1
    assert reader.refresh() is True
    assert reader.get("pedestals", LATER)[0, 0] == 42
    assert len(reader["pedestals"].ranges()) == 2
    assert reader.refresh() is False  # nothing new
    reader.close()


# ------------------------------------------------------------------ compaction
def _data_addr(f, ctype, i_range):
    rg = f[ctype][sorted(k for k in f[ctype] if not k.startswith("_"))[i_range]]
    ds = rg["v0001"]["data"]
    return h5py.h5o.get_info(ds.id).addr, h5py.h5o.get_info(ds.id).rc


def test_deleting_shrinks_file_and_keeps_hard_links(store_path):
    shared = np.arange(64 * 1024, dtype="f8")  # 512 KiB, stored once for two versions
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", shared, T0)
        cs.add_constants("pedestals", shared, T1)  # identical: hard link to the first
        big = cs.add_constants("pixel_rms", np.random.default_rng(1).random(2**18), T0)
    with h5py.File(store_path, "r") as f:
        (a0, rc0), (a1, rc1) = _data_addr(f, "pedestals", 0), _data_addr(f, "pedestals", 1)
    assert a0 == a1 and rc0 == rc1 == 2
    size = store_path.stat().st_size
    assert size > 2**21 + 2**19

    with DCStore(store_path, mode="a") as cs:
        cs["pixel_rms"].ranges()[0].del_version(big.version())  # rewrites the file
    small = store_path.stat().st_size
    assert small < size - 2**21 + 2**16  # the 2 MiB array is gone from the file
    with h5py.File(store_path, "r") as f:
        (a0, rc0), (a1, rc1) = _data_addr(f, "pedestals", 0), _data_addr(f, "pedestals", 1)
    assert a0 == a1 and rc0 == rc1 == 2  # still one dataset with two names
    assert small < 2**20  # and stored once (two copies alone would be 1 MiB)
    with DCStore(store_path) as cs:
        np.testing.assert_array_equal(cs.get("pedestals", T0), shared)
        np.testing.assert_array_equal(cs.get("pedestals", LATER), shared)
        assert [r.action for r in cs["pixel_rms"].ranges()[0].history_records()][-1] == \
            "del_version"

    from pscalib.exchange.verify import verify
    assert verify(store_path, aliases=False).ok


def test_explicit_compact(store_path):
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.zeros(2**17), T0)
        with cs.transaction():  # a deletion inside a grouped transaction also compacts
            cs.add_constants("pixel_rms", np.ones(2**17), T0)
            cs.del_ctype("pixel_rms")
        size = store_path.stat().st_size
        assert size < 2**20 + 2**18  # 1 MiB kept, the deleted 1 MiB reclaimed
        before, after = cs.compact()
        assert before == size and after <= before
        assert [r.action for r in cs.history_records()][-1] == "compact"
        assert cs.get("pedestals", LATER).shape == (2**17,)


# ------------------------------------------------------------------ file properties
def test_permission_bits_preserved(store_path):
    _make(store_path)
    os.chmod(store_path, 0o640)
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
        cs["pedestals"].ranges()[0].del_version(1)  # compaction path too
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o640


def test_group_preserved(store_path):
    """Shared calib directories rely on the store's group; a commit must keep it."""
    others = [g for g in os.getgroups() if g != os.getgid()]
    gid = 54321 if os.geteuid() == 0 else (others[0] if others else None)
    if gid is None:
        pytest.skip("needs root or a second group to give the store another group")
    _make(store_path)
    os.chown(store_path, -1, gid)
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
        cs["pedestals"].ranges()[0].del_version(1)  # compaction path too
    assert store_path.stat().st_gid == gid


def test_new_store_mode_follows_umask(store_path):
    old = os.umask(0o027)
    try:
        _make(store_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o640


def test_symlinked_store_stays_a_symlink(store_path, tmp_path):
    _make(store_path)
    link = tmp_path / "link.h5"
    link.symlink_to(store_path)
    with DCStore(link, mode="a") as cs:
        cs.add_constants("pedestals", np.ones((4, 4)), T1)
    assert link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if ".pscalib-tmp-" in p.name or
                p.name.startswith(".link.h5")]
    with DCStore(store_path) as cs:
        assert cs.get("pedestals", LATER).sum() == 16


def test_mode_w_refused_and_never_used_in_the_source(store_path):
    with pytest.raises(InvalidInputError, match="truncate"):
        DCStore(store_path, mode="w")
    offenders = []
    for src in (ROOT / "pscalib").rglob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name != "File":
                continue
            modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords
                                                   if k.arg == "mode"]
            if any(isinstance(m, ast.Constant) and m.value in ("w", "w-") for m in modes):
                offenders.append(f"{src}:{node.lineno}")
    assert offenders == []


# ------------------------------------------------------------------ disk full
DISK_FULL = """
    import os, resource, signal, sys, numpy as np
    from pscalib.store.dcstore import DCStore
    from pscalib.errors import StoreIOError
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of death
    lim = os.path.getsize(path) + 300_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim, resource.RLIM_INFINITY))
    cs = DCStore(path, mode="a")
    try:
        cs.add_constants("pedestals", np.ones(2**17), "2024-06-01")   # 1 MiB at once
    except StoreIOError as exc:
        print("ERR1", type(exc).__name__, exc)
    try:
        with cs.transaction():       # grows step by step past the limit
            for i in range(10):
                cs.add_constants("pixel_rms", np.full(2**13, i, dtype="f8"), "2024-06-01")
    except StoreIOError as exc:
        print("ERR2", type(exc).__name__, exc)
    # a commit that fails: compaction rewrites into a new file beyond a lowered limit
    try:
        with cs.transaction():
            cs["pedestals"].ranges()[0].del_version(1)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    except StoreIOError as exc:
        print("ERR3", type(exc).__name__, exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    print("READ", cs.get("pedestals", "2025-01-01")[0, 0])
    import hashlib
    print("DIGEST", hashlib.sha256(open(path, "rb").read()).hexdigest())
    cs.set_par("after", 1)   # the lock was released after every failure
    print("OK")
"""


def test_disk_full_fails_cleanly(store_path):
    _make(store_path)
    digest = file_digest(store_path)
    proc = _child(DISK_FULL, store_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    lines = out.splitlines()
    for tag in ("ERR1", "ERR2", "ERR3"):
        line = next((x for x in lines if x.startswith(tag)), "")
        assert "StoreIOError" in line and "nothing was changed" in line, out
    assert "file size limit" in next(x for x in lines if x.startswith("ERR1"))
    assert "READ 0" in lines and "OK" in lines
    assert f"DIGEST {digest}" in lines  # byte-identical after the three failures
    assert _tmp_files(store_path) == []
    with DCStore(store_path) as cs:  # only the last change went in
        assert cs.ctypes() == ["pedestals"]
        assert cs.par("after") == 1
        assert len(cs["pedestals"].ranges()[0].versions()) == 1
    assert file_digest(store_path) != digest


def test_second_store_object_in_the_same_thread_fails_fast(store_path):
    """Without the check it would wait for its own lock until the timeout."""
    from pscalib.errors import LockError
    _make(store_path)
    a = DCStore(store_path, mode="a", lock_timeout=60)
    b = DCStore(store_path, mode="a", lock_timeout=60)
    t = time.monotonic()
    with pytest.raises(LockError, match="another store object"):
        with a.transaction():
            a.set_par("x", 1)
            b.set_par("y", 2)
    assert time.monotonic() - t < 10
    b.set_par("y", 2)  # once a is done, b may write; a's transaction was rolled back
    a.refresh()
    assert a.dictpars() == {"y": 2}
    a.close()
    b.close()


def test_copy_progress_reports_every_step_of_a_transaction_copy(tmp_path, monkeypatch):
    from pscalib.txn import atomic
    monkeypatch.setattr(atomic, "COPY_STEP", 64 * 1024)  # several steps on a small file
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.arange(100_000, dtype=np.float64), 0)
        size = path.stat().st_size
        seen = []
        with atomic.copy_progress(lambda done, total: seen.append((done, total))):
            cs.add_constants("pedestals", np.ones(3), 10)
        cs.add_constants("pedestals", np.ones(4), 20)  # outside the block: not reported
    assert len(seen) in (1, -(-size // (64 * 1024)))  # one report for a reflink clone
    assert all(total == size for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == size
