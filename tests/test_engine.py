"""The in-place engine (docs/design/engine.rst): journaled commits, recovery, readers.

Real files, real processes: a writer killed in the middle of writing pages (os._exit from
inside the commit, like a SIGKILL there), readers in the same and in other processes, the
crash test and the reader torture script in small versions.
"""
import re
import struct
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from conftest import ROOT
from pscalib.config import inplace_min_bytes
from pscalib.errors import InvalidInputError, StoreIOError
from pscalib.exchange.verify import verify
from pscalib.store import DCStore
from pscalib.txn.engineblock import read_block
from pscalib.txn.journal import is_hot, journal_path_for, read_journal

B0 = 1_700_000_000


@pytest.fixture
def inplace(monkeypatch):
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "0")


def _store(tmp_path, n=3):
    path = tmp_path / "epix-0001.h5"
    with DCStore(path, mode="a") as cs:
        for i in range(n):
            cs.add_constants("pedestals", np.full((4, 4), float(i)), B0 + 100 * i,
                             dictpars={"i": i})
    return path


def test_threshold_setting(monkeypatch):
    for raw, want in (("0", 0), ("512k", 512 << 10), ("64M", 64 << 20), ("1G", 1 << 30),
                      ("never", None)):
        monkeypatch.setenv("PSCALIB_INPLACE_SIZE", raw)
        assert inplace_min_bytes() == want
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "big")
    with pytest.raises(InvalidInputError, match="PSCALIB_INPLACE_SIZE"):
        inplace_min_bytes()


def test_small_store_stays_copy_on_write(tmp_path, monkeypatch):
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "64M")
    path = _store(tmp_path)
    assert read_block(path) is None
    with DCStore(path) as cs:
        assert cs.format_version() == 3


def test_old_format_stays_copy_on_write_until_upgraded(tmp_path, monkeypatch):
    """Format 4 includes format 3's history table: a format 1 store is not converted by a
    commit, however big; after ``dcs upgrade`` (to 3) the next commit converts it."""
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")
    path = _store(tmp_path)
    monkeypatch.delenv("PSCALIB_CREATE_FORMAT")
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "0")
    with DCStore(path, mode="a") as cs:
        cs.set_par("a", 1)
    assert read_block(path) is None
    with DCStore(path) as cs:
        assert cs.format_version() == 1 and cs.dictpars()["a"] == 1
    r = subprocess.run(["dcs", "upgrade", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with DCStore(path) as cs:
        assert cs.format_version() == 3
    with DCStore(path, mode="a") as cs:
        cs.set_par("a", 2)
    assert read_block(path) is not None
    with DCStore(path) as cs:
        assert cs.format_version() == 4 and cs.dictpars()["a"] == 2


def test_conversion_keeps_everything_and_plain_h5py_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "never")
    path = _store(tmp_path, 4)
    with DCStore(path) as cs:
        before = [(v.info().sha256, v.dictpars(), v.history_records()) for rg in
                  cs["pedestals"] for v in rg]
    monkeypatch.setenv("PSCALIB_INPLACE_SIZE", "0")
    with DCStore(path, mode="a") as cs:
        cs.set_par("after", 1)  # this commit converts the file
    blk = read_block(path)
    assert blk is not None and blk.seq % 2 == 0 and blk.size == path.stat().st_size
    with DCStore(path) as cs:
        assert cs.format_version() == 4 and cs.dictpars()["after"] == 1
        after = [(v.info().sha256, v.dictpars(), v.history_records()) for rg in
                 cs["pedestals"] for v in rg]
    assert after == before
    with h5py.File(path, "r") as f:  # the engine block is an HDF5 user block
        assert f.userblock_size == 512 and int(f.attrs["format_version"]) == 4
    assert verify(path).ok


def test_commits_grow_the_file_by_the_change_only(tmp_path, inplace):
    path = _store(tmp_path, 2)
    payload = np.random.default_rng(1).random(1_000_000 // 8)
    size0 = path.stat().st_size
    seq0 = read_block(path).seq
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", payload, B0 + 999)
    assert read_block(path).seq == seq0 + 2
    grown = path.stat().st_size - size0
    assert payload.nbytes <= grown < payload.nbytes + 64 * 1024
    with DCStore(path) as cs:
        np.testing.assert_array_equal(cs.get("pedestals", B0 + 1000), payload)


def test_failed_transaction_leaves_the_file_byte_identical(tmp_path, inplace):
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("x", 1)  # in place from here on
        before = path.read_bytes()
        with pytest.raises(RuntimeError):
            with cs.transaction():
                cs.add_constants("pedestals", np.zeros(100_000), B0 + 5)
                cs.set_par("x", 2)
                raise RuntimeError("changed my mind")
    assert path.read_bytes() == before


def test_long_lived_readers_follow_commits_and_see_no_stale_metadata(tmp_path, inplace):
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("n", 0)
    r1, r2 = DCStore(path), DCStore(path)  # two in one process: HDF5 would share a cache
    assert len(r1["pedestals"]) == 3 and r2.dictpars()["n"] == 0
    with DCStore(path, mode="a") as cs:
        for i in range(1, 6):
            cs.add_constants("pedestals", np.full((4, 4), 10.0 + i), B0 + 10_000 * i)
            cs.set_par("n", i)
            assert r1.dictpars()["n"] == i and len(r2["pedestals"]) == 3 + i
            np.testing.assert_array_equal(r1.get("pedestals", B0 + 10_000 * i + 1),
                                          np.full((4, 4), 10.0 + i))
    r1.close()
    r2.close()


KILL_MID_COMMIT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from pscalib.txn import inplace
    real = inplace.write_pages
    def half(fd, pages):  # dies after the first page, like a SIGKILL there
        real(fd, pages[:1])
        os._exit(9)
    inplace.write_pages = half
    from pscalib.store import DCStore
    cs = DCStore(sys.argv[1], mode="a")
    with cs.transaction():
        cs.add_constants("pedestals", np.full((4, 4), 77.0), {b0} + 50_000)
        cs.set_par("n", 99)
""")


def test_kill_while_writing_pages(tmp_path, inplace):
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("n", 1)
    before = path.read_bytes()
    r = subprocess.run([sys.executable, "-c", KILL_MID_COMMIT.format(root=str(ROOT), b0=B0),
                        str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    blk, jr = read_block(path), read_journal(path)
    assert blk.seq % 2 == 1 and is_hot(jr, blk)  # torn on disk, the journal undoes it
    torn = path.read_bytes()
    assert torn != before
    # readers (no write access needed: they only read) see the state before the commit
    with DCStore(path) as cs:
        assert cs.dictpars()["n"] == 1 and len(cs["pedestals"]) == 3
    assert verify(path).ok
    assert path.read_bytes() == torn  # reading changed nothing
    # the next writer rolls back, then commits its own change
    with DCStore(path, mode="a") as cs:
        assert cs.dictpars()["n"] == 1
        cs.set_par("n", 2)
    with DCStore(path) as cs:
        assert cs.dictpars()["n"] == 2 and len(cs["pedestals"]) == 3
    assert not is_hot(read_journal(path), read_block(path))
    assert verify(path).ok


def test_rollback_restores_the_bytes(tmp_path, inplace):
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("n", 1)
    before = path.read_bytes()
    subprocess.run([sys.executable, "-c", KILL_MID_COMMIT.format(root=str(ROOT), b0=B0),
                    str(path)], capture_output=True, timeout=120)
    from_writer = subprocess.run(  # a writer that only recovers: its transaction aborts
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            from pscalib.store import DCStore
            cs = DCStore(sys.argv[1], mode="a")
            try:
                with cs.transaction():
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                pass
        """), str(path)], capture_output=True, text=True, timeout=120)
    assert from_writer.returncode == 0, from_writer.stderr
    after = path.read_bytes()
    # identical but for the engine block's sequence number (a new one for the old state)
    assert len(after) == len(before) and after[64:] == before[64:]
    assert read_block(path).seq % 2 == 0
    assert journal_path_for(path).exists()  # kept for the next commit, no longer hot


