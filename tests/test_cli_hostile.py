"""The real ``dcs`` executable on bad input: exit status 1 or 2, exactly one line on stderr,
no traceback, no 'internal error', and every file unchanged (sha256 before and after).

Each case runs in its own copy of a small calib directory (so a case that wrongly changed
a file is named), several cases at a time. NUL characters cannot be passed in argv (the OS
refuses them), so they are covered through files (payloads, alias files).
"""
from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

import h5py
import numpy as np
import pytest

from pscalib import DCStore
from pscalib.store import layout as L

T0, T1, INSIDE = "2024-01-01T00:00:00", "2024-06-01T00:00:00", "2024-02-01T00:00:00"
STORE = "calib/cspad/cspad-0001.h5"
RANGE1 = "20240101T000000Z_20240601T000000Z"
ALIAS = "CxiDs2.0:Cspad.0"


class Case(NamedTuple):
    name: str
    argv: Sequence[str]
    setup: Optional[Callable[[Path], None]] = None
    codes: tuple = (1, 2)
    env: Optional[dict] = None


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """calib directory with one store and an alias file, plus bad inputs and bad stores."""
    d = tmp_path_factory.mktemp("base")
    store = d / STORE
    with DCStore(store, mode="a") as cs:
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3), T0, T1, dictpars={"g": 1})
        cs.add_constants("pedestals", np.ones((2, 3)), T0, T1, make_default=False)
        cs.add_constants("geometry", "# geometry\nQUAD 0 1\n", T0)
    subprocess.run(["dcs", "alias", "add", ALIAS, "cspad-0001", "--end", "2024-05-01",
                    "--calib", "calib"], cwd=d, check=True, capture_output=True)
    inp = d / "in"
    inp.mkdir()
    np.save(inp / "good.npy", np.ones((2, 3)))
    (inp / "notutf8.txt").write_bytes(b"geometry \xff\xfe caf\xe9\n")
    (inp / "nul.txt").write_bytes(b"geometry\x00with NUL\n")
    (inp / "empty.txt").write_bytes(b"")
    np.save(inp / "object.npy", np.array([1, None], dtype=object), allow_pickle=True)
    np.save(inp / "struct.npy", np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]))
    np.save(inp / "strings.npy", np.array(["a", "b"]))
    np.save(inp / "empty.npy", np.zeros((0, 4)))
    np.save(inp / "dates.npy", np.array(["2024-01-01"], dtype="datetime64[D]"))
    good = (inp / "good.npy").read_bytes()
    (inp / "trunc.npy").write_bytes(good[:len(good) - 20])
    # a .npy header promising 8 TB of float64 with 48 bytes of data
    (inp / "hugeshape.npy").write_bytes(_npy_with_shape(good, "(1000000, 1000000)"))
    (inp / "badnum.data").write_text("# DTYPE float\n# NDIM 2\n# DIM:1 2\n# DIM:2 2\n1 2\n3 x\n")
    (inp / "hugedim.data").write_text("# DTYPE double\n# NDIM 2\n# DIM:1 100000000000\n"
                                      "# DIM:2 100000000000\n1 2\n")
    (inp / "negdim.data").write_text("# DTYPE double\n# NDIM 1\n# DIM:1 -5\n1 2\n")
    bad = d / "bad"
    bad.mkdir()
    (bad / "cspad-0001.h5").write_bytes(b"")  # zero bytes
    (bad / "cspad-0002.h5").write_bytes(np.random.default_rng(1).bytes(5000))
    (bad / "cspad-0003.h5").write_bytes(store.read_bytes()[:20000])
    with h5py.File(bad / "cspad-0004.h5", "x") as f:
        f["x"] = np.arange(3)
    shutil.copyfile(store, bad / "cspad-0005.h5")
    with h5py.File(bad / "cspad-0005.h5", "r+") as f:
        f.attrs.modify(L.A_FORMAT_VERSION, np.int64(L.FORMAT_VERSION + 1))
    (bad / "cspad-0006.h5").mkdir()
    return d


