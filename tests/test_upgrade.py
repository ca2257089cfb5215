"""``dcs upgrade``: a format 1 or 2 store becomes format 3 with everything in it kept.

The old files are made by this pscalib with ``PSCALIB_CREATE_FORMAT=1`` (it writes every
format as the file has it: per-object ``_history`` datasets in formats 1 and 2).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from pscalib import DCStore
from pscalib.exchange.verify import verify
from pscalib.store.tags import create_tag, publish_tag

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))



def dcs(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def snapshot(path):
    """Everything a reader can see of a store, through the public API."""
    out = {}
    with DCStore(path) as cs:
        out["meta"] = (cs.dettype(), cs.detid(), cs.tscfile(), cs.predecessor())
        out["pars /"] = cs.dictpars()
        out["hist /"] = [tuple(r) for r in cs.history_records()]
        for c in cs.ctypes():
            ct = cs[c]
            out[f"pars {c}"] = ct.dictpars()
            out[f"hist {c}"] = [tuple(r) for r in ct.history_records()]
            for rg in ct.ranges():
                rk = f"{c}/{rg.range()}"
                out[f"range {rk}"] = (rg.tsbegin(), rg.tsend(), rg.versdef())
                out[f"pars {rk}"] = rg.dictpars()
                out[f"hist {rk}"] = [tuple(r) for r in rg.history_records()]
                for v in rg.versions():
                    vk = f"{rk}/{v.version()}"
                    i = v.info()
                    out[f"info {vk}"] = (i.version, i.tsprod, i.kind, i.sha256, i.nbytes)
                    out[f"state {vk}"] = v.state()
                    data = v.calib()
                    out[f"data {vk}"] = data if isinstance(data, str) else \
                        (data.dtype.str, data.shape, data.tobytes())
                    out[f"pars {vk}"] = v.dictpars()
                    out[f"hist {vk}"] = [tuple(r) for r in v.history_records()]
        out["tags"] = [tuple(r) for r in cs.backend.tag_rows()]
        out["changelog"] = cs.backend.changelog()
        out["tombstones"] = [tuple(t) for t in cs.tombstones()]
        first = np.datetime64(out["changelog"][1][0].tsns, "ns")
        out["asof"] = cs.get("pedestals", 5, asof=first).tobytes()
    return out


def old_store(path, monkeypatch, fmt2: bool):
    monkeypatch.setenv("PSCALIB_CREATE_FORMAT", "1")
    with DCStore(path, mode="a") as cs:
        cs.set_par("site", "LCLS")
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3), 0, 10,
                         dictpars={"run": 1}, comment="dark 1", tsprod=1)
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3) + 1, 0, 10,
                         comment="dark 2", tsprod=2)
        cs.add_constants("pedestals", np.full(4, 7, np.int16), 20, tsprod=3)
        cs.add_constants("geometry", "x 1\ny 2\n", 0, tsprod=4)
        r = cs["pedestals"].rangeobj(0)
        r.set_par("units", "ADU")
        r.add_history("checked by eye")
        r.versobj(1).set_par("gain", 1.5)
        cs["pedestals"].set_pars({"det": "cspad", "n": 2})
        create_tag(cs, "run5")
        publish_tag(cs, "run5")
        if fmt2:  # states and deletions: the file becomes format 2
            cs.add_constants("pedestals", np.full(4, 8, np.int16), 20, state="candidate")
            cs["pedestals"].rangeobj(20).versobj(2).validate("looks right")
            cs["pedestals"].add_range(30, 40)
            cs["pedestals"].del_range((30, 40))
            cs.add_constants("pedestals", np.full(4, 9, np.int16), 20)
            cs["pedestals"].rangeobj(20).versobj(3).deprecate("bad")
    monkeypatch.delenv("PSCALIB_CREATE_FORMAT")


def _per_object_histories(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visit(lambda n: names.append(n) if n.endswith("_history") else None)
        fields = f["_history"].dtype.names
        ver = int(f.attrs["format_version"])
    return names, fields, ver


def _check_upgrade(path, monkeypatch, fmt2):
    old_store(path, monkeypatch, fmt2)
    names, fields, ver = _per_object_histories(path)
    assert ver == (2 if fmt2 else 1) and len(names) > 5 and "path" not in fields
    before = snapshot(path)
    hist_before = dcs("history", path, "-r", "--json")
    assert hist_before.returncode == 0, hist_before.stderr

    r = dcs("upgrade", path)
    assert r.returncode == 0, r.stderr
    assert f"format {ver} -> 3" in r.stdout

    names, fields, ver = _per_object_histories(path)
    assert (names, ver) == (["_history"], 3) and fields[-1] == "path"
    after = snapshot(path)
    up = after["hist /"].pop()
    assert up[3] == "format_upgrade" and "-> 3" in up[4]
    assert after.keys() == before.keys()
    for k in before:
        assert after[k] == before[k], k
    # dcs history shows the same records (plus the upgrade's)
    recs_a = json.loads(dcs("history", path, "-r", "--json").stdout)["records"]
    recs_b = json.loads(hist_before.stdout)["records"]
    new = [x for x in recs_a if x["action"] == "format_upgrade" and "-> 3" in x["record"]]
    assert len(new) == 1 and [x for x in recs_a if x not in new] == recs_b
    assert verify(path, aliases=False).ok
    # the upgraded store keeps working, and a second upgrade has nothing to do
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(4, np.int16), 50, comment="after")
        assert cs["pedestals"].rangeobj(50).history_records()[-1].record.endswith(
            "- after")
    r = dcs("upgrade", path, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["upgraded"] is False


def test_upgrade_format1(store_path, monkeypatch):
    _check_upgrade(store_path, monkeypatch, fmt2=False)


def test_upgrade_format2_with_states_tags_tombstones(store_path, monkeypatch):
    _check_upgrade(store_path, monkeypatch, fmt2=True)


def test_upgrade_refuses_legacy_store(tmp_path):
    src = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "legacy-dcs"
    files = sorted(src.glob("**/*.h5"))
    assert files, f"no legacy DCS files under {src}"
    legacy = tmp_path / files[0].name
    shutil.copyfile(files[0], legacy)
    before = legacy.read_bytes()
    r = dcs("upgrade", legacy)
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "import-legacy" in r.stderr
    assert legacy.read_bytes() == before
