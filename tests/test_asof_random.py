"""Randomized: after long random sequences of changes, get(asof=T) equals what get
returned at T - for every form of get (plain, vers=N, tsprod=, include=("candidate",),
run=, with_info=True, version_at) - and get(tag=NAME) equals what get returned when the
tag was made."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from pscalib.errors import (InvalidInputError, NoValidConstantsError, CtypeNotFoundError,
                            PscalibError, PurgedVersionError)
from pscalib.exchange import copy_store, merge_stores
from pscalib.runs import add_runs
from pscalib.store import DCStore
from pscalib.store.purge import purge
from pscalib.store.tags import create_tag, publish_tag
from pscalib.timestamps import now_ns

DAY = 86400 * 10**9
T0 = 1_700_000_000 * 10**9
CTYPES = ("pedestals", "pixel_status")
BOUNDS = [T0 + i * DAY for i in range(6)]
PROBES = [T0 - DAY] + [T0 + i * DAY // 2 for i in range(12)]
#: random steps per seed (each records ~290 answers and has them reproduced by as-of); 25
#: keeps the three seeds at about 40 s of the suite
STEPS = 25
RUNS = {1: T0 + DAY // 3, 2: T0 + 2 * DAY, 3: T0 + 3 * DAY + DAY // 2, 4: T0 + 5 * DAY}


def pair(ns: int) -> Tuple[int, int]:
    return divmod(ns, 10**9)


def answer(cs: DCStore, ctype: str, t, info: bool = False, **kw) -> Any:
    """What the lookup answers: (range, version, sha256[, info dict]), or the error's
    kind ('miss' when no constants are found)."""
    tsp = None if t is None else pair(t)
    try:
        if info:
            data, d = cs.get(ctype, tsp, with_info=True, **kw)
            return (d["range"], d["version"], d["sha256"], data.tolist(),
                    {k: v for k, v in d.items() if k != "asof"})
        v = cs.version_at(ctype, tsp, **kw)
    except (NoValidConstantsError, CtypeNotFoundError):
        return "miss"
    except PurgedVersionError:
        raise
    except PscalibError as exc:
        return type(exc).__name__
    return (v.rangeobj().range(), v.version(), v.info().sha256)


def forms(mid: int) -> List[Tuple[str, Dict[str, Any], bool]]:
    """(name, keyword arguments, with_info) of the forms of get checked per (ctype, t)."""
    return [("plain", {}, False), ("candidate", {"include": ("candidate",)}, False),
            ("v1", {"vers": 1}, False), ("v2", {"vers": 2}, False),
            ("v3", {"vers": 3}, False), ("tsprod", {"tsprod": pair(mid)}, False),
            ("cand+tsprod", {"include": "candidate", "tsprod": pair(mid)}, False),
            ("info", {}, True), ("info v2", {"vers": 2}, True)]


Snap = Dict[Tuple[str, str, Any], Tuple[Dict[str, Any], bool, Any]]


def snapshot(cs: DCStore, mid: int) -> Snap:
    out: Snap = {}
    for c in CTYPES:
        for name, kw, info in forms(mid):
            for t in PROBES if name in ("plain", "info") else PROBES[1::2]:
                out[(name, c, t)] = (kw, info, answer(cs, c, t, info, **kw))
        for r in RUNS:
            for name, kw, info in (("run", {}, False), ("run info", {}, True)):
                kw = dict(kw, run=r)
                out[(name, c, r)] = (kw, info, answer(cs, c, None, info, **kw))
    return out


def step(rng: random.Random, cs: DCStore, ws: Path, n: int) -> str:
    op = rng.choice(["add", "add", "add", "candidate", "set_default", "deprecate",
                     "validate", "delete", "delete_range", "merge", "purge"])
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
        elif op == "purge":
            purge(cs)
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


def gone(cs: DCStore, c: str, want) -> bool:
    """True when the version ``want`` (range, version, sha256, ...) is not in the file."""
    try:
        return cs[c].rangeobj(want[0]).versobj(want[1]).info().sha256 != want[2]
    except PscalibError:
        return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asof_and_tags_reproduce_get(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    calib = tmp_path / "XPP" / "xpptest" / "calib"  # a workspace: its run table is runs.txt
    path = calib / "epix10ka" / "epix10ka-0001.h5"
    add_runs(calib / "runs.txt", [(r, pair(t), None) for r, t in RUNS.items()])
    ws = tmp_path / "ws" / "epix10ka-0001.h5"
    ws.parent.mkdir()
    history: List[Tuple[int, int, Snap]] = []
    tags: List[Tuple[str, Snap]] = []
    ops: List[str] = []
    with DCStore(path, mode="a", detname="epix10ka-0001") as cs:
        for n in range(STEPS):
            ops.append(step(rng, cs, ws, n))
            if rng.random() < 0.2:
                name = f"tag{n}"
                create_tag(cs, name)
                if rng.random() < 0.4:
                    publish_tag(cs, name)
                tags.append((name, {k: a for k, a in snapshot(cs, 0).items()
                                    if k[0] in ("plain", "run")}))
            mid = history[len(history) // 2][0] if history else now_ns()
            wall = now_ns()
            history.append((wall, mid, snapshot(cs, mid)))
            time.sleep(0.001)
    assert len({o.split()[0] for o in ops}) >= 8, ops  # the sequence really mixes them
    bad = []
    purged = 0
    kinds: Dict[str, set] = {}
    with DCStore(path) as cs:
        for wall, _, snap in history:
            for (form, c, t), (kw, info, want) in snap.items():
                kinds.setdefault(form, set()).add(want if isinstance(want, str) else "ok")
                try:
                    got = answer(cs, c, None if form.startswith("run") else t, info,
                                 asof=pair(wall), **kw)
                except PurgedVersionError:
                    # the version get returned then was deleted later: it must be gone
                    assert not isinstance(want, str) and gone(cs, c, want)
                    purged += 1
                    continue
                if got != want:
                    bad.append((wall, form, c, t, want, got))
        for name, snap in tags:
            for (form, c, t), (kw, _info, want) in snap.items():
                try:
                    got = answer(cs, c, None if form == "run" else t, tag=name, **kw)
                except PurgedVersionError:
                    assert not isinstance(want, str) and gone(cs, c, want)
                    purged += 1
                    continue
                if got != want:
                    bad.append((name, form, c, t, want, got))
    checked = sum(len(s) for _, _, s in history) + sum(len(s) for _, s in tags)
    print(f"seed {seed}: {len(history)} steps, ops {sorted(set(ops))}, {len(tags)} tags, "
          f"{checked} answers checked, {purged} purged; answers per form {kinds}")
    assert bad == [], bad[:5]
    assert purged < checked // 2  # most answers are reproduced, not excused
    # the checks met real answers of each form, not only errors
    assert all("ok" in kinds[f] for f in ("plain", "candidate", "v1", "tsprod", "info v2",
                                          "run", "run info")), kinds


def test_tag_with_other_forms_is_refused(tmp_path: Path) -> None:
    with DCStore(tmp_path / "cspad-0001.h5", mode="a", detname="cspad-0001") as cs:
        cs.add_constants("pedestals", np.zeros(2), pair(T0))
        create_tag(cs, "T")
        for kw in ({"vers": 1}, {"tsprod": pair(now_ns())}, {"include": ("candidate",)},
                   {"asof": pair(now_ns())}):
            with pytest.raises(InvalidInputError, match="tag"):
                cs.get("pedestals", pair(T0), tag="T", **kw)
        assert cs.get("pedestals", pair(T0), tag="T", with_info=True)[1]["tags"] == ["T"]
