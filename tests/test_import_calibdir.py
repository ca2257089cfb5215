"""Import of synthetic psana1 calib directories (dcs import-calibdir)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import GEOMETRY_DIR
from pscalib import DCStore, to_ns
from pscalib.aliases import list_aliases, resolve_alias
from pscalib.errors import (InvalidInputError, InvalidPayloadError, NoValidConstantsError,
                            StoreExistsError)
from pscalib.importers.calibdir import import_calibdir, read_run_table
from pscalib.paths import store_file_in

CSPAD_SRC, EPIX_SRC = "CxiDs2.0:Cspad.0", "XppGon.0:Epix100a.1"
DETNAMES = {CSPAD_SRC: "cspad-0001", EPIX_SRC: "epix100a-0007"}
# Run begin times: run r begins one hour after run r-1 (plus a fraction for exactness).
T0 = to_ns("2015-03-01T00:00:00")
RUN_BEGIN = {r: T0 + r * 3_600_000_000_000 + 250_000_000 for r in range(0, 21)}


def T(ns: int):
    """An int-ns time as the (sec, nsec) pair the API accepts."""
    return (ns // 10**9, ns % 10**9)


def write_ndarrio(path: Path, arr: np.ndarray, dtype_name: str, extra=()):
    """psana1-style text file, written here independently of pscalib.ndarrio."""
    lines = [f"# {k} {v}" for k, v in extra]
    lines += [f"# DTYPE {dtype_name}", f"# NDIM {arr.ndim}"]
    lines += [f"# DIM:{i + 1} {n}" for i, n in enumerate(arr.shape)]
    flat = arr.reshape(-1, arr.shape[-1])
    for row in flat:
        lines.append(" ".join(repr(float(x)) if arr.dtype.kind == "f" else str(int(x))
                              for x in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def build_calibdir(root: Path):
    """A psana1 calib directory: two sources, several ctypes, overlapping run ranges.

    Returns {(source, ctype): [(run_begin, run_end_or_None, expected payload, header)]}.
    """
    rng = np.random.default_rng(42)
    files = {}

    def add(group, src, ctype, rb, re_, arr=None, dtype_name=None, text=None, extra=()):
        name = f"{rb}-{'end' if re_ is None else re_}.data"
        p = root / f"{group}::CalibV1" / src / ctype / name
        if text is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(text.encode())
            payload = text
        else:
            write_ndarrio(p, arr, dtype_name, extra)
            payload = arr
        files.setdefault((src, ctype), []).append((rb, re_, payload, dict(extra)))

    for rb, re_ in [(1, None), (5, 10), (8, None), (12, 15), (12, 13)]:
        add("CsPad", CSPAD_SRC, "pedestals", rb, re_,
            rng.normal(1000, 10, (2, 3, 4)).astype(np.float32), "float",
            extra=[("TITLE", f"pedestals runs {rb}"), ("EXPERIMENT", "cxi12345")])
    add("CsPad", CSPAD_SRC, "pixel_status", 2, None,
        rng.integers(0, 3, (2, 3, 4)).astype(np.uint16), "uint16")
    geom = (GEOMETRY_DIR / "geometry-def-jungfrau4M.data").read_text() \
        if (GEOMETRY_DIR / "geometry-def-jungfrau4M.data").is_file() else \
        "# geometry\n\tQUAD:V1 0 CSPAD:V1 0 0 0 0 0 0 0 0 0\n"
    add("CsPad", CSPAD_SRC, "geometry", 0, None, text=geom)
    add("CsPad", CSPAD_SRC, "geometry", 9, None, text=geom.replace("CSPAD", "CSPAD") + "\n# v2\n")
    for rb, re_ in [(3, 7), (4, None)]:
        add("Epix100a", EPIX_SRC, "pedestals", rb, re_, rng.normal(0, 1, (3, 5)), "double")
    (root / "CsPad::CalibV1" / CSPAD_SRC / "pedestals" / "HISTORY").write_text("notes\n")
    return files


def write_runs(path: Path, runs=RUN_BEGIN, skip=()):
    lines = ["run,begin,comment"]
    for r, t in sorted(runs.items()):
        if r in skip:
            continue
        # alternate ISO text and Unix seconds: both forms are accepted
        when = (f"{t // 10**9}.{t % 10**9:09d}" if r % 2 else
                f"{np.datetime_as_string(np.datetime64(t, 'ns'))}Z")
        lines.append(f"{r},{when},run {r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def psana1_pick(entries, run):
    """Reference psana1 rule: latest begin run wins (ties: smaller end run)."""
    cands = [e for e in entries if e[0] <= run and (e[1] is None or run <= e[1])]
    if not cands:
        return None
    return max(cands, key=lambda e: (e[0], -(e[1] if e[1] is not None else 10**9)))


@pytest.fixture
def setup(tmp_path):
    calib = tmp_path / "psana1calib"
    files = build_calibdir(calib)
    runs = write_runs(tmp_path / "runs.csv")
    return calib, runs, files, tmp_path / "calib"


def test_import_matches_psana1_rule_at_every_run(setup):
    calib, runs, files, to = setup
    summary = import_calibdir(calib, runs, DETNAMES, to)
    assert set(summary.stores) == {"cspad-0001", "epix100a-0007"}
    assert summary.files == {"cspad-0001": 8, "epix100a-0007": 2}
    assert not any(k.path.name == "HISTORY" for k in summary.skipped)  # read, not skipped
    for (src, ctype), entries in files.items():
        with DCStore(to, DETNAMES[src]) as cs:
            assert len(cs[ctype]) == len(entries)
            for run in range(0, 20):
                want = psana1_pick(entries, run)
                for t in (RUN_BEGIN[run], RUN_BEGIN[run + 1] - 1):  # first and last ns
                    if want is None:
                        with pytest.raises(NoValidConstantsError):
                            cs.get(ctype, T(t))
                        continue
                    got = cs.get(ctype, T(t))
                    if isinstance(want[2], str):
                        assert got == want[2]
                    else:
                        assert got.dtype == want[2].dtype and got.shape == want[2].shape
                        assert got.tobytes() == want[2].tobytes()


def test_ranges_pars_history_and_aliases(setup):
    calib, runs, files, to = setup
    import_calibdir(calib, runs, DETNAMES, to)
    with DCStore(to, "cspad-0001") as cs:
        rng = cs["pedestals"].rangeobj(T(RUN_BEGIN[5]), T(RUN_BEGIN[11]))
        ver = rng.versobj()
        pars = ver.dictpars()
        assert pars["TITLE"] == "pedestals runs 5" and pars["EXPERIMENT"] == "cxi12345"
        assert pars["run_begin"] == 5 and pars["run_end"] == 10
        assert pars["psana1_file"] == f"CsPad::CalibV1/{CSPAD_SRC}/pedestals/5-10.data"
        assert "DTYPE" not in pars and "NDIM" not in pars
        src_file = calib / pars["psana1_file"]
        assert ver.tsprod() == src_file.stat().st_mtime_ns
        assert cs["pedestals"].rangeobj(T(RUN_BEGIN[8]), None).is_open()
        assert cs["pedestals"].rangeobj(T(RUN_BEGIN[8]), None).versobj().par("run_end") == "end"
        assert any(r.action == "import_calibdir" for r in cs.history_records())
        assert "5-10.data" in rng.history()
    with DCStore(to, "cspad-0001") as cs:
        geo = cs.get("geometry", T(RUN_BEGIN[3]))
        want = files[(CSPAD_SRC, "geometry")][0][2]
        assert geo.encode() == want.encode()  # byte-exact text
    aliases = {(r.alias, r.detname, r.begin, r.end) for r in list_aliases(to)}
    assert aliases == {(CSPAD_SRC, "cspad-0001", None, None),
                       (EPIX_SRC, "epix100a-0007", None, None)}
    assert resolve_alias(EPIX_SRC, to).detname == "epix100a-0007"


def test_runs_missing_from_table_map_to_the_next_listed_run(tmp_path, setup):
    calib, _, files, to = setup
    runs = write_runs(tmp_path / "short.csv", skip={4, 11})
    summary = import_calibdir(calib, runs, DETNAMES, to)
    assert summary.files == {"cspad-0001": 8, "epix100a-0007": 2}
    with DCStore(to, "cspad-0001") as cs:
        # 5-10.data: until run 11 begins; run 11 is not listed -> until run 12 begins
        rng = cs["pedestals"].rangeobj(T(RUN_BEGIN[5]), T(RUN_BEGIN[12]))
        assert rng.versobj().par("psana1_file").endswith("5-10.data")
    with DCStore(to, "epix100a-0007") as cs:
        # 4-end.data: run 4 is not listed -> from run 5 on
        assert cs["pedestals"].rangeobj(T(RUN_BEGIN[5]), None).versobj().par("run_begin") == 4
        got = cs.get("pedestals", T(RUN_BEGIN[3]))  # run 3: 3-7.data
        assert got.tobytes() == files[(EPIX_SRC, "pedestals")][0][2].tobytes()


@pytest.mark.parametrize("header,words", [
    ("# DTYPE float\n# NDIM two\n", ["NDIM", "line 2", "two"]),
    ("# DTYPE quaternion\n# NDIM 2\n# DIM:1 1\n# DIM:2 2\n", ["quaternion"]),
    ("# DTYPE float\n# NDIM 2\n# DIM:1 3\n# DIM:2 2\n", ["shape (3, 2)"]),
])
def test_malformed_header_stops_import_and_writes_nothing(setup, header, words):
    calib, runs, _, to = setup
    bad = calib / "CsPad::CalibV1" / CSPAD_SRC / "pixel_rms" / "3-end.data"
    bad.parent.mkdir(parents=True)
    bad.write_text(header + "1.0 2.0\n")
    with pytest.raises(InvalidPayloadError) as ei:
        import_calibdir(calib, runs, DETNAMES, to)
    msg = str(ei.value)
    assert str(bad) in msg
    for w in words:
        assert w in msg, msg
    assert not any(to.rglob("*.h5")) and not list_aliases(to)


def test_sources_must_be_mapped_and_stores_not_overwritten(setup):
    calib, runs, _, to = setup
    with pytest.raises(InvalidInputError, match="XppGon.0:Epix100a.1"):
        import_calibdir(calib, runs, {CSPAD_SRC: "cspad-0001"}, to)
    with pytest.raises(InvalidInputError, match="no files"):
        import_calibdir(calib, runs, {**DETNAMES, "Other.0:X.0": "cspad-0009"}, to)
    import_calibdir(calib, runs, DETNAMES, to)
    with pytest.raises(StoreExistsError):
        import_calibdir(calib, runs, DETNAMES, to)


def test_run_table_errors(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("run,start\n1,2015-01-01\n")
    with pytest.raises(InvalidInputError, match="'run' and 'begin'"):
        read_run_table(p)
    p.write_text("# runs of cxi12345\nrun,begin\n1,2015-01-01\n2,yesterday\n")
    with pytest.raises(InvalidInputError, match=r"r\.csv:4: begin time of run 2"):
        read_run_table(p)
    p.write_text("run,begin\n1,2015-01-02\n2,2015-01-01\n")
    with pytest.raises(InvalidInputError, match="must increase"):
        read_run_table(p)
    p.write_text("run,begin\n1,1420070400.5\n2,2015-01-02T00:00:00Z\n")
    assert read_run_table(p) == {1: 1420070400_500_000_000, 2: to_ns("2015-01-02")}


def test_dcs_import_calibdir_executable(setup):
    calib, runs, _, to = setup
    dcs = Path(sys.executable).with_name("dcs")
    exe = str(dcs) if dcs.exists() else "dcs"
    cmd = [exe, "import-calibdir", str(calib), "--runs", str(runs), "--to", str(to)]
    for src, det in DETNAMES.items():
        cmd += ["--detname", f"{src}={det}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cspad-0001: 8 files" in out.stdout
    assert f"alias {EPIX_SRC} -> epix100a-0007" in out.stdout
    assert store_file_in(to, "epix100a-0007").is_file()
    bad = subprocess.run(cmd[:-2] + ["--detname", "nonsense"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "SRC=DETNAME" in bad.stderr


def test_alias_conflict_stops_before_writing_and_identical_alias_is_reused(setup):
    from pscalib.aliases import add_alias
    from pscalib.errors import AliasFileError
    calib, runs, _, to = setup
    add_alias(to, CSPAD_SRC, "cspad-0099")
    with pytest.raises(AliasFileError, match="cspad-0099"):
        import_calibdir(calib, runs, DETNAMES, to)
    assert not any(to.rglob("*.h5"))
    other = to.parent / "other"
    add_alias(other, EPIX_SRC, "epix100a-0007")  # the same mapping: kept, not duplicated
    import_calibdir(calib, runs, DETNAMES, other)
    recs = [r for r in list_aliases(other) if r.alias == EPIX_SRC]
    assert [(r.detname, r.begin, r.end) for r in recs] == [("epix100a-0007", None, None)]
