"""The real `dcs` executable: demo, add, print, get round trips, delete, pars, history, errors.

Main flows run the installed console script in a subprocess (as users do); a few fast
extra cases call helpers directly.
"""
import json
import os
import pty
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, file_digest
from pscalib import DCStore
from pscalib.cli.storecommon import parse_par
from pscalib.errors import InvalidParameterError
from pscalib.ndarrio import load_ndarrio, save_ndarrio

PACKAGED = ROOT / "pscalib" / "data"
DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
R1 = "20240110T000000Z_20240301T000000Z"  # demo epix10ka pedestals range with v1 (default), v2


def dcs(*args, input=None, env=None, cwd=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    full_env.update(env or {})
    return subprocess.run([DCS, *map(str, args)], capture_output=True, text=True,
                          input=input, env=full_env, cwd=cwd, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def ok(res):
    assert res.returncode == 0, (res.stdout, res.stderr)
    return res


def assert_one_line_error(res, code, *words):
    assert res.returncode == code, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("dcs: error: ") and "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "calib"
    res = ok(dcs("demo", root))
    assert "Try:" in res.stdout and "dcs print" in res.stdout
    return root


@pytest.fixture
def epix(demo_dir, tmp_path):
    """A private copy of the demo's epix10ka store (tests may change it)."""
    dst = tmp_path / "epix10ka" / "epix10ka-0001.h5"
    dst.parent.mkdir()
    shutil.copy2(demo_dir / "epix10ka" / "epix10ka-0001.h5", dst)
    return dst


def test_demo_builds_a_queryable_calib_dir(demo_dir):
    stores = sorted(p.relative_to(demo_dir).as_posix() for p in demo_dir.glob("*/*.h5"))
    assert stores == ["epix10ka/epix10ka-0001.h5", "jungfrau/jungfrau-0001.h5"]
    total = sum(p.stat().st_size for p in demo_dir.glob("*/*.h5"))
    assert total < 20e6
    tree = json.loads(ok(dcs("print", demo_dir / "epix10ka" / "epix10ka-0001.h5",
                             "--json")).stdout)
    assert [c["ctype"] for c in tree["ctypes"]] == ["common_mode", "geometry", "pedestals",
                                                   "pixel_status"]
    peds = tree["ctypes"][2]
    assert [r["range"] for r in peds["ranges"]] == [R1, "20240215T000000Z_end"]
    first = peds["ranges"][0]
    assert first["default"] == 1 and [v["version"] for v in first["versions"]] == [1, 2]
    assert first["versions"][1]["dictpars"]["reviewed"] is False
    assert peds["ranges"][1]["end"] is None and peds["ranges"][1]["tsend"] is None
    # the demo stores the packaged geometry byte for byte
    out = demo_dir.parent / "geo.data"
    ok(dcs("get", demo_dir / "epix10ka" / "epix10ka-0001.h5", "geometry", "-t", "2024-05-01",
           "-o", out))
    assert out.read_bytes() == (PACKAGED / "geometry-def-epix10kaquad.data").read_bytes()
    # detnames resolve through the repository
    res = ok(dcs("print", "jungfrau-0001", env={"PSCALIB_REPOSITORY": str(demo_dir)}))
    assert res.stdout.startswith("jungfrau-0001 ")


def test_demo_default_dir_json_and_refuses_existing(demo_dir):
    info = json.loads(ok(dcs("demo", "--json")).stdout)
    try:
        assert Path(info["root"]).is_dir() and len(info["stores"]) == 2
        assert any("dcs get" in e["command"] for e in info["examples"])
        assert len(info["read_back"]) >= 4
    finally:
        shutil.rmtree(info["root"])
    digest = file_digest(demo_dir / "epix10ka" / "epix10ka-0001.h5")
    assert_one_line_error(dcs("demo", demo_dir), 1, "already exists")
    assert file_digest(demo_dir / "epix10ka" / "epix10ka-0001.h5") == digest


def test_add_print_get_round_trips(tmp_path):
    store = tmp_path / "calib" / "cspad" / "cspad-0001.h5"
    rng = np.random.default_rng(3)
    peds = rng.normal(1000, 20, (2, 185, 388))
    peds.flat[:3] = [-0.0, np.inf, 1e-300]
    np.save(tmp_path / "peds.npy", peds)
    status = rng.integers(0, 7, (2, 185, 388), dtype=np.uint16)
    save_ndarrio(tmp_path / "status.data", status, {"TITLE": "pixel status"})
    gain = rng.random((4, 8)).astype(np.float32)
    (tmp_path / "gain.txt").write_text("\n".join(" ".join("%.9g" % x for x in row)
                                                  for row in gain) + "\n")
    geo_text = "# geometry\n\tCAMERA 0 SENS2X1:V1 0  1 2 3 \n\nIP 0 CAMERA 0 0 0 1e5\n"
    (tmp_path / "geo.data").write_text(geo_text)

    # no store yet: refused without --create, nothing created
    assert_one_line_error(dcs("add", store, "pedestals", tmp_path / "peds.npy",
                              "--begin", "2024-05-01"), 1, "--create")
    assert not store.exists()
    res = ok(dcs("add", store, "pedestals", tmp_path / "peds.npy", "--begin",
                 "2024-05-01T00:00:00", "--par", "run=17", "-p", "exp=cxic0415",
                 "-p", "ok=true", "-p", "gain=1.5", "-p", "tag='42'", "-m", "dark 17",
                 "--create"))
    assert "pedestals/20240501T000000Z_end/v0001 (npy, default)" in res.stdout
    ok(dcs("add", store, "pedestals", tmp_path / "peds.npy", "--begin", "1714521600",
           "--no-default"))
    ok(dcs("add", store, "pixel_status", tmp_path / "status.data", "-b", "2024-05-01",
           "-e", "2024-06-01T00:00:00+02:00"))
    # headerless 4 x 8 numbers are not psana1's cspad shape: --shape/--dtype say what they are
    assert_one_line_error(dcs("add", store, "pixel_gain", tmp_path / "gain.txt", "-b",
                              "2024-05-01"), 1, "(32, 185, 388)")
    ok(dcs("add", store, "pixel_gain", tmp_path / "gain.txt", "-b", "2024-05-01",
           "--shape", "4,8", "--dtype", "float64"))
    ok(dcs("add", store, "geometry", tmp_path / "geo.data", "-b", "2024-05-01"))

    tree = json.loads(ok(dcs("print", store, "--json")).stdout)
    by = {c["ctype"]: c for c in tree["ctypes"]}
    assert set(by) == {"geometry", "pedestals", "pixel_gain", "pixel_status"}
    pr = by["pedestals"]["ranges"][0]
    assert pr["default"] == 1 and [v["default"] for v in pr["versions"]] == [True, False]
    assert pr["versions"][0]["dictpars"] == {"exp": "cxic0415", "gain": 1.5, "ok": True,
                                             "run": 17, "tag": "42"}
    assert by["pixel_status"]["ranges"][0]["end"] == "2024-05-31T22:00:00+00:00"
    assert by["pixel_gain"]["ranges"][0]["versions"][0]["dtype"] == "float64"
    assert by["geometry"]["ranges"][0]["versions"][0]["kind"] == "text"
    text = ok(dcs("print", store, "--ctype", "pedestals")).stdout
    assert "* v0001  float64 (2, 185, 388)" in text and "  v0002" in text

    t = "2024-05-20T12:00:00"
    ok(dcs("get", store, "pedestals", "--time", t, "-o", tmp_path / "out.npy"))
    back = np.load(tmp_path / "out.npy")
    assert back.dtype == peds.dtype and back.tobytes() == peds.tobytes()
    ok(dcs("get", store, "pedestals", "--time", t, "-o", tmp_path / "out.data"))
    arr, hdr = load_ndarrio(tmp_path / "out.data")
    assert arr.tobytes() == peds.tobytes() and hdr["VERSION"] == "v0001"
    ok(dcs("get", store, "pixel_status", "-t", t, "-o", tmp_path / "st.txt"))
    arr, _ = load_ndarrio(tmp_path / "st.txt")
    assert arr.dtype == np.uint16 and np.array_equal(arr, status)
    ok(dcs("get", store, "pixel_gain", "-t", t, "-o", tmp_path / "g.npy"))
    headerless = np.array([[float("%.9g" % x) for x in row] for row in gain])  # float64
    assert np.load(tmp_path / "g.npy").tobytes() == headerless.tobytes()
    ok(dcs("get", store, "geometry", "-t", t, "-o", tmp_path / "geo_out.data"))
    assert (tmp_path / "geo_out.data").read_text() == geo_text
    res = ok(dcs("get", store, "geometry", "-t", t, "-o", "-"))
    assert res.stdout == geo_text

    summary = json.loads(ok(dcs("get", store, "pedestals", "-t", t, "--version", "2",
                                "--json")).stdout)
    assert (summary["version"], summary["default"], summary["shape"]) == (2, False,
                                                                          [2, 185, 388])
    assert summary["stats"]["max"] == float("inf")
    res = ok(dcs("get", store, "pedestals", "-t", t))
    assert "v0001 (default)" in res.stdout and "float64 (2, 185, 388)" in res.stdout


def test_get_errors_exit_codes_and_nothing_written(epix, tmp_path):
    digest = file_digest(epix)
    assert_one_line_error(dcs("get", epix, "pedestals", "-t", "2023-01-01"), 1,
                          "no 'pedestals' constants valid at 2023-01-01")
    assert_one_line_error(dcs("get", epix, "nosuch", "-t", "2024-02-01"), 1,
                          "no calibration type 'nosuch'")
    assert_one_line_error(dcs("get", epix, "pedestals", "-t", "2024-02-01", "-V", "9"), 1,
                          "no version")
    assert_one_line_error(dcs("get", epix, "pedestals"), 2, "--time")
    assert_one_line_error(dcs("get", epix, "pedestals", "-t", "yesterday"), 2,
                          "cannot read time 'yesterday'")
    assert_one_line_error(dcs("get", epix, "geometry", "-t", "2024-02-01", "-o",
                              tmp_path / "g.npy"), 1, "text, not an array")
    assert_one_line_error(dcs("frobnicate"), 2, "No such command")
    assert_one_line_error(dcs("get", tmp_path / "missing.h5", "pedestals", "-t", "0"), 1,
                          "does not exist")
    assert not list(tmp_path.glob("*.npy")) and not (tmp_path / "missing.h5").exists()
    assert file_digest(epix) == digest
    res = dcs("--debug", "get", epix, "nosuch", "-t", "2024-02-01")
    assert res.returncode != 0 and "Traceback" in res.stderr
    assert "CtypeNotFoundError" in res.stderr


def test_bad_input_leaves_store_unchanged(epix, tmp_path):
    digest = file_digest(epix)
    bad = tmp_path / "bad.data"
    bad.write_text("# DTYPE float\n# NDIM 1\n# DIM:1 3\n1 2 x\n")
    assert_one_line_error(dcs("add", epix, "pedestals", bad, "-b", "2024-05-01"), 1,
                          f"{bad}, line 4", "'x'")
    assert_one_line_error(dcs("add", epix, "pedestals", tmp_path / "none.npy", "-b", "0"),
                          1, "does not exist")
    (tmp_path / "fake.npy").write_text("not numpy")
    assert_one_line_error(dcs("add", epix, "pedestals", tmp_path / "fake.npy", "-b", "0"),
                          1, "not a NumPy")
    assert_one_line_error(dcs("add", epix, "pedestals", bad, "-b", "2024-05-01", "--text",
                              "-e", "2024-04-01"), 1, "not after its begin")
    assert_one_line_error(dcs("add", epix, "Bad-Name", bad, "-b", "0", "--text"), 1,
                          "calibration type")
    assert_one_line_error(dcs("add", epix, "pedestals", bad, "-b", "0", "--text", "-p",
                              "novalue"), 1, "key=value")
    assert file_digest(epix) == digest
    # --text stores even number-looking content as text
    ok(dcs("add", epix, "notes", bad, "-b", "0", "--text"))
    assert json.loads(ok(dcs("get", epix, "notes", "-t", "1", "--json")).stdout)["kind"] \
        == "text"


def _run_on_terminal(args, answer: bytes):
    """Run dcs with a pseudo-terminal as stdin and type `answer`."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([DCS, *map(str, args)], stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.close(slave)
        os.write(master, answer)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    return proc.returncode, out, err


def test_delete_asks_on_a_terminal(epix):
    digest = file_digest(epix)
    rc, out, err = _run_on_terminal(["delete", epix, "pedestals", "--range", R1,
                                     "--version", "2"], b"n\n")
    assert rc == 1 and "Delete version pedestals/" + R1 + "/v0002" in err
    assert "aborted, nothing was changed" in err
    assert file_digest(epix) == digest
    rc, out, err = _run_on_terminal(["delete", epix, "pedestals", "--range", R1,
                                     "--version", "2"], b"y\n")
    assert rc == 0, err
    assert "deleted version" in out
    tree = json.loads(ok(dcs("print", epix, "-c", "pedestals", "--json")).stdout)
    assert [v["version"] for v in tree["ctypes"][0]["ranges"][0]["versions"]] == [1]


def test_delete_without_terminal_needs_yes(epix):
    digest = file_digest(epix)
    for stdin in (None, "y\n"):  # /dev/null or a pipe: never prompts, never hangs
        res = dcs("delete", epix, "pedestals", input=stdin)
        assert_one_line_error(res, 1, "stdin is not a terminal", "--yes")
    assert file_digest(epix) == digest
    assert_one_line_error(dcs("delete", epix, "pedestals", "--version", "1"), 2,
                          "--version needs --range")
    ok(dcs("delete", epix, "pedestals", "--range", "2024-02-15", "--yes"))
    ok(dcs("delete", epix, "pixel_status", "-y"))
    tree = json.loads(ok(dcs("print", epix, "--json")).stdout)
    assert [c["ctype"] for c in tree["ctypes"]] == ["common_mode", "geometry", "pedestals"]
    assert [r["range"] for r in tree["ctypes"][2]["ranges"]] == [R1]
    hist = json.loads(ok(dcs("history", epix, "--json")).stdout)
    assert any(r["action"] == "del_ctype" and "pixel_status" in r["record"]
               for r in hist["records"])


def test_set_default_par_and_history(epix):
    t = "2024-01-20T12:00:00"
    ok(dcs("set-default", epix, "pedestals", "--range", R1, "v0002"))
    assert json.loads(ok(dcs("get", epix, "pedestals", "-t", t, "--json")).stdout)[
        "version"] == 2
    assert_one_line_error(dcs("set-default", epix, "pedestals", "-r", R1, "7"), 1, "7")
    path = f"pedestals/{R1}/v0002"
    ok(dcs("par", epix, path, "set", "reviewed=true", "by=anna"))
    pars = json.loads(ok(dcs("par", epix, path, "--json")).stdout)
    assert pars["path"] == path and pars["dictpars"]["reviewed"] is True
    ok(dcs("par", epix, path, "del", "by", "nevents"))
    pars = json.loads(ok(dcs("par", epix, path, "--json")).stdout)["dictpars"]
    assert "by" not in pars and "nevents" not in pars
    digest = file_digest(epix)
    assert_one_line_error(dcs("par", epix, path, "del", "nosuch"), 1, "nosuch")
    assert_one_line_error(dcs("par", epix, "a", "b", "set", "x=1"), 2, "one PATH")
    assert file_digest(epix) == digest
    res = ok(dcs("par", epix, "set", "location=MFX2"))
    assert res.stdout.startswith("(store): ") and "location=MFX2" in res.stdout

    hist = json.loads(ok(dcs("history", epix, f"pedestals/{R1}", "--json")).stdout)
    actions = [r["action"] for r in hist["records"]]
    assert actions[:3] == ["add_version", "add_version", "set_default"]
    rec = hist["records"][2]
    assert set(rec) == {"path", "time", "tsns", "user", "host", "action", "record"}
    allh = json.loads(ok(dcs("history", epix, "-r", "--json")).stdout)["records"]
    assert {r["path"] for r in allh} >= {"", "pedestals", f"pedestals/{R1}", path}
    assert [r["tsns"] for r in allh] == sorted(r["tsns"] for r in allh)
    assert "set_par" in ok(dcs("history", epix, path)).stdout


def test_shell_completion_of_ctypes_and_detnames(demo_dir):
    store = demo_dir / "epix10ka" / "epix10ka-0001.h5"
    env = {"_DCS_COMPLETE": "bash_complete", "COMP_WORDS": f"dcs get {store} pe",
           "COMP_CWORD": "3"}
    res = ok(dcs(env=env))
    assert res.stdout.split() == ["plain,pedestals"]
    env = {"_DCS_COMPLETE": "bash_complete", "COMP_WORDS": "dcs print jun", "COMP_CWORD": "2",
           "PSCALIB_REPOSITORY": str(demo_dir)}
    assert ok(dcs(env=env)).stdout.split() == ["plain,jungfrau-0001"]


def test_help_of_every_command_has_an_example():
    from click.testing import CliRunner
    from pscalib.cli.main import cli
    for cmd in ("demo", "print", "get", "add", "delete", "set-default", "par", "history"):
        res = CliRunner().invoke(cli, [cmd, "--help"], prog_name="dcs")
        assert res.exit_code == 0 and "Example:" in res.output
        assert "dcs " + cmd in res.output


@pytest.mark.parametrize("text, expected", [
    ("run=17", ("run", 17)), ("g=-1.5e3", ("g", -1500.0)), ("ok=TRUE", ("ok", True)),
    ("ok=false", ("ok", False)), ("s=cxic0415", ("s", "cxic0415")), ("q='17'", ("q", "17")),
    ("e=", ("e", "")), ("u=a=b", ("u", "a=b")),
])
def test_parse_par_typing(text, expected):
    assert parse_par(text) == expected


def test_parse_par_needs_equals():
    with pytest.raises(InvalidParameterError):
        parse_par("novalue")


def test_add_identical_is_unchanged_unless_forced(tmp_path):
    arr = tmp_path / "a.npy"
    np.save(arr, np.arange(6.0).reshape(2, 3))
    store = tmp_path / "cspad-0001.h5"
    ok(dcs("add", str(store), "pedestals", str(arr), "--begin", "2024-01-01", "--create"))
    before = file_digest(store)
    res = ok(dcs("add", str(store), "pedestals", str(arr), "--begin", "2024-01-01"))
    assert res.stdout.startswith("unchanged: pedestals/20240101T000000Z_end/v0001")
    assert file_digest(store) == before  # nothing written, not even history
    res = ok(dcs("add", str(store), "pixel_rms", str(arr), "--begin", "2024-01-01"))
    assert "payload shared with pedestals/20240101T000000Z_end/v0001" in res.stdout
    res = ok(dcs("add", str(store), "pedestals", str(arr), "--begin", "2024-01-01", "--force"))
    assert res.stdout.startswith("added pedestals/20240101T000000Z_end/v0002")


def test_packaged_geometry_is_the_real_shared_file(geometry_files):
    for shared in geometry_files:
        assert (PACKAGED / shared.name).read_bytes() == shared.read_bytes()


def test_get_output_files_get_the_umask_mode(tmp_path):
    """dcs get -o writes through the one atomic writer: a new file gets 0666 minus the
    umask (not 0600), a replaced file keeps its mode, no temporary file is left."""
    store = tmp_path / "cspad-0001.h5"
    with DCStore(store, mode="a") as cs:
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3), "2024-01-01")
        cs.add_constants("geometry", "# geometry\nIP 0 0 0\n", "2024-01-01")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}

    def get(ctype, out):
        res = subprocess.run([DCS, "get", str(store), ctype, "-t", "2024-06-01", "-o", str(out)],
                             capture_output=True, text=True, env=env, timeout=60,
                             stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0o027))
        ok(res)
        return stat.S_IMODE(out.stat().st_mode)

    out = tmp_path / "out"
    out.mkdir()
    assert get("pedestals", out / "p.npy") == 0o640
    assert get("pedestals", out / "p.data") == 0o640
    assert get("geometry", out / "geo.txt") == 0o640
    os.chmod(out / "p.npy", 0o604)
    assert get("pedestals", out / "p.npy") == 0o604
    assert np.load(out / "p.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert sorted(p.name for p in out.iterdir()) == ["geo.txt", "p.data", "p.npy"]
