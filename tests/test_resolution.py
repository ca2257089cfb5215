"""The right file for the time (issue 15): aliases resolved at the asked time in every entry
point, per-ctype fall-through from an experiment workspace to the repository, get_all.

Real stores in a real repository and experiment workspace, the real `dcs` executable.
"""
import json

import numpy as np
import pytest

from conftest import file_digest
from test_cli import assert_one_line_error, dcs, ok
from pscalib import DCStore
from pscalib.aliases import add_alias
from pscalib.errors import (AliasMismatchError, AliasNotFoundError, CtypeNotFoundError,
                            NoValidConstantsError)
from pscalib.runs import add_runs, run_table_path

SRC = "MfxEndstation.0:Epix10ka.0"
SWAP = "2024-05-15T00:00:00"   # the source maps to epix10ka-000a until then, -000b after


@pytest.fixture
def places(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    root = tmp_path / "exp"
    ws = root / "MFX" / "mfxp1001" / "calib"
    ws.mkdir(parents=True)
    repo.mkdir()
    env = {"PSCALIB_REPOSITORY": str(repo), "PSCALIB_EXPERIMENT_ROOT": str(root),
           "PSCALIB_EXPERIMENT": "mfxp1001"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return repo, ws, env


def fill(calib, detname, value, ctypes=("pedestals", "pixel_status", "pixel_gain"),
         begin="2024-01-01"):
    with DCStore(calib, detname, mode="a") as cs, cs.transaction():
        for i, c in enumerate(ctypes):
            cs.add_constants(c, np.full((2, 3), value + i, dtype=np.float32), begin)


@pytest.fixture
def swap(places):
    """Two detectors behind one DAQ source, swapped on SWAP."""
    repo, ws, env = places
    fill(repo, "epix10ka-000a", 10.0)
    fill(repo, "epix10ka-000b", 20.0)
    add_alias(repo, SRC, "epix10ka-000a", end=SWAP)
    add_alias(repo, SRC, "epix10ka-000b", begin=SWAP)
    return places


# ---------------------------------------------------------------- alias at the asked time
def test_api_alias_opened_without_time_refuses_times_of_the_other_detector(swap):
    with DCStore(None, SRC) as cs:             # latest record: epix10ka-000b
        assert cs.resolved.detname == "epix10ka-000b"
        assert cs.get("pedestals", "2024-06-01")[0, 0] == 20.0
        with pytest.raises(AliasMismatchError) as exc:
            cs.get("pedestals", "2024-05-01")
        msg = str(exc.value)
        assert "means 'epix10ka-000a' at 2024-05-01T00:00:00+00:00" in msg
        assert "opened for 'epix10ka-000b'" in msg and "tsp=" in msg
        with pytest.raises(AliasMismatchError):
            cs.get_all("2024-05-01")
        with pytest.raises(AliasMismatchError):
            cs.version_at("pixel_status", "2024-05-01")
    with DCStore(None, SRC, tsp="2024-05-01") as cs:
        assert cs.get("pedestals", "2024-05-01")[0, 0] == 10.0
        with pytest.raises(AliasMismatchError, match="means 'epix10ka-000b'"):
            cs.get("pedestals", "2024-06-01")
    # a store file opened by path with an alias as detname checks the same way
    repo = swap[0]
    with DCStore(repo / "epix10ka" / "epix10ka-000a.h5", SRC, tsp="2024-05-01") as cs:
        with pytest.raises(AliasMismatchError):
            cs.get("pedestals", "2024-06-01")
    # detnames never go through the check
    with DCStore(None, "epix10ka-000a") as cs:
        assert cs.get("pedestals", "2024-06-01")[0, 0] == 10.0


def test_api_alias_undefined_at_the_time(places):
    repo, _, _ = places
    fill(repo, "epix10ka-000a", 10.0)
    add_alias(repo, SRC, "epix10ka-000a", begin="2024-03-01")
    with DCStore(None, SRC) as cs:
        assert cs.get("pedestals", "2024-04-01")[0, 0] == 10.0
        with pytest.raises(AliasNotFoundError, match="means no detector at 2024-02-01"):
            cs.get("pedestals", "2024-02-01")


def test_api_alias_by_run_across_the_swap(swap):
    repo, ws, _ = swap
    add_runs(run_table_path(ws), [(5, "2024-05-01", "2024-05-01T01"), (9, "2024-06-01", None)])
    with DCStore(None, SRC, tsp="2024-06-01") as cs:
        assert cs.get("pedestals", run=9)[0, 0] == 20.0
        with pytest.raises(AliasMismatchError, match="means 'epix10ka-000a'"):
            cs.get("pedestals", run=5)


def test_cli_alias_resolved_at_the_asked_time(swap):
    repo, ws, env = swap
    add_runs(run_table_path(ws), [(5, "2024-05-01", "2024-05-01T01"), (9, "2024-06-01", None)])
    for t, det, val in (("2024-05-01", "epix10ka-000a", 10.0),
                        ("2024-06-01", "epix10ka-000b", 20.0)):
        got = json.loads(ok(dcs("get", SRC, "pedestals", "-t", t, "--json", env=env)).stdout)
        assert got["detname"] == det and got["stats"]["min"] == val
        assert got["store"].endswith(f"{det}.h5")
        tree = json.loads(ok(dcs("print", SRC, "--time", t, "--json", env=env)).stdout)
        assert tree["detname"] == det
        hist = json.loads(ok(dcs("history", SRC, "--time", t, "--json", env=env)).stdout)
        assert any(det in r["record"] for r in hist["records"])
        where = json.loads(ok(dcs("where", SRC, "--time", t, "--json", env=env)).stdout)
        assert where["detname"] == det
    for run, det in (("5", "epix10ka-000a"), ("9", "epix10ka-000b")):
        got = json.loads(ok(dcs("get", SRC, "pedestals", "--run", run, "--json",
                                env=env)).stdout)
        assert got["detname"] == det and got["run"] == int(run)
    allj = json.loads(ok(dcs("get", SRC, "--all", "-t", "2024-05-01", "--json",
                             env=env)).stdout)
    assert {s["detname"] for s in allj["ctypes"].values()} == {"epix10ka-000a"}
    # without a time, print/history use the latest record (as documented)
    assert json.loads(ok(dcs("print", SRC, "--json", env=env)).stdout)["detname"] == \
        "epix10ka-000b"


# ---------------------------------------------------------------- per-ctype fall-through
@pytest.fixture
def partial(places):
    """Repository: pedestals, pixel_status, pixel_gain; workspace copy: pedestals only,
    valid from 2024-05-01 (and a geometry text the repository lacks)."""
    repo, ws, env = places
    fill(repo, "epix10ka-0001", 1.0)
    fill(ws, "epix10ka-0001", 100.0, ctypes=("pedestals",), begin="2024-05-01")
    with DCStore(ws, "epix10ka-0001", mode="a") as cs:
        cs.add_constants("geometry", "GEOMETRY v1\n", "2024-05-01", "2024-06-01")
    return places


def test_api_workspace_lacking_a_ctype_defers_to_the_repository(partial):
    repo, ws, _ = partial
    with DCStore(None, "epix10ka-0001") as cs:
        assert cs.resolved.source == "experiment"
        assert cs.get("pedestals", "2024-05-20")[0, 0] == 100.0         # workspace
        assert cs.get("pixel_status", "2024-05-20")[0, 0] == 2.0        # repository
        assert cs.get("pedestals", "2024-03-01")[0, 0] == 1.0           # no ws range then
        assert cs.resolved.answers == {
            "pedestals": repo / "epix10ka" / "epix10ka-0001.h5",
            "pixel_status": repo / "epix10ka" / "epix10ka-0001.h5"}
        cs.get("pedestals", "2024-05-20")
        assert cs.resolved.answers["pedestals"] == ws / "epix10ka" / "epix10ka-0001.h5"
        ver = cs.version_at("pixel_gain", "2024-05-20")
        assert ver._store.path == repo / "epix10ka" / "epix10ka-0001.h5"
        # nothing anywhere: the first file's error, with what the later places said
        with pytest.raises(CtypeNotFoundError, match="has no calibration type 'pixel_rms'.*"
                                                     "later places"):
            cs.get("pixel_rms", "2024-05-20")
        with pytest.raises(NoValidConstantsError, match="no 'geometry' constants valid"):
            cs.get("geometry", "2024-07-01")
    # a store opened by path answers only from its own file
    with DCStore(ws / "epix10ka" / "epix10ka-0001.h5") as cs:
        assert cs.resolved.answers is None
        with pytest.raises(CtypeNotFoundError):
            cs.get("pixel_status", "2024-05-20")


def test_get_all_equals_per_ctype_get_for_every_ctype(partial):
    with DCStore(None, "epix10ka-0001") as cs:
        for t in ("2024-03-01", "2024-05-20", "2024-07-01"):
            every = cs.get_all(t)
            names = {"pedestals", "pixel_status", "pixel_gain"} | (
                {"geometry"} if t == "2024-05-20" else set())
            assert set(every) == names
            for c, payload in every.items():
                one = cs.get(c, t)
                if isinstance(one, str):
                    assert payload == one
                else:
                    np.testing.assert_array_equal(payload, one)
        assert cs.get_all("2023-01-01") == {}            # nothing valid: empty, no error


def test_cli_fall_through_where_and_get_all_files(partial, tmp_path):
    repo, ws, env = partial
    res = ok(dcs("get", "epix10ka-0001", "pixel_status", "-t", "2024-05-20", "--json",
                 env=env))
    assert json.loads(res.stdout)["store"] == str(repo / "epix10ka" / "epix10ka-0001.h5")
    txt = ok(dcs("where", "epix10ka-0001", "--time", "2024-05-20", env=env)).stdout
    assert f"pedestals        {ws / 'epix10ka' / 'epix10ka-0001.h5'}" in txt
    assert f"pixel_status     {repo / 'epix10ka' / 'epix10ka-0001.h5'} (repository)" in txt
    wj = json.loads(ok(dcs("where", "epix10ka-0001", "--json", env=env)).stdout)
    assert wj["ctypes"]["pixel_gain"]["source"] == "repository"
    assert wj["ctypes"]["pedestals"]["source"] == "experiment"
    out = tmp_path / "consts"
    res = ok(dcs("get", "epix10ka-0001", "--all", "-t", "2024-05-20", "-o", out, env=env))
    assert "summary:" in res.stdout
    files = sorted(p.name for p in out.iterdir())
    assert files == ["geometry.txt", "pedestals.npy", "pixel_gain.npy", "pixel_status.npy",
                     "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ctypes"]["pixel_gain"]["store"] == str(repo / "epix10ka" /
                                                           "epix10ka-0001.h5")
    assert summary["ctypes"]["pedestals"]["store"] == str(ws / "epix10ka" / "epix10ka-0001.h5")
    assert (out / "geometry.txt").read_text() == "GEOMETRY v1\n"
    with DCStore(None, "epix10ka-0001") as cs:
        for c in ("pedestals", "pixel_gain", "pixel_status"):
            np.testing.assert_array_equal(np.load(out / f"{c}.npy"), cs.get(c, "2024-05-20"))
    # a time with some ctypes missing lists them
    later = json.loads(ok(dcs("get", "epix10ka-0001", "--all", "-t", "2024-07-01", "--json",
                              env=env)).stdout)
    assert later["missing"] == ["geometry"] and "geometry" not in later["ctypes"]
    # bad uses
    assert_one_line_error(dcs("get", "epix10ka-0001", "-t", "2024-05-20", env=env), 2,
                          "CTYPE or --all")
    assert_one_line_error(dcs("get", "epix10ka-0001", "pedestals", "--all", "-t",
                              "2024-05-20", env=env), 2, "CTYPE or --all")
    (tmp_path / "afile").write_text("x")
    before = file_digest(tmp_path / "afile")
    assert_one_line_error(dcs("get", "epix10ka-0001", "--all", "-t", "2024-05-20", "-o",
                              tmp_path / "afile", env=env), 1, "must be a directory")
    assert file_digest(tmp_path / "afile") == before
