#!/usr/bin/env python
"""Crash test of store transactions: SIGKILL a real writer at random moments, then check.

Each round starts a writer process on one store file (the same file for every round). The
writer runs transactions in a loop - single additions, grouped additions of three versions,
deletions (which rewrite the file: compaction), merges from a small side store, copies of
the store to new files, alias additions and removals, parameter changes and default
changes - and prints ``BEGIN <op>`` before and ``ACK <op>`` after each transaction returns
(flushed). The parent kills it with SIGKILL at a
random moment and then checks the file:

- it opens as a store and passes the full integrity check of ``dcs verify`` (structure,
  every payload readable with a matching sha256, range index consistent with the groups);
- every payload is also read back through ``DCStore`` and equals the bytes the writer made;
- every acknowledged change is there (additions present, deletions absent), and the
  transaction in flight at the kill, if any, is all there or not at all;
- temporary copies left by the killed writer are removed by the next writer and never
  replace the store (also those of a killed copy in the copies' directory);
- every copy that exists passes ``verify`` (a copy appears complete or not at all), every
  acknowledged copy exists; the alias file parses and holds exactly the acknowledged
  aliases (the one in flight: either way); the store parameter and the defaults changed by
  acknowledged ``set-default`` operations are what was last acknowledged.

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

from pscalib.aliases import AliasFile, add_alias, remove_alias  # noqa: E402
from pscalib.exchange.copy import copy_store  # noqa: E402
from pscalib.exchange.merge import merge_stores  # noqa: E402
from pscalib.exchange.verify import verify  # noqa: E402
from pscalib.store.dcstore import DCStore  # noqa: E402
from pscalib.txn import inplace, transaction  # noqa: E402
from pscalib.txn.atomic import TMP_MARK  # noqa: E402
from pscalib.txn.engineblock import read_block  # noqa: E402

CTYPE = "pedestals"
MERGED = "pixel_gain"  # ctype of the versions merged in from side stores
DETNAME = "cspad-0001"
#: Probabilities of the writer's operations (the rest: single additions).
OPS = (("del", 0.10), ("group", 0.15), ("merge", 0.10), ("copy", 0.10), ("alias", 0.15),
       ("par", 0.10), ("setdef", 0.10))
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
    writer_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                sys.argv[5])
""")

#: Deliberately broken writers that the test must catch (see ``--control``).
CONTROLS = ("none", "copy-over", "no-journal")


def break_engine(control: str) -> None:
    """Break the writer on purpose, for a control run (in the writer process only).

    ``copy-over``: a copy-on-write commit copies the new file's bytes over the store
    instead of renaming it (the control of docs/transactions.rst). ``no-journal``: an
    in-place commit writes no journal and never marks the file as being written (a naive
    in-place writer), and writes its pages slowly so that kills land among them.
    """
    if control == "copy-over":
        def copy_over(tmp, target):
            with open(tmp, "rb") as src, open(target, "r+b") as dst:
                dst.truncate(0)
                while True:
                    block = src.read(1 << 16)
                    if not block:
                        break
                    dst.write(block)
                    time.sleep(0.001)
            os.unlink(tmp)
        transaction.atomic_replace = copy_over
        inplace.atomic_replace = copy_over
    elif control == "no-journal":
        real_block, real_pages = inplace.write_block, inplace.write_pages
        inplace.write_journal = lambda *a, **k: None
        inplace.write_block = (lambda fd, seq, *a: None if seq % 2 else
                               real_block(fd, seq, *a))

        def slow_pages(fd, pages):
            for page in pages:
                real_pages(fd, [page])
                time.sleep(0.005)
        inplace.write_pages = slow_pages


def _pick(rng: random.Random) -> str:
    r = rng.random()
    for name, p in OPS:
        if r < p:
            return name
        r -= p
    return "add"