def test_crashtest_inplace_small(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "crashtest.py"), "--n", "6",
                        "--seed", "11", "--size", "20000", "--max-delay", "0.3", "--engine",
                        "inplace", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^crashtest: 6 kills .*engine in-place", r.stdout, re.M), r.stdout
    assert "failures: 0" in r.stdout


@pytest.mark.parametrize("engine,control", [("inplace", "no-journal"), ("copy", "copy-over")])
def test_crashtest_controls_fail(tmp_path, engine, control):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "crashtest.py"), "--n", "40",
                        "--seed", "5", "--size", "20000", "--max-delay", "0.3", "--engine",
                        engine, "--control", control, "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"failures: [1-9]", r.stdout), r.stdout


def test_torture_readers_small(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "torture_readers.py"),
                        "--commits", "60", "--readers", "2", "--long", "1", "--dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"opening readers: (\d+) reads; 1 long-lived readers: (\d+) reads", r.stdout)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, r.stdout
    assert "errors: 0" in r.stdout


def test_a_journal_that_is_a_symlink_is_never_read(tmp_path, inplace):
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("n", 1)
    jpath = journal_path_for(path)
    jpath.unlink()
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"not a journal")
    jpath.symlink_to(secret)
    assert read_journal(path) is None
    with pytest.raises(StoreIOError):  # the writer refuses to write through the link
        with DCStore(path, mode="a") as cs:
            cs.set_par("n", 2)
    assert secret.read_bytes() == b"not a journal"
    with DCStore(path) as cs:
        assert cs.dictpars()["n"] == 1


def _whole_state(cs):
    """Everything a reader can ask of the store, strings included (the heap guard's twin)."""
    out = [cs.dictpars(), [(r.action, r.record) for r in cs.history_records()]]
    for ct in cs.ctypes():
        for rg in cs[ct]:
            out.append((ct, rg.range(), rg.versdef(),
                        [(r.action, r.record) for r in rg.history_records()]))
            for v in rg:
                info = v.info()
                out.append((v.version(), info.sha256, info.kind, v.dictpars(),
                            [(r.action, r.record) for r in v.history_records()],
                            v.calib().tolist()))
    return out


