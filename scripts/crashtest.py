#!/usr/bin/env python
"""Crash test of store transactions: SIGKILL a real writer at random moments, then check.

Each round starts a writer process on one store file (the same file for every round). The
writer runs transactions in a loop - single additions, grouped additions of three versions,
deletions (which rewrite the file: compaction) - and prints ``BEGIN <op>`` before and
``ACK <op>`` after each transaction returns (flushed). The parent kills it with SIGKILL at a
random moment and then checks the file:

- it opens as a store and passes the full integrity check of ``dcs verify`` (structure,
  every payload readable with a matching sha256, range index consistent with the groups);
- every payload is also read back through ``DCStore`` and equals the bytes the writer made;
- every acknowledged change is there (additions present, deletions absent), and the
  transaction in flight at the kill, if any, is all there or not at all;
- temporary copies left by the killed writer are removed by the next writer and never
  replace the store.

Usage::

    python scripts/crashtest.py --n 200 --seed 1 --size 2000000

Exits 1 if any check failed. Prints a summary of kills, kills that landed inside a
transaction, leftovers seen and cleaned, and failures.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pscalib.exchange.verify import verify  # noqa: E402
from pscalib.store.dcstore import DCStore  # noqa: E402
from pscalib.txn.atomic import TMP_MARK  # noqa: E402

CTYPE = "pedestals"
#: Range begins (seconds) the writer spreads its versions over: several index rows.
BEGINS = (1_700_000_000, 1_710_000_000, 1_720_000_000)


def payload_for(txid: str, size: int) -> np.ndarray:
    """The array a writer stores for ``txid``: reproducible, so the checker knows it."""
    seed = int.from_bytes(txid.encode(), "little") % (2**63)
    n = max(1, size // 8)
    return np.random.default_rng(seed).random(n)


# The writer: its ops are drawn from its own seed; op ids are "<round>.<seq>[.a|.b|.c]".
WRITER = textwrap.dedent("""
    import random, sys
    sys.path.insert(0, {root!r})
    from scripts.crashtest import writer_main
    writer_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