def writer_main(path: str, rnd: int, seed: int, size: int, control: str = "none") -> None:
    """Run transactions forever, announcing each (``BEGIN``) and acknowledging it (``ACK``)."""
    break_engine(control)
    rng = random.Random(seed)
    work = Path(path).parent
    cs = DCStore(path, mode="a", lock_timeout=30)
    print("READY", flush=True)
    seq = 0
    while True:
        seq += 1
        txid = f"{rnd}.{seq}"
        op = _pick(rng)
        begin = BEGINS[seq % len(BEGINS)]
        cs.refresh()
        present = [v for c in cs for rg in cs[c] for v in rg]
        if op == "del" and present:
            victim = rng.choice(present)
            tid = victim.par("txid")
            print(f"BEGIN del {txid} {tid}", flush=True)
            victim.rangeobj().del_version(victim.version())
            print(f"ACK del {txid} {tid}", flush=True)
        elif op == "group":
            print(f"BEGIN group {txid}", flush=True)
            with cs.transaction():
                for part in "abc":
                    tid = f"{txid}.{part}"
                    cs.add_constants(CTYPE, payload_for(tid, size), begin,
                                     dictpars={"txid": tid}, comment=tid)
            print(f"ACK group {txid}", flush=True)
        elif op == "merge":
            side = work / "side" / f"{DETNAME}-{txid}.h5"
            with DCStore(side, DETNAME, mode="x") as ss:
                ss.add_constants(MERGED, payload_for(txid, size), merge_begin(txid),
                                 dictpars={"txid": txid})
            print(f"BEGIN merge {txid}", flush=True)
            merge_stores(side, path, lock_timeout=30)
            print(f"ACK merge {txid}", flush=True)
            side.unlink()
        elif op == "copy":
            print(f"BEGIN copy {txid}", flush=True)
            copy_store(path, work / "copies" / f"{DETNAME}-{txid}.h5", lock_timeout=30)
            print(f"ACK copy {txid}", flush=True)
        elif op == "alias":
            have = [r.alias for r in AliasFile.load(alias_path(work)).records]
            if have and rng.random() < 0.4:
                gone = rng.choice(have)
                print(f"BEGIN unalias {txid} {gone}", flush=True)
                remove_alias(work / "calib", gone, remove_all=True, lock_timeout=30)
                print(f"ACK unalias {txid} {gone}", flush=True)
            else:
                print(f"BEGIN alias {txid} {alias_of(txid)}", flush=True)
                add_alias(work / "calib", alias_of(txid), DETNAME, lock_timeout=30)
                print(f"ACK alias {txid} {alias_of(txid)}", flush=True)
        elif op == "par":
            print(f"BEGIN par {txid}", flush=True)
            cs.set_par("last", txid)
            print(f"ACK par {txid}", flush=True)
        elif op == "setdef" and present:
            target = rng.choice(present)
            tid = target.par("txid")
            print(f"BEGIN setdef {txid} {tid}", flush=True)
            target.rangeobj().set_versdef(target.version())
            print(f"ACK setdef {txid} {tid}", flush=True)
        else:
            print(f"BEGIN add {txid}", flush=True)
            cs.add_constants(CTYPE, payload_for(txid, size), begin, dictpars={"txid": txid},
                             comment=txid)
            print(f"ACK add {txid}", flush=True)


def merge_begin(txid: str) -> int:
    """A range of its own for each merged version (seconds)."""
    rnd, seq = (int(x) for x in txid.split("."))
    return 1_600_000_000 + rnd * 10_000 + seq


def alias_of(txid: str) -> str:
    return "Alias:" + txid.replace(".", "_")


def alias_path(work: Path) -> Path:
    return work / "calib" / "cspad" / "aliases.txt"


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
    """Versions an operation adds."""
    kind, txid, _ = op
    if kind == "group":
        return [f"{txid}.{p}" for p in "abc"]
    return [txid] if kind in ("add", "merge") else []


class State:
    """What the store holds after a kill: versions, defaults, the store parameter."""

    def __init__(self) -> None:
        self.versions: Dict[str, str] = {}       # txid -> sha256
        self.default_of: Dict[str, str] = {}     # txid -> txid of its range's default
        self.par: Optional[str] = None


def read_state(path: Path, size: int) -> Tuple[State, List[str]]:
    """The store's state, through DCStore, and the problems found."""
    problems: List[str] = []
    st = State()
    rep = verify(path, checksums=True, aliases=False)
    problems += [str(p) for p in rep.errors]
    with DCStore(path) as cs:
        st.par = cs.dictpars().get("last")
        for c in cs:
            for rg in cs[c]:
                dflt = rg.versdef()
                dtid = rg.versobj(dflt).par("txid") if dflt else None
                for v in rg:
                    tid = v.par("txid")
                    data = v.calib()
                    if not np.array_equal(data, payload_for(tid, size)):
                        problems.append(f"{v!r}: payload differs from what the writer wrote")
                    if tid in st.versions:
                        problems.append(f"txid {tid} stored twice")
                    st.versions[tid] = v.info().sha256
                    st.default_of[tid] = dtid
    return st, problems


