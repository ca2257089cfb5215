"""Issue 13, items 2 and 3: crafted stores never make pscalib read outside the store.

Each case takes a valid store and plants an HDF5 feature the format never uses: external
storage (to a FIFO, to a regular file outside the store, by absolute and relative path),
external and soft links, a virtual dataset, and size claims the file cannot back (a 16 GiB
sparse payload, a range index of 2^30 rows). The real ``dcs`` runs ``get``, ``get -o``,
``verify``, ``copy`` and ``merge`` on it, each with a time limit. Every command must give
one line on stderr and exit 1, change nothing, and never open the sentinel: a FIFO outside
the store which every outside reference points to. A process opening a FIFO for reading
blocks until a writer appears, so the test polls it with a non-blocking writer open, which
succeeds only while some process has the FIFO open for reading.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List

import h5py
import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import CorruptStoreError
from pscalib.exchange.verify import verify
from pscalib.store import layout as L
from pscalib.store.native import INDEX_DTYPE
from pscalib.store.payload import checksum

from conftest import file_digest

T0 = "2024-01-01T00:00:00"
INSIDE = "2024-02-01T00:00:00"
SECRET = b"SECRET-CONTENT-OUTSIDE-THE-STORE\n" * 4
LIMIT = 30.0  # seconds per command: more means it hangs


def _data_path(f: h5py.File) -> str:
    rg = f["pedestals"]
    rname = next(k for k in rg if not k.startswith("_"))
    return f"pedestals/{rname}/v0001/data"


def _replace(f: h5py.File, make: Callable[[h5py.Group, str], None]) -> None:
    path = _data_path(f)
    g = f[path.rsplit("/", 1)[0]]
    del g["data"]
    make(g, "data")


def ext_storage(f: h5py.File, target: str, sha_of: bytes = b"") -> None:
    _replace(f, lambda g, n: g.create_dataset(n, shape=(len(SECRET),), dtype="u1",
                                              external=[(target, 0, len(SECRET))]))
    if sha_of:  # a matching checksum: verify must not call the file OK
        f[_data_path(f).rsplit("/", 1)[0]].attrs[L.A_SHA256] = checksum(
            np.frombuffer(sha_of, dtype="u1"))


def ext_link(f: h5py.File, work: Path) -> None:
    _replace(f, lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(work / "sentinel"), "/x")))


def ext_link_group(f: h5py.File, work: Path) -> None:
    del f["pedestals"]
    f["pedestals"] = h5py.ExternalLink(str(work / "sentinel"), "/pedestals")


def soft_link(f: h5py.File, work: Path) -> None:
    _replace(f, lambda g, n: g.__setitem__(n, h5py.SoftLink("/elsewhere/data")))
    f["elsewhere"] = h5py.ExternalLink(str(work / "sentinel"), "/g")


def virtual(f: h5py.File, work: Path) -> None:
    lay = h5py.VirtualLayout(shape=(16,), dtype="f8")
    lay[:] = h5py.VirtualSource(str(work / "sentinel"), "x", shape=(16,))
    _replace(f, lambda g, n: g.create_virtual_dataset(n, lay))


def huge_payload(f: h5py.File, work: Path) -> None:
    _replace(f, lambda g, n: g.create_dataset(n, shape=(2**31,), dtype="f8"))  # 16 GiB


def huge_index(f: h5py.File, work: Path) -> None:
    rows = f["pedestals/_ranges"][...]
    del f["pedestals/_ranges"]
    ds = f["pedestals"].create_dataset("_ranges", shape=(2**30,), maxshape=(None,),
                                       chunks=(1024,), dtype=INDEX_DTYPE)
    ds[:len(rows)] = rows


CASES = {
    "external-storage-fifo": lambda f, w: ext_storage(f, str(w / "sentinel")),
    "external-storage-file": lambda f, w: ext_storage(f, str(w / "secret.txt"), SECRET),
    "external-storage-relative": lambda f, w: ext_storage(f, "../../secret.txt", SECRET),
    "external-link-payload": ext_link,
    "external-link-ctype": ext_link_group,
    "soft-link": soft_link,
    "virtual-dataset": virtual,
    "huge-payload": huge_payload,
    "huge-range-index": huge_index,
}

COMMANDS = {
    "get": ["get", "{store}", "pedestals", "-t", INSIDE],
    "get-o": ["get", "{store}", "pedestals", "-t", INSIDE, "-o", "out.npy"],
    "verify": ["verify", "{store}"],
    "copy": ["copy", "{store}", "copied"],
    "merge": ["merge", "{store}", "dest/cspad/cspad-0001.h5"],
}


def _make_case(root: Path, name: str) -> Path:
    work = root / name
    store = work / "calib" / "cspad" / "cspad-0001.h5"
    with DCStore(store, mode="x") as cs:
        cs.add_constants("pedestals", np.arange(16.0), T0, dictpars={"g": 1})
        cs.add_constants("geometry", "# geometry\nQUAD 0 1\n", T0)
    with DCStore(work / "dest" / "cspad" / "cspad-0001.h5", mode="x"):
        pass
    (work / "secret.txt").write_bytes(SECRET)
    os.mkfifo(work / "sentinel")
    with h5py.File(store, "r+") as f:
        CASES[name](f, work)
    return work


def _fifo_has_reader(fifo: Path) -> bool:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no process has it open for reading
            return False
        raise
    os.close(fd)  # the reader gets EOF and goes on
    return True


def _snapshot(work: Path) -> dict:
    return {str(p.relative_to(work)): file_digest(p) for p in sorted(work.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _run(work: Path, argv: List[str]) -> List[str]:
    store = work / "calib" / "cspad" / "cspad-0001.h5"
    args = [a.format(store=store) for a in argv]
    before = _snapshot(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    proc = subprocess.Popen(["dcs", *args], cwd=work / "calib" / "cspad", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    opened = False
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < LIMIT:
        opened |= _fifo_has_reader(work / "sentinel")
        time.sleep(0.005)
    hung = proc.poll() is None
    if hung:
        proc.kill()
    out, err = proc.communicate()
    problems = []
    if hung:
        problems.append(f"no answer within {LIMIT} s")
    if opened:
        problems.append("opened the sentinel FIFO outside the store")
    if proc.returncode != 1:
        problems.append(f"exit status {proc.returncode}")
    lines = err.splitlines()
    if len(lines) != 1 or not lines[0].startswith("dcs: error:"):
        if not (argv[0] == "verify" and not lines):
            problems.append("not one 'dcs: error:' line on stderr")
    if "Traceback" in err or "internal error" in err:
        problems.append("traceback / internal error")
    if SECRET[:20].decode() in out + err:
        problems.append("printed the outside file's content")
    for p in (work / "calib" / "cspad").glob("out.npy"):
        problems.append(f"wrote {p}")
    if (work / "copied").exists() and any((work / "copied").rglob("*.h5")):
        problems.append("copy created a store")
    after = _snapshot(work)
    if before != after:
        problems.append(f"files changed: {sorted(set(before) ^ set(after))}")
    if argv[0] == "verify" and "FAILED" not in out:
        problems.append("verify did not report FAILED")
    return [f"{work.name} / {argv[0]}{'-o' if '-o' in argv else ''}: {p} | "
            f"out={out.strip()[:200]!r} err={err.strip()[:300]!r}" for p in problems]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crafted")
    for name in CASES:
        _make_case(root, name)
    return root


def test_every_command_refuses_every_crafted_store(cases):
    def one_case(name: str) -> List[str]:  # commands of one case in turn: they share files
        return [p for argv in COMMANDS.values() for p in _run(cases / name, argv)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        problems = [p for ps in pool.map(one_case, CASES) for p in ps]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_get_and_verify(cases, name):
    store = cases / name / "calib" / "cspad" / "cspad-0001.h5"
    with pytest.raises(CorruptStoreError, match="never uses this"):
        with DCStore(store) as cs:
            cs.get("pedestals", INSIDE)
    rep = verify(store)
    assert not rep.ok and any("never uses this" in p.message for p in rep.errors)


def test_verify_names_what_it_found(cases):
    out = {}
    for name in CASES:
        rep = verify(cases / name / "calib" / "cspad" / "cspad-0001.h5")
        out[name] = " ".join(p.message for p in rep.errors)
    assert "external storage" in out["external-storage-fifo"]
    assert "external link" in out["external-link-payload"]
    assert "external link" in out["external-link-ctype"]
    assert "soft link" in out["soft-link"]
    assert "virtual dataset" in out["virtual-dataset"]
    assert "claims 17179869184 bytes" in out["huge-payload"]
    assert "claims" in out["huge-range-index"]


def test_valid_store_unaffected(tmp_path):
    """The checks pass the files pscalib writes, including empty indexes and hard links."""
    store = tmp_path / "cspad-0001.h5"
    with DCStore(store, mode="x") as cs:
        cs.add_constants("pedestals", np.arange(16.0), T0)
        cs.add_constants("pixel_gain", np.arange(16.0), T0)  # hard link
        cs.add_ctype("pixel_mask")  # empty range index
        cs["pedestals"].del_range(cs["pedestals"].ranges()[0])
    assert verify(store).ok
    with DCStore(store) as cs:
        assert cs.get("pixel_gain", INSIDE).sum() == 120
    shutil.copy(store, tmp_path / "b.h5")
