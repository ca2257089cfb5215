"""import-calibdir with psana1's semantics (issue 14).

The reference below re-implements psana1's rule from its source (PSCalib CalibFileFinder:
only ``dic_det_type_to_calib_group[det_type_from_source(src)]`` is searched; names
``<begin>-<end>.data``; sorted by begin, then end descending; the last file in that order
with ``begin <= run <= end`` wins; ``end`` = 9999) independently of pscalib's importer.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from psana_writers import cxx_writer_text, headerless_text, py_writer_text
from pscalib import DCStore
from pscalib.errors import CtypeNotFoundError, InvalidPayloadError, NoValidConstantsError
from pscalib.importers.calibdir import import_calibdir
from pscalib.paths import store_file_in

SAMPLES = Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "ndarrio-psana"
CALIB = SAMPLES / "psana1-calib"
T0 = 1_488_330_000 * 10**9
# the groups psana1 searches for the devices used here (GlobalUtils.py)
REF_GROUPS = {"Cspad": "CsPad::CalibV1", "Cspad2x2": "CsPad2x2::CalibV1",
              "Epix100a": "Epix100a::CalibV1"}


def dcs_exe():
    dcs = Path(sys.executable).with_name("dcs")
    return str(dcs) if dcs.exists() else "dcs"


def ref_pick(names, run):
    """psana1's CalibFileFinder.selectCalibFile over file names of one ctype directory."""
    rnum = min(run, 9999)
    cands = []
    for n in names:
        base, ext = os.path.splitext(n)
        if ext != ".data" or "-" not in base or len(base.split("-")) != 2:
            continue
        b, e = base.split("-")
        if not b.isdigit() or int(b) > 9999:
            continue
        if e.isdigit():
            if int(e) > 9999:
                continue
            end = int(e)
        elif e == "end":
            end = 9999
        else:
            continue
        cands.append((int(b), end, n))
    for b, e, n in reversed(sorted(cands, key=lambda c: (c[0], -c[1]))):
        if b <= rnum <= e:
            return n
    return None


def ref_selectable(names):
    """Names psana1 could ever select (a valid name with begin <= end)."""
    return [n for n in names if ref_pick([n], int(n.split("-")[0]) if n[:1].isdigit()
                                         else 0)]


def ref_group(source):
    device = source.split(":")[1].split(".")[0]
    return REF_GROUPS.get(device)


def write_runs(path, runs):
    path.write_text("run,begin\n" + "".join(f"{r},{t // 10**9}.{t % 10**9:09d}\n"
                                            for r, t in sorted(runs.items())))
    return path


def random_calibdir(root, rnd, ident):
    """A random psana1 calib directory; returns {(group, src, ctype): {file name: id}}."""
    content = {}
    sources = [("CsPad::CalibV1", "CxiDs2.0:Cspad.0"),
               ("CsPad2x2::CalibV1", "CxiDs2.0:Cspad.0"),  # a group psana1 never searches
               ("CsPad2x2::CalibV1", "CxiDg2.0:Cspad2x2.0")]
    for group, src in rnd.sample(sources, rnd.randint(1, 3)):
        for ctype in rnd.sample(["pedestals", "pixel_status"], rnd.randint(1, 2)):
            d = root / group / src / ctype
            d.mkdir(parents=True)
            names, taken = {}, set()
            for _ in range(rnd.randint(1, 7)):
                b = rnd.randint(0, 45)
                e = None if rnd.random() < 0.35 else b + rnd.randint(-3, 12)  # <b: stray
                key = (b, 9999 if e is None else e)
                if key in taken:
                    continue  # psana1's choice among equal names depends on listdir order
                taken.add(key)
                name = f"{b}-{'end' if e is None else e}.data"
                ident[0] += 1
                arr = np.full((2, 3), ident[0], np.float32 if ctype == "pedestals" else
                              np.uint16)
                writer = rnd.choice(["py", "cxx"])
                (d / name).write_text(py_writer_text(arr, fmt="%d") if writer == "py"
                                      else cxx_writer_text(arr))
                names[name] = ident[0]
            for stray in rnd.sample(["x-end.data", "3-end.txt", "5-end.data-2017-03-02",
                                     "1-2-3.data", "notes"], rnd.randint(0, 2)):
                (d / stray).write_text("1 2 3\n")
            if rnd.random() < 0.5:
                (d / "HISTORY").write_text("".join(f"file:{n}  copy_of:None  exp:cxi12345\n"
                                                   for n in names))
            content[(group, src, ctype)] = names
    return content


