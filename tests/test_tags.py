"""Tags, publish protection, as-of errors, provenance, manifests and impact (issue 17)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import ROOT, file_digest
from pscalib import DCStore
from pscalib.errors import (AsOfUnavailableError, ManifestError, ProtectedByTagError,
                            PurgedVersionError, TagError, TagNotFoundError)
from pscalib.exchange import copy_store, merge_stores, verify
from pscalib.store.purge import purge
from pscalib.store.tags import (check_create_tag, check_delete_tag, create_tag, delete_tag,
                                publish_tag, tag_names)
from pscalib.timestamps import now_ns

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
S = 10**9


def dcs(*args, env=None, timeout=60):
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def pair(ns):
    return divmod(ns, S)


@pytest.fixture
def tagged(store_path):
    """A store with two ranges and a published tag P over the first state."""
    with DCStore(store_path, mode="a", detname="cspad-0001") as cs:
        cs.add_constants("pedestals", np.zeros(4), "2024-01-01")
        cs.add_constants("pedestals", np.ones(4), "2024-03-01", "2024-04-01")
        cs.add_constants("pixel_status", np.arange(4), "2024-01-01")
        create_tag(cs, "P")
        publish_tag(cs, "P")
        cs.add_constants("pedestals", np.full(4, 7.0), "2024-01-01")  # v2: tag keeps v1
    return store_path


def test_tag_answers_and_provenance(tagged):
    with DCStore(tagged) as cs:
        assert cs.get("pedestals", "2024-02-01")[0] == 7.0
        assert cs.get("pedestals", "2024-02-01", tag="P")[0] == 0.0
        data, info = cs.get("pedestals", "2024-02-01", tag="P", with_info=True)
        assert info["version"] == 1 and info["tags"] == ["P"] and info["state"] == "valid"
        assert info["detname"] == "cspad-0001" and info["store"] == str(tagged.absolute())
        assert info["range"] == "20240101T000000Z_end"
        _, now = cs.get("pedestals", "2024-02-01", with_info=True)
        assert now["version"] == 2 and now["tags"] == []
        with pytest.raises(TagNotFoundError, match="has no tag 'Q'; it has P"):
            cs.get("pedestals", "2024-02-01", tag="Q")


def test_published_tag_refuses_every_change_byte_identical(tagged):
    before = file_digest(tagged)
    with DCStore(tagged, mode="a") as cs:
        r1 = cs["pedestals"].rangeobj("20240101T000000Z_end")
        attempts = [
            lambda: r1.del_version(1),
            lambda: cs["pedestals"].del_range("20240101T000000Z_end"),
            lambda: cs.del_ctype("pedestals"),
            lambda: cs.del_ctype("pixel_status"),
            lambda: r1.versobj(1).set_par("gain", 2),
            lambda: delete_tag(cs, "P"),
        ]
        for attempt in attempts:
            with pytest.raises(ProtectedByTagError, match="nothing was changed"):
                attempt()
            assert file_digest(tagged) == before
        with pytest.raises(TagError, match="already has a tag 'P'"):
            create_tag(cs, "P")
        assert file_digest(tagged) == before
    for args in (["tag", "delete", "P", tagged],
                 ["delete", tagged, "pedestals", "--range", "20240101T000000Z_end",
                  "--version", "1", "--yes"]):
        r = dcs(*args)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert file_digest(tagged) == before


def test_unpublished_tag_can_be_deleted(store_path):
    with DCStore(store_path, mode="a", detname="cspad-0001") as cs:
        cs.add_constants("pedestals", np.zeros(2), "2024-01-01")
        create_tag(cs, "open")
        cs["pedestals"].rangeobj("20240101T000000Z_end").del_version(1)  # not protected
        with pytest.raises(PurgedVersionError, match="no longer in"):
            cs.get("pedestals", "2024-02-01", tag="open")
        delete_tag(cs, "open")
        assert tag_names(cs.backend) == []


def test_published_tag_survives_copy_merge_compaction(tagged, tmp_path):
    want = {c: DCStore(tagged).get(c, "2024-03-15", tag="P").tolist()
            for c in ("pedestals", "pixel_status")}
    cp = tmp_path / "copy" / "cspad-0001.h5"
    copy_store(tagged, cp)
    with DCStore(cp, mode="a") as cs:
        cs.compact()
    ws = tmp_path / "ws" / "cspad-0001.h5"
    copy_store(tagged, ws)
    with DCStore(ws, mode="a") as cs:
        create_tag(cs, "W")
        cs.add_constants("pedestals", np.full(4, 9.0), "2024-06-01")
    merge_stores(ws, tagged)
    for p in (cp, ws, tagged):
        assert verify(p).ok
        with DCStore(p, mode="a") as cs:
            assert "P" in tag_names(cs.backend)
            for c, v in want.items():
                assert cs.get(c, "2024-03-15", tag="P").tolist() == v
            with pytest.raises(ProtectedByTagError):
                cs["pedestals"].rangeobj("20240101T000000Z_end").del_version(1)
    with DCStore(tagged) as cs:  # the merge carried the workspace's tag
        assert "W" in tag_names(cs.backend)
        assert cs.get("pedestals", "2024-02-01", tag="W")[0] == 7.0


def test_partial_copy_keeps_only_whole_tags(tagged, tmp_path):
    cp = tmp_path / "part" / "cspad-0001.h5"
    copy_store(tagged, cp, ctypes=["pixel_status"])
    with DCStore(cp) as cs:
        assert tag_names(cs.backend) == []
        assert any("tags not kept" in r.record for r in cs.backend.history(()))


WRITER = r"""
import sys, numpy as np
from pscalib import DCStore
with DCStore(sys.argv[1], mode="a") as cs:
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        with cs.transaction():
            cs.add_constants("pedestals", np.full(4, float(i)), "2024-01-01", force=True)
