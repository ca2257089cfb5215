"""Run under mpirun by tests/test_mpi.py: one scenario, one JSON report per rank.

Usage: mpirun -n 4 python3 mpi_worker.py SCENARIO CALIB OUTDIR
"""
import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

from pscalib import DCStore
from pscalib.mpi import SharedConstants

DET = "epix10ka-0001"
T = "2024-06-01T00:00:00Z"
CTYPES = ["pedestals", "pixel_status", "pixel_mask", "geometry"]
WORLD = MPI.COMM_WORLD


def mapping(address: int) -> dict:
    """The /proc/self/maps line holding ``address``: which file backs the memory."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return {"perms": fields[1], "inode": f"{fields[3]}:{fields[4]}",
                    "path": " ".join(fields[5:])}
    return {}


def describe(value, expected) -> dict:
    """What a rank got, and whether it equals what the file's own get() returns."""
    if isinstance(value, str):
        return {"kind": "text", "type": type(value).__name__, "equal": value == expected,
                "sha": hashlib.sha256(value.encode()).hexdigest()}
    out = {"kind": "ndarray", "dtype": value.dtype.str, "shape": list(value.shape),
           "equal": bool(value.dtype == expected.dtype and np.array_equal(value, expected)),
           "sha": hashlib.sha256(value.tobytes()).hexdigest(),
           "writeable": bool(value.flags.writeable), "map": mapping(value.ctypes.data)}
    for attempt, action in (("set_writeable", lambda: setattr(value.flags, "writeable", True)),
                            ("assign", lambda: value.__setitem__((0,) * value.ndim, 0))):
        try:
            action()
            out[attempt] = "allowed"
        except ValueError as exc:
            out[attempt] = f"ValueError: {exc}"
    return out


def stats(sc: SharedConstants) -> dict:
    return {"leader": sc.is_leader, "node_rank": sc.node.rank, "node_size": sc.node.size,
            "window_bytes": sc.window_bytes, "bytes_received": sc.bytes_received}


def catch(fn) -> list:
    try:
        fn()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["no error", ""]


def basic(calib: str) -> dict:
    own = DCStore(Path(calib) / "epix10ka" / f"{DET}.h5")  # for comparison only
    rep = {}
    with SharedConstants(calib if WORLD.rank == 0 else None, DET) as sc:
        got = sc.get_many(CTYPES, T)
        rep["many"] = {c: describe(got[c], own.get(c, T)) for c in CTYPES}
        old = sc.get("pedestals", T, vers=1)
        rep["vers1"] = describe(old, own.get("pedestals", T, vers=1))
        rep["stats"] = stats(sc)
        del old  # its window is unused now; got's window stays referenced
        rep["freed"] = sc.close()
    # close() left the window of the live arrays alone: they still read correctly
    rep["after_close_equal"] = bool(np.array_equal(got["pedestals"], own.get("pedestals", T)))
    with SharedConstants(calib, DET) as sc2:
        sc2.get_many(["pedestals"], T)  # result dropped at once
        rep["freed_unreferenced"] = sc2.close()
    return rep


def nodes2(calib: str) -> dict:
    """Two groups of two ranks stand for two nodes; rank 3 reads."""
    groups = WORLD.Split(WORLD.rank // 2, WORLD.rank)
    own = DCStore(Path(calib) / "epix10ka" / f"{DET}.h5")
    with SharedConstants(calib if WORLD.rank == 3 else None, DET, root=3,
                         node_comm=groups) as sc:
        got = sc.get_many(CTYPES, T)
        rep = {"many": {c: describe(got[c], own.get(c, T)) for c in CTYPES},
               "stats": stats(sc)}
        del got
    return rep


def refused_opener():
    """A real connection attempt to a closed loopback port: the server is down."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    socket.create_connection(("127.0.0.1", port), timeout=5)


class ObjectArrays:
    """A reader whose get() returns what must never reach shared memory."""

    def get(self, ctype, t):
        return np.array([object(), object()])


def errors(calib: str) -> dict:
    rep = {}
    damaged = str(Path(calib) / "damaged" / "epix10ka-0002.h5")
    with SharedConstants(calib, DET) as sc:
        rep["missing_ctype"] = catch(lambda: sc.get("pixel_rms", T))
        rep["bad_time"] = catch(lambda: sc.get("pedestals", "not-a-time"))
        rep["no_range"] = catch(lambda: sc.get("pedestals", "2020-01-01"))
        rep["one_of_many_missing"] = catch(lambda: sc.get_many(["pedestals", "nope"], T))
        rep["bad_version"] = catch(lambda: sc.get("pedestals", T, vers=9))
        odd = ["pixel_status"] if WORLD.rank == 2 else ["pedestals"]
        rep["ranks_disagree"] = catch(lambda: sc.get_many(odd, T))
        # the communicator is still in step after the errors
        rep["then_ok"] = float(sc.get("pedestals", T).sum())
    for name, src, det in (("missing_file", calib, "epix10ka-0099"),
                           ("damaged_file", damaged, None),
                           ("server_down", refused_opener, None),
                           ("bad_source", 42, None),
                           ("object_payload", ObjectArrays, None),
                           ("client_exits", lambda: sys.exit(1), None)):
        with SharedConstants(src, det) as sc:
            rep[name] = catch(lambda: sc.get("pedestals", T))
    return rep


def crash(calib: str) -> dict:
    """The reading rank dies (SIGKILL) while the others wait for the data."""
    def opener():
        os.kill(os.getpid(), signal.SIGKILL)
    with SharedConstants(opener) as sc:
        sc.get("pedestals", T)
    return {"unreachable": True}


def slow(calib: str, outdir: str) -> dict:
    """The reading rank hangs (a stuck file system or server); the others give up after
    their timeout, report, and end the job with Abort as documented."""
    import time

    def opener():
        time.sleep(60)
    try:
        with SharedConstants(opener, timeout=2) as sc:
            sc.get("pedestals", T)
    except Exception as exc:
        rep = {"error": [type(exc).__name__, str(exc)], "rank": WORLD.rank}
        Path(outdir, f"rank{WORLD.rank}.json").write_text(json.dumps(rep))
    if WORLD.rank == 1:  # once ranks 1..3 have reported (bounded wait), end everything
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(Path(outdir).glob("rank*"))) < 3:
            time.sleep(0.05)
        WORLD.Abort(3)
    time.sleep(60)
    return {}


def main() -> None:
    scenario, calib, outdir = sys.argv[1:4]
    if scenario == "slow":
        slow(calib, outdir)
    rep = globals()[scenario](calib)
    rep["rank"] = WORLD.rank
    Path(outdir, f"rank{WORLD.rank}.json").write_text(json.dumps(rep))


if __name__ == "__main__":
    main()