""")


def writer_main(path: str, rnd: int, seed: int, size: int) -> None:
    """Run transactions forever, announcing each (``BEGIN``) and acknowledging it (``ACK``)."""
    rng = random.Random(seed)
    cs = DCStore(path, mode="a", lock_timeout=30)
    print("READY", flush=True)
    seq = 0
    while True:
        seq += 1
        txid = f"{rnd}.{seq}"
        r = rng.random()
        begin = BEGINS[seq % len(BEGINS)]
        if r < 0.15:
            cs.refresh()
            present = [v for c in cs for rg in cs[c] for v in rg]
            if present:
                victim = rng.choice(present)
                tid = victim.par("txid")
                print(f"BEGIN del {txid} {tid}", flush=True)
                victim.rangeobj().del_version(victim.version())
                print(f"ACK del {txid} {tid}", flush=True)
                continue
        if r < 0.45:
            print(f"BEGIN group {txid}", flush=True)
            with cs.transaction():
                for part in "abc":
                    tid = f"{txid}.{part}"
                    cs.add_constants(CTYPE, payload_for(tid, size), begin,
                                     dictpars={"txid": tid}, comment=tid)
            print(f"ACK group {txid}", flush=True)
        else:
            print(f"BEGIN add {txid}", flush=True)
            cs.add_constants(CTYPE, payload_for(txid, size), begin, dictpars={"txid": txid},
                             comment=txid)
            print(f"ACK add {txid}", flush=True)


def parse_log(text: str) -> Tuple[List[Tuple[str, str, Optional[str]]], Optional[tuple]]:
    """Acknowledged ops and the op in flight at the kill (BEGIN without ACK), if any."""
    acked, inflight = [], None
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("BEGIN", "ACK"):
            continue
        op = (parts[1], parts[2], parts[3] if len(parts) > 3 else None)
        if parts[0] == "BEGIN":
            inflight = op
        else:
            acked.append(op)
            inflight = None
    return acked, inflight


def txids_of(op: Tuple[str, str, Optional[str]]) -> List[str]:
    kind, txid, _ = op
    return [f"{txid}.{p}" for p in "abc"] if kind == "group" else [txid]


def read_state(path: Path, size: int) -> Tuple[Dict[str, str], List[str]]:
    """``{txid: sha256}`` of every version, through DCStore, and the problems found."""
    problems: List[str] = []
    state: Dict[str, str] = {}
    rep = verify(path, checksums=True, aliases=False)
    problems += [str(p) for p in rep.errors]
    with DCStore(path) as cs:
        for c in cs:
            for rg in cs[c]:
                for v in rg:
                    tid = v.par("txid")
                    data = v.calib()
                    if not np.array_equal(data, payload_for(tid, size)):
                        problems.append(f"{v!r}: payload differs from what the writer wrote")
                    if tid in state:
                        problems.append(f"txid {tid} stored twice")
                    state[tid] = v.info().sha256
    return state, problems


def _read_line(fd: int) -> str:
    """One line, read byte by byte: a buffered reader would swallow the lines after it,
    which communicate() (reading the raw pipe) then never sees."""
    buf = b""
    while not buf.endswith(b"\n"):
        b = os.read(fd, 1)
        if not b:
            break
        buf += b
    return buf.decode()


def leftovers(path: Path) -> Set[str]:
    prefix = f".{path.name}{TMP_MARK}"
    return {p.name for p in path.parent.iterdir() if p.name.startswith(prefix)}


def run(n: int, seed: int, size: int, workdir: Path, max_delay: float,
        verbose: bool = False, keep_logs: bool = False) -> int:
    rng = random.Random(seed)
    path = workdir / "cspad-0001.h5"
    with DCStore(path, mode="a"):
        pass
    expected: Set[str] = set()        # txids whose addition is committed
    pending_left: Set[str] = set()    # leftovers seen after a kill, not yet cleaned
    stats = dict(kills=0, mid_txn=0, mid_group=0, mid_delete=0, acked=0, leftovers_seen=0,
                 leftovers_cleaned=0)
    failures: List[str] = []
    t0 = time.monotonic()
    for rnd in range(1, n + 1):
        code = WRITER.format(root=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(rnd),
                                 str(rng.getrandbits(32)), str(size)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        ready = _read_line(proc.stdout.fileno())
        if ready.strip() != "READY":
            out, err = (x.decode() for x in proc.communicate())
            failures.append(f"round {rnd}: writer did not start: {ready}{out}{err}")
            break
        time.sleep(rng.uniform(0, max_delay))
        proc.send_signal(signal.SIGKILL)
        out, err = (x.decode() for x in proc.communicate())
        stats["kills"] += 1
        if proc.returncode != -signal.SIGKILL:
            failures.append(f"round {rnd}: writer ended by itself ({proc.returncode}): "
                            f"{err.strip()[-500:]}")
        if keep_logs:
            (workdir / f"writer-{rnd:04d}.log").write_text(out + err)
        acked, inflight = parse_log(out)
        stats["acked"] += len(acked)
        left = leftovers(path)
        stats["leftovers_seen"] += len(left - pending_left)
        cleaned = pending_left - left
        stats["leftovers_cleaned"] += len(cleaned)
        pending_left = left

        # what must be there: everything acknowledged before the kill
        for op in acked:
            if op[0] == "del":
                expected.discard(op[2])
            else:
                expected.update(txids_of(op))
        try:
            state, problems = read_state(path, size)
        except Exception as exc:  # the file must always open
            state, problems = {}, [f"cannot open/read store: {type(exc).__name__}: {exc}"]
        if inflight is not None:
            stats["mid_txn"] += 1
            ids = txids_of(inflight)
            if inflight[0] == "del":
                stats["mid_delete"] += 1
                if inflight[2] not in state:
                    expected.discard(inflight[2])  # the delete committed just before the kill
            else:
                stats["mid_group"] += inflight[0] == "group"
                there = [t in state for t in ids]
                if any(there) and not all(there):
                    problems.append(f"transaction {inflight} half applied: {there}")
                if all(there):
                    expected.update(ids)  # it committed just before the kill
        missing = expected - set(state)
        extra = set(state) - expected
        if missing:
            problems.append(f"acknowledged changes missing: {sorted(missing)[:10]}")
        if extra:
            problems.append(f"versions nobody committed: {sorted(extra)[:10]}")
        if problems:
            failures.extend(f"round {rnd}: {p}" for p in problems)
        if verbose:
            print(f"round {rnd}: acked {len(acked)} inflight {inflight} versions {len(state)} "
                  f"leftovers {len(left)} problems {len(problems)}", flush=True)

    # a last, unkilled transaction cleans every leftover and keeps the state
    try:
        with DCStore(path, mode="a") as cs:
            cs.add_history("crashtest done")
        state, problems = read_state(path, size)
    except Exception as exc:  # a damaged file is a finding, not a crash of the checker
        state, problems = {}, [f"cannot open/change store: {type(exc).__name__}: {exc}"]
    left = leftovers(path)
    stats["leftovers_cleaned"] += len(pending_left - left)
    if left:
        failures.append(f"leftovers remain after a clean transaction: {sorted(left)}")
    if problems or set(state) != expected:
        failures.append(f"final state: {problems} missing {sorted(expected - set(state))[:5]} "
                        f"extra {sorted(set(state) - expected)[:5]}")
    elapsed = time.monotonic() - t0
    print(f"crashtest: {stats['kills']} kills in {elapsed:.1f} s (seed {seed}, payload "
          f"{size} bytes, file {path.stat().st_size / 2**20:.1f} MiB at the end, "
          f"{len(state)} versions)")
    rounds_failed = len({f.split(":")[0] for f in failures if f.startswith("round ")})
    print(f"  kills inside a transaction: {stats['mid_txn']} (grouped: {stats['mid_group']}, "
          f"deletion+compaction: {stats['mid_delete']}); transactions acknowledged: "
          f"{stats['acked']}")
    print(f"  leftover temp copies: {stats['leftovers_seen']} seen after kills, "
          f"{stats['leftovers_cleaned']} removed by the next writer, {len(left)} remaining")
    print(f"  failures: {len(failures)} ({rounds_failed} of {stats['kills']} rounds)")
    for f in failures[:20]:
        print(f"  FAIL {f}")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10, help="number of kills (default 10)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    ap.add_argument("--size", type=int, default=200_000,
                    help="payload bytes per version (default 200000); larger payloads make "
                         "the file and its copies bigger, so more kills land inside copies")
    ap.add_argument("--max-delay", type=float, default=0.6,
                    help="kill at a random time in [0, this] s after the writer is ready")
    ap.add_argument("--dir", type=Path, default=None,
                    help="work directory, kept with each writer's log (default: a temporary "
                         "one, removed afterwards)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return run(args.n, seed, args.size, args.dir, args.max_delay, args.verbose,
                   keep_logs=True)
    with tempfile.TemporaryDirectory(prefix="pscalib-crashtest-") as d:
        return run(args.n, seed, args.size, Path(d), args.max_delay, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