"""


def test_published_tag_survives_sigkilled_writer(tagged):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(tagged)], stdout=subprocess.PIPE,
                         env=env, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.0)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert verify(tagged).ok
    with DCStore(tagged) as cs:
        assert cs.get("pedestals", "2024-02-01", tag="P")[0] == 0.0
        assert cs["pedestals"].rangeobj("20240101T000000Z_end").versdef() > 2
    with DCStore(tagged, mode="a") as cs:
        with pytest.raises(ProtectedByTagError):
            cs["pedestals"].rangeobj("20240101T000000Z_end").del_version(1)


def test_asof_errors(store_path):
    with DCStore(store_path, mode="a", detname="cspad-0001") as cs:
        made = cs.tscfile()
        cs.add_constants("pedestals", np.zeros(2), "2024-01-01")
        t1 = now_ns()
        with pytest.raises(AsOfUnavailableError, match="before .* was created"):
            cs.get("pedestals", "2024-02-01", asof=pair(made - S))
        with pytest.raises(AsOfUnavailableError, match="future"):
            cs.get("pedestals", "2024-02-01", asof=pair(now_ns() + 100 * S))
        assert cs.get("pedestals", "2024-02-01", asof=pair(t1))[0] == 0.0
        cs.add_constants("pedestals", np.ones(2), "2024-01-01")
        cs["pedestals"].rangeobj("20240101T000000Z_end").del_version(1)
        with pytest.raises(PurgedVersionError, match="version 1 .*deleted at"):
            cs.get("pedestals", "2024-02-01", asof=pair(t1))
    # a file written before the log existed: the same file without /_changelog
    with h5py.File(store_path, "r+") as f:
        del f["_changelog"]
    with DCStore(store_path) as cs:
        with pytest.raises(AsOfUnavailableError, match="has no change log"):
            cs.get("pedestals", "2024-02-01", asof=pair(t1))
    start = now_ns()
    with DCStore(store_path, mode="a") as cs:  # the next change starts the log
        cs.add_constants("pedestals", np.full(2, 3.0), "2024-01-01")
        with pytest.raises(AsOfUnavailableError, match="change log of .* begins at"):
            cs.get("pedestals", "2024-02-01", asof=pair(start))
        assert cs.get("pedestals", "2024-02-01", asof=pair(now_ns()))[0] == 3.0
    assert verify(store_path).ok


def test_cli_asof_tag_diff_manifest(tmp_path):
    calib = tmp_path / "calib"
    for det in ("cspad-0001", "epix10ka-0001"):
        with DCStore(calib / det.split("-")[0] / f"{det}.h5", mode="a") as cs:
            cs.add_constants("pedestals", np.zeros(3), "2024-01-01")
    r = dcs("tag", "create", "T1", calib, "-m", "before")
    assert r.returncode == 0, r.stderr
    t1 = now_ns()
    np.save(tmp_path / "p.npy", np.full(3, 5.0))
    cspad = calib / "cspad" / "cspad-0001.h5"
    r = dcs("add", cspad, "pedestals", tmp_path / "p.npy", "--begin", "2024-02-01",
            "--end", "2024-02-15")
    assert r.returncode == 0, r.stderr
    runs = tmp_path / "runs.txt"
    rt = tmp_path / "runs.csv"
    rt.write_text("1,2024-01-20\n2,2024-02-03\n3,2024-02-10\n4,2024-03-01\n")
    r = subprocess.run([sys.executable, "-c",
                        "import sys; from pscalib.runs import import_runs; "
                        "import_runs(sys.argv[1], sys.argv[2])", str(rt), str(runs)],
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    r = dcs("tag", "diff", "T1", "now", calib, "--run-table", runs, "--json")
    assert r.returncode == 0, r.stderr
    ws = json.loads(r.stdout)["windows"]
    assert [(w["detname"], w["begin"], w["end"], w["runs"]) for w in ws] == [
        ("cspad-0001", "2024-02-01T00:00:00+00:00", "2024-02-15T00:00:00+00:00", [2, 3])]
    r = dcs("tag", "list", calib, "--json")
    assert [(d["name"], len(d["stores"])) for d in json.loads(r.stdout)] == [("T1", 2)]
    for extra, want in ((["--tag", "T1"], 0.0), (["--asof", f"{t1 / S:.9f}"], 0.0), ([], 5.0)):
        r = dcs("get", cspad, "pedestals", "-t", "2024-02-05", "--json", *extra)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["sha256"] == DCStore(cspad).version_at(
            "pedestals", "2024-02-05", **({"tag": "T1"} if want == 0.0 else {})).info().sha256
    r = dcs("get", cspad, "pedestals", "-t", "2024-02-05", "--asof", "2000-01-01")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "created" in r.stderr
    m = tmp_path / "m.json"
    assert dcs("manifest", calib, "-o", m).returncode == 0
    env = dict(os.environ, PSCALIB_MANIFEST=str(m))
    assert dcs("get", cspad, "pedestals", "-t", "2024-02-05", env=env).returncode == 0
    r = dcs("get", cspad, "pedestals", "-t", "2023-02-05", env=env)
    assert r.returncode == 1 and "outside the coverage" in r.stderr
    assert dcs("tag", "publish", "T1", calib).returncode == 0
    r = dcs("add", cspad, "pedestals", tmp_path / "p.npy", "--begin", "2024-05-01")
    assert r.returncode == 0
    r = dcs("get", cspad, "pedestals", "-t", "2024-02-05", env=env)
    assert r.returncode == 1 and "changed since the manifest" in r.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PSCALIB_MANIFEST", str(m))
        with pytest.raises(ManifestError, match="changed since"):
            DCStore(cspad).get("pedestals", "2024-02-05")


def test_purge_deprecated_refused_by_tag_then_logged(store_path):
    with DCStore(store_path, mode="a", detname="cspad-0001") as cs:
        cs.add_constants("pedestals", np.zeros(2), "2024-01-01")
        t1 = now_ns()
        cs.add_constants("pedestals", np.ones(2), "2024-01-01")
        r = cs["pedestals"].rangeobj("20240101T000000Z_end")
        create_tag(cs, "old", at=t1)
        publish_tag(cs, "old")
        r.versobj(1).deprecate("bad pedestal")
    before = file_digest(store_path)
    res = dcs("purge", store_path, "--deprecated")
    assert res.returncode == 1 and "published tag(s) old" in res.stderr
    assert file_digest(store_path) == before
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.full(2, 2.0), "2024-01-01")
        cs["pedestals"].rangeobj("20240101T000000Z_end").versobj(2).deprecate("bad too")
    res = dcs("purge", store_path, "--deprecated", "--dry-run")
    assert res.returncode == 0 and "would purge" in res.stdout
    # v2 was selected from its add until v3: those as-of answers are what purge loses
    assert "v0002; as-of answers lost for" in res.stdout
    with DCStore(store_path) as cs:
        assert cs.get("pedestals", "2024-02-01", asof=pair(t1))[0] == 0.0
    with pytest.raises(ProtectedByTagError):
        with DCStore(store_path, mode="a") as cs:
            purge(cs)
    assert file_digest(store_path) != before  # (v3 was added above)
    with DCStore(store_path) as cs:
        assert [v.version() for v in cs["pedestals"].rangeobj(
            "20240101T000000Z_end").versions()] == [1, 2, 3]


def test_merge_of_tags_alone_carries_them(tagged, tmp_path):
    """A merge whose only news is a tag carries it (published, protected); merging again
    writes nothing; a same-name tag of another selection is not carried."""
    ws = tmp_path / "ws" / "cspad-0001.h5"
    copy_store(tagged, ws)
    with DCStore(ws, mode="a") as cs:
        create_tag(cs, "W")
        publish_tag(cs, "W")
    rep = merge_stores(ws, tagged, dry_run=True)
    assert rep.tags_carried == ["W"] and not rep.applied
    rep = merge_stores(ws, tagged)
    assert rep.applied and rep.changes == [] and rep.tags_carried == ["W"]
    assert "tags carried: W" in rep.format()
    before = file_digest(tagged)
    with DCStore(tagged, mode="a") as cs:
        assert cs.get("pedestals", "2024-02-01", tag="W")[0] == 7.0
        assert [r.published > 0 for r in cs.backend.tag_rows() if r.name == "W"][0]
        with pytest.raises(ProtectedByTagError, match="W"):
            cs["pedestals"].rangeobj("20240101T000000Z_end").del_version(2)
    assert file_digest(tagged) == before
    again = merge_stores(ws, tagged)
    assert not again.applied and again.tags_carried == [] and file_digest(tagged) == before
    r = dcs("merge", ws, tagged)
    assert r.returncode == 0 and "Traceback" not in r.stderr and file_digest(tagged) == before
    other = tmp_path / "other" / "cspad-0001.h5"
    copy_store(tagged, other)
    with DCStore(other, mode="a") as cs:
        cs.add_constants("pedestals", np.full(4, 3.0), "2024-01-01")
        create_tag(cs, "X")
    with DCStore(tagged, mode="a") as cs:
        create_tag(cs, "X")  # same name, another selection (v2 instead of v3)
    rep = merge_stores(other, tagged)
    assert rep.applied and "X" in rep.tags_not_carried
    with DCStore(tagged) as cs:
        assert cs.get("pedestals", "2024-02-01", tag="X")[0] == 7.0


def test_what_a_published_tag_references(tagged):
    """A published tag references versions (ctype, range, number, sha256, parameters): what
    changes them is refused, byte-identical; set-default and deprecate change what plain
    get answers, not the tag, and are allowed."""
    with DCStore(tagged, mode="a") as cs:
        cs["pedestals"].rangeobj("20240101T000000Z_end").versobj(2).set_par("gain", 1)
        create_tag(cs, "Q")
        publish_tag(cs, "Q")
    before = file_digest(tagged)
    with DCStore(tagged, mode="a") as cs:
        r1 = cs["pedestals"].rangeobj("20240101T000000Z_end")
        for attempt in (lambda: r1.versobj(2).del_par("gain"),
                        lambda: r1.versobj(1).set_par("gain", 3)):
            with pytest.raises(ProtectedByTagError, match="nothing was changed"):
                attempt()
            assert file_digest(tagged) == before
        assert not publish_tag(cs, "P") and file_digest(tagged) == before  # already
        r1.set_versdef(1)
        r1.versobj(1).deprecate("bad after all")
        assert cs.get("pedestals", "2024-02-01")[0] == 7.0  # v2: newest valid
        data, info = cs.get("pedestals", "2024-02-01", tag="P", with_info=True)
        assert data[0] == 0.0 and info["version"] == 1 and info["state"] == "deprecated"
    assert verify(tagged).ok


def test_cli_tag_at_show_diff_two_tags_many_detectors(tmp_path):
    from pscalib.runs import add_runs
    calib = tmp_path / "XPP" / "xpptest" / "calib"
    stores = {}
    for det in ("cspad-0001", "epix10ka-0001"):
        stores[det] = calib / det.split("-")[0] / f"{det}.h5"
        with DCStore(stores[det], mode="a") as cs:
            cs.add_constants("pedestals", np.zeros(3), "2024-01-01")
            cs.add_constants("pixel_status", np.zeros(3), "2024-01-01")
    add_runs(calib / "runs.txt", [(1, "2024-01-20", None), (2, "2024-02-03", None),
                                  (3, "2024-02-10", "2024-02-11"), (4, "2024-03-01", None)])
    assert dcs("tag", "create", "T1", calib).returncode == 0
    with DCStore(stores["cspad-0001"], mode="a") as cs:
        cs.add_constants("pedestals", np.ones(3), "2024-02-01", "2024-02-15")
    with DCStore(stores["epix10ka-0001"], mode="a") as cs:
        cs.add_constants("pixel_status", np.ones(3), "2024-02-10T12:00:00")
    t_mid = now_ns()
    with DCStore(stores["cspad-0001"], mode="a") as cs:  # after --at: not in T2
        cs.add_constants("pedestals", np.full(3, 2.0), "2024-06-01")
    r = dcs("tag", "create", "T2", calib, "--at", f"{t_mid / S:.9f}")
    assert r.returncode == 0, r.stderr
    r = dcs("tag", "show", "T2", calib, "--json")
    shown = {(d["detname"], d["ctype"], d["range"]): d["version"] for d in json.loads(r.stdout)}
    assert shown[("cspad-0001", "pedestals", "20240201T000000Z_20240215T000000Z")] == 1
    assert ("cspad-0001", "pedestals", "20240601T000000Z_end") not in shown
    assert len(shown) == 6
    r = dcs("tag", "diff", "T1", "T2", calib, "--json")  # the workspace's run table
    assert r.returncode == 0, r.stderr
    got = [(w["detname"], w["ctype"], w["begin"][:10], w["end"][:10], w["runs"],
            w["runs_partly"]) for w in json.loads(r.stdout)["windows"]]
    assert got == [("cspad-0001", "pedestals", "2024-02-01", "2024-02-15", [2, 3], [1]),
                   ("epix10ka-0001", "pixel_status", "2024-02-10", "end", [4], [3])]
    r = dcs("tag", "diff", "T1", "T2", calib)
    assert "cspad-0001  pedestals" in r.stdout and "partly: runs 1" in r.stdout
    r = dcs("tag", "diff", "T2", "now", calib, "--json")
    assert [(w["detname"], w["begin"][:10]) for w in json.loads(r.stdout)["windows"]] == [
        ("cspad-0001", "2024-06-01")]
    r = dcs("tag", "diff", "T1", "T1", calib)
    assert r.returncode == 0 and "answer the same everywhere" in r.stdout
    r = dcs("tag", "diff", "T1", "NOPE", calib)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "NOPE" in r.stderr


def test_merge_cannot_change_a_published_reference(tagged, tmp_path):
    """A merge bringing a new parameter for a version a published tag references is
    refused as a whole; the destination stays byte-identical (API and dcs merge)."""
    ws = tmp_path / "ws" / "cspad-0001.h5"
    copy_store(tagged, ws)
    with h5py.File(ws, "r+") as f:  # a source where the version is not protected
        del f["_tags"]
    with DCStore(ws, mode="a") as cs:
        cs["pedestals"].rangeobj("20240101T000000Z_end").versobj(1).set_par("gain", 2)
    before = file_digest(tagged)
    with pytest.raises(ProtectedByTagError, match="published tag"):
        merge_stores(ws, tagged)
    assert file_digest(tagged) == before
    r = dcs("merge", ws, tagged)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "published" in r.stderr
    assert r.stderr.count("\n") == 1 and file_digest(tagged) == before


def test_cli_tag_over_many_stores_checks_every_store_first(tmp_path):
    """A tag create or delete refused in one store changes no store (dcs and the GUI check
    them all first: check_create_tag / check_delete_tag)."""
    calib = tmp_path / "calib"
    paths = []
    for det in ("cspad-0001", "epix10ka-0001"):
        paths.append(calib / det.split("-")[0] / f"{det}.h5")
        with DCStore(paths[-1], mode="a") as cs:
            cs.add_constants("pedestals", np.zeros(3), "2024-01-01")
    assert dcs("tag", "create", "T", paths[1]).returncode == 0  # the second store only
    before = [file_digest(p) for p in paths]
    r = dcs("tag", "create", "T", calib)
    assert r.returncode == 1 and "already has a tag 'T'" in r.stderr
    assert r.stderr.count("\n") == 1 and [file_digest(p) for p in paths] == before
    assert dcs("tag", "create", "P", paths[0]).returncode == 0
    assert dcs("tag", "publish", "P", paths[0]).returncode == 0
    assert dcs("tag", "create", "P", paths[1]).returncode == 0  # open in the second
    before = [file_digest(p) for p in paths]
    r = dcs("tag", "delete", "P", calib)
    assert r.returncode == 1 and "cannot be deleted" in r.stderr
    assert [file_digest(p) for p in paths] == before
    with DCStore(paths[0]) as cs:
        with pytest.raises(TagError):
            check_create_tag(cs, "P")
        with pytest.raises(ProtectedByTagError):
            check_delete_tag(cs, "P")
        assert check_create_tag(cs, "new") == 1 and cs.version_at(
            "pedestals", "2024-02-01").tags() == ["P"]
