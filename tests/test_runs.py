"""Run tables, validity by runs, lookups by run and by event, every bad input (issue 15).

Real files throughout: run tables in a real experiment workspace, real stores, the real
`dcs` executable for the command-line flows.
"""
import json

import numpy as np
import pytest

from conftest import file_digest
from test_cli import assert_one_line_error, dcs, ok
from pscalib import DCStore
from pscalib.errors import (InvalidInputError, InvalidTimeError, RunNotFoundError,
                            RunTableError)
from pscalib.exchange.verify import verify
from pscalib.runs import (RunTable, add_runs, import_runs, parse_runs, read_runs_csv,
                          run_table_path)
from pscalib.timestamps import to_ns

B17, E17 = "2024-05-01T00:00:00", "2024-05-01T01:00:00"
B18, E18 = "2024-05-01T01:10:00", "2024-05-01T02:00:00"
B25 = "2024-05-02T00:00:00"   # run 25 (gap: runs 19..24 are not in the table)
B26 = "2024-05-03T00:00:00"
RUNS = [(17, B17, E17), (18, B18, E18), (25, B25, None), (26, B26, None)]
PEDS = np.arange(12, dtype=np.float32).reshape(3, 4)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """An experiment workspace CXI/cxic0415 with a run table, configured via the env."""
    root = tmp_path / "exp"
    calib = root / "CXI" / "cxic0415" / "calib"
    calib.mkdir(parents=True)
    env = {"PSCALIB_EXPERIMENT_ROOT": str(root), "PSCALIB_EXPERIMENT": "cxic0415"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    add_runs(run_table_path(calib), RUNS)
    return calib, env


class EventId:
    """Shaped like psana1's EventId: .time() -> (sec, nsec)."""

    def __init__(self, t):
        self._t = divmod(to_ns(t), 10**9)

    def time(self):
        return self._t


class EventTime:
    """Shaped like event-time objects with .seconds() / .nanoseconds()."""

    def __init__(self, t):
        self.s, self.ns = divmod(to_ns(t), 10**9)

    def seconds(self):
        return self.s

    def nanoseconds(self):
        return self.ns


# ---------------------------------------------------------------- the run table file
def test_run_table_file_round_trip_history_and_comments(ws):
    calib, _ = ws
    path = run_table_path(calib)
    text = path.read_text()
    assert "17       2024-05-01T00:00:00+00:00 2024-05-01T01:00:00+00:00" in text
    assert "25       2024-05-02T00:00:00+00:00 -" in text
    path.write_text(text.replace("\n17 ", "\n# dark runs below\n17 "))
    rt = add_runs(path, [(30, "2024-05-04", None)])
    assert sorted(rt.records) == [17, 18, 25, 26, 30]
    again = RunTable.load(path)
    assert [h.action for h in again.history] == ["add", "add"]
    assert "added run 30" in again.history[-1].record
    assert "# dark runs below" in path.read_text()
    # the same times again change nothing (not even the history)
    before = file_digest(path)
    add_runs(path, [(30, "2024-05-04", None)])
    assert file_digest(path) == before


def test_import_csv_header_optional_and_atomic(ws, tmp_path):
    calib, _ = ws
    path = run_table_path(calib)
    csv = tmp_path / "runs.csv"
    csv.write_text("run,begin,end\n40,2024-06-01T00:00:00,2024-06-01T01:00:00\n41,1717203600\n")
    assert read_runs_csv(csv)[1] == (41, 1717203600 * 10**9, None)
    rt = import_runs(csv, path)
    assert rt.records[40].end == to_ns("2024-06-01T01:00:00") and rt.records[41].end is None
    assert "import" == RunTable.load(path).history[-1].action
    # a bad row anywhere: nothing of the file is imported
    before = file_digest(path)
    csv.write_text("50,2024-07-01\n51,not-a-time\n")
    with pytest.raises(InvalidInputError, match=r"runs.csv:2: .*not-a-time"):
        import_runs(csv, path)
    assert file_digest(path) == before


def test_run_table_consistency_is_enforced_and_nothing_changes(ws):
    calib, _ = ws
    path = run_table_path(calib)
    before = file_digest(path)
    with pytest.raises(RunTableError, match="not after run 18"):
        add_runs(path, [(19, "2024-05-01T00:30:00", None)])        # begins before run 18
    with pytest.raises(RunTableError, match="ends at .* after run 18 begins"):
        add_runs(path, [(17, B17, "2024-05-01T01:30:00")], replace=True)
    with pytest.raises(RunTableError, match="already in .*--replace"):
        add_runs(path, [(17, "2024-04-30", None)])
    with pytest.raises(InvalidInputError, match="ends .* before it begins"):
        add_runs(path, [(60, "2024-08-02", "2024-08-01")])
    for bad in (0, -3, "abc", 1.5, True):
        with pytest.raises(InvalidInputError, match="not a run number|boolean"):
            add_runs(path, [(bad, "2024-08-01", None)])
    assert file_digest(path) == before


@pytest.mark.parametrize("line, words", [
    ("17 2024-05-01 x", "end of run 17 'x'"),
    ("0 2024-05-01", "run 0 is not a run number"),
    ("-4 2024-05-01", "run -4 is not a run number"),
    ("abc 2024-05-01", "run 'abc' is not a run number"),
    ("17", "1 field(s)"),
    ("17 2024-05-01 2024-05-02 extra", "4 field(s)"),
    ("17 2024-05-02 2024-05-01", "ends (2024-05-01T00:00:00+00:00) before it begins"),
])
def test_malformed_run_table_line_is_named_with_its_line_number(ws, line, words):
    calib, env = ws
    path = run_table_path(calib)
    path.write_text("# hand-edited\n\n" + line + "\n")
    with pytest.raises(RunTableError) as exc:
        RunTable.load(path)
    assert f"{path}:3: " in str(exc.value) and words in str(exc.value)
    before = file_digest(path)
    res = dcs("runs", "list", env=env)
    assert_one_line_error(res, 1, f"{path}:3:", words)
    assert_one_line_error(dcs("runs", "add", "90", "2024-09-01", env=env), 1, f"{path}:3:")
    assert file_digest(path) == before


def test_duplicate_and_out_of_order_lines_in_the_file(ws):
    calib, _ = ws
    path = run_table_path(calib)
    path.write_text("17 2024-05-01\n17 2024-05-02\n")
    with pytest.raises(RunTableError, match=r":2: run 17 is listed twice \(first on line 1\)"):
        RunTable.load(path)
    path.write_text("17 2024-05-02\n18 2024-05-01\n")
    with pytest.raises(RunTableError, match=r":2: run 18 begins .* not after run 17"):
        RunTable.load(path)


def test_parse_runs_forms_and_errors():
    assert parse_runs("17-25") == (17, 25)
    assert parse_runs("17-end") == (17, None) == parse_runs("17-END") == parse_runs((17, None))
    assert parse_runs("17") == (17, 17) == parse_runs((17, 17))
    for bad in ("25-17", "0-3", "-3", "x-5", "17-", "17..25", (17,), None, 17, (0, 5),
                (5, -1), ("a", 3)):
        with pytest.raises(InvalidInputError):
            parse_runs(bad)


# ---------------------------------------------------------------- validity by runs
def test_add_by_runs_keeps_runs_and_times_and_get_by_run_event_time_agree(ws):
    calib, _ = ws
    with DCStore(calib, "epix10ka-0001", mode="a") as cs:
        v1 = cs.add_constants("pedestals", PEDS, runs=(17, 18))
        v2 = cs.add_constants("pedestals", PEDS + 100, runs="25-end", comment="after gap")
        r1, r2 = v1.rangeobj(), v2.rangeobj()
        assert (r1.tsbegin(), r1.tsend()) == (to_ns(B17), to_ns(E18))   # end of run 18
        assert (r2.tsbegin(), r2.is_open()) == (to_ns(B25), True)
        assert r1.dictpars() == {"runbegin": 17, "runend": 18, "experiment": "cxic0415"}
        assert r2.dictpars() == {"runbegin": 25, "runend": "end", "experiment": "cxic0415"}
        # adding the same constants again by runs changes nothing
        assert cs.add_constants("pedestals", PEDS, runs=(17, 18)).unchanged
    with DCStore(calib, "epix10ka-0001") as cs:
        for run, t, want in ((17, B17, PEDS), (18, B18, PEDS), (26, B26, PEDS + 100)):
            by_run = cs.get("pedestals", run=run)
            np.testing.assert_array_equal(by_run, want)
            np.testing.assert_array_equal(cs.get("pedestals", t), by_run)
            np.testing.assert_array_equal(cs.get("pedestals", EventId(t)), by_run)
            np.testing.assert_array_equal(cs.get("pedestals", EventTime(t)), by_run)
            np.testing.assert_array_equal(cs.get("pedestals", run=run,
                                                 experiment="CXI/cxic0415"), by_run)
        # a psana event during run 18, a little after its begin
        np.testing.assert_array_equal(cs.get("pedestals", EventId("2024-05-01T01:30:00.5")),
                                      PEDS)
        assert cs.version_at("pedestals", run=26).version() == v2.version() == 1
        assert cs.version_at("pedestals", run=26).rangeobj().range() == r2.range()
        assert cs.ctypeobj("pedestals").get(EventId(B26)).tolist() == (PEDS + 100).tolist()


def test_runs_whose_end_is_unknown_need_a_later_run(ws):
    calib, _ = ws
    with DCStore(calib, "epix10ka-0001", mode="a") as cs:
        v = cs.add_constants("pixel_gain", PEDS, runs=(25, 25))  # no end: until run 26
        assert (v.rangeobj().tsbegin(), v.rangeobj().tsend()) == (to_ns(B25), to_ns(B26))
        with pytest.raises(RunNotFoundError, match="end of runs 26-26 is not known"):
            cs.add_constants("pixel_gain", PEDS, runs=(26, 26))
        assert len(cs.ctypeobj("pixel_gain").ranges()) == 1


def test_bad_runs_give_clear_errors_and_change_nothing(ws, tmp_path):
    calib, _ = ws
    with DCStore(calib, "epix10ka-0001", mode="a") as cs:
        cs.add_constants("pedestals", PEDS, runs="17-18")
    store = calib / "epix10ka" / "epix10ka-0001.h5"
    before = file_digest(store)
    table = run_table_path(calib)
    with DCStore(store, mode="a") as cs:
        with pytest.raises(RunNotFoundError) as exc:
            cs.get("pedestals", run=20)                     # in the gap
        msg = str(exc.value)
        assert "run 20" in msg and "cxic0415" in msg and str(table) in msg
        with pytest.raises(RunNotFoundError, match="run 19 is not in the run table"):
            cs.add_constants("pedestals", PEDS, runs=(19, 25))
        for bad in (0, -1, "abc", 2.5, True):
            with pytest.raises(InvalidInputError, match="not a run number|boolean"):
                cs.get("pedestals", run=bad)
            with pytest.raises(InvalidInputError):
                cs.add_constants("pedestals", PEDS, runs=(bad, 25))
        with pytest.raises(InvalidInputError, match="either a time .* or run="):
            cs.get("pedestals", B17, run=17)
        with pytest.raises(InvalidInputError, match="either tsbegin/tsend or runs="):
            cs.add_constants("pedestals", PEDS, B17, runs=(17, 18))
        with pytest.raises(InvalidInputError, match="experiment= is used only with run"):
            cs.get("pedestals", B17, experiment="cxic0415")
        with pytest.raises(InvalidInputError, match="needs a time .* or run=N"):
            cs.get("pedestals")
        with pytest.raises(InvalidTimeError, match="needs the begin"):
            cs.add_constants("pedestals", PEDS)
        with pytest.raises(RunNotFoundError, match="there is no run table"):
            cs.get("pedestals", run=17, experiment="CXI/other01")
        with pytest.raises(InvalidInputError, match="must be letters and digits"):
            cs.get("pedestals", run=17, experiment="../x")
    assert file_digest(store) == before


def test_experiment_missing_is_a_clear_error(tmp_path):
    calib = tmp_path / "calib"
    with DCStore(calib, "epix10ka-0001", mode="a") as cs:
        cs.add_constants("pedestals", PEDS, B17)
        with pytest.raises(InvalidInputError, match="needs an experiment.*PSCALIB_EXPERIMENT"):
            cs.get("pedestals", run=17)
        with pytest.raises(InvalidInputError, match="PSCALIB_EXPERIMENT_ROOT is not set"):
            cs.get("pedestals", run=17, experiment="cxic0415")
        with pytest.raises(InvalidInputError, match="needs an experiment"):
            cs.add_constants("pedestals", PEDS, runs=(17, 18))


def test_store_workspace_run_table_wins_without_environment(tmp_path):
    """A local copy of a workspace (calib dir holding runs.txt) answers runs by itself."""
    calib = tmp_path / "MFX" / "mfxp1001" / "calib"
    add_runs(run_table_path(calib), [(3, "2024-02-01", "2024-02-02")])
    with DCStore(calib, "jungfrau-0001", mode="a") as cs:
        v = cs.add_constants("pedestals", PEDS, runs=(3, 3))
        assert v.rangeobj().dictpars()["experiment"] == "mfxp1001"
        np.testing.assert_array_equal(cs.get("pedestals", run=3), PEDS)


def test_verify_reports_runs_that_no_longer_agree(ws):
    calib, _ = ws
    with DCStore(calib, "epix10ka-0001", mode="a") as cs:
        cs.add_constants("pedestals", PEDS, runs=(17, 18))
    store = calib / "epix10ka" / "epix10ka-0001.h5"
    assert verify(store).ok
    add_runs(run_table_path(calib), [(18, B18, "2024-05-01T02:30:00")], replace=True)
    rep = verify(store)
    assert not rep.ok
    assert any("runs 17-18" in p.message and "now mean" in p.message for p in rep.errors)
    res = dcs("verify", store, env={})   # no experiment root: the store's workspace table
    assert res.returncode == 1 and "runs 17-18 of experiment cxic0415 now mean" in res.stdout


# ---------------------------------------------------------------- the command line
def test_cli_runs_add_by_runs_get_by_run_print_and_json(ws, tmp_path):
    calib, env = ws
    csv = tmp_path / "more.csv"
    csv.write_text("run,begin\n27,2024-05-04T00:00:00\n")
    assert "1 run(s) added" in ok(dcs("runs", "import", csv, env=env)).stdout
    ok(dcs("runs", "add", "28", "2024-05-05", "2024-05-05T01", "--experiment",
           "CXI/cxic0415", env=env))
    listed = json.loads(ok(dcs("runs", "list", "--json", env=env)).stdout)
    assert [r["run"] for r in listed["runs"]] == [17, 18, 25, 26, 27, 28]
    assert listed["runs"][-1]["end"] == "2024-05-05T01:00:00+00:00"
    hist = ok(dcs("runs", "list", "--history", env=env)).stdout
    assert "import" in hist and "added run 28" in hist
    np.save(tmp_path / "p.npy", PEDS)
    out = ok(dcs("add", "epix10ka-0001", "pedestals", tmp_path / "p.npy", "--runs", "17-25",
                 "--create", env=env)).stdout
    assert "added pedestals/20240501T000000Z_20240503T000000Z/v0001" in out
    ok(dcs("add", "epix10ka-0001", "pedestals", tmp_path / "p.npy", "--runs", "26-end",
           "--force", env=env))
    txt = ok(dcs("print", "epix10ka-0001", env=env)).stdout
    assert "runs 17-25 of cxic0415" in txt and "runs 26-end of cxic0415" in txt
    tree = json.loads(ok(dcs("print", "epix10ka-0001", "--json", env=env)).stdout)
    rngs = tree["ctypes"][0]["ranges"]
    assert rngs[0]["runs"] == {"runbegin": 17, "runend": 25, "experiment": "cxic0415"}
    assert rngs[0]["begin"] == "2024-05-01T00:00:00+00:00"   # trimmed, no .000000000
    got = json.loads(ok(dcs("get", "epix10ka-0001", "pedestals", "--run", "18", "--json",
                            env=env)).stdout)
    assert got["run"] == 18 and got["time"] == "2024-05-01T01:10:00+00:00"
    assert got["runs"]["runbegin"] == 17
    ok(dcs("get", "epix10ka-0001", "pedestals", "-r", "26", "-E", "cxic0415", "-o",
           tmp_path / "o.npy", env=env))
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), PEDS)
    # compact and short time forms as printed in range names
    for t in ("20240501T011000Z", "2024-05-01T01", "2024-05-02"):
        ok(dcs("get", "epix10ka-0001", "pedestals", "-t", t, env=env))