def _npy_with_shape(npy: bytes, shape: str) -> bytes:
    """Rewrite the header of a .npy file to claim ``shape`` (same header length)."""
    hlen = struct.unpack("<H", npy[8:10])[0]
    header = npy[10:10 + hlen].decode("latin1")
    start = header.index("'shape': ") + len("'shape': ")
    end = header.index(")", start) + 1
    new = (header[:start] + shape + header[end:]).rstrip()
    new = new.ljust(hlen - 1) + "\n"
    assert len(new) == hlen
    return npy[:10] + new.encode("latin1") + npy[10 + hlen:]


def run_case(base: Path, case: Case) -> List[str]:
    """Run one case in a private copy of ``base``; return the problems found."""
    work = Path(tempfile.mkdtemp(prefix="dcs-hostile-"))
    try:
        d = work / "d"
        shutil.copytree(base, d)
        if case.setup:
            case.setup(d)
        before = snapshot(d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
        env.update(case.env or {})
        r = subprocess.run(["dcs", *case.argv], cwd=d, capture_output=True, text=True,
                           env=env, timeout=120, stdin=subprocess.DEVNULL)
        return check_result(case.name, r, before, snapshot(d), case.codes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_result(name, r, before, after, codes=(1, 2), one_line=True) -> List[str]:
    problems = []
    lines = r.stderr.splitlines()
    if r.returncode not in codes:
        problems.append(f"exit status {r.returncode}, expected {codes}")
    if one_line and len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if "Traceback" in r.stderr or "internal error" in r.stderr:
        problems.append("traceback / internal error")
    if lines and not lines[0].startswith("dcs: "):
        problems.append("message does not start with 'dcs: '")
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems.append(f"files changed: {changed}")
    return [f"{name}: {p} | stderr={r.stderr.strip()[:300]!r}" for p in problems]


def run_all(base: Path, cases: List[Case]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for ps in pool.map(lambda c: run_case(base, c), cases) for p in ps]
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- cases
# (the library tests try many more; the CLI shares one parser, so a sample suffices here)
BAD_TIMES = ["nan", "-inf", "", "yesterday", "2024-02-30", "01/02/2024", "1e9999999",
             "2024-05-01T12:00+25:00", "\u0662\u0660\u0662\u0664-05-01", "end"]


def test_bad_times(base):
    # one time parser serves every command: the full list on 'get', a few on the others
    cases = [Case(f"get -t {t!r}", ["get", STORE, "pedestals", "-t", t]) for t in BAD_TIMES]
    cases += [Case(f"add --begin {t!r}", ["add", STORE, "pedestals", "in/good.npy", "-b", t])
              for t in ("nan", "2024-02-30", "1e9999999")]
    cases += [
        Case("add end before begin", ["add", STORE, "pedestals", "in/good.npy", "-b", T1,
                                      "-e", T0]),
        Case("add end == begin", ["add", STORE, "pedestals", "in/good.npy", "-b", T0,
                                  "-e", T0]),
        Case("add --end nan", ["add", STORE, "pedestals", "in/good.npy", "-b", T0, "-e",
                               "nan"]),
        Case("alias end before begin", ["alias", "add", "x1", "cspad-0001", "--begin", T1,
                                        "--end", T0, "--calib", "calib"]),
        Case("where bad time", ["where", ALIAS, "--time", "2024-02-30", "--calib", "calib"]),
        Case("copy bad window", ["copy", STORE, "copy.h5", "--begin", "nan"]),
    ]
    run_all(base, cases)


HOSTILE = ["a/b", "..", "/etc/passwd", "a\x01b", "a\nb", "x" * 5000, "\x1b[31mred"]
BAD_CTYPES_ONLY = ["_history", "Pedestals", "péd"]  # fine as alias / par key


def test_hostile_names(base):
    cases = []
    for n in BAD_CTYPES_ONLY:
        cases += [Case(f"get ctype {n!r}", ["get", STORE, n, "-t", INSIDE]),
                  Case(f"add ctype {n!r}", ["add", STORE, n, "in/good.npy", "-b", T0])]
    for n in HOSTILE:
        cases += [
            Case(f"add ctype {n[:20]!r}", ["add", STORE, n, "in/good.npy", "-b", T0]),
            Case(f"store {n[:20]!r}", ["print", "cspad-" + n], env={"PSCALIB_REPOSITORY":
                                                                   "calib"}),
            Case(f"alias {n[:20]!r}", ["alias", "add", n, "cspad-" + n, "--calib", "calib"]),
            Case(f"par key {n[:20]!r}", ["par", STORE, "set", f"{n}=1"]),
        ]
    cases += [
        Case("add store bad detname --create", ["add", "calib/cspad/../x/cspad-.h5",
                                                "pedestals", "in/good.npy", "-b", T0,
                                                "--create"]),
        Case("alias overlapping", ["alias", "add", ALIAS, "cspad-0001", "--begin",
                                   "2024-04-01", "--calib", "calib"]),
        Case("alias remove unknown", ["alias", "remove", "nope", "--calib", "calib"]),
        Case("where unknown", ["where", "nope-alias", "--calib", "calib"]),
    ]
    run_all(base, cases)


def test_unknown_objects(base):
    run_all(base, [
        Case("get unknown ctype", ["get", STORE, "pixel_gain", "-t", INSIDE]),
        Case("get before any range", ["get", STORE, "pedestals", "-t", "2000-01-01"]),
        Case("get missing version", ["get", STORE, "pedestals", "-t", INSIDE, "-V", "99"]),
        Case("get version 0", ["get", STORE, "pedestals", "-t", INSIDE, "-V", "0"]),
        Case("get version -1", ["get", STORE, "pedestals", "-t", INSIDE, "-V", "-1"]),
        Case("get version x", ["get", STORE, "pedestals", "-t", INSIDE, "-V", "x"]),
        Case("get version huge", ["get", STORE, "pedestals", "-t", INSIDE, "-V", "9" * 30]),
        Case("set-default missing", ["set-default", STORE, "pedestals", "99", "-r", RANGE1]),
        Case("set-default 0", ["set-default", STORE, "pedestals", "0", "-r", RANGE1]),
        Case("set-default bad range", ["set-default", STORE, "pedestals", "1", "-r", "nope"]),
        Case("delete unknown ctype", ["delete", STORE, "pixel_gain", "--yes"]),
        Case("delete unknown range", ["delete", STORE, "pedestals", "-r", "20300101T000000Z_end",
                                      "--yes"]),
        Case("delete unknown version", ["delete", STORE, "pedestals", "-r", RANGE1, "-V", "7",
                                        "--yes"]),
        Case("delete without terminal", ["delete", STORE, "pedestals"]),
        Case("par unknown path", ["par", STORE, "nope/x/y"]),
        Case("par del unknown", ["par", STORE, "del", "nope"]),
        Case("history unknown", ["history", STORE, "nope"]),
        Case("print unknown ctype", ["print", STORE, "-c", "nope"]),
        Case("missing store", ["print", "calib/cspad/cspad-0009.h5"]),
        Case("missing detname", ["print", "cspad-0009"], env={"PSCALIB_REPOSITORY": "calib"}),
        Case("missing input", ["add", STORE, "pedestals", "in/nope.npy", "-b", T0]),
        Case("input is a directory", ["add", STORE, "pedestals", "in", "-b", T0]),
        Case("unknown command", ["frobnicate"]),
        Case("unknown option", ["get", STORE, "pedestals", "-t", INSIDE, "--frob"]),
        Case("copy onto existing", ["copy", STORE, STORE]),
        Case("merge into missing", ["merge", STORE, "calib/cspad/cspad-0009.h5"]),
    ])


# (an empty text payload is valid: tests/test_text_payload.py; an empty *file* needs --text,
# and an empty array is stored like any other shape: tests/test_empty_payloads.py)
PAYLOADS = ["notutf8.txt", "nul.txt", "object.npy", "struct.npy", "strings.npy",
            "empty.txt", "dates.npy", "trunc.npy", "hugeshape.npy", "badnum.data",
            "hugedim.data", "negdim.data"]


def test_bad_payloads(base):
    cases = [Case(f"add {p}", ["add", STORE, "pedestals", f"in/{p}", "-b", T0])
             for p in PAYLOADS]
    cases += [Case(f"add --array {p}", ["add", STORE, "pedestals", f"in/{p}", "-b", T0,
                                        "--array"]) for p in ("hugedim.data", "notutf8.txt")]
    cases += [Case(f"add --text {p}", ["add", STORE, "geometry", f"in/{p}", "-b", T0,
                                       "--text"]) for p in ("notutf8.txt", "nul.txt")]
    cases += [Case(f"add --par {kv!r}", ["add", STORE, "pedestals", "in/good.npy", "-b", T0,
                                         "--par", kv])
              for kv in ("noequals", "=1", "a/b=1", "x" * 300 + "=1", "..=1")]
    run_all(base, cases)


def _alias_file(content: bytes):
    def setup(d: Path):
        (d / "calib" / "cspad" / "aliases.txt").write_bytes(content)
    return setup


ALIAS_FILES = {
    "one field": b"CxiDs2.0:Cspad.0\n",
    "bad detname": b"CxiDs2.0:Cspad.0 cspad-../x start end\n",
    "bad time": b"CxiDs2.0:Cspad.0 cspad-0001 2024-02-30 end\n",
    "end before begin": b"CxiDs2.0:Cspad.0 cspad-0001 2024-06-01 2024-01-01\n",
    "too many fields": b"CxiDs2.0:Cspad.0 cspad-0001 start end extra\n",
    "duplicate": b"CxiDs2.0:Cspad.0 cspad-0001 start end\nCxiDs2.0:Cspad.0 cspad-0001 start end\n",
    "overlap": b"CxiDs2.0:Cspad.0 cspad-0001 start 2024-06-01\n"
               b"CxiDs2.0:Cspad.0 cspad-0002 2024-05-01 end\n",
    "latin-1": "CxiDs2.0:Cspad.0 cspad-0001 start end # café\n".encode("latin-1"),
    "utf-16": "CxiDs2.0:Cspad.0 cspad-0001 start end\n".encode("utf-16"),
    "NUL": b"CxiDs2.0:Cspad.0\x00 cspad-0001 start end\n",
    "binary": bytes(range(256)) * 4,
}


def test_malformed_alias_files(base):
    cases = []
    for what, content in ALIAS_FILES.items():
        cases += [
            Case(f"alias list [{what}]", ["alias", "list", "--calib", "calib"],
                 _alias_file(content)),
            Case(f"where [{what}]", ["where", ALIAS, "--time", INSIDE, "--calib", "calib"],
                 _alias_file(content)),
        ]
    cases += [Case(f"alias add [{what}]", ["alias", "add", "other", "cspad-0001", "--calib",
                                           "calib"], _alias_file(ALIAS_FILES[what]))
              for what in ("bad time", "duplicate", "utf-16")]
    cases += [Case(f"get via alias [{what}]", ["get", ALIAS, "pedestals", "-t", INSIDE],
                   _alias_file(ALIAS_FILES[what]), env={"PSCALIB_REPOSITORY": "calib"})
              for what in ("one field", "overlap", "latin-1", "NUL")]
    run_all(base, cases)


BAD_STORES = {"zero bytes": "bad/cspad-0001.h5", "random bytes": "bad/cspad-0002.h5",
              "truncated": "bad/cspad-0003.h5", "not a store": "bad/cspad-0004.h5",
              "newer format": "bad/cspad-0005.h5", "directory": "bad/cspad-0006.h5"}


def test_bad_store_files(base):
    cases = []
    for what, path in BAD_STORES.items():
        cases += [
            Case(f"print [{what}]", ["print", path]),
            Case(f"get [{what}]", ["get", path, "pedestals", "-t", INSIDE]),
            Case(f"add --create [{what}]", ["add", path, "pedestals", "in/good.npy", "-b", T0,
                                            "--create"]),
            Case(f"merge into [{what}]", ["merge", STORE, path]),
        ]
    # every other command on two kinds of damage (the opening code is shared)
    for what in ("truncated", "newer format"):
        path = BAD_STORES[what]
        cases += [
            Case(f"add [{what}]", ["add", path, "pedestals", "in/good.npy", "-b", T0]),
            Case(f"par [{what}]", ["par", path, "set", "a=1"]),
            Case(f"history [{what}]", ["history", path]),
            Case(f"set-default [{what}]", ["set-default", path, "pedestals", "1", "-r", RANGE1]),
            Case(f"delete [{what}]", ["delete", path, "pedestals", "--yes"]),
            Case(f"copy [{what}]", ["copy", path, "out.h5"]),
            Case(f"diff [{what}]", ["diff", path, STORE]),
            Case(f"merge from [{what}]", ["merge", path, STORE]),
            Case(f"import-legacy [{what}]", ["import-legacy", path, "--to", "imported"]),
        ]
    run_all(base, cases)


def test_verify_reports_bad_files(base):
    """verify prints its report on stdout: exit 1, no traceback, files unchanged."""
    work = Path(tempfile.mkdtemp(prefix="dcs-hostile-"))
    try:
        d = work / "d"
        shutil.copytree(base, d)
        before = snapshot(d)
        paths = [p for what, p in BAD_STORES.items() if what != "directory"]
        r = subprocess.run(["dcs", "verify", *paths], cwd=d, capture_output=True, text=True,
                           timeout=120)
        problems = check_result("verify", r, before, snapshot(d), (1,), one_line=False)
        assert not problems, problems
        assert r.stdout.count("FAILED") == len(paths), r.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- filesystems


def _dcs(argv, cwd, **kw):
    return subprocess.run(["dcs", *argv], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kw)


def test_disk_too_small_and_read_only(small_fs, base):
    shutil.copytree(base / "calib", small_fs / "calib")
    np.save(small_fs.parent / f"{small_fs.name}-big.npy", np.ones(3 * 2**20))  # 24 MiB
    big = small_fs.parent / f"{small_fs.name}-big.npy"
    try:
        before = snapshot(small_fs)
        r = _dcs(["add", STORE, "pedestals", str(big), "-b", T0], small_fs)
        problems = check_result("add too big", r, before, snapshot(small_fs), (1,))
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
        for argv in (["add", STORE, "pedestals", str(base / "in" / "good.npy"), "-b", T0],
                     ["par", STORE, "set", "a=1"],
                     ["alias", "add", "x1", "cspad-0001", "--calib", "calib"],
                     ["set-default", STORE, "pedestals", "2", "-r", RANGE1],
                     ["add", "calib/cspad/cspad-0002.h5", "pedestals",
                      str(base / "in" / "good.npy"), "-b", T0, "--create"]):
            r = _dcs(argv, small_fs)
            problems += check_result(f"read-only: {argv[0]}", r, before, snapshot(small_fs),
                                     (1,))
        assert _dcs(["get", STORE, "pedestals", "-t", INSIDE], small_fs).returncode == 0
        assert not problems, "\n".join(problems)
    finally:
        big.unlink()


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored stays ignored across exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))


def test_full_disk_rlimit(base, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(base, d)
    np.save(d / "big.npy", np.ones(2**18))  # 2 MiB, beyond the 1 MiB limit
    before = snapshot(d)
    problems = []
    for argv in (["add", STORE, "pedestals", "big.npy", "-b", T0],
                 ["add", STORE, "pixel_gain", "big.npy", "-b", T0, "-e", T1]):
        r = _dcs(argv, d, preexec_fn=_limit_file_size)
        problems += check_result(f"rlimit: {' '.join(argv[:3])}", r, before, snapshot(d),
                                 (1,))
    assert not problems, "\n".join(problems)
