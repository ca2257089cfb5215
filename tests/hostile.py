"""Helpers of the hostile-input tests (tests/test_hostile_*.py): every public entry point
meets bad input with a specific pscalib error and leaves every file byte-identical.

The fixtures ``template`` (a small store, built once per module) and ``store`` (a fresh copy
of it) are imported by the test modules as ``template_fixture``/``store_fixture``.
"""
from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from pscalib import DCStore, errors as E

T0 = "2024-01-01T00:00:00"
T1 = "2024-06-01T00:00:00"
INSIDE = "2024-02-01T00:00:00"
NOBODY = 65534


# ----------------------------------------------------------------------------- helpers

def spinning_first_heap(data: bytes) -> bytes:
    """``data`` (a store file's bytes) with the free-space record of its first global heap
    collection set to size 0: HDF5 spins forever walking that heap (found by
    scripts/fuzz_files.py), so a reader must refuse the file before HDF5 reads it."""
    out = bytearray(data)
    g = out.find(b"GCOL")
    assert 0 < g < 8192
    p = g + 16
    while True:  # walk the heap objects to the free-space record (index 0)
        idx, _, _, size = struct.unpack_from("<HHIQ", out, p)
        if idx == 0:
            break
        p += 16 + ((size + 7) & ~7)
    struct.pack_into("<Q", out, p + 8, 0)
    return bytes(out)

def snapshot(folder: Path) -> dict:
    """sha256 of every file under ``folder`` (lock files excluded: they are never data)."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def make_store(path: Path) -> Path:
    """A small store: two ranges of pedestals (one with two versions), geometry text, pars."""
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.arange(6.0).reshape(2, 3), T0, T1, dictpars={"gain": 1})
        cs.add_constants("pedestals", np.ones((2, 3)), T0, T1, make_default=False)
        cs.add_constants("pedestals", np.zeros((2, 3), np.float32), T1)
        cs.add_constants("geometry", "# geometry\nQUAD 0 1\n", T0)
        cs.set_par("experiment", "cxi12345")
    return path


@pytest.fixture(scope="module", name="template")
def template_fixture(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("template") / "cspad-0001.h5")


@pytest.fixture(name="store")
def store_fixture(tmp_path, template):
    """A fresh copy of the small store (building it once keeps the module fast)."""
    p = tmp_path / "calib" / "cspad" / "cspad-0001.h5"
    p.parent.mkdir(parents=True)
    shutil.copyfile(template, p)
    return p


def check_rejected(folder: Path, action, expected, *args):
    """Run ``action(*args)``; it must raise ``expected`` and leave ``folder`` unchanged."""
    before = snapshot(folder)
    with pytest.raises(expected) as info:
        action(*args)
    assert isinstance(info.value, E.PscalibError)
    assert str(info.value).strip(), "an error must say what was wrong"
    assert snapshot(folder) == before, "a failed call changed or left files"
    return info.value


def on_store(store: Path, fn, expected, mode="a"):
    cs = DCStore(store, mode=mode)
    try:
        return check_rejected(store.parent, fn, expected, cs)
    finally:
        cs.close()