def test_cli_bad_runs_one_line_errors_nothing_changed(ws, tmp_path):
    calib, env = ws
    np.save(tmp_path / "p.npy", PEDS)
    ok(dcs("add", "epix10ka-0001", "pedestals", tmp_path / "p.npy", "--runs", "17-18",
           "--create", env=env))
    store = calib / "epix10ka" / "epix10ka-0001.h5"
    table = run_table_path(calib)
    before = (file_digest(store), file_digest(table))
    g = ("get", "epix10ka-0001", "pedestals")
    assert_one_line_error(dcs(*g, "--run", "20", env=env), 1, "run 20", "cxic0415", str(table))
    assert_one_line_error(dcs(*g, "--run", "0", env=env), 1, "run 0 is not a run number")
    assert_one_line_error(dcs(*g, "--run", "-2", env=env), 1, "run -2 is not a run number")
    assert_one_line_error(dcs(*g, "--run", "abc", env=env), 1, "'abc' is not a run number")
    assert_one_line_error(dcs(*g, "--run", "17", "-t", B17, env=env), 2, "--time T or --run N")
    assert_one_line_error(dcs(*g, env=env), 2, "--time T or --run N")
    assert_one_line_error(dcs(*g, "-t", B17, "-E", "x", env=env), 2, "only with --run")
    # the store's own workspace table answers without any configuration ...
    ok(dcs("get", store, "pedestals", "--run", "17", env={}))
    # ... a copy elsewhere, without configuration, has no experiment
    other = tmp_path / "elsewhere" / "epix10ka" / "epix10ka-0001.h5"
    other.parent.mkdir(parents=True)
    other.write_bytes(store.read_bytes())
    assert_one_line_error(dcs("get", other, "pedestals", "--run", "17", env={}), 1,
                          "needs an experiment")
    a = ("add", "epix10ka-0001", "pedestals", tmp_path / "p.npy")
    assert_one_line_error(dcs(*a, "--runs", "19-25", env=env), 1, "run 19 is not in")
    assert_one_line_error(dcs(*a, "--runs", "25-17", env=env), 1, "before the first")
    assert_one_line_error(dcs(*a, "--runs", "x", env=env), 1, "use FIRST-LAST")
    assert_one_line_error(dcs(*a, "--runs", "0-3", env=env), 1, "run 0 is not a run number")
    assert_one_line_error(dcs(*a, env=env), 2, "--begin T [--end T] or --runs")
    assert_one_line_error(dcs(*a, "--runs", "17-18", "-b", B17, env=env), 2, "not both")
    r = ("runs", "add")
    assert_one_line_error(dcs(*r, "0", "2024-09-01", env=env), 1, "run 0 is not a run number")
    assert_one_line_error(dcs(*r, "x", "2024-09-01", env=env), 1, "'x' is not a run number")
    assert_one_line_error(dcs(*r, "90", "yesterday", env=env), 1, "cannot read time")
    assert_one_line_error(dcs(*r, "17", "2024-09-01", env=env), 1, "already in", "--replace")
    assert_one_line_error(dcs("runs", "list", env={}), 1, "needs an experiment")
    assert (file_digest(store), file_digest(table)) == before


