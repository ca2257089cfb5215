"""Alias files: time-dependent resolution, round trip, errors with line numbers, overlap
rejection, history, concurrent writers (real processes) and the real ``dcs alias`` command."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import file_digest
from pscalib import DCStore
from pscalib.aliases import (HISTORY_MARKER, AliasFile, add_alias, alias_history, find_alias,
                             list_aliases, remove_alias, resolve_alias)
from pscalib.errors import (AliasFileError, AliasNotFoundError, InvalidInputError,
                            InvalidNameError)
from pscalib.timestamps import to_ns
from pscalib.txn import TMP_MARK

SRC = "CxiDs2.0:Cspad.0"
SWITCH = "2024-05-01T00:00:00"


@pytest.fixture
def calib(tmp_path):
    c = tmp_path / "calib"
    add_alias(c, SRC, "cspad-0001", end=SWITCH)
    add_alias(c, SRC, "cspad-0002", begin=SWITCH)
    return c


def afile(calib, dettype="cspad"):
    return calib / dettype / "aliases.txt"


# ------------------------------------------------------------------ resolution
def test_time_dependent_resolution(calib):
    assert resolve_alias(SRC, calib, "2024-04-30T23:59:59.999999999").detname == "cspad-0001"
    assert resolve_alias(SRC, calib, SWITCH).detname == "cspad-0002"  # half-open window
    assert resolve_alias(SRC, calib, 0).detname == "cspad-0001"        # open start
    assert resolve_alias(SRC, calib, "2200-01-01").detname == "cspad-0002"
    assert resolve_alias(SRC, calib).detname == "cspad-0002"           # no time: latest
    rec = resolve_alias(SRC, calib, "2024-01-01")
    assert (rec.path, rec.line) == (afile(calib), 6)


def test_gap_and_unknown_alias(tmp_path):
    c = tmp_path / "calib"
    add_alias(c, "front", "epix10ka-0001", begin="2024-01-01", end="2024-02-01")
    with pytest.raises(AliasNotFoundError) as ei:
        resolve_alias("front", c, "2024-03-01")
    msg = str(ei.value)
    assert "at 2024-03-01T00:00:00+00:00" in msg and "epix10ka-0001" in msg
    assert "aliases.txt:6" in msg
    with pytest.raises(AliasNotFoundError, match="no alias file defines it"):
        resolve_alias("back", c)


def test_first_place_defining_the_alias_at_that_time_wins(tmp_path):
    exp, repo = tmp_path / "exp", tmp_path / "repo"
    add_alias(exp, SRC, "cspad-0009", begin="2025-01-01")
    add_alias(repo, SRC, "cspad-0001")
    places = [("experiment", exp), ("repository", repo)]
    assert find_alias(SRC, places, "2025-06-01").detname == "cspad-0009"
    assert find_alias(SRC, places, "2024-06-01").detname == "cspad-0001"  # exp has no record


# ------------------------------------------------------------------ round trip
def test_round_trip_keeps_records_comments_and_history(calib, monkeypatch):
    path = afile(calib)
    text = path.read_text()
    # a human adds a comment and a blank line; a later write keeps them
    path.write_text(text.replace("CxiDs2.0:Cspad.0         cspad-0002",
                                 "# replaced after the May 2024 repair\n\n"
                                 "CxiDs2.0:Cspad.0         cspad-0002"))
    af = AliasFile.load(path)
    assert [(r.alias, r.detname, r.begin, r.end) for r in af.records] == [
        (SRC, "cspad-0001", None, to_ns(SWITCH)), (SRC, "cspad-0002", to_ns(SWITCH), None)]
    assert AliasFile.load(path).render() == path.read_text()  # parse + render is identity
    monkeypatch.setenv("PSCALIB_USER", "carol")
    add_alias(calib, "DsaCsPad", "cspad-0002")
    new = path.read_text()
    assert "# replaced after the May 2024 repair\n\nCxiDs2.0:Cspad.0" in new
    assert new.index("DsaCsPad") < new.index(HISTORY_MARKER)
    assert len(list_aliases(calib)) == 3


def test_history_records_who_when_what(tmp_path, monkeypatch):
    c = tmp_path / "calib"
    monkeypatch.setenv("PSCALIB_USER", "alice smith")  # blanks are made safe
    add_alias(c, SRC, "cspad-0001")
    monkeypatch.setenv("PSCALIB_USER", "bob")
    remove_alias(c, SRC)
    add_alias(c, SRC, "cspad-0001", end=SWITCH)
    hist = [h for _, h in alias_history(c)]
    assert [(h.user, h.action) for h in hist] == [("alice_smith", "add"), ("bob", "remove"),
                                                   ("bob", "add")]
    assert hist[0].record == f"{SRC} -> cspad-0001 [start, end)"
    assert hist[2].record == f"{SRC} -> cspad-0001 [start, 2024-05-01T00:00:00+00:00)"
    assert hist[0].tsns <= hist[1].tsns <= hist[2].tsns
    assert all(h.host for h in hist)


def test_remove(calib):
    with pytest.raises(InvalidInputError, match="has 2 records"):
        remove_alias(calib, SRC)
    with pytest.raises(AliasNotFoundError, match="no record beginning at 2024-06"):
        remove_alias(calib, SRC, "2024-06-01")
    gone = remove_alias(calib, SRC, "start")
    assert [r.detname for r in gone] == ["cspad-0001"]
    with pytest.raises(AliasNotFoundError):
        resolve_alias(SRC, calib, "2024-01-01")
    assert [r.detname for r in remove_alias(calib, SRC, remove_all=True)] == ["cspad-0002"]
    with pytest.raises(AliasNotFoundError, match="no alias"):
        remove_alias(calib, SRC, remove_all=True)


# ------------------------------------------------------------------ overlaps
@pytest.mark.parametrize("begin, end", [(None, None), ("2024-04-30", "2024-05-02"),
                                        ("2024-01-01", "2024-01-02"), ("2030-01-01", None)])
def test_overlapping_windows_rejected_and_file_unchanged(calib, begin, end):
    before = file_digest(afile(calib))
    with pytest.raises(AliasFileError, match="overlaps"):
        add_alias(calib, SRC, "cspad-0003", begin, end)
    assert file_digest(afile(calib)) == before
    assert not [p for p in afile(calib).parent.iterdir() if TMP_MARK in p.name]


def test_adjacent_windows_and_other_aliases_are_fine(tmp_path):
    c = tmp_path / "calib"
    add_alias(c, "a", "cspad-0001", "2024-01-01", "2024-02-01")
    add_alias(c, "a", "cspad-0002", "2024-02-01", "2024-03-01")
    add_alias(c, "b", "cspad-0001", "2024-01-01", "2024-03-01")
    assert len(list_aliases(c)) == 3


def test_overlap_across_detector_types_rejected(calib):
    with pytest.raises(AliasFileError, match="overlaps"):
        add_alias(calib, SRC, "epix10ka-0001", begin="2030-01-01")
    assert not afile(calib, "epix10ka").exists()


@pytest.mark.parametrize("alias, detname, err", [
    ("cspad-0009", "cspad-0001", "form of a detector name"),
    ("a b", "cspad-0001", "white space"),
    ("x", "cspad/0001", "path separator"),
])
def test_bad_names_rejected_on_add(tmp_path, alias, detname, err):
    with pytest.raises(InvalidNameError, match=err):
        add_alias(tmp_path, alias, detname)
    assert list(tmp_path.iterdir()) == []


def test_empty_window_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match="begin must be before end"):
        add_alias(tmp_path, "x", "cspad-0001", "2024-02-01", "2024-01-01")


# ------------------------------------------------------------------ malformed files
@pytest.mark.parametrize("line, err", [
    ("front", "1 field(s)"),
    ("front cspad-0001 2024-01-01 2024-02-01 extra", "5 field(s)"),
    ("front cspad-0001 yesterday", "begin 'yesterday' is not a time"),
    ("front cspad-0001 start tomorrow", "end 'tomorrow' is not a time"),
    ("front cspad/0001", "path separator"),
    ("front epix10ka-0001", "is not a 'cspad'"),
    ("cspad-0003 cspad-0001", "form of a detector name"),
    ("front cspad-0001 2024-02-01 2024-01-01", "begin is not before end"),
    ("fr\u0430nt cspad-0001", "printable ASCII"),
])
def test_malformed_line_reports_file_and_line(tmp_path, line, err):
    path = tmp_path / "calib" / "cspad" / "aliases.txt"
    path.parent.mkdir(parents=True)
    path.write_text("# my aliases\n\nok cspad-0001\n" + line + "\n")
    with pytest.raises(AliasFileError) as ei:
        AliasFile.load(path)
    assert str(ei.value).startswith(f"{path}:4: ") and err in str(ei.value)
    # every user of the file sees the same error, and no write goes through
    with pytest.raises(AliasFileError, match=":4: "):
        resolve_alias("ok", tmp_path / "calib")
    before = file_digest(path)
    with pytest.raises(AliasFileError, match=":4: "):
        add_alias(tmp_path / "calib", "new", "cspad-0002")
    assert file_digest(path) == before


def test_overlap_in_hand_edited_file_names_both_lines(tmp_path):
    path = tmp_path / "cspad" / "aliases.txt"
    path.parent.mkdir()
    path.write_text("a cspad-0001 2024-01-01 2024-03-01\n#\na cspad-0002 2024-02-01\n")
    with pytest.raises(AliasFileError, match=r"aliases.txt:3: .* overlaps line 1"):
        AliasFile.load(path)


def test_history_section_errors(tmp_path):
    path = tmp_path / "cspad" / "aliases.txt"
    path.parent.mkdir()
    path.write_text(f"a cspad-0001\n{HISTORY_MARKER}\nb cspad-0002\n")
    with pytest.raises(AliasFileError, match=r"aliases.txt:3: only '#@' history lines"):
        AliasFile.load(path)
    path.write_text("a cspad-0001\n#@ garbage\n")
    with pytest.raises(AliasFileError, match=r"aliases.txt:2: malformed history line"):
        AliasFile.load(path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "cspad" / "aliases.txt"
    path.parent.mkdir()
    path.write_bytes(b"a cspad-0001\n# caf\xe9\n")
    with pytest.raises(AliasFileError, match=r"aliases.txt:2: not UTF-8 text \(byte 0xe9"):
        AliasFile.load(path)


def test_unicode_line_separators_do_not_split_records(tmp_path):
    """Only '\\n' ends a line, so U+2028 inside a comment cannot smuggle in a record."""
    path = tmp_path / "cspad" / "aliases.txt"
    path.parent.mkdir()
    path.write_text("# note\u2028evil cspad-0666\r\na cspad-0001\r\n", encoding="utf-8")
    af = AliasFile.load(path)
    assert [r.alias for r in af.records] == ["a"]


def test_leftover_of_killed_writer_removed_by_next_write(calib):
    leftover = afile(calib).with_name(f".aliases.txt{TMP_MARK}host-1-dead")
    leftover.write_text("half a file")
    add_alias(calib, "other", "cspad-0003")
    assert not leftover.exists()


def test_dcstore_sees_alias(calib):
    with DCStore(calib, "cspad-0002", mode="a"):
        pass
    with DCStore(calib, SRC, tsp="2024-06-01") as cs:
        assert cs.resolved.detname == "cspad-0002"
        assert cs.path == calib / "cspad" / "cspad-0002.h5"


# ------------------------------------------------------------------ concurrency
_WRITER = """
import sys
from pscalib.aliases import add_alias
calib, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    add_alias(calib, f"{tag}{i}", f"cspad-{i:04d}", begin=i)
"""


def test_two_processes_writing_lose_no_record(tmp_path):
    calib = tmp_path / "calib"
    n = 25
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(calib), tag, str(n)],
                              stderr=subprocess.PIPE, text=True) for tag in ("A", "B")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    recs = list_aliases(calib)
    assert sorted(r.alias for r in recs) == sorted(f"{t}{i}" for t in "AB" for i in range(n))
    assert len(alias_history(calib)) == 2 * n
    assert not [p for p in (calib / "cspad").iterdir() if TMP_MARK in p.name]


# ------------------------------------------------------------------ dcs executable
def dcs(*args, env=None, cwd=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    full.update(env or {})
    return subprocess.run(["dcs", *args], capture_output=True, text=True, timeout=60,
                          env=full, cwd=cwd)


def test_dcs_alias_commands(tmp_path):
    c = str(tmp_path / "calib")
    r = dcs("alias", "add", SRC, "cspad-0001", "--end", SWITCH, "--calib", c)
    assert r.returncode == 0, r.stderr
    assert "added CxiDs2.0:Cspad.0 -> cspad-0001" in r.stdout
    assert dcs("alias", "add", SRC, "cspad-0002", "--begin", SWITCH, "--calib", c,
               env={"PSCALIB_USER": "dave"}).returncode == 0
    r = dcs("alias", "list", "--calib", c, "--json")
    assert [(d["detname"], d["begin"], d["line"]) for d in json.loads(r.stdout)] == [
        ("cspad-0001", None, 6), ("cspad-0002", "2024-05-01T00:00:00+00:00", 7)]
    r = dcs("alias", "resolve", SRC, "--time", "2024-04-01", "--calib", c)
    assert r.stdout.strip() == "cspad-0001"
    r = dcs("alias", "resolve", SRC, "--calib", c, "--json")
    assert json.loads(r.stdout)["detname"] == "cspad-0002"
    r = dcs("alias", "list", "--history", "--json", "--calib", c)
    assert [d["user"] for d in json.loads(r.stdout)][1] == "dave"


def test_dcs_alias_errors(calib):
    c = str(calib)
    # errors: one line on stderr, exit 1 (data) or 2 (usage)
    r = dcs("alias", "add", SRC, "cspad-0003", "--calib", c)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "overlaps" in r.stderr
    r = dcs("alias", "add", SRC, "cspad-0003", "--begin", "soon", "--calib", c)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = dcs("alias", "remove", SRC, "--calib", c)
    assert r.returncode == 1 and "has 2 records" in r.stderr
    r = dcs("alias", "remove", SRC, "--begin", "start", "--calib", c)
    assert r.returncode == 0 and "removed" in r.stdout
    Path(c, "cspad", "aliases.txt").write_text("bad\n")
    r = dcs("alias", "list", "--calib", c)
    assert r.returncode == 1 and "aliases.txt:1:" in r.stderr and "Traceback" not in r.stderr


def test_dcs_uses_configured_places_and_where(tmp_path):
    repo, root = tmp_path / "repo", tmp_path / "exp"
    with DCStore(repo, "cspad-0001", mode="a"):
        pass
    env = {"PSCALIB_REPOSITORY": str(repo), "PSCALIB_EXPERIMENT_ROOT": str(root),
           "PSCALIB_EXPERIMENT": "CXI/cxic0415"}
    # without --calib, add writes to the first configured place: the experiment workspace
    r = dcs("alias", "add", SRC, "cspad-0001", env=env)
    assert r.returncode == 0, r.stderr
    assert (root / "CXI" / "cxic0415" / "calib" / "cspad" / "aliases.txt").is_file()
    r = dcs("where", SRC, "--json", env=env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["detname"] == "cspad-0001" and d["source"] == "repository"
    assert [(s["kind"], s["status"]) for s in d["searched"]] == [("experiment", "missing"),
                                                                 ("repository", "found")]
    r = dcs("where", "cspad-0077", env=env)
    assert r.returncode == 1
    assert "experiment workspace CXI/cxic0415" in r.stdout and "repository" in r.stdout
    r = dcs("where", "cspad-0001", env={"PSCALIB_REPOSITORY": str(repo)})
    assert "not configured (set PSCALIB_EXPERIMENT_ROOT and PSCALIB_EXPERIMENT)" in r.stdout


@pytest.mark.parametrize("cmd", [["alias"], ["alias", "add"], ["alias", "remove"],
                                 ["alias", "list"], ["alias", "resolve"], ["where"]])
def test_help_has_an_example(cmd):
    r = dcs(*cmd, "--help")
    assert r.returncode == 0 and "Example" in r.stdout and "dcs " in r.stdout
