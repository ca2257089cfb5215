#!/usr/bin/env python
"""Benchmark of pscalib.mpi against every rank opening the store file itself.

For each payload preset the script builds a store (pedestals and pixel_gain arrays of the
preset's shape, float32, plus a real packaged geometry text), then runs
``mpirun -n RANKS`` twice with this script as the worker:

* ``file``: the baseline; every rank opens the store with DCStore and gets every ctype;
* ``mpi``: ``SharedConstants(...).get_many``: rank 0 reads, one shared window per node,
  read-only views on every rank.

It reports the wall time (from a common barrier until the slowest rank holds all constants;
median of ``--repeat`` runs) and the memory of the node: the sum over ranks of the PSS
(``/proc/<pid>/smaps_rollup``; shared pages are divided among the processes mapping them, so
the shared window counts once) while every rank holds its constants, and that sum minus the
same ranks' PSS before the first read (the memory the constants cost). Ratios are mpi / file,
measured in the same run.

Usage::

    python scripts/bench_mpi.py                                   # 4 ranks, tiny: seconds
    python scripts/bench_mpi.py --ranks 16 --preset epix10ka2m --preset jungfrau

With more ranks than cores mpirun runs oversubscribed (``--oversubscribe``): ranks share the
CPUs, which slows the baseline's parallel reads and the broadcast alike. The store file is
warm in the page cache for both (just written); the page cache is not part of any PSS.
The stores are built in a fresh temporary directory that is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import machine_line, make_array  # noqa: E402  (one machine line for all benches)

PRESETS = {  # name: (detname, shape, packaged geometry)
    "tiny": ("epix10ka-0001", (2, 35, 38), "epix10kaquad"),
    "epix10ka2m": ("epix10ka-0002", (16, 352, 384), "epix10kaquad"),
    "jungfrau": ("jungfrau-0001", (32, 512, 1024), "jungfrau4M"),
}
CTYPES = ["pedestals", "pixel_gain", "geometry"]
T = "2024-06-01T00:00:00Z"
MIB = 2 ** 20


# ---------------------------------------------------------------------------- worker
def pss_kib() -> int:
    """This process's proportional set size in KiB."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss line in /proc/self/smaps_rollup (Linux >= 4.14 needed)")


def worker(mode: str, store: str, out: str, repeat: int) -> None:
    from mpi4py import MPI
    from pscalib import DCStore
    from pscalib.mpi import SharedConstants

    comm = MPI.COMM_WORLD
    before = pss_kib()  # everything imported, nothing read
    times: List[float] = []
    held: Dict[str, object] = {}
    for i in range(repeat):
        held.clear()  # the previous round's constants go before the next round starts
        comm.Barrier()
        t0 = MPI.Wtime()
        if mode == "file":
            with DCStore(store) as cs:
                held = {c: cs.get(c, T) for c in CTYPES}
        else:
            sc = SharedConstants(store if comm.rank == 0 else None)
            held = sc.get_many(CTYPES, T)
        took = MPI.Wtime() - t0
        times.append(comm.allreduce(took, op=MPI.MAX))  # the slowest rank ends the read
        if mode == "mpi" and i < repeat - 1:
            held.clear()
            sc.close()
    touched = sum(float(a.sum()) for a in held.values() if not isinstance(a, str))
    comm.Barrier()  # every rank holds its constants now
    rep = comm.gather({"before": before, "after": pss_kib(), "check": touched}, root=0)
    if comm.rank == 0:
        Path(out).write_text(json.dumps({"times": times, "ranks": rep}))
    comm.Barrier()


# ---------------------------------------------------------------------------- driver
def build_store(calib: Path, preset: str) -> Path:
    from pscalib import DCStore
    from pscalib.demo import geometry_text
    detname, shape, geometry = PRESETS[preset]
    with DCStore(calib, detname, mode="a") as cs:
        cs.add_constants("pedestals", make_array(shape, np.float32, 1), "2024-05-01")
        cs.add_constants("pixel_gain", make_array(shape, np.float32, 2), "2024-05-01")
        cs.add_constants("geometry", geometry_text(geometry), "2024-05-01")
        return cs.path


def run_mode(mode: str, store: Path, ranks: int, repeat: int, tmp: Path) -> dict:
    out = tmp / f"{mode}-{store.stem}.json"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent),
                                                        os.environ.get("PYTHONPATH")])))
    cmd = ["mpirun", "--oversubscribe", "-n", str(ranks), sys.executable, __file__,
           "--worker", mode, str(store), str(out), "--repeat", str(repeat)]
    subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    return json.loads(out.read_text())


def summary(res: dict) -> dict:
    ranks = res["ranks"]
    return {"time": statistics.median(res["times"]),
            "pss": sum(r["after"] for r in ranks) * 1024 / MIB,
            "cost": sum(r["after"] - r["before"] for r in ranks) * 1024 / MIB,
            "check": {r["check"] for r in ranks}}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=4, help="MPI ranks (default 4)")
    p.add_argument("--preset", action="append", choices=sorted(PRESETS),
                   help="payload shape; repeat for several (default tiny)")
    p.add_argument("--repeat", type=int, default=3, help="timed reads per mode (default 3)")
    p.add_argument("--tmpdir", type=Path, help="where to build the stores")
    p.add_argument("--worker", nargs=3, metavar=("MODE", "STORE", "OUT"),
                   help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(*a.worker, a.repeat)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="pscalib-bench-mpi-", dir=a.tmpdir))
    try:
        run(a, tmp, argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # stores of up to 256 MiB: never leave them
    return 0


def run(a: argparse.Namespace, tmp: Path, argv: Optional[List[str]]) -> None:
    print(machine_line(tmp))
    print(f"command: {' '.join(['python', 'scripts/bench_mpi.py'] + (argv or sys.argv[1:]))}")
    over = " (oversubscribed)" if a.ranks > (os.cpu_count() or 1) else ""
    print(f"ranks: {a.ranks} on {os.cpu_count()} cores{over}, one node; median of "
          f"{a.repeat} reads")
    print("| payload | mode | wall time | node PSS | PSS of constants | time ratio | "
          "memory ratio |")
    print("|---|---|---|---|---|---|---|")
    for preset in a.preset or ["tiny"]:
        store = build_store(tmp / "calib", preset)
        shape = PRESETS[preset][1]
        mib = 2 * int(np.prod(shape)) * 4 / MIB
        res = {m: summary(run_mode(m, store, a.ranks, a.repeat, tmp)) for m in ("file", "mpi")}
        if len(res["file"]["check"] | res["mpi"]["check"]) != 1:
            raise SystemExit(f"ranks disagree on the constants of {preset}: {res}")
        name = f"{preset} 2 x {'x'.join(map(str, shape))} float32 ({mib:.2f} MiB) + geometry"
        for m in ("file", "mpi"):
            r = res[m]
            ratio_t = r["time"] / res["file"]["time"]
            ratio_m = r["cost"] / res["file"]["cost"] if res["file"]["cost"] > 0 else float("nan")
            print(f"| {name} | {m} | {r['time'] * 1e3:.1f} ms | {r['pss']:.1f} MiB | "
                  f"{r['cost']:.1f} MiB | {ratio_t:.3f} | {ratio_m:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