def check_copies(folder: Path, acked: Set[str], inflight: Optional[str]) -> List[str]:
    """Every copy verifies; every acknowledged copy exists. Checked copies are removed."""
    problems = []
    names = {p.name for p in folder.glob("*.h5")} if folder.is_dir() else set()
    for txid in acked:
        if f"{DETNAME}-{txid}.h5" not in names:
            problems.append(f"acknowledged copy {txid} is missing")
    for name in names:
        rep = verify(folder / name, checksums=True, aliases=False)
        if not rep.ok:
            problems.append(f"copy {name} does not verify: {[str(p) for p in rep.errors[:3]]}")
        (folder / name).unlink()
    if inflight is not None:
        names.discard(f"{DETNAME}-{inflight}.h5")
    return problems


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
        verbose: bool = False, keep_logs: bool = False, control: str = "none") -> int:
    rng = random.Random(seed)
    path = workdir / f"{DETNAME}.h5"
    copies = workdir / "copies"
    with DCStore(path, mode="a"):
        pass
    expected: Set[str] = set()        # txids whose addition is committed
    aliases: Set[str] = set()         # aliases whose addition is committed
    par: Optional[str] = None         # last acknowledged store parameter
    pending_left: Set[str] = set()    # leftovers seen after a kill, not yet cleaned
    stats = dict(kills=0, mid_txn=0, mid_group=0, mid_delete=0, acked=0, leftovers_seen=0,
                 leftovers_cleaned=0)
    kinds: Dict[str, int] = {}        # kills inside each kind of operation
    failures: List[str] = []
    t0 = time.monotonic()
    for rnd in range(1, n + 1):
        code = WRITER.format(root=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-c", code, str(path), str(rnd),
                                 str(rng.getrandbits(32)), str(size), control],
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
        left = leftovers(path) | leftovers_in(copies)
        stats["leftovers_seen"] += len(left - pending_left)
        cleaned = pending_left - left
        stats["leftovers_cleaned"] += len(cleaned)
        pending_left = left

        # what must be there: everything acknowledged before the kill
        acked_copies: Set[str] = set()
        for op in acked:
            kind = op[0]
            if kind == "del":
                expected.discard(op[2])
            elif kind == "alias":
                aliases.add(op[2])
            elif kind == "unalias":
                aliases.discard(op[2])
            elif kind == "par":
                par = op[1]
            elif kind == "copy":
                acked_copies.add(op[1])
            elif kind != "setdef":
                expected.update(txids_of(op))
        try:
            st, problems = read_state(path, size)
        except Exception as exc:  # the file must always open
            st, problems = State(), [f"cannot open/read store: {type(exc).__name__}: {exc}"]
        state = st.versions
        if inflight is not None:
            stats["mid_txn"] += 1
            kinds[inflight[0]] = kinds.get(inflight[0], 0) + 1
            ids = txids_of(inflight)
            if inflight[0] == "del":
                stats["mid_delete"] += 1
                if inflight[2] not in state:
                    expected.discard(inflight[2])  # the delete committed just before the kill
            elif inflight[0] == "par":
                if st.par == inflight[1]:
                    par = inflight[1]
            elif inflight[0] == "alias" and alias_names(workdir) is not None:
                if inflight[2] in alias_names(workdir):
                    aliases.add(inflight[2])
            elif inflight[0] == "unalias" and alias_names(workdir) is not None:
                if inflight[2] not in alias_names(workdir):
                    aliases.discard(inflight[2])
            elif ids:
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
        if st.par != par and not problems:
            problems.append(f"store parameter is {st.par!r}, last acknowledged {par!r}")
        problems += check_last_default(acked, inflight, st)
        names = alias_names(workdir)
        if names is None:
            problems.append("alias file does not parse")
        elif names != aliases:
            problems.append(f"aliases {sorted(names ^ aliases)[:5]} differ from the "
                            f"acknowledged ones")
        problems += check_copies(copies, acked_copies,
                                 inflight[1] if inflight and inflight[0] == "copy" else None)
        if problems:
            failures.extend(f"round {rnd}: {p}" for p in problems)
        if verbose:
            print(f"round {rnd}: acked {len(acked)} inflight {inflight} versions {len(state)} "
                  f"leftovers {len(left)} problems {len(problems)}", flush=True)

    # a last, unkilled transaction cleans every leftover and keeps the state
    try:
        with DCStore(path, mode="a") as cs:
            cs.add_history("crashtest done")
        copy_store(path, copies / "final.h5")  # cleans a killed copy's leftovers there
        (copies / "final.h5").unlink()
        st, problems = read_state(path, size)
    except Exception as exc:  # a damaged file is a finding, not a crash of the checker
        st, problems = State(), [f"cannot open/change store: {type(exc).__name__}: {exc}"]
    state = st.versions
    left = leftovers(path) | leftovers_in(copies)
    stats["leftovers_cleaned"] += len(pending_left - left)
    if left:
        failures.append(f"leftovers remain after a clean transaction: {sorted(left)}")
    if problems or set(state) != expected:
        failures.append(f"final state: {problems} missing {sorted(expected - set(state))[:5]} "
                        f"extra {sorted(set(state) - expected)[:5]}")
    elapsed = time.monotonic() - t0
    engine = "in-place" if read_block(path) is not None else "copy-on-write"
    print(f"crashtest: {stats['kills']} kills in {elapsed:.1f} s (seed {seed}, payload "
          f"{size} bytes, file {path.stat().st_size / 2**20:.1f} MiB at the end, "
          f"{len(state)} versions, engine {engine}, control {control})")
    rounds_failed = len({f.split(":")[0] for f in failures if f.startswith("round ")})
    print(f"  kills inside a transaction: {stats['mid_txn']} (grouped: {stats['mid_group']}, "
          f"deletion+compaction: {stats['mid_delete']}); transactions acknowledged: "
          f"{stats['acked']}")
    print("  kills inside each operation: " + ", ".join(
        f"{k} {kinds.get(k, 0)}" for k in ("add", "group", "del", "merge", "copy", "alias",
                                           "unalias", "par", "setdef")))
    print(f"  leftover temp copies: {stats['leftovers_seen']} seen after kills, "
          f"{stats['leftovers_cleaned']} removed by the next writer, {len(left)} remaining")
    print(f"  failures: {len(failures)} ({rounds_failed} of {stats['kills']} rounds)")
    for f in failures[:20]:
        print(f"  FAIL {f}")
    return 1 if failures else 0


