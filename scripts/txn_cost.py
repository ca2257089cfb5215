#!/usr/bin/env python
"""Cost of one small change to a large store against a plain copy of that file.

Builds a store of about ``--gib`` GiB (arrays of 128 MiB), then times, ``--repeat`` times
each (median reported):

- ``cp``: ``shutil.copyfile`` of the store (what any copy-on-write update must at least do);
- ``cp+fsync``: the same followed by fsync of the copy (a durable copy);
- ``txn``: ``DCStore.add_constants`` of a 4x4 array - lock, copy, change, fsync, rename,
  fsync directory - as a user calls it.

The copy method the transaction uses on this filesystem (reflink, copy_file_range or copy)
is printed. The files are deleted at the end.

Usage::

    python scripts/txn_cost.py --dir /path/on/the/filesystem/to/test --gib 1
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pscalib.store.dcstore import DCStore  # noqa: E402
from pscalib.txn.atomic import copy_file  # noqa: E402

CHUNK = 128 * 2**20


def build(path: Path, gib: float) -> None:
    n = max(1, round(gib * 2**30 / CHUNK))
    rng = np.random.default_rng(0)
    with DCStore(path, mode="a") as cs:
        with cs.transaction():  # one copy of a small file, not n copies of a growing one
            for i in range(n):
                cs.add_constants("pixel_gain", rng.random(CHUNK // 8),
                                 1_700_000_000 + i * 86400)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=None,
                    help="directory on the filesystem to measure (default: a temp dir)")
    ap.add_argument("--gib", type=float, default=1.0, help="store size in GiB (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of one more transaction")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="pscalib-txncost-", dir=args.dir))
    try:
        store = base / "cspad-0001.h5"
        t_build = timed(lambda: build(store, args.gib))
        size = store.stat().st_size
        probe = base / "probe"
        method = copy_file(store, probe)
        probe.unlink()

        def plain_copy(sync: bool) -> None:
            dst = base / "copy.h5"
            shutil.copyfile(store, dst)
            if sync:
                fd = os.open(dst, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            dst.unlink()

        cs = DCStore(store, mode="a")
        runs = {"cp": [], "cp+fsync": [], "txn": []}
        for i in range(args.repeat):
            runs["cp"].append(timed(lambda: plain_copy(False)))
            runs["cp+fsync"].append(timed(lambda: plain_copy(True)))
            runs["txn"].append(timed(lambda: cs.add_constants(
                "pedestals", np.full((4, 4), i, dtype="f4"), 1_700_000_000)))
        if args.profile:  # where one transaction spends its time
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.runcall(cs.add_constants, "pedestals", np.ones((4, 4), dtype="f4"),
                         1_700_000_000)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        cs.close()
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"store {size / 2**30:.2f} GiB in {base} (built in {t_build:.1f} s); "
              f"transaction copy method: {method}; median of {args.repeat}")
        for k, v in runs.items():
            print(f"  {k:9s} {med[k]:7.3f} s   runs: {', '.join(f'{x:.3f}' for x in v)}")
        print(f"  ratio txn/cp = {med['txn'] / med['cp']:.2f}, "
              f"txn/(cp+fsync) = {med['txn'] / med['cp+fsync']:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
