#!/usr/bin/env python
"""Benchmark of the pscalib hot paths against baselines measured in the same run.

Builds synthetic stores in a temporary directory, times pscalib and a baseline for each
figure (median of ``--repeat`` runs after warm-up, pscalib and baseline interleaved so
drift and noisy neighbours hit both sides alike) and prints a table of ratios with
PASS/FAIL against the targets of issue 7, plus absolute times and a machine line.

Usage::

    python scripts/bench.py                 # full sizes (1 GB store, 100 x 20 MB versions)
    python scripts/bench.py --quick         # same figures, smaller sizes, < 1 min
    python scripts/bench.py --quick --tiny  # seconds; for the smoke test, ratios meaningless
    python scripts/bench.py --check         # exit 1 if a target fails

Reads are warm: every file was just written or read, so it is in the page cache for both
pscalib and the baseline. Before each timed write (the 1 GB figure) ``os.sync()`` runs
untimed, so neither side pays for the other's write-back.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import h5py
import numpy as np

from pscalib.store.dcstore import DCStore
from pscalib.store import filefacts
from pscalib.store.heapcheck import check_file
from pscalib.store.native import h5path

T0 = 1_700_000_000  # Unix seconds of the first range (Nov 2023)
HOUR = 3600
MB = 1e6

# realistic detector arrays (name, detname, ctype, shape, dtype)
CSPAD = ("cspad pedestals", "cspad-0001", "pedestals", (32, 185, 388), np.float64)
EPIX = ("epix10ka2m pedestals", "epix10ka2m-0001", "pedestals", (16, 352, 384), np.float32)
JUNGFRAU = ("jungfrau gains", "jungfrau-0001", "pixel_gain", (3, 8, 512, 1024), np.float32)
TINY_SHAPES = {CSPAD[0]: (2, 18, 38), EPIX[0]: (2, 35, 38), JUNGFRAU[0]: (3, 2, 51, 102)}


# ---------------------------------------------------------------------------- helpers
class Row:
    """One line of the results table."""

    def __init__(self, figure: str, ours: str, base: str, ratio: Optional[float],
                 target: Optional[float], unit: str = "x"):
        self.figure, self.ours, self.base = figure, ours, base
        self.ratio, self.target, self.unit = ratio, target, unit

    @property
    def result(self) -> str:
        if self.target is None:
            return "report"
        return "PASS" if self.ratio is not None and self.ratio <= self.target else "FAIL"

    def cells(self) -> List[str]:
        if self.unit in ("%", "s", "B"):
            r = f"{self.ratio:.3f} {self.unit}" if self.unit != "B" else f"{self.ratio:.0f} B"
            t = f"<= {self.target:g} {self.unit}" if self.target is not None else "-"
        else:
            r = f"{self.ratio:.3f}" if self.ratio >= 0.01 else f"{self.ratio:.2e}"
            t = f"<= {self.target:g}" if self.target is not None else "-"
        return [self.figure, self.ours, self.base, r, t, self.result]


def fmt_t(sec: float) -> str:
    if sec >= 1:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec * 1e6:.0f} us"


def interleaved(ours: Callable[[], object], base: Callable[[], object], repeat: int,
                warmup: int = 2, before: Optional[Callable[[], None]] = None
                ) -> Tuple[float, float]:
    """Median seconds of ``ours`` and ``base``, alternating which runs first."""
    t_ours, t_base = interleaved_n([ours, base], repeat, warmup, before)
    return t_ours, t_base


def interleaved_n(fns: List[Callable[[], object]], repeat: int, warmup: int = 2,
                  before: Optional[Callable[[], None]] = None) -> List[float]:
    """Median seconds of each of ``fns``, run in rotating order so drift and noisy
    neighbours hit all of them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: List[List[float]] = [[] for _ in fns]
    gc_was = gc.isenabled()
    gc.disable()  # a collection landing in one side's timing is noise, not cost
    try:
        for i in range(repeat):
            for k in range(len(fns)):
                j = (i + k) % len(fns)
                if before is not None:
                    before()
                t = time.perf_counter()
                fns[j]()
                times[j].append(time.perf_counter() - t)
    finally:
        if gc_was:
            gc.enable()
    return [statistics.median(ts) for ts in times]


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def data_path(cs: DCStore, ctype: str, t: int) -> str:
    """HDF5 path of the payload ``get`` reads (so the baseline reads the same dataset)."""
    return h5path(cs.version_at(ctype, t)._key) + "/data"


def raw_read(f: h5py.File, path: str) -> np.ndarray:
    return f[path][()]


def fs_type(path: Path) -> str:
    """Filesystem type of ``path`` from /proc/mounts (longest mount point prefix)."""
    best, kind = "", "unknown"
    try:
        real = os.path.realpath(path)
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1].replace("\\040", " ")
                    if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and \
                            len(mnt) > len(best):
                        best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(tmp: Path) -> str:
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.release()}; python {platform.python_version()}, h5py "
            f"{h5py.version.version}, HDF5 {h5py.version.hdf5_version}, numpy {np.__version__}; "
            f"temp dir {tmp} on {fs_type(tmp)}")


def make_array(shape, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 1000).astype(dtype)


