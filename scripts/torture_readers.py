#!/usr/bin/env python
"""Reader torture test of the in-place engine: readers during thousands of commits.

A writer process makes ``--commits`` transactions on one store changed in place
(``PSCALIB_INPLACE_SIZE=0``): additions of versions (to a few ranges), set-default,
deprecations, and transactions it rolls back on purpose (an addition and a parameter
change, then an exception). Every transaction also sets the store parameter ``n``. After
each commit it logs what is committed: ``n``, the added payload's sha256, each range's
default and the deprecated versions. Meanwhile

- ``--readers`` processes open the store, read and close it in a tight loop;
- ``--long`` processes keep one store object open for the whole run (an online monitor)
  and read from it in a loop, never calling ``refresh()``.

Each read takes ``n``, the default payload of a random time (its bytes checked against what
the writer wrote for its ``txid``: no torn or mixed data), each range's default and the
version states. At the end every value any reader saw must be one the writer committed:
no ``n`` of a rolled-back transaction, no payload never committed, no default or state that
no commit had. Exits 1 on any error.

Usage::

    python scripts/torture_readers.py --commits 2000 --readers 3 --long 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pscalib.store.dcstore import DCStore  # noqa: E402
from pscalib.txn.engineblock import read_block  # noqa: E402

CTYPE = "pedestals"
DETNAME = "epix-0001"
BEGINS = (1_700_000_000, 1_710_000_000, 1_720_000_000)


def payload_for(txid: str, size: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(txid.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).random(max(1, size // 8))


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


class Aborted(Exception):
    pass


def committed_state(cs: DCStore) -> dict:
    """Defaults (range begin -> txid of the default) and deprecated txids, as committed."""
    defaults, deprecated = {}, []
    for rg in cs[CTYPE]:
        d = rg.versdef()
        defaults[str(rg.tsbegin())] = rg.versobj(d).par("txid") if d else None
        for v in rg:
            if v.state() == "deprecated":
                deprecated.append(v.par("txid"))
    return {"defaults": defaults, "deprecated": deprecated}


def writer(path: Path, log: Path, commits: int, size: int, seed: int) -> None:
    rng = random.Random(seed)
    cs = DCStore(path, mode="a")
    with open(log, "a") as out:
        for i in range(1, commits + 1):
            txid = f"t{i}"
            op = rng.choices(("add", "setdef", "deprecate", "abort"), (5, 2, 1, 1))[0]
            versions = [v for rg in cs[CTYPE] for v in rg] if (CTYPE in cs.ctypes()) else []
            rec: dict = {"n": i, "op": op}
            if op == "abort":
                try:
                    with cs.transaction():
                        data = payload_for(txid, size)
                        cs.add_constants(CTYPE, data, rng.choice(BEGINS),
                                         dictpars={"txid": txid})
                        cs.set_par("n", -i)
                        raise Aborted()
                except Aborted:
                    pass
                rec["aborted"] = [txid, sha(data), -i]
                out.write(json.dumps(rec) + "\n")
                out.flush()
                continue
            with cs.transaction():
                valid = [v for v in versions if v.state() == "valid"]
                if op == "setdef" and valid:
                    v = rng.choice(valid)
                    v.rangeobj().set_versdef(v.version())
                elif op == "deprecate" and versions:
                    v = rng.choice(versions)
                    if v.state() == "valid":
                        v.deprecate(f"torture {i}")
                else:
                    data = payload_for(txid, size)
                    cs.add_constants(CTYPE, data, rng.choice(BEGINS), dictpars={"txid": txid})
                    rec["added"] = [txid, sha(data)]
                cs.set_par("n", i)
            rec.update(committed_state(cs))
            out.write(json.dumps(rec) + "\n")
            out.flush()
    cs.close()


def observe(cs: DCStore, rng: random.Random, size: int, seen: dict) -> List[str]:
    """One round of reads; adds what was seen to ``seen``; returns errors found at once."""
    errors = []
    seen["n"].add(cs.dictpars().get("n"))
    if CTYPE not in cs.ctypes():
        return errors
    t = rng.choice(BEGINS) + rng.randrange(0, 5_000_000)
    try:
        v = cs[CTYPE].range_at(t).versobj()
    except Exception:
        v = None  # no range covers t yet, or no default there
    if v is not None:
        txid = v.par("txid")
        data = v.calib()
        seen["payload"].add((txid, sha(data)))
        if not np.array_equal(data, payload_for(txid, size)):
            errors.append(f"payload of {txid} differs from what the writer wrote")
    for rg in cs[CTYPE]:
        d = rg.versdef()
        seen["default"].add((str(rg.tsbegin()), rg.versobj(d).par("txid") if d else None))
        for ver in rg:
            if ver.state() == "deprecated":
                seen["deprecated"].add(ver.par("txid"))
    return errors


def reader(path: Path, kind: str, stop: Path, size: int, seed: int, out: Path) -> None:
    rng = random.Random(seed)
    seen: Dict[str, set] = {"n": set(), "payload": set(), "default": set(),
                            "deprecated": set()}
    errors: List[str] = []
    reads = 0
    cs = DCStore(path) if kind == "long" else None
    while not stop.exists() and len(errors) < 20:
        try:
            if cs is not None:
                errors += observe(cs, rng, size, seen)
            else:
                with DCStore(path) as s:
                    errors += observe(s, rng, size, seen)
            reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    if cs is not None:
        cs.close()
    with open(out, "w") as fh:
        json.dump({"reads": reads, "errors": errors,
                   "seen": {k: sorted(map(list, v)) if k in ("payload", "default")
                            else sorted(v, key=str) for k, v in seen.items()}}, fh)


def check(log: Path, results: List[dict]) -> Tuple[List[str], int]:
    """Errors: values readers saw that no commit had. Returns (errors, commits)."""
    ns: Set[object] = {None}
    payloads: Set[Tuple[str, str]] = set()
    defaults: Set[Tuple[str, Optional[str]]] = set()
    deprecated: Set[str] = set()
    aborted_ns, aborted_tx = set(), set()
    commits = 0
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if "aborted" in rec:
            aborted_tx.add(rec["aborted"][0])
            aborted_ns.add(rec["aborted"][2])
            continue
        commits += 1
        ns.add(rec["n"])
        if "added" in rec:
            payloads.add(tuple(rec["added"]))
        defaults.update(rec["defaults"].items())
        deprecated.update(rec["deprecated"])
    errors = []
    for r in results:
        errors += r["errors"]
        seen = r["seen"]
        errors += [f"n={n} was never committed" for n in seen["n"] if n not in ns]
        errors += [f"payload {t} ({h[:12]}) was never committed"
                   for t, h in seen["payload"] if (t, h) not in payloads]
        errors += [f"default of range {b} = {t} was never committed"
                   for b, t in seen["default"] if (b, t) not in defaults]
        errors += [f"{t} deprecated was never committed" for t in seen["deprecated"]
                   if t not in deprecated]
        errors += [f"rolled-back value seen: {t}" for t, _ in seen["payload"]
                   if t in aborted_tx]
        errors += [f"rolled-back n={n} seen" for n in seen["n"] if n in aborted_ns]
    return errors, commits


def run(commits: int, readers: int, long: int, size: int, seed: int, work: Path) -> int:
    env = dict(os.environ, PSCALIB_INPLACE_SIZE="0")
    os.environ["PSCALIB_INPLACE_SIZE"] = "0"
    path = work / f"{DETNAME}.h5"
    with DCStore(path, mode="a") as cs:  # the first commit converts it to the in-place format
        cs.add_constants(CTYPE, payload_for("t0", size), BEGINS[0], dictpars={"txid": "t0"})
        cs.set_par("n", 0)
        first = {"n": 0, "op": "add", "added": ["t0", sha(payload_for("t0", size))]}
        first.update(committed_state(cs))
    if read_block(path) is None:
        print("torture: the store is not in the in-place format", file=sys.stderr)
        return 1
    log, stop = work / "writer.log", work / "stop"
    log.write_text(json.dumps(first) + "\n")
    me = [sys.executable, str(Path(__file__).resolve())]
    procs = []
    outs = []
    for i in range(readers + long):
        out = work / f"reader-{i}.json"
        outs.append(out)
        kind = "short" if i < readers else "long"
        procs.append(subprocess.Popen(me + ["--role", kind, "--path", str(path), "--stop",
                                            str(stop), "--out", str(out), "--size",
                                            str(size), "--seed", str(seed + i + 1)], env=env))
    t0 = time.monotonic()
    w = subprocess.run(me + ["--role", "writer", "--path", str(path), "--log", str(log),
                             "--commits", str(commits), "--size", str(size), "--seed",
                             str(seed)], env=env)
    elapsed = time.monotonic() - t0
    stop.touch()
    for p in procs:
        p.wait(timeout=120)
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    errors, done = check(log, results)
    if w.returncode != 0:
        errors.append(f"writer failed with exit status {w.returncode}")
    if len(results) != len(outs):
        errors.append(f"{len(outs) - len(results)} readers wrote no result")
    short = sum(r["reads"] for r in results[:readers])
    longr = sum(r["reads"] for r in results[readers:])
    kinds = {k: sum(1 for line in log.read_text().splitlines()
                    if json.loads(line)["op"] == k) for k in ("add", "setdef", "deprecate",
                                                              "abort")}
    print(f"torture: {done} commits and {kinds['abort']} rolled-back transactions in "
          f"{elapsed:.1f} s (add {kinds['add']}, set-default {kinds['setdef']}, deprecate "
          f"{kinds['deprecate']}; seed {seed}, payload {size} bytes, file "
          f"{path.stat().st_size / 2**20:.1f} MiB)")
    print(f"  {readers} opening readers: {short} reads; {long} long-lived readers: {longr} "
          f"reads")
    print(f"  errors: {len(errors)}")
    for e in errors[:20]:
        print(f"  ERROR {e}")
    return 1 if errors else 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=200, help="writer commits (default 200)")
    ap.add_argument("--readers", type=int, default=2,
                    help="readers that open, read and close in a loop (default 2)")
    ap.add_argument("--long", type=int, default=1,
                    help="long-lived readers keeping the store open (default 1)")
    ap.add_argument("--size", type=int, default=4000, help="payload bytes (default 4000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (kept)")
    ap.add_argument("--role", choices=("main", "writer", "short", "long"), default="main",
                    help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--stop", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.role == "writer":
        writer(a.path, a.log, a.commits, a.size, a.seed)
        return 0
    if a.role in ("short", "long"):
        reader(a.path, a.role, a.stop, a.size, a.seed, a.out)
        return 0
    if a.dir is not None:
        a.dir.mkdir(parents=True, exist_ok=True)
        return run(a.commits, a.readers, a.long, a.size, a.seed, a.dir)
    with tempfile.TemporaryDirectory(prefix="pscalib-torture-") as d:
        return run(a.commits, a.readers, a.long, a.size, a.seed, Path(d))


if __name__ == "__main__":
    sys.exit(main())
