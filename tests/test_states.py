"""Version states, the default invariant, selection with states, tombstones and format 2
(issue 16; rules in docs/format.rst "Version states", "Tombstones", "Format versions").

Real files, real `dcs`; old stores are written by the pre-states code itself (extracted
from git history) and read here with all versions valid.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import LEGACY_DIR, ROOT, file_digest
from pscalib import DCStore
from pscalib.errors import (DeprecatedVersionError, InvalidInputError,
                            NoValidConstantsError, StateTransitionError,
                            VersionNotFoundError)
from pscalib.exchange import verify
from pscalib.store.states import CANDIDATE, DEPRECATED, STATES, TRANSITIONS, VALID

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
#: The last commit before states existed: its code writes format 1 files.
PRE_STATES_COMMIT = "92b1bda"
S = 10**9


def dcs(*args, env=None, timeout=60):
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "calib" / "cspad" / "cspad-0001.h5"


def arr(x):
    return np.full((2, 3), float(x))


def in_state(cs, state, tsbegin=0, value=1.0):
    """A version of pedestals in `state`, made by allowed transitions only."""
    v = cs.add_constants("pedestals", arr(value), tsbegin,
                         state=CANDIDATE if state != VALID else VALID)
    if state == DEPRECATED:
        v.deprecate("made deprecated for the test")
    return v


# ------------------------------------------------------------------ state machine
@pytest.mark.parametrize("start", STATES)
@pytest.mark.parametrize("target", STATES)
def test_every_transition_allowed_or_refused(path, start, target, monkeypatch):
    monkeypatch.setenv("PSCALIB_USER", "alice")
    with DCStore(path, mode="a") as cs:
        v = in_state(cs, start)
        assert v.state() == start
        before_hist = v.history_records()
        allowed = (start, target) in TRANSITIONS
        if not allowed:
            digest = file_digest(path)
            with pytest.raises(StateTransitionError):
                v.set_state(target, "try")
            assert file_digest(path) == digest  # refused: the file is untouched
            assert v.state() == start and v.history_records() == before_hist
            return
        t0 = time.time_ns()
        v.set_state(target, "  because of run 17 ")
        t1 = time.time_ns()
        assert v.state() == target
        info = v.state_info()
        assert info.state == target and info.user == "alice"
        assert info.reason == "because of run 17" and t0 <= info.tsns <= t1
        rec = v.history_records()[-1]
        assert rec.action == TRANSITIONS[(start, target)]
        assert rec.record == f"{start} -> {target}: because of run 17"
        assert rec.user == "alice" and t0 <= rec.tsns <= t1
        assert len(v.history_records()) == len(before_hist) + 1
    assert verify(path).ok


def test_validate_deprecate_names_and_reasons(path):
    with DCStore(path, mode="a") as cs:
        v = cs.add_constants("pedestals", arr(1), 0, state="candidate")
        with pytest.raises(InvalidInputError, match="reason"):
            v.validate("   ")
        with pytest.raises(InvalidInputError, match="reason"):
            v.deprecate(None)
        with pytest.raises(InvalidInputError, match="state"):
            v.set_state("bogus", "x")
        with pytest.raises(InvalidInputError, match="state"):
            cs.add_constants("pedestals", arr(2), 0, state="deprecated")
        v.validate("checked by eye")
        assert v.state() == "valid"
        with pytest.raises(StateTransitionError, match="already valid"):
            v.validate("again")
        v.deprecate("bad pedestal")
        with pytest.raises(StateTransitionError, match="final"):
            v.validate("undo")


# ------------------------------------------------------------------ selection
def test_fallback_single_version_range(path):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", arr(1), 0)          # outer range [0, open)
        v = cs.add_constants("pedestals", arr(2), 10, 20)  # inner range [10, 20)
        assert cs.get("pedestals", 15)[0, 0] == 2
        v.deprecate("bad")
        rng = v.rangeobj()
        assert rng.versdef() == 0           # no valid version left: not a candidate
        assert cs.get("pedestals", 15)[0, 0] == 1       # the next covering range
        assert cs.version_at("pedestals", 15).rangeobj().tsbegin() == 0
        assert rng.history_records()[-1].action == "set_default"
        assert "no valid version" in rng.history_records()[-1].record
    with DCStore(path, mode="a") as cs:
        cs["pedestals"].rangeobj(0).versobj(1).deprecate("also bad")
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", 15)
    assert verify(path).ok


def test_fallback_many_versions(path):
    with DCStore(path, mode="a") as cs:
        vs = [cs.add_constants("pedestals", arr(i), 0, tsprod=i) for i in (1, 2, 3, 4)]
        rng = vs[0].rangeobj()
        assert rng.versdef() == 4
        vs[3].deprecate("v4 bad")                     # default deprecated -> newest valid
        assert rng.versdef() == 3 and cs.get("pedestals", 5)[0, 0] == 3
        rng.set_versdef(1)
        vs[2].deprecate("v3 bad")                     # not the default: default stays
        assert rng.versdef() == 1 and cs.get("pedestals", 5)[0, 0] == 1
        vs[0].deprecate("v1 bad")                     # -> newest valid is v2
        assert rng.versdef() == 2 and cs.get("pedestals", 5)[0, 0] == 2
        assert cs.version_at("pedestals", 5).version() == 2
        # by number: deprecated refused, valid fine
        with pytest.raises(DeprecatedVersionError, match="deprecated"):
            cs.get("pedestals", 5, 4)
        with pytest.raises(DeprecatedVersionError):
            cs.version_at("pedestals", 5, 3)
        assert cs.get("pedestals", 5, 2)[0, 0] == 2
        # the payload of a deprecated version stays readable explicitly
        assert rng.versobj(4).calib()[0, 0] == 4
        # "as of" a production time skips deprecated versions
        assert rng.version_at(4).version() == 2
        assert cs.get("pedestals", 5, tsprod=3.5)[0, 0] == 2
        with pytest.raises(VersionNotFoundError):
            rng.version_at(1.5)                      # only v1 existed then: deprecated
        # the default can only be a valid version
        with pytest.raises(StateTransitionError, match="valid"):
            rng.set_versdef(4)
        vs[1].deprecate("v2 bad")
        assert rng.versdef() == 0
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", 5)
    assert verify(path).ok


def test_candidates_only_when_asked(path):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", arr(1), 0, tsprod=1)
        c = cs.add_constants("pedestals", arr(2), 0, state="candidate", tsprod=2)
        rng = c.rangeobj()
        assert c.state() == "candidate" and rng.versdef() == 1   # never the default
        assert cs.get("pedestals", 5)[0, 0] == 1
        assert cs.get("pedestals", 5, include=("candidate",))[0, 0] == 2
        assert cs.get("pedestals", 5, include="candidate")[0, 0] == 2
        assert cs.version_at("pedestals", 5, include=["candidate"]).version() == 2
        assert rng.version_at(3).version() == 1
        assert rng.version_at(3, include=("candidate",)).version() == 2
        assert cs.get("pedestals", 5, 2)[0, 0] == 2       # by number: asked for it
        with pytest.raises(InvalidInputError, match="never selected"):
            cs.get("pedestals", 5, include=("deprecated",))
        with pytest.raises(InvalidInputError, match="only 'candidate'"):
            cs.get("pedestals", 5, include=("bogus",))
        with pytest.raises(StateTransitionError):
            rng.set_versdef(2)
        # a range with only candidates is not a candidate of the selection rule
        only = cs.add_constants("pedestals", arr(3), 10, 20, state="candidate")
        assert only.rangeobj().versdef() == 0
        assert cs.get("pedestals", 15)[0, 0] == 1
        assert cs.get("pedestals", 15, include="candidate")[0, 0] == 3
        # a candidate older than the default does not replace it
        rng.set_versdef(1)
        c.validate("looks good", make_default=False)
        assert rng.versdef() == 1
        old_c = cs.add_constants("pedestals", arr(4), 0, state="candidate")  # v3
        rng.set_versdef(2)
        assert cs.get("pedestals", 5, include="candidate")[0, 0] == 4      # v3 > v2
        cs.add_constants("pedestals", arr(5), 0)                         # v4 valid default
        assert cs.get("pedestals", 5, include="candidate")[0, 0] == 5     # v3 < v4
        old_c.validate("ok")                                             # -> default
        assert rng.versdef() == 3
    assert verify(path).ok


def test_validate_makes_default_and_first_valid_becomes_default(path):
    with DCStore(path, mode="a") as cs:
        c1 = cs.add_constants("pedestals", arr(1), 0, state="candidate")
        c2 = cs.add_constants("pedestals", arr(2), 0, state="candidate")
        rng = c1.rangeobj()
        assert rng.versdef() == 0
        c2.validate("ok", make_default=False)   # the range had none: becomes default anyway
        assert rng.versdef() == 2
        c1.validate("ok too")                   # make_default=True (default)
        assert rng.versdef() == 1
        assert [r.action for r in rng.history_records()][-1] == "set_default"


def test_delete_default_falls_back_to_newest_valid(path):
    with DCStore(path, mode="a") as cs:
        for i in (1, 2, 3):
            cs.add_constants("pedestals", arr(i), 0)
        rng = cs["pedestals"].rangeobj(0)
        rng.versobj(2).deprecate("bad")
        rng.del_version(3)
        assert rng.versdef() == 1               # v2 is deprecated: newest valid is v1


# ------------------------------------------------------------------ tombstones
def test_deletions_leave_tombstones(path, monkeypatch):
    monkeypatch.setenv("PSCALIB_USER", "bob")
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")  # the format 1 -> 2 upgrade
    with DCStore(path, mode="a") as cs:
        a = cs.add_constants("pedestals", arr(1), 0, 10)
        b = cs.add_constants("pedestals", arr(2), 0, 10)
        cs.add_constants("pedestals", arr(3), 20)
        cs["pedestals"].add_range(30, 40)
        cs.add_constants("geometry", "x 1\n", 0)
        assert cs.format_version() == 1 and cs.tombstones() == []
        sha_a, sha_b = a.info().sha256, b.info().sha256
        a.rangeobj().del_version(1)
        assert cs.format_version() == 2
        assert cs.history_records()[-1].action == "format_upgrade"
        cs["pedestals"].del_range((0, 10))
        cs["pedestals"].del_range((30, 40))
        cs.del_ctype("geometry")
        ts = cs.tombstones()
    got = [(t.what, t.ctype, t.tsbegin, t.tsend, t.version, t.sha256) for t in ts]
    assert got[0] == ("version", "pedestals", 0, 10 * S, 1, sha_a)
    assert ("version", "pedestals", 0, 10 * S, 2, sha_b) in got
    assert ("range", "pedestals", 0, 10 * S, 0, "") in got
    assert ("range", "pedestals", 30 * S, 40 * S, 0, "") in got
    assert got[-1] == ("ctype", "geometry", 0, 0, 0, "")
    assert sum(1 for g in got if g[0] == "version" and g[1] == "geometry") == 1
    assert all(t.user == "bob" and t.tsns > 0 and t.host for t in ts)
    # plain h5py sees the documented dataset
    with h5py.File(path, "r") as f:
        assert int(f.attrs["format_version"]) == 2
        rows = f["_tombstones"][...]
        assert rows.dtype.names == ("what", "ctype", "tsbegin", "tsend", "version", "sha256",
                                    "tsns", "user", "host", "record")
        assert len(rows) == len(ts)
    assert verify(path).ok


def test_recreated_range_does_not_reuse_version_numbers(path):
    with DCStore(path, mode="a") as cs:
        for i in (1, 2, 3):
            cs.add_constants("pedestals", arr(i), 0, 10)
        cs["pedestals"].del_range((0, 10))
        v = cs.add_constants("pedestals", arr(9), 0, 10)
        assert v.version() == 4


def test_unused_features_keep_format_1(path, monkeypatch):
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")  # a store made for older readers
    with DCStore(path, mode="a") as cs:
        v = cs.add_constants("pedestals", arr(1), 0)
        cs.add_constants("pedestals", arr(2), 0)
        v.rangeobj().set_versdef(1)
        assert cs.format_version() == 1
        with h5py.File(path, "r") as f:
            assert "state" not in f[f"pedestals/{v.rangeobj().range()}/v0001"].attrs
        cs.add_constants("pedestals", arr(3), 0, state="candidate")
        assert cs.format_version() == 2


# ------------------------------------------------------------------ old files
def _pre_states_code(tmp_path) -> Path:
    """The pscalib package as of PRE_STATES_COMMIT, extracted from git."""
    out = tmp_path / "old"
    out.mkdir()
    tar = tmp_path / "old.tar"
    r = subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), PRE_STATES_COMMIT,
                        "pscalib"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"git history with {PRE_STATES_COMMIT} not available: {r.stderr.strip()}")
    with tarfile.open(tar) as t:
        t.extractall(out)
    return out


OLD_WRITER = """
import sys, numpy as np
import pscalib
assert pscalib.__file__.startswith(sys.argv[2]), pscalib.__file__
from pscalib import DCStore
with DCStore(sys.argv[1], mode="a") as cs:
    cs.add_constants("pedestals", np.full(3, 1.0), 0, tsprod=1)
    cs.add_constants("pedestals", np.full(3, 2.0), 0, tsprod=2)
    cs.add_constants("pedestals", np.full(3, 3.0), 0, make_default=False, tsprod=3)
    cs.add_constants("pedestals", np.full(3, 4.0), 100, 200, tsprod=4)
    cs.add_constants("geometry", "x 1\\n", 0, tsprod=5)
    cs["pedestals"].rangeobj(0).del_version(2)