def test_killed_commit_reads_every_string_as_before(tmp_path, inplace):
    """A reader of a store left torn by a killed writer reads strings (history, text
    parameters) through the heap guard's handle on the same journal view as the data."""
    path = _store(tmp_path)
    with DCStore(path, mode="a") as cs:
        cs.set_par("n", 1)
        cs.set_par("label", "before the kill " * 20)
    with DCStore(path) as cs:
        before = _whole_state(cs)
    script = KILL_MID_COMMIT.replace('cs.set_par("n", 99)',
                                     'cs.set_par("n", 99); cs.set_par("label", "torn " * 50)')
    r = subprocess.run([sys.executable, "-c", script.format(root=str(ROOT), b0=B0),
                        str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    blk = read_block(path)
    assert blk.seq % 2 == 1 and is_hot(read_journal(path), blk)
    with DCStore(path) as cs:
        assert _whole_state(cs) == before


def test_damaged_heap_in_place_refused_quickly_and_nothing_changes(tmp_path, inplace):
    """The in-place writer scans no file: the guard on its file object refuses the heap
    collection HDF5 would spin on, and the file stays byte-identical."""
    path = _store(tmp_path, 30)
    with DCStore(path, mode="a") as cs:
        cs.set_par("label", "x" * 300)
    buf = bytearray(path.read_bytes())
    pos = buf.rfind(b"GCOL\x01")
    assert pos > 8192
    struct.pack_into("<HHIQ", buf, pos + 16, 0, 0, 0, 0)  # object 0 of size 0: HDF5 spins
    path.write_bytes(bytes(buf))
    before = path.read_bytes()
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pscalib.store import DCStore
        from pscalib.errors import CorruptStoreError
        try:
            with DCStore(sys.argv[1], mode="a") as cs:
                with cs.transaction():  # the writer's own reads, through the overlay
                    cs.dictpars()
                    cs.history_records()
                    for rg in cs["pedestals"]:
                        rg.history_records()
                    cs.set_par("label", "y")
        except CorruptStoreError as exc:
            assert "heap" in str(exc), exc
            print("refused")
    """)
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "refused", r.stdout + r.stderr
    assert path.read_bytes() == before


def test_in_place_readers_answer_every_backend_method_from_the_file(tmp_path, inplace):
    """A reader of a format-4 store goes through GuardedBackend: a Backend method it did
    not forward would answer with Backend's default (no version log, a copying get(out=))."""
    from pscalib.store.backend import Backend
    from pscalib.store.guarded import GuardedBackend
    missing = [n for n, v in vars(Backend).items()
               if callable(v) and not n.startswith("_") and n not in vars(GuardedBackend)]
    assert missing == [], f"GuardedBackend does not forward {missing}"
    path = _store(tmp_path, 3)
    with DCStore(path, mode="a") as cs:  # in place from the second commit on
        cs.add_constants("pedestals", np.full((4, 4), 7.0), B0 + 50)
    assert read_block(path) is not None
    import time
    t = time.time_ns()
    with DCStore(path) as cs:
        assert type(cs._backend).__name__ == "GuardedBackend"
        # as-of with vers= needs the version log
        v = cs.get("pedestals", B0 + 60, vers=1, asof=divmod(t, 10**9))
        np.testing.assert_array_equal(v, np.full((4, 4), 7.0))
        out = np.empty((4, 4))
        assert cs.get("pedestals", B0 + 250, out=out) is out
        np.testing.assert_array_equal(out, np.full((4, 4), 2.0))


EXIT_SCRIPT = textwrap.dedent('''
    import collections, sys, time
    import numpy as np
    import pscalib.txn.transaction as FT
    from pscalib import DCStore
    acc = collections.defaultdict(float)

    def wrap(obj, name):  # a timing wrapper, as a user's profiling script has
        f = getattr(obj, name)
        def w(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[name] += time.perf_counter() - t
        setattr(obj, name, w)
    wrap(FT.FileTransaction, "begin")
    T0 = 1_600_000_000
    with DCStore(sys.argv[1], mode="a") as cs, cs.transaction():
        for i in range(10):
            cs.add_constants("pixel_status", np.full((4, 4), i, np.uint32), T0 + 3600 * i,
                             T0 + 3600 * (i + 1))
    for i in range(40):  # the closed store reopens itself and stays open at exit
        cs.add_constants("common_mode", np.full((4, 4), i, np.float64), T0 + 3600 * i)
    print(cs.get("common_mode", T0 + 3600 * 39 + 1)[0, 0])
''')


def test_store_left_open_at_exit_exits_cleanly(tmp_path, inplace):
    """HDF5 closes files left open from a C atexit handler, after Python is gone: a file
    on a Python file object (the in-place engine's) then crashed the process with SIGSEGV
    (pscalib.store.h5fileobj closes them from a Python atexit handler first)."""
    path = _store(tmp_path, 2)
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.zeros((4, 4)), B0 + 7)
    assert read_block(path) is not None
    script = tmp_path / "leave_open.py"
    script.write_text(EXIT_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "39.0"
    assert verify(path).ok