def test_cli_display_time_zone(ws, tmp_path):
    calib, env = ws
    np.save(tmp_path / "p.npy", PEDS)
    ok(dcs("add", "epix10ka-0001", "pedestals", tmp_path / "p.npy", "--runs", "17-18",
           "--create", env=env))
    txt = ok(dcs("--tz", "Europe/Berlin", "print", "epix10ka-0001", env=env)).stdout
    assert "2024-05-01T02:00:00+02:00 .. 2024-05-01T04:00:00+02:00" in txt
    got = json.loads(ok(dcs("get", "epix10ka-0001", "pedestals", "--run", "17", "--json",
                            env=dict(env, PSCALIB_TZ="-07:00"))).stdout)
    assert got["time"] == "2024-04-30T17:00:00-07:00"
    listed = ok(dcs("--tz", "UTC", "runs", "list", env=env)).stdout
    assert "2024-05-01T00:00:00+00:00" in listed
    # the file still holds UTC, whatever the display zone
    assert "2024-05-01T00:00:00+00:00" in run_table_path(calib).read_text()
    assert_one_line_error(dcs("--tz", "Mars/Olympus", "print", "epix10ka-0001", env=env), 2,
                          "not a known time zone")
    assert_one_line_error(dcs("print", "epix10ka-0001", env=dict(env, PSCALIB_TZ="../etc")),
                          1, "PSCALIB_TZ", "not a known time zone")
