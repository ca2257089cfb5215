#!/usr/bin/env python
"""Fuzz the store readers with randomly damaged files (issue 8).

Takes valid stores (a few small native ones built here, plus a copy of the original LCLS DCS
file ``../shared/data/legacy-dcs/epix100a-*.h5`` when present), corrupts copies of them
(bit flips, truncation, blocks overwritten with random bytes or zeros, duplicated blocks;
offsets biased towards the HDF5 metadata at the start and end of the file) and on each one:
opens it with :class:`pscalib.DCStore`, reads the metadata, every ctype / range / version
(info, payload, dictpars, history), looks up ``get`` at a few times, runs
``pscalib.exchange.verify`` and (for some cases) tries a small write.

Rules checked
    Only pscalib errors may come out. Any other exception is a failure (printed with its
    traceback). Cases run in persistent worker subprocesses: a worker killed by a signal
    (segfault, abort) is a failure, and so is a case that runs longer than ``--timeout``
    seconds (the worker is killed and replaced). The pristine inputs are digested (sha256)
    before and after the run: a changed input is a failure.

Usage::

    python scripts/fuzz_files.py --cases 10000 --jobs 2 --seed 1
    python scripts/fuzz_files.py --cases 1 --seed 1 --first 4711   # rerun one case

Exit status 0 when there were no failures, 1 otherwise. ``--keep DIR`` keeps the damaged
file of every failing case for reproduction.
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import hashlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
LEGACY_DIR = ROOT.parent / "shared" / "data" / "legacy-dcs"
KINDS = ("bitflip", "truncate", "random_block", "zero_block", "dup_block")
OK = "ok"


# ------------------------------------------------------------------------ inputs
def build_inputs(workdir: Path, legacy: str) -> List[Path]:
    """Pristine stores to corrupt: three small native ones and (optionally) legacy copies."""
    import numpy as np
    from pscalib import DCStore

    inputs = []
    rng = np.random.default_rng(0)
    p = workdir / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pedestals", rng.random((4, 8, 8)), "2024-01-01", "2024-06-01",
                         dictpars={"gain": 1.5, "mode": "fixed", "bits": [1, 2, 3]})
        cs.add_constants("pedestals", rng.random((4, 8, 8)), "2024-01-01", "2024-06-01",
                         make_default=False, comment="second version")
        cs.add_constants("pedestals", rng.random((4, 8, 8)), "2024-06-01")
        cs.add_constants("pixel_status", rng.integers(0, 3, (4, 8, 8), dtype=np.uint16),
                         "2024-01-01")
        cs.add_constants("geometry", "# geometry\nQUAD:V1 0 CSPAD:V1 0 0 0 0 0 0 0 0 0 0\n",
                         "2024-01-01")
        cs.set_par("experiment", "cxi12345")
    inputs.append(p)
    p = workdir / "epix10ka-0002.h5"
    with DCStore(p, mode="x") as cs:
        peds = rng.random((2, 16, 16)).astype(np.float32)
        for i, t in enumerate(("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01")):
            cs.add_constants("pedestals", peds + i, t, None if i == 3 else
                             ("2024-02-01", "2024-03-01", "2024-04-01")[i])
            cs.add_constants("pixel_gain", peds, t)  # identical payloads: hard links
        cs["pedestals"].del_range(cs["pedestals"].ranges()[1])
        cs.add_constants("pixel_mask", np.ones((2, 16, 16), dtype=bool), "2024-01-01")
    inputs.append(p)
    p = workdir / "jungfrau-0003.h5"
    with DCStore(p, mode="x") as cs:
        for i in range(12):
            cs.add_constants("pedestals", np.full((3, 4), float(i)), f"2024-01-{i + 1:02d}",
                             f"2024-01-{i + 10:02d}", dictpars={"run": i})
        cs.add_constants("common_mode", np.array([1, 25, 25, 100], dtype=np.int32),
                         "2024-01-01")
        cs.add_history("note with ünïcode")
    inputs.append(p)
    if legacy != "none" and LEGACY_DIR.is_dir():
        files = sorted(LEGACY_DIR.glob("*.h5"), key=lambda f: f.stat().st_size)
        for f in files if legacy == "all" else files[:1]:
            inputs.append(f)  # read in place (read-only); copies are made per case
    return inputs


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------ corruption
def _offset(rng: random.Random, size: int) -> int:
    """Offsets biased towards HDF5 metadata: the superblock and object headers at the start,
    metadata written last at the end; raw data in the middle matters less."""
    r = rng.random()
    if r < 0.4:
        return rng.randrange(min(size, 8192))
    if r < 0.7:
        return max(0, size - 1 - rng.randrange(min(size, 65536)))
    return rng.randrange(size)


def corrupt(data: bytes, rng: random.Random) -> Tuple[bytes, List[str]]:
    """Apply 1-3 random corruptions; returns the new bytes and a description."""
    buf = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not buf:
            break
        kind = rng.choice(KINDS)
        size = len(buf)
        if kind == "bitflip":
            n = rng.choice((1, 1, 2, 8, 64))
            for _ in range(n):
                off = _offset(rng, size)
                buf[off] ^= 1 << rng.randrange(8)
            done.append(f"bitflip x{n}")
        elif kind == "truncate":
            keep = rng.choice((rng.randrange(size), size - 1 - rng.randrange(min(size, 4096)),
                               rng.randrange(min(size, 4096))))
            del buf[max(keep, 0):]
            done.append(f"truncate to {len(buf)}")
        else:
            off = _offset(rng, size)
            n = min(rng.choice((1, 8, 64, 512, 4096)), size - off)
            if kind == "random_block":
                buf[off:off + n] = rng.randbytes(n)
            elif kind == "zero_block":
                buf[off:off + n] = bytes(n)
            else:
                src = _offset(rng, size)
                block = bytes(buf[src:src + n])
                buf[off:off + len(block)] = block
            done.append(f"{kind} {n} B at {off}")
    return bytes(buf), done


# ------------------------------------------------------------------------ worker
def _exercise(path: Path, rng: random.Random, write: bool) -> List[str]:
    """Read everything in ``path``; return the pscalib error classes met (in order)."""
    import numpy as np
    from pscalib import DCStore
    from pscalib.errors import PscalibError
    try:
        from pscalib.exchange import verify
    except ImportError:  # the verify command is optional for this script
        verify = None

    met: List[str] = []

    def attempt(fn):
        try:
            return fn()
        except PscalibError as exc:
            met.append(type(exc).__name__)
            return None

    cs = attempt(lambda: DCStore(path))
    if cs is not None:
        try:
            for fn in (cs.detname, cs.dettype, cs.detid, cs.tscfile, cs.predecessor,
                       cs.successor, cs.format_version, cs.dictpars, cs.history):
                attempt(fn)
            for ctype in attempt(cs.ctypes) or []:
                ct = attempt(lambda: cs[ctype])
                if ct is None:
                    continue
                attempt(ct.dictpars)
                attempt(ct.history)
                for rg in attempt(ct.ranges) or []:
                    for fn in (rg.versdef, rg.dictpars, rg.history, rg.begin, rg.end):
                        attempt(fn)
                    attempt(lambda: cs.get(ctype, divmod(rg.tsbegin(), 10**9)))
                    for ver in attempt(rg.versions) or []:
                        for fn in (ver.info, ver.calib, ver.dictpars, ver.history,
                                   ver.is_default):
                            attempt(fn)
                        attempt(lambda: _read_into(ver))
                for t in ("2000-01-01", "2024-01-15", "2024-07-01", "2030-01-01",
                          rng.randrange(0, 2**31)):
                    attempt(lambda: cs.get(ctype, t))
        finally:
            cs.close()
    if verify is not None:
        attempt(lambda: verify(path))
    if write:
        def change():
            with DCStore(path, mode="a", lock_timeout=5) as ws:
                ws.add_constants("pixel_rms", np.ones((2, 2)), "2024-01-01")
                ws.set_par("fuzz", 1)
        attempt(change)
    return met


def _read_into(ver) -> None:
    """``calib(out=)`` into an array of what ``info()`` says (claims over 64 MB skipped:
    a damaged shape must not make the harness allocate it)."""
    import numpy as np
    info = ver.info()
    if info.kind == "ndarray" and info.nbytes <= 1 << 26:
        ver.calib(out=np.empty(info.shape, info.dtype))


def _inject(kind: Optional[str]) -> None:
    """Deliberate misbehaviour, to show that the harness catches it (--inject)."""
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "hang":
        while True:
            time.sleep(1)
    elif kind == "exception":
        raise ValueError("injected non-pscalib exception")


def worker_main(scratch: str, inputs: List[str]) -> None:
    """Run cases read from stdin (JSON lines), answer one JSON line per case on stdout."""
    os.environ["PSCALIB_LOCK_TIMEOUT"] = "5"
    pristine: Dict[int, bytes] = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing the library prints may break the protocol
    folder = Path(scratch)
    for line in sys.stdin:
        job = json.loads(line)
        rng = random.Random(job["seed"])
        idx = job["input"]
        if idx not in pristine:
            pristine[idx] = Path(inputs[idx]).read_bytes()
        data, how = corrupt(pristine[idx], rng)
        case_dir = folder / f"case{job['case']}"
        case_dir.mkdir()
        name = Path(inputs[idx]).name
        path = case_dir / name
        path.write_bytes(data)
        result = {"case": job["case"], "how": how}
        # where a hang is: the stack goes to stderr shortly before the parent kills us
        faulthandler.dump_traceback_later(job["timeout"] * 0.8)
        started = time.monotonic()
        try:
            _inject(job.get("inject"))
            result["errors"] = _exercise(path, rng, job["write"])
            result["outcome"] = OK
        except BaseException:  # anything that is not a pscalib error is a failure
            result["outcome"] = "exception"
            result["traceback"] = traceback.format_exc()
        faulthandler.cancel_dump_traceback_later()
        result["seconds"] = round(time.monotonic() - started, 3)
        shutil.rmtree(case_dir, ignore_errors=True)
        out.write(json.dumps(result) + "\n")
        out.flush()


# ------------------------------------------------------------------------ parent
class Worker:
    """One persistent worker process; replaced after a crash or a timeout."""

    def __init__(self, scratch: Path, inputs: List[Path]):
        self.scratch = scratch
        self.inputs = inputs
        self.start()

    def start(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(self.scratch)] +
            [str(p) for p in self.inputs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.err: List[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()

    @staticmethod
    def _pump(stream, q) -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    def _drain(self, stream) -> None:
        for line in stream:
            self.err.append(line)
            del self.err[:-200]

    def run(self, job: dict, timeout: float) -> dict:
        self.err.clear()
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            time.sleep(0.05)  # let the stderr pump catch up
            tail = "".join(self.err[-30:])
            self.start()
            return {"case": job["case"], "outcome": "timeout",
                    "traceback": f"no answer within {timeout} s (worker killed)\n{tail}"}
        if line is None:
            rc = self.proc.wait()
            time.sleep(0.05)  # let the stderr pump catch up
            tail = "".join(self.err[-30:])
            self.start()
            what = (f"killed by signal {signal.Signals(-rc).name}" if rc < 0
                    else f"exited with status {rc}")
            return {"case": job["case"], "outcome": "crash",
                    "traceback": f"worker {what}\n{tail}"}
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=50, help="number of damaged files (50)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the whole run (0)")
    ap.add_argument("--first", type=int, default=0, help="number of the first case (0)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case (30)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes (2)")
    ap.add_argument("--legacy", choices=("none", "small", "all"), default="small",
                    help="legacy DCS inputs from ../shared/data/legacy-dcs: none, the "
                         "smallest file (default) or all")
    ap.add_argument("--write-fraction", type=float, default=0.2,
                    help="fraction of cases that also try a write (0.2)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="directory to keep the damaged file of each failing case")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    ap.add_argument("--inject", choices=("crash", "hang", "exception"), default=None,
                    help="make the first case misbehave (tests the harness itself)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pscalib-fuzz-"))
    try:
        inputs = build_inputs(work, args.legacy)
        before = {p: digest(p) for p in inputs}
        workers = [Worker(work / f"w{i}", inputs) for i in range(max(1, args.jobs))]
        jobs: "queue.Queue[dict]" = queue.Queue()
        master = random.Random(args.seed)
        seeds = [master.getrandbits(64) for _ in range(args.first + args.cases)]
        for case in range(args.first, args.first + args.cases):
            crng = random.Random(seeds[case])
            jobs.put({"case": case, "seed": seeds[case], "input": crng.randrange(len(inputs)),
                      "write": crng.random() < args.write_fraction,
                      "inject": args.inject if case == args.first else None})
        results: List[dict] = []
        lock = threading.Lock()
        start = time.monotonic()

        def drive(w: Worker) -> None:
            while True:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    return
                res = w.run(dict(job, timeout=args.timeout), args.timeout)
                res["input"] = inputs[job["input"]].name
                with lock:
                    results.append(res)
                    if not args.quiet and len(results) % 100 == 0:
                        print(f"  {len(results)}/{args.cases} cases, "
                              f"{time.monotonic() - start:.0f} s", file=sys.stderr)

        threads = [threading.Thread(target=drive, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in workers:
            w.stop()
        elapsed = time.monotonic() - start
        after = {p: digest(p) for p in inputs}
        return report(args, inputs, results, before, after, elapsed, seeds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, inputs, results, before, after, elapsed, seeds) -> int:
    outcomes = collections.Counter(r["outcome"] for r in results)
    first_error = collections.Counter((r.get("errors") or ["(none: read fully)"])[0]
                                      for r in results if r["outcome"] == OK)
    any_error = collections.Counter(e for r in results if r["outcome"] == OK
                                    for e in set(r.get("errors", [])))
    failures = [r for r in results if r["outcome"] != OK]
    changed = [p.name for p in inputs if before[p] != after[p]]
    print(f"fuzz_files: {len(results)} cases, seed {args.seed}, {args.jobs} jobs, "
          f"{elapsed:.1f} s ({elapsed / max(1, len(results)) * 1000:.0f} ms/case)")
    print("inputs: " + ", ".join(f"{p.name} ({p.stat().st_size} B)" for p in inputs))
    print("first error per case (or none):")
    for name, n in first_error.most_common():
        print(f"  {n:7d}  {name}")
    print("cases meeting each pscalib error at least once:")
    for name, n in any_error.most_common():
        print(f"  {n:7d}  {name}")
    secs = sorted((r.get("seconds", 0.0), r["case"]) for r in results if r["outcome"] == OK)
    if secs:
        slow = [c for c in secs if c[0] > 5]
        print(f"case time: median {secs[len(secs) // 2][0] * 1000:.0f} ms, max {secs[-1][0]:.1f} s "
              f"(case {secs[-1][1]}); {len(slow)} cases over 5 s")
    print(f"failures: {len(failures)} (exceptions {outcomes['exception']}, crashes "
          f"{outcomes['crash']}, timeouts {outcomes['timeout']})")
    for r in sorted(failures, key=lambda r: r["case"]):
        print(f"--- case {r['case']} ({r['input']}, {r['outcome']}): {r.get('how', '?')}")
        print(r.get("traceback", "").rstrip())
        if args.keep:
            keep_case(args.keep, r, inputs, seeds)
    print(f"inputs unchanged: {'yes' if not changed else 'NO: ' + ', '.join(changed)}")
    return 0 if not failures and not changed else 1


def keep_case(folder: Path, r: dict, inputs: List[Path], seeds: List[int]) -> None:
    """Rebuild the damaged file of a failing case (deterministic) and keep it."""
    crng = random.Random(seeds[r["case"]])
    src = inputs[crng.randrange(len(inputs))]
    data, _ = corrupt(src.read_bytes(), random.Random(seeds[r["case"]]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"case{r['case']}-{src.name}").write_bytes(data)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
