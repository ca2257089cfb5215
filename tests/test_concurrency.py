"""Concurrent writers and readers: real processes on one real store file (issue 3)."""
import subprocess
import sys
import textwrap
import time

import numpy as np

from pscalib.store.dcstore import DCStore

RANGE_BEGIN = "2024-01-01T00:00:00"

# A writer process: adds NVERS versions of 'pedestals' to one range. Each payload is a 4x4
# array filled with writer*1000 + seq, so a value read back says who wrote it and when.
WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from pscalib.store.dcstore import DCStore
    path, wid, nvers, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    cs = DCStore(path, mode="a", lock_timeout=60)
    while time.time() < start:   # release all writers at the same moment
        time.sleep(0.001)
    for seq in range(nvers):
        cs.add_constants("pedestals", np.full((4, 4), wid * 1000 + seq, dtype="i8"),
                         "%s", comment=f"writer {wid} seq {seq}")
        print(wid * 1000 + seq, flush=True)   # acknowledged: the transaction returned
    cs.close()
""" % RANGE_BEGIN)

# A reader process: calls get in a loop until the stop file exists, half the time through
# refresh() of one long-lived store, half the time through a freshly opened one. Prints every
# distinct value it read and the number of errors.
READER = textwrap.dedent("""
    import os, sys, numpy as np
    from pscalib.store.dcstore import DCStore
    path, stop = sys.argv[1], sys.argv[2]
    cs = DCStore(path)
    seen, errors, reads, n = set(), [], 0, 0
    while not os.path.exists(stop) or n < 20:
        n += 1
        try:
            if n % 2:
                cs.refresh()
                a = cs.get("pedestals", "2025-01-01")
            else:
                with DCStore(path) as fresh:
                    a = fresh.get("pedestals", "2025-01-01")
            if a.shape != (4, 4) or not (a == a.flat[0]).all():
                errors.append(f"torn value {a!r}")
            seen.add(int(a.flat[0]))
            reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print("READS", reads)
    print("SEEN", " ".join(map(str, sorted(seen))))
    for e in errors[:5]:
        print("ERROR", e)
    print("NERRORS", len(errors))
""")


def _spawn(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _acks(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return [int(x) for x in out.split()]


def test_no_lost_updates_8_writers(store_path):
    """8 processes x 25 versions at the same time: all 200 versions and records survive."""
    with DCStore(store_path, mode="a"):
        pass
    start = time.time() + 1.5  # time for every interpreter to start and import
    procs = [_spawn(WRITER, store_path, wid, 25, start) for wid in range(8)]
    acked = sorted(v for p in procs for v in _acks(p))
    expected = sorted(w * 1000 + s for w in range(8) for s in range(25))
    assert acked == expected

    with DCStore(store_path) as cs:
        rng = cs["pedestals"].ranges()
        assert len(rng) == 1
        versions = rng[0].versions()
        assert [v.version() for v in versions] == list(range(1, 201))
        stored = sorted(int(v.calib().flat[0]) for v in versions)
        assert stored == expected
        adds = [r for r in rng[0].history_records() if r.action == "add_version"]
        assert len(adds) == 200
        comments = {r.record.rsplit(" - ", 1)[1] for r in adds}
        assert comments == {f"writer {w} seq {s}" for w in range(8) for s in range(25)}
    leftovers = [p.name for p in store_path.parent.iterdir() if ".pscalib-tmp-" in p.name]
    assert leftovers == []


def test_readers_during_writes(store_path, tmp_path):
    """4 readers loop on get while 2 writers commit: no error, only committed values."""
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.full((4, 4), -1, dtype="i8"), RANGE_BEGIN)
    stop = tmp_path / "stop"
    readers = [_spawn(READER, store_path, stop) for _ in range(4)]
    start = time.time() + 1.0
    writers = [_spawn(WRITER, store_path, wid, 20, start) for wid in (1, 2)]
    committed = {-1}
    for w in writers:
        committed.update(_acks(w))
    stop.touch()
    seen_all = set()
    total_reads = 0
    for r in readers:
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        lines = dict(line.split(" ", 1) if " " in line else (line, "")
                     for line in out.splitlines() if not line.startswith("ERROR"))
        errors = [line for line in out.splitlines() if line.startswith("ERROR")]
        assert lines["NERRORS"] == "0", errors
        seen = {int(x) for x in lines["SEEN"].split()}
        assert seen <= committed, seen - committed
        seen_all |= seen
        total_reads += int(lines["READS"])
    assert len(committed) == 41
    # the readers really overlapped the writers: they saw more than the first and last state
    assert total_reads >= 80
    assert len(seen_all) > 2, seen_all


def test_threads_with_their_own_store_objects(store_path):
    """flock is per open file: two DCStore objects in one process exclude each other too."""
    import threading
    with DCStore(store_path, mode="a"):
        pass
    errors = []

    def work(wid):
        try:
            with DCStore(store_path, mode="a", lock_timeout=60) as cs:
                for seq in range(10):
                    cs.add_constants("pedestals", np.full((4, 4), wid * 1000 + seq), RANGE_BEGIN)
        except Exception as exc:  # reported below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with DCStore(store_path) as cs:
        vals = sorted(int(v.calib()[0, 0]) for v in cs["pedestals"].ranges()[0])
    assert vals == sorted(w * 1000 + s for w in range(4) for s in range(10))