def leftovers_in(folder: Path) -> Set[str]:
    """Temporary files of any writer in ``folder`` (a copy's destination directory)."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if TMP_MARK in p.name}


def alias_names(work: Path) -> Optional[Set[str]]:
    """Aliases in the alias file (None if it does not parse)."""
    try:
        return {r.alias for r in AliasFile.load(alias_path(work)).records}
    except Exception:
        return None


def check_last_default(acked: list, inflight: Optional[tuple], st: State) -> List[str]:
    """The version made default by the round's last acknowledged default-changing operation
    (an addition or a set-default) is its range's default - unless an operation in flight
    may have changed defaults after it."""
    touching = [op for op in acked if op[0] in ("add", "group", "del", "setdef")]
    if not touching or (inflight and inflight[0] in ("add", "group", "del", "setdef")):
        return []
    last = touching[-1]
    if last[0] == "del":
        return []
    tid = last[2] if last[0] == "setdef" else txids_of(last)[-1]
    if tid in st.versions and st.default_of.get(tid) != tid:
        return [f"{last[0]} {last[1]} acknowledged, but the default of the range of {tid} is "
                f"{st.default_of.get(tid)}"]
    return []


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
    ap.add_argument("--engine", choices=("copy", "inplace"), default="copy",
                    help="'inplace': every store is changed in place with a journal "
                         "(PSCALIB_INPLACE_SIZE=0 for the writers and the checks); "
                         "'copy' (default): the settings of the environment")
    ap.add_argument("--control", choices=CONTROLS, default="none",
                    help="break the writer on purpose; the test must then report failures "
                         "(copy-over: no atomic rename; no-journal: in-place without a "
                         "journal)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.engine == "inplace":
        os.environ["PSCALIB_INPLACE_SIZE"] = "0"  # inherited by the writers
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return run(args.n, seed, args.size, args.dir, args.max_delay, args.verbose,
                   keep_logs=True, control=args.control)
    with tempfile.TemporaryDirectory(prefix="pscalib-crashtest-") as d:
        return run(args.n, seed, args.size, Path(d), args.max_delay, args.verbose,
                   control=args.control)


if __name__ == "__main__":
    sys.exit(main())
