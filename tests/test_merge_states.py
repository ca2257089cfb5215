"""Merge with states and tombstones, all or nothing (issue 16; rule in docs/exchange.rst).

Deletions stick, deprecations are never undone, validations travel, conflicting merges
change nothing (DEST byte-identical) and a dry run is the real run minus the write; a
seeded randomized test compares real merges with a small model of the documented rule.
"""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import file_digest
from pscalib import DCStore
from pscalib.exchange import copy_store, merge_stores, verify

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
P = "pedestals"


def dcs(*args, timeout=60):
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def arr(x):
    return np.full((2, 2), float(x))


def versions(path, begin=0):
    with DCStore(path) as cs:
        r = cs[P].rangeobj(begin)
        return {v.version(): (float(v.calib()[0, 0]), v.state()) for v in r.versions()}, \
            r.versdef()


@pytest.fixture
def repo(tmp_path):
    p = tmp_path / "repo" / "cspad-0001.h5"
    with DCStore(p, mode="a") as cs:
        for i in (1, 2, 3, 4):
            cs.add_constants(P, arr(i), 0)
    return p


def workspace(repo, tmp_path, name="ws"):
    return Path(copy_store(repo, tmp_path / name / "cspad-0001.h5").dest)


# ------------------------------------------------------------------ deletions stick
def test_deleted_in_repository_is_not_brought_back(repo, tmp_path):
    ws = workspace(repo, tmp_path)
    with DCStore(repo, mode="a") as cs:       # the story: delete v3 and v4
        cs[P].rangeobj(0).del_version(3)
        cs[P].rangeobj(0).del_version(4)
    r = dcs("merge", ws, repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "add_version" not in r.stdout and "skip_deleted" in r.stdout
    got, default = versions(repo)
    assert sorted(got) == [1, 2] and default == 2
    # the other direction: the workspace's v3/v4 are deprecated, not deleted
    rep = merge_stores(repo, ws)
    assert rep.applied and [s.action for s in rep.changes] == ["set_state", "set_state",
                                                                "set_default"]
    got, default = versions(ws)
    assert got[3][1] == got[4][1] == "deprecated" and default == 2
    with DCStore(ws) as cs:
        info = cs[P].rangeobj(0).versobj(4).state_info()
        assert "deleted in" in info.reason and str(repo) in info.reason
    # and now both directions are quiet
    assert not merge_stores(ws, repo).changes and not merge_stores(repo, ws).changes
    assert verify(repo).ok and verify(ws).ok


def test_deletion_in_workspace_arrives_as_deprecation_and_tombstones_travel(repo, tmp_path):
    ws = workspace(repo, tmp_path)
    with DCStore(ws, mode="a") as w:
        w[P].rangeobj(0).del_version(1)                   # repo has v1: deprecated there
        v9 = w.add_constants(P, arr(9), 100, 200)         # new range, then deleted
        w[P].del_range((100, 200))
        assert v9.version() == 1
    third = workspace(repo, tmp_path, "third")            # still has no range 100..200
    rep = merge_stores(ws, repo)
    acts = sorted(s.action for s in rep.changes)
    assert acts == ["add_tombstone", "add_tombstone", "set_state"], rep.format()
    got, default = versions(repo)
    assert got[1][1] == "deprecated" and sorted(got) == [1, 2, 3, 4] and default == 4
    with DCStore(repo) as cs:
        assert {(t.what, t.tsbegin) for t in cs.tombstones()} == {("version", 100 * 10**9),
                                                                  ("range", 100 * 10**9)}
        # a re-created range continues after the deleted numbers
        assert cs.format_version() >= 2  # states and tombstones: format 2 or 3
    # a third copy that got v9 before it was deleted cannot bring it back
    with DCStore(ws) as w:
        sha9 = w.tombstones()[1].sha256
    with DCStore(third, mode="a") as t:
        t9 = t.add_constants(P, arr(9), 100, 200)
        assert t9.info().sha256 == sha9
    rep = merge_stores(third, repo)
    assert [s.action for s in rep.steps if s.path.startswith(P + "/1970")][-1] \
        == "skip_deleted"
    with DCStore(repo) as cs:
        assert [(r.tsbegin()) for r in cs[P].ranges()] == [0]


def test_deprecation_never_undone_validation_travels(repo, tmp_path):
    with DCStore(repo, mode="a") as cs:
        cs.add_constants(P, arr(5), 0, state="candidate")          # v5 candidate
    ws = workspace(repo, tmp_path)
    with DCStore(repo, mode="a") as cs:
        cs[P].rangeobj(0).versobj(2).deprecate("bad in the repository")
    with DCStore(ws, mode="a") as w:
        w[P].rangeobj(0).versobj(5).validate("good in the workspace")  # default -> v5
    rep = merge_stores(ws, repo)
    assert rep.applied
    got, default = versions(repo)
    assert got[2][1] == "deprecated"                  # not revived by the valid copy
    assert got[5][1] == "valid" and default == 5      # the validation travelled (ff)
    with DCStore(repo) as cs:
        v5 = cs[P].rangeobj(0).versobj(5)
        assert v5.state_info().reason == "good in the workspace"
        assert v5.history_records()[-1].action == "validate"
        assert "merged from" in v5.history_records()[-1].record
    rep = merge_stores(repo, ws)                      # the deprecation travels back
    got_ws, _ = versions(ws)
    assert got_ws[2][1] == "deprecated" and rep.applied
    assert versions(repo)[0] == versions(ws)[0]


# ------------------------------------------------------------------ all or nothing
def _conflicting(repo, tmp_path):
    ws = workspace(repo, tmp_path)
    with DCStore(ws, mode="a") as w:
        w.add_constants(P, arr(50), 0)                # v5 in the workspace
        w.add_constants("geometry", "x 1\n", 0)       # a change that would be applied
        w[P].rangeobj(0).versobj(1).deprecate("ws says bad")
    with DCStore(repo, mode="a") as cs:
        cs.add_constants(P, arr(60), 0)               # another v5 in the repository
    return ws


def test_conflicting_merge_changes_nothing(repo, tmp_path):
    ws = _conflicting(repo, tmp_path)
    before = file_digest(repo)
    mtime = repo.stat().st_mtime_ns
    r = dcs("merge", ws, repo)
    assert r.returncode == 1
    assert file_digest(repo) == before and repo.stat().st_mtime_ns == mtime
    out = r.stdout
    assert out.startswith("NOT merged: 1 unresolved conflicts, nothing was changed")
    assert "conflict_version" in out and "[UNRESOLVED]" in out
    assert "would have applied:" in out and "add_ctype" in out and "set_state" in out
    assert "geometry" in out
    r = dcs("merge", ws, repo, "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["applied"] is False and doc["unresolved"] == 1
    assert {s["action"] for s in doc["steps"] if s["changes_dest"]} >= {"add_ctype",
                                                                       "set_state"}
    assert file_digest(repo) == before
    # dry run == real run minus the write (same plan, same exit status)
    d = dcs("merge", ws, repo, "--json", "--dry-run")
    ddoc = json.loads(d.stdout)
    assert d.returncode == r.returncode
    assert {**ddoc, "dry_run": False} == doc
    dt = dcs("merge", ws, repo, "--dry-run")
    assert dt.stdout.replace("the plan would", "it would") == out
    # renumbering leaves the two new defaults in conflict: still nothing written
    rep = merge_stores(ws, repo, renumber=True)
    assert [s.action for s in rep.unresolved] == ["conflict_default"]
    assert file_digest(repo) == before
    # resolved: everything at once
    rep = merge_stores(ws, repo, renumber=True, prefer="source")
    assert rep.applied and not rep.unresolved
    got, default = versions(repo)
    assert got[5] == (60.0, "valid") and got[6] == (50.0, "valid") and default == 6
    assert got[1][1] == "deprecated"
    assert verify(repo).ok


def test_dry_run_equals_real_run_without_conflicts(repo, tmp_path):
    ws = workspace(repo, tmp_path)
    with DCStore(ws, mode="a") as w:
        w.add_constants(P, arr(7), 0, state="candidate")
        w[P].rangeobj(0).del_version(2)
        w.add_constants(P, arr(8), 50, 60)
    before = file_digest(repo)
    d = dcs("merge", ws, repo, "--json", "--dry-run")
    assert d.returncode == 0 and file_digest(repo) == before
    r = dcs("merge", ws, repo, "--json")
    assert r.returncode == 0 and file_digest(repo) != before
    dd, rr = json.loads(d.stdout), json.loads(r.stdout)
    assert dd["steps"] == rr["steps"] and dd["counts"] == rr["counts"]
    assert (dd["dry_run"], dd["applied"], rr["dry_run"], rr["applied"]) == \
        (True, False, False, True)


# ------------------------------------------------------------------ randomized vs model
RANGES = [(0, None), (10, 20)]
ORDER = {"candidate": 0, "valid": 1, "deprecated": 2}


class Model:
    """A store as the documented rules see it (one ctype; sha = payload value)."""

    def __init__(self):
        self.vers = {}       # (r, v) -> [value, state, uid] (uid: which add made it)
        self.default = {}    # r -> int
        self.last = {}       # r -> int
        self.tombs = set()   # (what, r, v, sha)

    def copy(self):
        m = Model()
        m.vers = {k: list(x) for k, x in self.vers.items()}
        m.default, m.last, m.tombs = dict(self.default), dict(self.last), set(self.tombs)
        return m

    def in_range(self, r):
        return sorted(v for (rr, v) in self.vers if rr == r)

    def newest_valid(self, r, exclude=0):
        return max((v for v in self.in_range(r) if v != exclude
                    and self.vers[(r, v)][1] == "valid"), default=0)

    def tomb_max(self, r):
        return max((v for (w, rr, v, _) in self.tombs if w == "version" and rr == r),
                   default=0)

    def ensure_range(self, r):
        if r not in self.default:
            self.default[r] = 0
            self.last[r] = self.tomb_max(r)


def real_state(path):
    m = Model()
    with DCStore(path) as cs:
        if P in cs:
            for rg in cs[P].ranges():
                r = (rg.tsbegin() // 10**9, None if rg.is_open() else rg.tsend() // 10**9)
                m.default[r] = rg.versdef()
                m.last[r] = cs.backend.last_version(P, rg.tsbegin(), rg.tsend())
                for v in rg.versions():
                    m.vers[(r, v.version())] = [float(v.calib()[0, 0]), v.state(),
                                                v.tsprod()]
        for t in cs.tombstones():
            r = (t.tsbegin // 10**9, None if t.tsend == 2**63 - 1 else t.tsend // 10**9)
            m.tombs.add((t.what, r, t.version, t.sha256))
    return m


def sha_of(value):
    from pscalib.store.payload import checksum
    return checksum(arr(value))


def random_ops(path, m, rnd, n):
    """n random allowed operations on the real store and its model."""
    with DCStore(path, mode="a") as cs:
        for _ in range(n):
            op = rnd.choice(["add", "add", "add", "deprecate", "validate", "delete",
                             "delete_range", "set_default"])
            r = rnd.choice(RANGES)
            vs = m.in_range(r)
            if op == "add":
                value = float(rnd.randint(0, 4))
                state = rnd.choice(["valid", "candidate"])
                mk = rnd.random() < 0.7
                m.ensure_range(r)
                v = cs.add_constants(P, arr(value), r[0], r[1], state=state,
                                     make_default=mk, force=True)
                m.last[r] += 1
                assert v.version() == m.last[r]
                m.vers[(r, m.last[r])] = [value, state, v.tsprod()]
                if state == "valid" and (mk or m.default[r] == 0):
                    m.default[r] = m.last[r]
            elif not vs:
                continue
            elif op == "deprecate":
                v = rnd.choice(vs)
                if m.vers[(r, v)][1] == "deprecated":
                    continue
                cs[P].rangeobj(r[0], r[1]).versobj(v).deprecate("random")
                m.vers[(r, v)][1] = "deprecated"
                if m.default[r] == v:
                    m.default[r] = m.newest_valid(r, exclude=v)
            elif op == "validate":
                v = rnd.choice(vs)
                if m.vers[(r, v)][1] != "candidate":
                    continue
                mk = rnd.random() < 0.5
                cs[P].rangeobj(r[0], r[1]).versobj(v).validate("random", make_default=mk)
                m.vers[(r, v)][1] = "valid"
                if mk or m.default[r] == 0:
                    m.default[r] = v
            elif op == "delete":
                v = rnd.choice(vs)
                cs[P].rangeobj(r[0], r[1]).del_version(v)
                m.tombs.add(("version", r, v, sha_of(m.vers.pop((r, v))[0])))
                if m.default[r] == v:
                    m.default[r] = m.newest_valid(r)
            elif op == "delete_range" and rnd.random() < 0.3:
                cs[P].del_range((r[0], r[1]))
                for v in vs:
                    m.tombs.add(("version", r, v, sha_of(m.vers.pop((r, v))[0])))
                m.tombs.add(("range", r, 0, ""))
                del m.default[r], m.last[r]
            elif op == "set_default":
                valid = [v for v in vs if m.vers[(r, v)][1] == "valid"]
                if valid:
                    v = rnd.choice(valid)
                    cs[P].rangeobj(r[0], r[1]).set_versdef(v)
                    m.default[r] = v


def model_merge(src, dst, prefer, renumber):
    """(blocked, new dst) by the rule of docs/exchange.rst, written independently."""
    out = dst.copy()
    blocked = False
    ids = set(dst.tombs)
    deprecate = set()
    for t in sorted(src.tombs - ids, key=str):
        what, r, v, sha = t
        if what == "version" and (r, v) in dst.vers:
            if sha_of(dst.vers[(r, v)][0]) == sha:
                deprecate.add((r, v))
                continue
        out.tombs.add(t)
    ranges = set(src.default) | {r for r, _ in deprecate}
    for r in sorted(ranges, key=str):
        exists = r in dst.default
        after = {v: dst.vers[(r, v)][1] for v in dst.in_range(r)}
        added, same, unchanged, validated, renum = set(), set(), set(), set(), {}
        for v in src.in_range(r):
            value, st, uid = src.vers[(r, v)]
            copy = [n for n in dst.in_range(r) if dst.vers[(r, n)][2] == uid and n != v]
            if copy and not ((r, v) in dst.vers and dst.vers[(r, v)][0] == value):
                n = copy[0]  # renumbered by an earlier merge
                renum[v] = n
                unchanged.add(n)
                new = max(st, after[n], key=ORDER.get)
                if new != after[n]:
                    after[n] = out.vers[(r, n)][1] = new
                    if new == "valid":
                        validated.add(n)
                continue
            if (r, v) not in dst.vers:
                tsha = [s for (w, rr, vv, s) in dst.tombs if w == "version" and rr == r
                        and vv == v]
                if tsha and sha_of(value) in tsha:
                    continue
                if not tsha:
                    out.vers[(r, v)] = [value, st, uid]
                    added.add(v)
                    same.add(v)
                    after[v] = st
                    continue
            elif dst.vers[(r, v)][0] == value:
                unchanged.add(v)
                new = max(st, after[v], key=ORDER.get)
                if new != after[v]:
                    after[v] = out.vers[(r, v)][1] = new
                    if new == "valid":
                        validated.add(v)
                continue
            if not renumber:
                blocked = True
                continue
            taken = set(after) | set(renum.values()) | set(src.in_range(r))
            n = max([dst.last.get(r, 0) if exists else 0, dst.tomb_max(r)] + list(taken)) + 1
            renum[v] = n
            out.vers[(r, n)] = [value, st, uid]
            added.add(n)
            after[n] = st
        for (rr, v) in deprecate:
            if rr == r and after[v] != "deprecated":
                after[v] = out.vers[(r, v)][1] = "deprecated"
        creates = not exists and (added or (r in src.default and not src.in_range(r)
                                            and ("range", r, 0, "") not in dst.tombs))
        if not exists and not creates:
            continue
        if not exists:
            out.default[r] = 0
        def ok(v, after=after):
            return v > 0 and after.get(v) == "valid"

        ds0 = src.default.get(r, 0)
        ds = renum.get(ds0, ds0 if ds0 in same | unchanged else 0)
        dd = dst.default.get(r, 0)
        if ds == 0 or ds == dd or not ok(ds):
            target = dd
        elif not ok(dd):
            target = ds
        elif (ds in added or ds in validated) and dd in unchanged:
            target = ds
        else:
            if prefer is None:
                blocked = True
            target = ds if prefer == "source" else dd
        if not ok(target):
            target = max((v for v, s in after.items() if s == "valid"), default=0)
        out.default[r] = target
        if not exists:
            out.last[r] = dst.tomb_max(r)          # a new range starts after its tombstones
        out.last[r] = max([out.last[r]] + list(added))
    # ranges that got versions or tombstones count at least as far as the source's range
    # and every tombstone of theirs
    new_tombs = out.tombs - dst.tombs
    for r in out.default:
        got = any(rr == r for (_, rr, _, _) in new_tombs) or any(
            (rr == r and (rr, v) not in dst.vers) for (rr, v) in out.vers)
        if got or (r not in dst.default):
            out.last[r] = max([out.last[r], src.last.get(r, 0) if r in src.default else 0,
                               out.tomb_max(r)])
    return blocked, out


def _check(path, model):
    got = real_state(path)
    assert got.vers == model.vers
    assert got.default == model.default
    assert got.tombs == model.tombs
    assert got.last == model.last


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("MERGE_SEEDS", "8"))))
def test_random_operations_merge_like_the_model(tmp_path, seed):
    rnd = random.Random(seed)
    base = tmp_path / "base" / "cspad-0001.h5"
    m = Model()
    with DCStore(base, mode="a"):
        pass
    random_ops(base, m, rnd, 6)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for p in (a, b):
        shutil.copy(base, p)
    ma, mb = m.copy(), m.copy()
    for round_ in range(3):
        random_ops(a, ma, rnd, 5)
        random_ops(b, mb, rnd, 5)
        _check(a, ma)
        _check(b, mb)
        src, dst, msrc, mdst = (a, b, ma, mb) if rnd.random() < 0.5 else (b, a, mb, ma)
        prefer = rnd.choice([None, None, "source", "dest"])
        renumber = rnd.random() < 0.5
        before = file_digest(dst)
        blocked, want = model_merge(msrc, mdst, prefer, renumber)
        rep = merge_stores(src, dst, prefer=prefer, renumber=renumber)
        assert bool(rep.unresolved) == blocked, (seed, round_, rep.format())
        if blocked:
            assert file_digest(dst) == before and not rep.applied
            continue
        _check(dst, want)
        assert verify(dst).ok, verify(dst).format()
        if dst == b:
            mb = want
        else:
            ma = want
        # merging again changes nothing
        again = merge_stores(src, dst, prefer=prefer, renumber=renumber)
        assert not again.changes, again.format()
