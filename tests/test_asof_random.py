"""Randomized: after long random sequences of changes, get(asof=T) equals what get
returned at T, and get(tag=NAME) equals what get returned when the tag was made."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from pscalib.errors import (NoValidConstantsError, CtypeNotFoundError, PscalibError,
                            PurgedVersionError)
from pscalib.exchange import copy_store, merge_stores
from pscalib.store import DCStore
from pscalib.store.tags import create_tag
from pscalib.timestamps import now_ns

DAY = 86400 * 10**9
T0 = 1_700_000_000 * 10**9
CTYPES = ("pedestals", "pixel_status")
BOUNDS = [T0 + i * DAY for i in range(6)]
PROBES = [T0 - DAY] + [T0 + i * DAY // 2 for i in range(12)]


def pair(ns: int) -> Tuple[int, int]:
    return divmod(ns, 10**9)


def answer(cs: DCStore, ctype: str, t: int, **kw):
    """(range, version, sha256) get selects, or 'miss'."""
    try:
        v = cs.version_at(ctype, pair(t), **kw)
    except (NoValidConstantsError, CtypeNotFoundError):
        return "miss"
    return (v.rangeobj().range(), v.version(), v.info().sha256)


def snapshot(cs: DCStore) -> Dict[Tuple[str, int], object]:
    return {(c, t): answer(cs, c, t) for c in CTYPES for t in PROBES}


def step(rng: random.Random, cs: DCStore, ws: Path, n: int) -> str:
    op = rng.choice(["add", "add", "add", "candidate", "set_default", "deprecate",
                     "validate", "delete", "delete_range", "merge"])
    c = rng.choice(CTYPES)
    rs = cs[c].ranges() if c in cs else []
    vs = [v for r in rs for v in r.versions()]
    if op in ("add", "candidate") or not vs:
        b = rng.choice(BOUNDS[:-1])
        e = rng.choice([x for x in BOUNDS if x > b] + [None])
        cs.add_constants(c, np.full(4, n, dtype=np.int32), pair(b),
                         None if e is None else pair(e), force=True,
                         state="candidate" if op == "candidate" else "valid")
        return op
    v = rng.choice(vs)
    try:
        if op == "set_default":
            v.rangeobj().set_versdef(v.version())
        elif op == "deprecate":
            v.deprecate(f"step {n}")
        elif op == "validate":
            v.validate(f"step {n}", make_default=rng.random() < 0.5)
        elif op == "delete":
            v.rangeobj().del_version(v.version())
        elif op == "delete_range":
            cs[c].del_range(v.rangeobj().range())
        elif op == "merge":
            cs.close()
            if ws.exists():
                ws.unlink()
            copy_store(cs.path, ws)
            with DCStore(ws, mode="a") as w:
                w.add_constants(c, np.full(4, 1000 + n, dtype=np.int32), pair(rng.choice(
                    BOUNDS[:-1])), force=True)
            merge_stores(ws, cs.path)
            cs.refresh()
    except PscalibError:
        return op + " (refused)"
    return op


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asof_and_tags_reproduce_get(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "epix10ka-0001.h5"
    ws = tmp_path / "ws" / "epix10ka-0001.h5"
    ws.parent.mkdir()
    history: List[Tuple[int, Dict]] = []
    tags: List[Tuple[str, Dict]] = []
    ops: List[str] = []
    with DCStore(path, mode="a", detname="epix10ka-0001") as cs:
        for n in range(40):
            ops.append(step(rng, cs, ws, n))
            if rng.random() < 0.2:
                name = f"tag{n}"
                create_tag(cs, name)
                tags.append((name, snapshot(cs)))
            history.append((now_ns(), snapshot(cs)))
            time.sleep(0.001)
    assert len({o for o in ops}) >= 6, ops  # the sequence really mixes the operations
    bad = []
    purged = 0
    with DCStore(path) as cs:
        for wall, snap in history:
            for (c, t), want in snap.items():
                try:
                    got = answer(cs, c, t, asof=pair(wall))
                except PurgedVersionError:
                    # the version get returned then was deleted later: it must be gone
                    assert want != "miss"
                    assert want[1] not in [v.version() for v in
                                           cs[c].rangeobj(want[0]).versions()] \
                        if c in cs and want[0] in [r.range() for r in cs[c].ranges()] \
                        else True
                    purged += 1
                    continue
                if got != want:
                    bad.append((wall, c, t, want, got))
        for name, snap in tags:
            for (c, t), want in snap.items():
                try:
                    got = answer(cs, c, t, tag=name)
                except PurgedVersionError:
                    purged += 1
                    continue
                if got != want:
                    bad.append((name, c, t, want, got))
    print(f"seed {seed}: {len(history)} steps, ops {sorted(set(ops))}, {len(tags)} tags, "
          f"{purged} purged answers")
    assert bad == []
    checked = len(history) * len(CTYPES) * len(PROBES)
    assert purged < checked  # most answers are reproduced, not excused
