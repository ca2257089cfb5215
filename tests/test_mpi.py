"""pscalib.mpi under a real ``mpirun -n 4`` (OpenMPI): shared windows, views, errors.

Each test starts tests/mpi_worker.py with mpirun (bounded by a timeout), reads one JSON
report per rank and compares the ranks with each other and with the file's own ``get``.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore
from pscalib import errors as E

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("mpi_worker.py")
T = "2024-06-01T00:00:00Z"
TIMEOUT = 120
NRANKS = 4
GEOMETRY = (ROOT / "pscalib" / "data" / "geometry-def-epix10kaquad.data").read_text()


def mpi_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               # one machine, no network interfaces needed: shared memory + loopback only
               OMPI_MCA_btl="self,vader,tcp", OMPI_MCA_btl_tcp_if_include="lo",
               OMPI_MCA_oob_tcp_if_include="lo")
    return env


def mpirun(scenario: str, calib: Path, outdir: Path, n: int = NRANKS):
    """Run one worker scenario; returns (completed process, seconds, reports by rank)."""
    outdir.mkdir(exist_ok=True)
    cmd = ["mpirun", "--oversubscribe", "-n", str(n), sys.executable, str(WORKER), scenario,
           str(calib), str(outdir)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env=mpi_env(), stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    reports = {int(p.stem[4:]): json.loads(p.read_text()) for p in outdir.glob("rank*.json")}
    return proc, took, reports


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpi") / "calib"
    rng = np.random.default_rng(19)
    with DCStore(d, "epix10ka-0001", mode="a") as cs:
        cs.add_constants("pedestals", rng.normal(size=(4, 35, 38)).astype(np.float32),
                         "2024-05-01")
        cs.add_constants("pedestals", rng.normal(size=(4, 35, 38)).astype(np.float32),
                         "2024-05-01")  # v0002, the default; v0001 stays readable
        cs.add_constants("pixel_status", rng.integers(0, 9, (4, 35, 38)).astype(">u2"),
                         "2024-05-01")  # big-endian dtype survives the trip
        cs.add_constants("pixel_mask", rng.random((4, 35, 38)) > 0.5, "2024-05-01")
        cs.add_constants("geometry", GEOMETRY, "2024-05-01")
    damaged = d / "damaged" / "epix10ka-0002.h5"
    damaged.parent.mkdir()
    src = (d / "epix10ka" / "epix10ka-0001.h5").read_bytes()
    damaged.write_bytes(src[:len(src) // 2])  # a copy cut short, as by a failed transfer
    return d


def same_on_all_ranks(reports, key):
    values = [reports[r][key] for r in range(NRANKS)]
    assert all(v == values[0] for v in values), values
    return values[0]


def test_import_without_mpi4py_keeps_core_working():
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # makes 'import mpi4py' fail
            "import pscalib; pscalib.DCStore; assert 'mpi4py' not in [m for m in sys.modules "
            "if sys.modules[m] is not None]\n"
            "try:\n    import pscalib.mpi\nexcept pscalib.errors.MissingDependencyError as e:"
            "\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'pscalib[mpi]'" in proc.stdout


def test_mpi4py_without_an_mpi_library_says_what_to_install():
    code = ("import pscalib\ntry:\n    import pscalib.mpi\n"
            "except pscalib.errors.MissingDependencyError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT),
                                   MPI4PY_LIBMPI="/nonexistent/libmpi.so"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "cannot load MPI library" in proc.stdout and "openmpi-bin" in proc.stdout


def test_every_rank_gets_the_files_constants_as_shared_readonly_views(calib, tmp_path):
    proc, _, reports = mpirun("basic", calib, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert sorted(reports) == list(range(NRANKS))
    for c in ("pedestals", "pixel_status", "pixel_mask", "geometry"):
        got = [reports[r]["many"][c] for r in range(NRANKS)]
        for g in got:
            assert g["equal"], (c, g)  # equals DCStore.get on the file, dtype included
            assert g["sha"] == got[0]["sha"]
        if c == "geometry":
            assert all(g["kind"] == "text" and g["type"] == "str" for g in got)
            continue
        maps = [g["map"] for g in got]
        for g in got:
            assert g["writeable"] is False
            assert g["set_writeable"].startswith("ValueError"), g
            assert g["assign"].startswith("ValueError"), g
        # one shared file mapping (MAP_SHARED, 's') on the node: same inode on every rank
        assert all(m["perms"][3] == "s" for m in maps), maps
        assert len({m["inode"] for m in maps}) == 1, maps
    assert reports[0]["many"]["pixel_status"]["dtype"] == ">u2"
    assert reports[0]["many"]["pixel_mask"]["dtype"] == "|b1"
    assert all(reports[r]["vers1"]["equal"] for r in range(NRANKS))
    assert reports[0]["vers1"]["sha"] != reports[0]["many"]["pedestals"]["sha"]
    stats = {r: reports[r]["stats"] for r in range(NRANKS)}
    # only the leader (the reading rank 0) allocated window memory; nobody received bytes
    # over MPI: the other ranks read what the leader wrote into the shared window
    assert stats[0]["leader"] and stats[0]["window_bytes"] > 0
    for r in range(1, NRANKS):
        assert not stats[r]["leader"] and stats[r]["window_bytes"] == 0
    assert all(s["bytes_received"] == 0 for s in stats.values())
    # close(): the unreferenced window (vers=1) freed, the referenced one kept and valid
    assert same_on_all_ranks(reports, "freed") == 1
    assert same_on_all_ranks(reports, "after_close_equal") is True
    assert same_on_all_ranks(reports, "freed_unreferenced") == 1


def test_two_node_groups_one_window_each_and_leaders_broadcast(calib, tmp_path):
    proc, _, reports = mpirun("nodes2", calib, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    stats = {r: reports[r]["stats"] for r in range(NRANKS)}
    # groups {0,1} and {2,3}; rank 3 reads, so it leads its group; rank 0 leads the other
    assert [stats[r]["leader"] for r in range(NRANKS)] == [True, False, False, True]
    assert stats[3]["bytes_received"] == 0 and stats[0]["bytes_received"] > 0
    assert stats[1]["bytes_received"] == stats[2]["bytes_received"] == 0
    assert stats[0]["window_bytes"] == stats[3]["window_bytes"] > 0
    assert stats[1]["window_bytes"] == stats[2]["window_bytes"] == 0
    inode = {r: reports[r]["many"]["pedestals"]["map"]["inode"] for r in range(NRANKS)}
    assert inode[0] == inode[1] and inode[2] == inode[3] and inode[0] != inode[2]
    for c in ("pedestals", "pixel_status", "pixel_mask", "geometry"):
        assert all(reports[r]["many"][c]["equal"] for r in range(NRANKS)), c


def expected_error(fn):
    try:
        fn()
    except E.PscalibError as exc:
        return [type(exc).__name__, str(exc)]
    raise AssertionError("no error")


def test_errors_reach_every_rank_as_the_same_exception(calib, tmp_path):
    proc, took, reports = mpirun("errors", calib, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert sorted(reports) == list(range(NRANKS))
    cs = DCStore(calib, "epix10ka-0001")
    expect = {
        "missing_ctype": expected_error(lambda: cs.get("pixel_rms", T)),
        "bad_time": expected_error(lambda: cs.get("pedestals", "not-a-time")),
        "no_range": expected_error(lambda: cs.get("pedestals", "2020-01-01")),
        "one_of_many_missing": expected_error(lambda: cs.get("nope", T)),
        "bad_version": expected_error(lambda: cs.get("pedestals", T, vers=9)),
        "missing_file": expected_error(lambda: DCStore(calib, "epix10ka-0099")),
        "damaged_file": expected_error(
            lambda: DCStore(calib / "damaged" / "epix10ka-0002.h5").get("pedestals", T)),
    }
    assert expect["missing_ctype"][0] == "CtypeNotFoundError"
    assert expect["bad_time"][0] == "InvalidTimeError"
    assert expect["no_range"][0] == "NoValidConstantsError"
    assert expect["missing_file"][0] == "StoreNotFoundError"
    assert expect["damaged_file"][0] in ("StoreFormatError", "CorruptStoreError")
    for name, (cls, msg) in expect.items():
        assert same_on_all_ranks(reports, name) == [cls, msg], name
    down = same_on_all_ranks(reports, "server_down")
    assert down[0] == "CollectiveError"
    assert "rank 0" in down[1] and "ConnectionRefusedError" in down[1]
    bad = same_on_all_ranks(reports, "bad_source")
    assert bad[0] == "InvalidInputError" and "int" in bad[1]
    odd = same_on_all_ranks(reports, "ranks_disagree")
    assert odd[0] == "InvalidInputError"
    assert "rank 2 asked for ['pixel_status']" in odd[1] and "['pedestals']" in odd[1]
    obj = same_on_all_ranks(reports, "object_payload")
    assert obj[0] == "InvalidPayloadError" and "dtype object" in obj[1]
    gone = same_on_all_ranks(reports, "client_exits")  # a client calling sys.exit(1)
    assert gone == ["CollectiveError", "rank 0 failed while reading calibration constants: "
                                       "SystemExit: 1"]
    ok = same_on_all_ranks(reports, "then_ok")
    assert ok == pytest.approx(float(cs.get("pedestals", T).sum()), rel=1e-6)
    assert took < TIMEOUT


def test_reading_rank_killed_midway_ends_the_job_instead_of_hanging(calib, tmp_path):
    proc, took, reports = mpirun("crash", calib, tmp_path / "out")
    # OpenMPI's mpirun notices the killed rank and terminates the others: no hang
    assert proc.returncode != 0
    assert reports == {}
    assert took < TIMEOUT
    assert "signal 9" in proc.stderr or "Killed" in proc.stderr, proc.stderr[-2000:]


def test_timeout_frees_the_waiting_ranks_of_a_hanging_reader(calib, tmp_path):
    proc, took, reports = mpirun("slow", calib, tmp_path / "out")
    assert sorted(reports) == [1, 2, 3], proc.stderr[-2000:]  # rank 0 still hangs in get
    for r in (1, 2, 3):
        cls, msg = reports[r]["error"]
        assert cls == "CollectiveError"
        assert msg.startswith(f"rank {r} waited 2 s for the reading rank's answer")
    assert proc.returncode != 0  # MPI_Abort(3) from rank 1 ended the job, rank 0 included
    assert took < 45  # well before rank 0's 60 s sleep


def test_docs_mpi_is_valid_restructuredtext():
    import io

    import docutils.core
    warnings = io.StringIO()
    docutils.core.publish_doctree((ROOT / "docs" / "mpi.rst").read_text(), settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": warnings})
    assert warnings.getvalue() == ""