print("ok")
"""

OLD_READER = """
import sys
from pscalib import DCStore
try:
    DCStore(sys.argv[1])
except Exception as exc:
    print(type(exc).__name__, exc)
else:
    print("opened")
"""


def test_format1_file_from_pre_states_code(tmp_path):
    old = _pre_states_code(tmp_path)
    p = tmp_path / "cspad-0001.h5"
    env = dict(os.environ, PYTHONPATH=str(old))
    # cwd outside the worktree: `python -c` puts the cwd first on sys.path
    r = subprocess.run([sys.executable, "-c", OLD_WRITER, str(p), str(old)], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr
    digest = file_digest(p)
    with DCStore(p) as cs:
        assert cs.format_version() == 1 and cs.tombstones() == []
        states = {(v.ctype(), v.rangeobj().range(), v.version()): v.state()
                  for c in cs.ctypes() for rg in cs[c].ranges() for v in rg.versions()}
        assert len(states) == 4 and set(states.values()) == {"valid"}
        assert cs.get("pedestals", 50)[0] == 3.0       # default v2 deleted: highest left
        assert cs.get("pedestals", 150)[0] == 4.0
        assert cs.get("pedestals", 50, 3)[0] == 3.0
        assert cs["pedestals"].rangeobj(0).version_at(10).version() == 3
        assert cs.get("geometry", 1) == "x 1\n"
    r = dcs("print", p, "--json")
    tree = json.loads(r.stdout)
    assert {v["state"] for t in tree["ctypes"] for rg in t["ranges"] for v in rg["versions"]} \
        == {"valid"}
    assert file_digest(p) == digest                    # reading changed nothing
    assert verify(p).ok
    # a change that needs format 2 upgrades the file; the old code then refuses it
    with DCStore(p, mode="a") as cs:
        cs["pedestals"].rangeobj(0).versobj(3).deprecate("bad")
        assert cs.format_version() == 2
        assert cs.get("pedestals", 50)[0] == 1.0       # newest valid
    r = subprocess.run([sys.executable, "-c", OLD_READER, str(p)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("UnsupportedFormatVersionError"), r.stdout + r.stderr
    assert "upgrade pscalib" in r.stdout


def test_legacy_files_read_all_valid():
    files = sorted(LEGACY_DIR.glob("*.h5")) if LEGACY_DIR.is_dir() else []
    if not files:
        pytest.skip(f"shared legacy data not found at {LEGACY_DIR}")
    for f in files:
        with DCStore(f) as cs:
            n = 0
            for c in cs.ctypes():
                for rg in cs[c].ranges():
                    for v in rg.versions():
                        assert v.state() == "valid"
                        n += 1
            assert n > 0 and cs.tombstones() == []


# ------------------------------------------------------------------ dcs
def test_cli_deprecate_validate_print(path):
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", arr(1), 0)
        cs.add_constants("pedestals", arr(2), 0, state="candidate")
        rname = cs["pedestals"].rangeobj(0).range()
    env = dict(os.environ, PSCALIB_USER="carol")
    r = dcs("validate", path, "pedestals", "--range", rname, "--version", 2, "-m", "ok run 5",
            env=env)
    assert r.returncode == 0, r.stderr
    assert "candidate -> valid" in r.stdout
    r = dcs("deprecate", path, "pedestals", "--range", rname, "--version", 2, "-m",
            "hot pixels", env=env)
    assert r.returncode == 0, r.stderr
    digest = file_digest(path)
    r = dcs("validate", path, "pedestals", "--range", rname, "--version", 2, "-m", "x")
    assert r.returncode == 1 and "final" in r.stderr and len(r.stderr.splitlines()) == 1
    r = dcs("deprecate", path, "pedestals", "--range", rname, "--version", 2)
    assert r.returncode == 2                           # -m is required
    assert file_digest(path) == digest
    r = dcs("print", path)
    assert "deprecated" in r.stdout and "hot pixels" in r.stdout
    tree = json.loads(dcs("print", path, "--json").stdout)
    vers = tree["ctypes"][0]["ranges"][0]["versions"]
    assert [(v["version"], v["state"]) for v in vers] == [(1, "valid"), (2, "deprecated")]
    assert vers[1]["state_user"] == "carol" and vers[1]["state_reason"] == "hot pixels"
    hist = json.loads(dcs("history", path, f"pedestals/{rname}/v0002", "--json").stdout)
    acts = [(h["action"], h["user"]) for h in hist["records"]]
    assert ("validate", "carol") in acts and ("deprecate", "carol") in acts
    r = dcs("get", path, "pedestals", "--time", 5, "--version", 2)
    assert r.returncode == 1 and "deprecated" in r.stderr
    r = dcs("add", path, "pedestals", _npy(path.parent / "x.npy", arr(7)), "--begin", 0,
            "--candidate")
    assert r.returncode == 0, r.stderr
    r = dcs("get", path, "pedestals", "--time", 5, "--json")
    assert json.loads(r.stdout)["version"] == 1
    r = dcs("get", path, "pedestals", "--time", 5, "--candidates", "--json")
    doc = json.loads(r.stdout)
    assert doc["version"] == 3 and doc["state"] == "candidate"


def _npy(p, a):
    np.save(p, a)
    return p