# ---------------------------------------------------------------------------- figures
class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path):
        self.a = args
        self.tmp = tmp
        self.rows: List[Row] = []
        self.notes: List[str] = []
        self.built: dict = {}  # ranges -> seconds to build that store

    def store_path(self, detname: str) -> Path:
        return self.tmp / f"{detname}.h5"

    def shape(self, spec) -> tuple:
        return TINY_SHAPES[spec[0]] if self.a.tiny else spec[3]

    def log(self, msg: str) -> None:
        print(f"  .. {msg}", file=sys.stderr, flush=True)

    def detector_store(self, spec) -> Path:
        """The store of one detector with two daily ranges of its array (built once)."""
        _, detname, ctype, _, dtype = spec
        path = self.store_path(detname)
        if not path.exists():
            with DCStore(path, mode="a") as cs, cs.transaction():
                for i in range(2):  # two daily ranges, the benchmark reads the second
                    cs.add_constants(ctype, make_array(self.shape(spec), dtype, i),
                                     T0 + i * 24 * HOUR, T0 + (i + 1) * 24 * HOUR)
        return path

    # -- get of a big array, store open
    def big_get(self) -> None:
        for spec in (CSPAD, EPIX, JUNGFRAU):
            name, detname, ctype, _, dtype = spec
            shape = self.shape(spec)
            path = self.detector_store(spec)
            t = T0 + 30 * HOUR
            with DCStore(path) as cs, h5py.File(path, "r") as f:
                dpath = data_path(cs, ctype, t)
                assert np.array_equal(cs.get(ctype, t), raw_read(f, dpath))

                def raw_direct(f=f, dpath=dpath):
                    ds = f[dpath]
                    out = np.empty(ds.shape, ds.dtype)
                    ds.read_direct(out)
                    return out

                ours, base1, base2 = interleaved_n(
                    [lambda: cs.get(ctype, t), lambda: raw_read(f, dpath), raw_direct],
                    self.a.repeat * 10)
            base = min(base1, base2)  # the faster raw idiom: ds[()] or read_direct
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self.rows.append(Row(f"get {name} {shape} {np.dtype(dtype).name} "
                                 f"({nbytes / MB:.1f} MB), store open / raw h5py read",
                                 fmt_t(ours), fmt_t(base), ours / base, 1.10))

    # -- get(out=) of a 50 MB array vs preadv into the same buffer
    def get_out(self) -> None:
        name, _, ctype, _, dtype = JUNGFRAU
        shape = self.shape(JUNGFRAU)
        path = self.detector_store(JUNGFRAU)
        t = T0 + 30 * HOUR
        out = np.empty(shape, dtype)
        out.fill(0)  # faulted in once: both sides then write into resident pages
        with DCStore(path) as cs, h5py.File(path, "r") as f:
            offset = f[data_path(cs, ctype, t)].id.get_offset()
            fd = os.open(path, os.O_RDONLY)
            buf = memoryview(out.reshape(-1).view(np.uint8))
            try:
                def preadv():
                    return os.preadv(fd, [buf], offset)

                assert cs.get(ctype, t, out=out) is out
                want = out.copy()
                out.fill(0)
                preadv()
                assert np.array_equal(out, want)
                o, b = interleaved(lambda: cs.get(ctype, t, out=out), preadv,
                                   self.a.repeat * 10)
            finally:
                os.close(fd)
        self.rows.append(Row(f"get(out=) {name} {shape} ({out.nbytes / MB:.1f} MB), store "
                             f"open / preadv into the same buffer", fmt_t(o), fmt_t(b), o / b,
                             1.10))

    # -- metadata reads: a 1 GB store vs a 10 MB one of the same shape
    def meta_reads(self) -> None:
        big = int(self.a.gb * 1e9)
        small = 10_000_000 if big >= 100_000_000 else max(big // 10, 100_000)
        nver = 8  # both stores: 4 ranges x 2 versions, dictpars, comments, history
        paths = []
        for total in (big, small):
            path = self.store_path(f"epix10ka-{len(paths) + 7:04d}")
            n = max(1, total // nver // 4)
            with DCStore(path, mode="a") as cs, cs.transaction():
                for i in range(nver):
                    cs.add_constants("pedestals", np.full(n, i, np.float32),
                                     T0 + (i // 2) * 24 * HOUR, T0 + (i // 2 + 1) * 24 * HOUR,
                                     comment=f"version {i}", dictpars={"gain": i, "mode": "x"})
            paths.append(path)
        t = T0 + 30 * HOUR

        def lib(path):
            def run():
                with DCStore(path) as cs:
                    ver = cs.version_at("pedestals", t)
                    ver.info()
                    ver.dictpars()
                    ver.history_records()
                    cs.history_records()
            return run

        dcs = ([shutil.which("dcs")] if shutil.which("dcs") else
               [sys.executable, "-c", "from pscalib.cli.main import main; main()"])

        def cli(path):
            def run():
                r = subprocess.run(dcs + ["print", str(path)], capture_output=True,
                                   timeout=120)
                assert r.returncode == 0, r.stderr
            return run

        sizes = [p.stat().st_size for p in paths]
        what = f"{sizes[0] / 1e9:.2f} GB store / same on a {sizes[1] / MB:.0f} MB one"
        o, b = interleaved(lib(paths[0]), lib(paths[1]), self.a.repeat * 4)
        self.rows.append(Row(f"open + info() + dictpars() + history() on a {what}", fmt_t(o),
                             fmt_t(b), o / b, 2.0))
        # each run starts Python and imports pscalib: few repeats (one in the smoke test)
        o, b = interleaved(cli(paths[0]), cli(paths[1]),
                           1 if self.a.tiny else max(3, self.a.repeat // 2),
                           warmup=0 if self.a.tiny else 1)
        self.rows.append(Row(f"dcs print on a {what}", fmt_t(o), fmt_t(b), o / b, 2.0))
        for p in paths:
            p.unlink()

    # -- open + get of a 4x4 array
    def open_small(self) -> None:
        path = self.detector_store(CSPAD)  # plus a 4x4 type
        with DCStore(path, mode="a") as cs, cs.transaction():
            for i in range(2):
                cs.add_constants("common_mode", np.arange(16.0).reshape(4, 4) + i,
                                 T0 + i * 24 * HOUR, T0 + (i + 1) * 24 * HOUR)
        t = T0 + 30 * HOUR
        with DCStore(path) as cs:
            dpath = data_path(cs, "common_mode", t)

        def ours():
            with DCStore(path) as cs:
                return cs.get("common_mode", t)

        def base():
            with h5py.File(path, "r") as f:
                return f[dpath][()]

        assert np.array_equal(ours(), base())
        o, b = interleaved(ours, base, self.a.repeat * 40, warmup=10)
        self.rows.append(Row("open store + get of a 4x4 float64 / raw h5py open + read "
                             "(the file opened before in this process)",
                             fmt_t(o), fmt_t(b), o / b, 1.5))

        def cold():  # the first open of this file in the process: nothing known about it
            filefacts._FACTS.clear()
            return ours()

        o, b = interleaved(cold, base, self.a.repeat * 40, warmup=10)
        self.rows.append(Row("open store + get of a 4x4 float64 / raw h5py open + read "
                             "(first open of the file in the process)",
                             fmt_t(o), fmt_t(b), o / b, 1.5))

    # -- get with many ranges vs few
    def build_ranges(self, n: int) -> Path:
        """A store of ``n`` hourly 4x4 ranges built in one transaction (once per run)."""
        path = self.store_path(f"epix100a-{n:04d}")
        if path.exists():
            return path
        t = time.perf_counter()
        cpu = time.process_time()
        with DCStore(path, mode="a") as cs, cs.transaction():
            for i in range(n):
                # hourly ranges; every 10th is open-ended, so ranges overlap as in real files;
                # distinct payloads (identical ones would be stored once, as hard links)
                end = None if i % 10 == 9 else T0 + (i + 1) * HOUR
                cs.add_constants("pixel_status", np.full((4, 4), i, np.uint32),
                                 T0 + i * HOUR, end)
        dt = time.perf_counter() - t
        cpu = time.process_time() - cpu
        self.built[n] = dt
        # CPU time too: on a shared machine the wall time also counts other processes
        self.notes.append(f"building a store with {n} ranges in one transaction: {fmt_t(dt)} "
                          f"(CPU time of this process {fmt_t(cpu)})")
        return path

    def many_ranges(self) -> None:
        few, many = 10, self.a.ranges
        p_few = self.build_ranges(few)
        p_many = self.build_ranges(many)
        rng = np.random.default_rng(7)
        fracs = rng.random(1000)
        # the same relative positions in both stores; integer seconds as analysis code gives
        q_few = [T0 + int(x * few * HOUR) for x in fracs]
        q_many = [T0 + int(x * many * HOUR) for x in fracs]
        with DCStore(p_few) as c_few, DCStore(p_many) as c_many:
            # first touch of each range since opening the file: HDF5 reads its object
            # headers (three small reads); reported, no target
            ts_many, ts_few = [], []
            for qm, qf in zip(q_many, q_few):
                t = time.perf_counter()
                c_many.get("pixel_status", qm)
                ts_many.append(time.perf_counter() - t)
                t = time.perf_counter()
                c_few.get("pixel_status", qf)
                ts_few.append(time.perf_counter() - t)
            cold_many, cold_few = statistics.median(ts_many), statistics.median(ts_few)
            # the figure: steady state (each range already touched once, as in an analysis
            # job that keeps reading the same runs): the cost of the lookup itself
            it = {"few": 0, "many": 0}

            def g_few():
                it["few"] = (it["few"] + 1) % len(q_few)
                return c_few.get("pixel_status", q_few[it["few"]])

            def g_many():
                it["many"] = (it["many"] + 1) % len(q_many)
                return c_many.get("pixel_status", q_many[it["many"]])

            o, b = interleaved(g_many, g_few, self.a.repeat * 200, warmup=50)
        self.rows.append(Row(f"get with {many} ranges / with {few} ranges (store open, "
                             f"4x4 uint32)", fmt_t(o), fmt_t(b), o / b, 1.5))
        self.notes.append(f"get with {many} ranges, first touch of each range since open: "
                          f"{fmt_t(cold_many)} ({few} ranges: {fmt_t(cold_few)}; ratio "
                          f"{cold_many / cold_few:.2f}, no target). The figure is measured "
                          f"after one pass over the same {len(q_many)} random times")

        def first(p):
            filefacts._FACTS.clear()  # the first open in a process: reads the whole index
            with DCStore(p) as cs:
                return cs.get("pixel_status", T0 + HOUR // 2)

        o, b = interleaved(lambda: first(p_many), lambda: first(p_few), self.a.repeat * 4)
        self.rows.append(Row(f"open + first get with {many} ranges / with {few} ranges "
                             f"(reads and indexes all ranges)", fmt_t(o), fmt_t(b), o / b,
                             3.0))

    # -- bookkeeping cost of a change (issue 18)
    def add_small(self) -> None:
        """One add of a 4x4 version against sqlite insert + np.save + fsync.

        The store holds 10 ranges. Each pscalib add is a whole transaction (lock, private
        copy, change, fsync, rename, fsync of the directory); the baseline writes the array
        with np.save, fsyncs it and commits one row to an sqlite database (synchronous=FULL,
        rollback journal: it fsyncs too). Also reported: the cost per add inside one
        transaction (no copy, no fsync per add) against the same baseline without fsync.
        """
        import sqlite3
        path = self.build_ranges(10)
        work = self.tmp / "sqlite-npy"
        work.mkdir(exist_ok=True)
        con = sqlite3.connect(work / "index.db")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE IF NOT EXISTS v (ctype TEXT, tsbegin INT, tsend INT, "
                    "version INT, sha TEXT, file TEXT, PRIMARY KEY (ctype, tsbegin, tsend, "
                    "version))")
        con.commit()
        count = {"o": 0, "b": 0}

        def base_one(sync: bool = True) -> None:
            count["b"] += 1
            i = count["b"]
            arr = np.full((4, 4), i, np.float64)
            fn = work / f"{i}.npy"
            with open(fn, "wb") as fh:
                np.save(fh, arr)
                if sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            con.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)",
                        ("common_mode", T0 + i * HOUR, 2**63 - 1, 1, "x" * 64, fn.name))
            if sync:
                con.commit()

        with DCStore(path, mode="a") as cs:
            def ours() -> None:
                count["o"] += 1
                cs.add_constants("common_mode", np.full((4, 4), count["o"], np.float64),
                                 T0 + count["o"] * HOUR)

            o, b = interleaved(ours, base_one, self.a.repeat * 4, warmup=2)
            n = 20 if self.a.tiny else 200
            t = time.perf_counter()
            with cs.transaction():
                for _ in range(n):
                    ours()
            per_txn = (time.perf_counter() - t) / n
        t = time.perf_counter()
        for _ in range(n):
            base_one(sync=False)
        con.commit()
        per_base = (time.perf_counter() - t) / n
        con.close()
        self.rows.append(Row("add one 4x4 version (a whole transaction) / sqlite insert + "
                             "np.save + fsync", fmt_t(o), fmt_t(b), o / b, 2.0))
        self.notes.append(f"add of a 4x4 inside one transaction of {n} adds: {fmt_t(per_txn)} "
                          f"per add (sqlite insert + np.save without fsync, {n} in one "
                          f"commit: {fmt_t(per_base)}; ratio {per_txn / per_base:.2f}, no "
                          f"target: the single-add figure above includes the transaction's "
                          f"whole-file copy, which the in-place engine removes)")

    def range_cost(self) -> None:
        """Building the many-ranges store in one transaction, and its bytes per range."""
        n = self.a.ranges
        path = self.build_ranges(n)
        dt = self.built.get(n)
        payload = n * 4 * 4 * 4  # 4x4 uint32 per range
        per = (path.stat().st_size - payload) / n
        if dt is not None:
            self.rows.append(Row(f"{n} ranges (4x4 uint32) added in one transaction "
                                 f"(absolute, seconds)", fmt_t(dt), "-", dt,
                                 20.0 * n / 10000, "s"))
        self.rows.append(Row(f"file bytes per small range beyond payload ({n} ranges; "
                             f"bytes)", f"{path.stat().st_size / MB:.2f} MB",
                             f"{payload / MB:.2f} MB", per, 2048, "B"))

    # -- one small change to a big store vs copying it
    def big_change(self) -> None:
        name, _, ctype, _, dtype = JUNGFRAU
        shape = self.shape(JUNGFRAU)
        per = int(np.prod(shape)) * np.dtype(dtype).itemsize
        nver = max(1, int(round(self.a.gb * 1e9 / per)))
        path = self.store_path("jungfrau-0002")
        t = time.perf_counter()
        base_arr = make_array(shape, dtype, 1)
        with DCStore(path, mode="a") as cs, cs.transaction():
            for i in range(nver):
                cs.add_constants(ctype, base_arr + np.float32(i), T0 + (i // 4) * 24 * HOUR,
                                 T0 + (i // 4 + 1) * 24 * HOUR)
        del base_arr
        size = path.stat().st_size
        self.notes.append(f"building the {size / 1e9:.2f} GB store ({nver} versions of "
                          f"{name} {shape}) in one transaction: "
                          f"{fmt_t(time.perf_counter() - t)}")
        dst = self.tmp / "plain-copy.h5"
        count = [0]
        with DCStore(path, mode="a") as cs:
            def ours():
                count[0] += 1
                cs.add_constants("common_mode", np.full((4, 4), count[0], np.float64),
                                 T0 + count[0] * HOUR)

            def copy_sync():
                shutil.copyfile(path, dst)
                fd = os.open(dst, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                dst.unlink()

            def copy_plain():
                shutil.copyfile(path, dst)
                dst.unlink()

            rep = max(3, self.a.repeat)
            o, b_sync = interleaved(ours, copy_sync, rep, warmup=1, before=os.sync)
            o2, b_plain = interleaved(ours, copy_plain, rep, warmup=0, before=os.sync)
        method = _copy_method(path)
        self.rows.append(Row(f"one small change (add a 4x4) to a {size / 1e9:.2f} GB store / "
                             f"plain copy + fsync", fmt_t(o), fmt_t(b_sync), o / b_sync, 1.3))
        self.notes.append(
            f"the change commits durably (copy, edit, fsync, rename, fsync dir; copy method "
            f"'{method}'); the baseline is shutil.copyfile + fsync of the copy, equally "
            f"durable. Against a copy without fsync ({fmt_t(b_plain)}) the ratio is "
            f"{o2 / b_plain:.2f} (no target: that copy leaves {size / 1e9:.2f} GB of dirty "
            f"pages for the kernel to write later)")
        path.unlink()

    # -- one 18 MB version added to a big store changed in place (docs/design/engine.rst)
    def inplace_add(self) -> None:
        name, _, ctype, _, dtype = CSPAD
        shape = self.shape(CSPAD)
        arr = make_array(shape, dtype, 7)
        path = self.store_path("cspad-0009")
        prior = os.environ.get("PSCALIB_INPLACE_SIZE")
        os.environ["PSCALIB_INPLACE_SIZE"] = "0"  # in place from the first commit on
        try:
            t = time.perf_counter()
            with DCStore(path, mode="a") as cs:
                cs.set_par("bench", 1)  # converts the new, empty store
                nver = max(1, int(round(self.a.inplace_gb * 1e9 / arr.nbytes)))
                with cs.transaction():
                    for i in range(nver):
                        cs.add_constants(ctype, arr + i, T0 + (i // 4) * 24 * HOUR,
                                         T0 + (i // 4 + 1) * 24 * HOUR)
            size = path.stat().st_size
            self.notes.append(f"in-place figures: building the {size / 1e9:.2f} GB store "
                              f"({nver} versions of {name} {shape}, in place) took "
                              f"{fmt_t(time.perf_counter() - t)}")
            dst = self.tmp / "plain-write.bin"
            count = [0]
            with DCStore(path, mode="a") as cs:
                def ours():
                    count[0] += 1
                    cs.add_constants(ctype, arr - count[0], T0 + 10**6 + count[0] * HOUR)

                def write_sync():
                    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    try:
                        os.write(fd, memoryview(arr).cast("B"))
                        os.fsync(fd)
                    finally:
                        os.close(fd)

                def before():
                    dst.unlink(missing_ok=True)
                    if not self.a.tiny:  # a sync can take seconds on a busy machine
                        os.sync()

                o, b = interleaved(ours, write_sync, max(3, self.a.repeat), warmup=1,
                                   before=before)
                dst.unlink(missing_ok=True)
                self.rows.append(Row(f"add one {arr.nbytes / MB:.0f} MB version to a "
                                     f"{size / 1e9:.2f} GB store (in place) / write "
                                     f"{arr.nbytes / MB:.0f} MB + fsync", fmt_t(o), fmt_t(b),
                                     o / b, 2))
                peak, change = _peak_extra_disk(path.parent, ours), arr.nbytes
            scan = median_time(lambda: check_file(path), 1, warmup=0)
            self.notes.append(
                f"a scan of the whole file for damaged string heaps (heapcheck.check_file) "
                f"would take {fmt_t(scan)} here, timed once: in-place commits no longer run "
                f"it (the writer's file object judges the heap collections HDF5 loads; "
                f"copy-on-write commits of stores below PSCALIB_INPLACE_SIZE still scan)")
            self.rows.append(Row(f"extra disk while committing one {arr.nbytes / MB:.0f} MB "
                                 f"version (peak of all files beside the store) / the change",
                                 f"{peak / MB:.1f} MB", f"{change / MB:.1f} MB",
                                 peak / change, 2))
            self.notes.append("the extra disk is sampled every ~0.2 ms in a thread: the sum of "
                              "the sizes of all files in the store's directory minus their "
                              "sum before the commit; the change is the payload's bytes")
        finally:
            if prior is None:
                os.environ.pop("PSCALIB_INPLACE_SIZE", None)
            else:
                os.environ["PSCALIB_INPLACE_SIZE"] = prior
            path.unlink(missing_ok=True)

    # -- file size overhead
    def size_overhead(self) -> None:
        name, _, ctype, _, dtype = CSPAD
        shape = self.shape(CSPAD)
        n = self.a.versions
        path = self.store_path("cspad-0100")
        base_arr = make_array(shape, dtype, 3)
        payload = 0
        batch = max(1, (n + 3) // 4)  # four transactions, as a store grows over time
        t = time.perf_counter()
        with DCStore(path, mode="a") as cs:
            done = 0
            while done < n:
                with cs.transaction():
                    for i in range(done, min(n, done + batch)):
                        arr = base_arr + float(i)  # distinct bytes: nothing is deduplicated
                        cs.add_constants(ctype, arr, T0, None, comment=f"run {i}")
                        payload += arr.nbytes
                done = min(n, done + batch)
        size = path.stat().st_size
        pct = 100.0 * (size - payload) / payload
        self.notes.append(f"building {n} versions of {name} {shape} in {(n + batch - 1) // batch} "
                          f"transactions: {fmt_t(time.perf_counter() - t)}")
        self.rows.append(Row(f"file size beyond payload bytes, {n} versions of {name} "
                             f"({payload / n / MB:.1f} MB each)",
                             f"{size / MB:.1f} MB", f"{payload / MB:.1f} MB", pct, 1.0, "%"))
        path.unlink()

    # -- NDArrIO text
    def ndarrio(self) -> None:
        name, detname, ctype, _, dtype = CSPAD
        path = self.detector_store(CSPAD)
        t = T0 + 30 * HOUR
        txt = self.tmp / "pedestals.txt"
        with DCStore(path) as cs:
            arr = cs.get(ctype, t)
            load, how = _ndarrio_io(txt, arr)
            assert np.array_equal(load(), arr)
            o, b = interleaved(lambda: cs.get(ctype, t), load, max(3, self.a.repeat // 2),
                               warmup=1)
        self.rows.append(Row(f"get {name} / load the same array from NDArrIO text "
                             f"({txt.stat().st_size / MB:.0f} MB, {how})",
                             fmt_t(o), fmt_t(b), o / b, None))
        txt.unlink()

    # -- alias files (issue 13: parsing was quadratic in the number of records)
    def aliases(self) -> None:
        from pscalib.aliases import resolve_alias
        many = 1600 if self.a.tiny else 16000
        few = many // 10
        big = _alias_calib(self.tmp / "alias-many", many)
        small = _alias_calib(self.tmp / "alias-few", few)
        o, b = interleaved(lambda: resolve_alias("Src:1", big), lambda: resolve_alias(
            "Src:1", small), max(3, self.a.repeat // 2), warmup=1)
        self.rows.append(Row(f"resolve an alias, file of {many} records / of {few} records "
                             f"(linear: 10)", fmt_t(o), fmt_t(b), o / b, 15.0))


    def by_run(self) -> None:
        """get(ctype, run=r) and get_all(run=r) against get(ctype, t) at the run's begin.

        A store in an experiment workspace with a run table (100 runs); NCT ctypes of small
        4x4 arrays, each valid by runs in 10-run blocks, so the lookup overhead is not
        hidden behind payload reads (the conservative case).
        """
        from pscalib.runs import add_runs, run_table_path
        nct, nruns = 5, 100
        calib = self.tmp / "XPP" / "xppx0001" / "calib"
        add_runs(run_table_path(calib), [(r, T0 + r * HOUR, T0 + r * HOUR + HOUR // 2)
                                         for r in range(1, nruns + 1)])
        path = calib / "epix10ka" / "epix10ka-0009.h5"
        ctypes = [f"ctype{i}" for i in range(nct)]
        with DCStore(path, mode="a") as cs, cs.transaction():
            for c in ctypes:
                for first in range(1, nruns + 1, 10):
                    cs.add_constants(c, np.full((4, 4), first, np.float64),
                                     runs=(first, first + 9))
        runs = list(range(1, nruns + 1))
        times = [T0 + r * HOUR for r in runs]
        with DCStore(path) as cs:
            assert np.array_equal(cs.get(ctypes[0], run=37), cs.get(ctypes[0], times[36]))
            assert all(np.array_equal(a, cs.get(c, times[36]))
                       for c, a in cs.get_all(run=37).items())
            it = {"t": 0, "r": 0, "a": 0}

            def by_time():
                it["t"] = (it["t"] + 1) % nruns
                return cs.get(ctypes[it["t"] % nct], times[it["t"]])

            def by_run():
                it["r"] = (it["r"] + 1) % nruns
                return cs.get(ctypes[it["r"] % nct], run=runs[it["r"]])

            def get_all():
                it["a"] = (it["a"] + 1) % nruns
                return cs.get_all(run=runs[it["a"]])

            n = self.a.repeat * 100
            o_run, b_time, o_all = interleaved_n([by_run, by_time, get_all], n, warmup=50)
        self.rows.append(Row("get by run / get by time (store open, 4x4 float64, run "
                             "table of 100 runs)", fmt_t(o_run), fmt_t(b_time),
                             o_run / b_time, 1.2))
        self.rows.append(Row(f"get_all by run ({nct} ctypes) / one get by time "
                             f"(target 1.2 x {nct})", fmt_t(o_all), fmt_t(b_time),
                             o_all / b_time, 1.2 * nct))


    # -- get(tag=...) and get(asof=...) (issue 17)
    def frozen(self) -> None:
        """get(ctype, t, tag=NAME) and get(ctype, t, asof=T0) against get(ctype, t), and
        get(ctype, t, vers=1, asof=T0) (the version log too) against get(ctype, t, vers=1).

        NCT ctypes of 4x4 arrays in 50 ranges, each with 3 versions added one by one (so
        the change log holds 150 rows per ctype); the tag and T0 are taken after the
        second version: both answer from other versions than plain get.
        """
        from pscalib.store.tags import create_tag
        from pscalib.timestamps import now_ns
        nct, nr = 5, 50
        path = self.tmp / "frozen" / "epix10ka-0010.h5"
        ctypes = [f"ctype{i}" for i in range(nct)]
        with DCStore(path, mode="a", detname="epix10ka-0010") as cs:
            for rep in range(3):
                with cs.transaction():
                    for c in ctypes:
                        for r in range(nr):
                            cs.add_constants(c, np.full((4, 4), 10 * r + rep, np.float64),
                                             T0 + r * HOUR, force=True)
                if rep == 1:
                    create_tag(cs, "bench")
                    t0 = divmod(now_ns(), 10**9)
        times = [T0 + r * HOUR + HOUR // 2 for r in range(nr)]
        with DCStore(path) as cs:
            assert cs.get(ctypes[0], times[3], tag="bench")[0, 0] == 31
            assert cs.get(ctypes[0], times[3], asof=t0)[0, 0] == 31
            assert cs.get(ctypes[0], times[3])[0, 0] == 32
            assert cs.get(ctypes[0], times[3], vers=1, asof=t0)[0, 0] == 30
            it = {"p": 0, "t": 0, "a": 0, "v": 0, "w": 0}

            def plain():
                it["p"] = (it["p"] + 1) % nr
                return cs.get(ctypes[it["p"] % nct], times[it["p"]])

            def tagged():
                it["t"] = (it["t"] + 1) % nr
                return cs.get(ctypes[it["t"] % nct], times[it["t"]], tag="bench")

            def asof():
                it["a"] = (it["a"] + 1) % nr
                return cs.get(ctypes[it["a"] % nct], times[it["a"]], asof=t0)

            def vers():
                it["v"] = (it["v"] + 1) % nr
                return cs.get(ctypes[it["v"] % nct], times[it["v"]], vers=1)

            def vers_asof():
                it["w"] = (it["w"] + 1) % nr
                return cs.get(ctypes[it["w"] % nct], times[it["w"]], vers=1, asof=t0)

            n = self.a.repeat * 100
            o_tag, o_asof, b, o_va, b_v = interleaved_n([tagged, asof, plain, vers_asof, vers],
                                                         n, warmup=2 * nr)
        self.rows.append(Row("get(tag=) / get (store open, 4x4 float64, 5 ctypes x 50 "
                             "ranges x 3 versions)", fmt_t(o_tag), fmt_t(b), o_tag / b, 1.5))
        self.rows.append(Row("get(asof=) / get (same store, 750 change-log rows)",
                             fmt_t(o_asof), fmt_t(b), o_asof / b, 1.5))
        self.rows.append(Row("get(vers=1, asof=) / get(vers=1) (same store, 750 version-log "
                             "rows)", fmt_t(o_va), fmt_t(b_v), o_va / b_v, 1.5))


def _alias_calib(folder: Path, n: int) -> Path:
    """A calib directory whose cspad alias file holds ``n`` records (n / 4 aliases)."""
    (folder / "cspad").mkdir(parents=True, exist_ok=True)
    lines = [f"Src:{i % max(1, n // 4)} cspad-{i % 9999:04d} {1_000_000 + 10 * i} "
             f"{1_000_000 + 10 * i + 5}" for i in range(n)]
    (folder / "cspad" / "aliases.txt").write_text("\n".join(lines) + "\n")
    return folder


    # -- get by run and get_all (issue 15)


def _copy_method(path: Path) -> str:
    from pscalib.txn.atomic import copy_file
    probe = path.with_name(".copy-probe.h5")
    try:
        return copy_file(path, probe)
    finally:
        probe.unlink(missing_ok=True)


def _ndarrio_io(txt: Path, arr: np.ndarray) -> Tuple[Callable[[], np.ndarray], str]:
    """Write ``arr`` as NDArrIO text; return a loader and its description."""
    try:
        from pscalib.ndarrio import load_ndarrio, save_ndarrio
    except ImportError:  # fallback: the same text layout, parsed with numpy
        with open(txt, "w") as fh:
            fh.write(f"# DTYPE double\n# NDIM {arr.ndim}\n")
            for i, n in enumerate(arr.shape, 1):
                fh.write(f"# DIM:{i} {n}\n")
            np.savetxt(fh, arr.reshape(-1, arr.shape[-1]), fmt="%r")
        return (lambda: np.loadtxt(txt, dtype=arr.dtype).reshape(arr.shape),
                "numpy.loadtxt")
    save_ndarrio(txt, arr, {"TITLE": "benchmark"})
    return (lambda: load_ndarrio(txt)[0]), "pscalib.ndarrio.load_ndarrio"


def _dir_bytes(folder: Path) -> int:
    total = 0
    for e in os.scandir(folder):
        try:
            total += e.stat(follow_symlinks=False).st_size if e.is_file() else 0
        except OSError:
            pass  # a temporary file renamed or removed meanwhile
    return total


def _peak_extra_disk(folder: Path, change: Callable[[], object]) -> int:
    """Peak bytes of all files in ``folder`` beyond their sum before ``change()``."""
    start = _dir_bytes(folder)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _dir_bytes(folder) - start)
            time.sleep(0.0002)
    th = threading.Thread(target=sample)
    th.start()
    try:
        change()
    finally:
        done.set()
        th.join()
    return max(peak[0], _dir_bytes(folder) - start)


# ---------------------------------------------------------------------------- main
#: figure name (for --only) -> Bench method, in the order of the table
STEPS = {"get": "big_get", "out": "get_out", "open": "open_small", "meta": "meta_reads",
         "ranges": "many_ranges", "add": "add_small", "build": "range_cost",
         "change": "big_change", "size": "size_overhead", "runs": "by_run", "frozen": "frozen",
         "ndarrio": "ndarrio", "aliases": "aliases", "inplace": "inplace_add"}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer repeats (under a minute): --gb 0.25, "
                        "--ranges 2000, --versions 20, --repeat 5")
    p.add_argument("--tiny", action="store_true",
                   help="tiny arrays and stores (a few seconds; ratios are not meaningful, "
                        "for smoke tests only)")
    p.add_argument("--repeat", type=int, help="timed repeats per figure (default 10)")
    p.add_argument("--gb", type=float, help="size of the big store in GB (default 1)")
    p.add_argument("--ranges", type=int, help="ranges in the big ctype (default 10000)")
    p.add_argument("--inplace-gb", type=float,
                   help="size of the store changed in place in GB (default 4)")
    p.add_argument("--versions", type=int,
                   help="versions of the 20 MB array for the size figure (default 100)")
    p.add_argument("--tmpdir", type=Path, help="where to build the stores (default: system "
                   "temp dir); its filesystem decides the copy method")
    p.add_argument("--only", help=f"comma-separated figures to run, of: {', '.join(STEPS)}")
    p.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    a = p.parse_args(argv)
    quick = {"repeat": 5, "gb": 0.25, "ranges": 2000, "versions": 20, "inplace_gb": 0.5}
    tiny = {"repeat": 3, "gb": 0.002, "ranges": 100, "versions": 4, "inplace_gb": 0.0005}
    full = {"repeat": 10, "gb": 1.0, "ranges": 10000, "versions": 100, "inplace_gb": 4.0}
    dflt = tiny if a.tiny else quick if a.quick else full
    for k, v in dflt.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.only = [x.strip() for x in a.only.split(",")] if a.only else list(STEPS)
    if set(a.only) - set(STEPS):
        p.error(f"--only: unknown figure(s) {sorted(set(a.only) - set(STEPS))}; "
                f"choose from {', '.join(STEPS)}")
    if a.repeat < 1 or a.gb <= 0 or a.ranges < 10 or a.versions < 1:
        p.error("--repeat, --gb, --versions must be positive and --ranges at least 10")
    return a


def fit_to_disk(a: argparse.Namespace, tmp: Path) -> None:
    """Halve ``--gb`` and ``--versions`` until the temp dir has space for the stores."""
    free = shutil.disk_usage(tmp).free
    per = 32 * 185 * 388 * 8 if not a.tiny else 2 * 18 * 38 * 8
    # the size figure needs its file plus one transaction copy; the 1 GB figure three copies
    need = lambda: max(a.versions * per * 2.1, a.gb * 1e9 * 3.2,  # noqa: E731
                       a.inplace_gb * 1e9 * 1.1) + 1e9
    while need() > free and (a.versions > 1 or a.gb > 0.01):
        a.versions = max(1, a.versions // 2)
        a.gb = max(0.01, a.gb / 2)
        a.inplace_gb = max(0.01, a.inplace_gb / 2)
    if need() > free:
        raise SystemExit(f"not enough free space in {tmp}: {free / 1e9:.1f} GB free")


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    base = a.tmpdir if a.tmpdir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    want = (a.gb, a.versions)
    fit_to_disk(a, base)
    tmp = Path(tempfile.mkdtemp(prefix="pscalib-bench-", dir=base))
    print(machine_line(tmp))
    if (a.gb, a.versions) != want:
        print(f"NOTE: not enough free space in {base} for --gb {want[0]} --versions {want[1]}: "
              f"scaled down to --gb {a.gb:g} --versions {a.versions}")
    mode = "tiny (smoke test: ratios not meaningful)" if a.tiny else \
        "quick" if a.quick else "full"
    print(f"mode: {mode}; repeat {a.repeat}; big store {a.gb:g} GB; {a.ranges} ranges; "
          f"{a.versions} versions; reads warm (page cache), medians after warm-up")
    sys.stdout.flush()
    b = Bench(a, tmp)
    t_start = time.perf_counter()
    try:
        for name in a.only:
            b.log(name)
            getattr(b, STEPS[name])()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    head = ["figure", "pscalib", "baseline", "ratio", "target", "result"]
    table = [head] + [r.cells() for r in b.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    sep = "+".join("-" * (w + 2) for w in widths)
    print()
    for k, r in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            print("|" + sep.replace("+", "|") + "|")
    print()
    for n in b.notes:
        print(f"- {n}")
    print(f"- total benchmark time {fmt_t(time.perf_counter() - t_start)}")
    failed = [r for r in b.rows if r.result == "FAIL"]
    print(f"{len(failed)} of {sum(r.target is not None for r in b.rows)} targets failed"
          + (" (tiny mode: not meaningful)" if a.tiny else ""))
    return 1 if (a.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
