#!/usr/bin/env python
"""Benchmark of deduplication and verify on a store with many versions.

Builds a store with N ranges (one version each, distinct payloads) and measures: an add of
a new payload, an add of a payload stored elsewhere (hard link via the /_payloads index),
an unchanged add (no write), ``get``, ``verify`` and ``diff`` of the file with itself.

    python scripts/bench_exchange.py [--n 2000] [--shape 32,185,388] [DIR]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from pscalib import DCStore
from pscalib.exchange import diff_stores, verify
from pscalib.store.payindex import find_identical


def _timed(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=200, help="number of ranges/versions")
    ap.add_argument("--shape", default="4,16,16", help="payload shape")
    args = ap.parse_args(argv)
    shape = tuple(int(x) for x in args.shape.split(","))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "cspad" / "cspad-0001.h5"
        rng = np.random.default_rng(0)
        day = 86400
        t0 = time.perf_counter()
        with DCStore(path, mode="a") as cs:
            with cs.transaction():
                for i in range(args.n):
                    cs.add_constants("pedestals", rng.normal(size=shape), 1.7e9 + i * day,
                                     1.7e9 + (i + 1) * day)
        build = time.perf_counter() - t0
        with DCStore(path, mode="a") as cs:
            mid = 1.7e9 + (args.n // 2) * day + 1
            known = cs.get("pedestals", mid)
            t_new = _timed(lambda: cs.add_constants("pixel_rms", rng.normal(size=shape), 1.6e9))
            res = {}
            t_link = _timed(lambda: res.setdefault("v", cs.add_constants(
                "pixel_bkgd", known.copy(), 1.6e9)))
            assert res["v"].linked_to is not None
            t_same = _timed(lambda: res.setdefault("u", cs.add_constants(
                "pedestals", known.copy(), 1.7e9 + (args.n // 2) * day,
                1.7e9 + (args.n // 2 + 1) * day)))
            assert res["u"].unchanged
            t_get = _timed(lambda: cs.get("pedestals", mid), repeat=200)
        with h5py.File(path, "r") as f:  # the index lookup alone
            t_lookup = _timed(lambda: find_identical(f, "0" * 64, known), repeat=20)
        t_verify = _timed(lambda: verify(path))
        t_diff = _timed(lambda: diff_stores(path, path))
        size = path.stat().st_size
    print(f"store: {args.n} versions of {shape} float64, {size / 2**20:.1f} MiB, built in "
          f"{build:.2f} s")
    print(f"add new payload:            {t_new * 1e3:8.1f} ms")
    print(f"add duplicate (hard link):  {t_link * 1e3:8.1f} ms")
    print(f"add unchanged (copy, abort): {t_same * 1e3:8.1f} ms")
    print(f"index lookup (no match):    {t_lookup * 1e3:8.3f} ms")
    print(f"get:                        {t_get * 1e6:8.1f} us")
    print(f"verify (all checksums):     {t_verify * 1e3:8.1f} ms")
    print(f"diff with itself:           {t_diff * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