@pytest.fixture
def ram_dir(tmp_path):
    """A directory on the tmpfs /dev/shm when there is one (a real file system where the
    stores' fsync calls cost little), else tmp_path."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="pscalib-calibdir-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_random_directories_agree_with_psana1_rule(ram_dir):
    tmp_path = ram_dir
    rnd = random.Random(14)
    ident = [0]
    checked = disagreements = 0
    for case in range(120):  # 200 took 25 s of the suite's 5 minutes
        root = tmp_path / f"c{case}" / "calib"
        content = random_calibdir(root, rnd, ident)
        listed = sorted(rnd.sample(range(0, 50), rnd.randint(5, 30)))  # gaps in the table
        runs = {r: T0 + r * 3600 * 10**9 + rnd.randint(0, 10**9) for r in listed}
        csv = write_runs(tmp_path / f"c{case}" / "runs.csv", runs)
        sources = {src for (_, src, _) in content}
        detnames = {s: f"{'cspad2x2' if 'Cspad2x2' in s else 'cspad'}-{i:04d}"
                    for i, s in enumerate(sorted(sources))}
        # a source only under a group psana1 never searches has no files to import
        readable = {s for (g, s, _), names in content.items()
                    if ref_group(s) == g and ref_selectable(list(names) + [
                        p.name for p in (root / g / s).rglob("*")])}
        to = tmp_path / f"c{case}" / "out"
        try:
            summary = import_calibdir(root, csv, {s: detnames[s] for s in readable}, to)
        except Exception as exc:  # only 'no files at all' is acceptable here
            assert not readable and "holds no psana1 calibration files" in str(exc), exc
            continue
        for src in readable:
            store = store_file_in(to, detnames[src])
            cs = DCStore(store) if store.exists() else None
            for ctype in ("pedestals", "pixel_status"):
                names = content.get((ref_group(src), src, ctype), {})
                for i, r in enumerate(listed):
                    want = ref_pick(names, r)
                    times = [runs[r]] + ([runs[listed[i + 1]] - 1] if i + 1 < len(listed)
                                         else [])
                    for t in times:
                        checked += 1
                        try:
                            got = int(cs.get(ctype, (t // 10**9, t % 10**9)).flat[0])
                        except (NoValidConstantsError, CtypeNotFoundError, AttributeError):
                            got = None
                        if got != (None if want is None else names[want]):
                            disagreements += 1
            if cs is not None:
                # HISTORY lines: one record on the range of every imported file named there
                for ctype in cs.ctypes():
                    for rng in cs[ctype].ranges():
                        f = rng.versobj().par("psana1_file").rsplit("/", 1)[1]
                        hist = [h.record for h in rng.history_records()
                                if h.action == "psana1_history"]
                        d = root / ref_group(src) / src / ctype
                        assert hist == ([f"file:{f}  copy_of:None  exp:cxi12345"]
                                        if (d / "HISTORY").exists() else [])
                cs.close()
        skipped = {str(k.path) for k in summary.skipped}
        for g, s, _ in content:
            if g != ref_group(s):
                assert str(root / g / s) in skipped
    assert checked > 5000 and disagreements == 0, (checked, disagreements)


def test_shared_headerless_directory_with_dcs(tmp_path):
    to = tmp_path / "calib"
    cmd = [dcs_exe(), "import-calibdir", str(CALIB), "--runs", str(CALIB / "runs.csv"),
           "--to", str(to), "--detname", "CxiDs2.0:Cspad.0=cspad-0001",
           "--detname", "CxiDg2.0:Cspad2x2.0=cspad2x2-0001",
           "--detname", "MfxEndstation.0:Epix100a.0=epix100a-0001", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["files"] == {"cspad-0001": 1, "cspad2x2-0001": 4, "epix100a-0001": 1}
    t = "2017-03-02T07:30:00Z"  # during run 31
    got = {}
    for det, ctype in [("cspad-0001", "pedestals"), ("cspad2x2-0001", "pixel_status"),
                       ("cspad2x2-0001", "pedestals"), ("epix100a-0001", "pedestals")]:
        res = subprocess.run([dcs_exe(), "get", str(store_file_in(to, det)), ctype, "-t", t,
                              "--json"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        got[(det, ctype)] = json.loads(res.stdout)
    assert got[("cspad-0001", "pedestals")]["dtype"] == "float32"
    assert got[("cspad-0001", "pedestals")]["shape"] == [32, 185, 388]
    status = got[("cspad2x2-0001", "pixel_status")]
    assert np.dtype(status["dtype"]).kind in "iu" and status["shape"] == [185, 388, 2]
    assert got[("epix100a-0001", "pedestals")]["shape"] == [704, 768]
    peds = got[("cspad2x2-0001", "pedestals")]
    assert peds["dictpars"]["psana1_file"].endswith("pedestals/30-45.data")  # run 31
    with DCStore(store_file_in(to, "cspad2x2-0001")) as cs:
        for run, name in [(1, "1-end"), (16, "1-end"), (17, "17-end"), (29, "17-end"),
                          (30, "30-45"), (45, "30-45"), (46, "17-end"), (60, "17-end")]:
            begin = f"2017-03-0{1 + (run + 0) // 24}T{run % 24:02d}:00:00Z"
            ver = cs.version_at("pedestals", begin)
            assert ver.par("psana1_file").endswith(f"{name}.data"), (run, begin)
            want = np.loadtxt(CALIB / ver.par("psana1_file"), dtype=np.float64)
            assert ver.calib().tobytes() == want.astype(np.float32).reshape(185, 388, 2) \
                .tobytes()
        hist = [r.record for rng in cs["pedestals"].ranges() for r in rng.history_records()
                if r.action == "psana1_history"]
        assert any("dark run 17" in h for h in hist) and any("dark run 1" in h for h in hist)


def test_unknown_combination_asks_for_shape_and_dtype(tmp_path):
    calib = tmp_path / "psana1"
    d = calib / "CsPad::CalibV1" / "CxiDs2.0:Cspad.0" / "my_table"
    d.mkdir(parents=True)
    (d / "1-end.data").write_text(headerless_text(np.arange(6, dtype=np.int32).reshape(2, 3)))
    runs = write_runs(tmp_path / "runs.csv", {1: T0, 2: T0 + 10**9})
    to = tmp_path / "out"
    base = [dcs_exe(), "import-calibdir", str(calib), "--runs", str(runs), "--to", str(to),
            "--detname", "CxiDs2.0:Cspad.0=cspad-0001"]
    res = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "--dtype" in res.stderr and "--shape" in res.stderr and "1-end.data" in res.stderr
    assert not to.exists() or not any(to.rglob("*"))  # nothing left: no store, lock, dir
    res = subprocess.run(base + ["--shape", "my_table=3,2", "--dtype", "my_table=int16"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with DCStore(store_file_in(to, "cspad-0001")) as cs:
        arr = cs.get("my_table", (T0 // 10**9, 0))
        assert arr.dtype == np.int16 and arr.shape == (3, 2)
    res = subprocess.run(base + ["--shape", "my_table=3;2"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "3;2" in res.stderr and "--shape" in res.stderr


def test_failed_import_leaves_nothing_behind(tmp_path):
    calib = tmp_path / "psana1"
    good = calib / "CsPad::CalibV1" / "CxiDs2.0:Cspad.0" / "pedestals"
    good.mkdir(parents=True)
    (good / "1-end.data").write_text(py_writer_text(np.ones((2, 3), np.float32)))
    bad = calib / "Epix100a::CalibV1" / "XppGon.0:Epix100a.1" / "pedestals"
    bad.mkdir(parents=True)
    (bad / "1-end.data").write_text("1 2 3\n")  # not 704 x 768 values
    runs = write_runs(tmp_path / "runs.csv", {1: T0})
    to = tmp_path / "out"
    (to / "cspad").mkdir(parents=True)  # existing directory: stays
    before = sorted(p.relative_to(to) for p in to.rglob("*"))
    with pytest.raises(InvalidPayloadError, match="704, 768"):
        import_calibdir(calib, runs, {"CxiDs2.0:Cspad.0": "cspad-0001",
                                      "XppGon.0:Epix100a.1": "epix100a-0001"}, to)
    assert sorted(p.relative_to(to) for p in to.rglob("*")) == before
    # stray files are reported, with a warning where psana1 would never use them
    (good / "9-3.data").write_text("1\n")
    (bad / "1-end.data").unlink()
    summary = import_calibdir(calib, runs, {"CxiDs2.0:Cspad.0": "cspad-0001"}, to)
    why = {k.path.name: (k.reason, k.warning) for k in summary.skipped}
    assert why["9-3.data"][1] and "ends before it begins" in why["9-3.data"][0]
    assert "1-end.data" not in why and summary.files == {"cspad-0001": 1}
