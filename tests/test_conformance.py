"""The conformance suite (tests/store_conformance.py) over every backend and kind of store.

Native stores built through the API, original LCLS DCS files (read-only legacy backend),
their imports made by the real ``dcs import-legacy`` command, and stores after compaction.
A new backend or data set is one more subclass here.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import LEGACY_DIR, ROOT
from pscalib import DCStore
from store_conformance import ReadOnlyConformance, WritableConformance

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))


def _native(directory: Path) -> Path:
    return directory / "calib" / "cspad" / "cspad-0001.h5"


def empty_store(directory: Path) -> Path:
    p = _native(directory)
    DCStore(p, mode="a").close()
    return p


def many_ranges(directory: Path) -> Path:
    p = _native(directory)
    with DCStore(p, mode="a") as cs, cs.transaction():
        for i in range(60):
            cs.add_constants("pedestals", np.full((2, 3), i, dtype=np.float32),
                             i * 100, i * 100 + 100)
    return p


def overlaps(directory: Path) -> Path:
    rnd = random.Random(3)
    p = _native(directory)
    with DCStore(p, mode="a") as cs, cs.transaction():
        seen = set()
        while len(seen) < 30:
            b = rnd.randint(0, 50)
            e = None if rnd.random() < 0.2 else b + rnd.randint(1, 30)
            if (b, e) in seen:
                continue
            seen.add((b, e))
            cs.add_constants("pixel_gain", np.array([len(seen)], dtype=np.int32), b, e)
        cs.add_constants("pixel_gain", np.array([0], dtype=np.int32), 10, 20)
        cs.add_constants("pixel_gain", np.array([0], dtype=np.int32), 10, 15)  # tie: narrower
        cs["pixel_gain"].add_range(5, 100)  # empty
    return p


def text_and_0d(directory: Path) -> Path:
    p = _native(directory)
    with DCStore(p, mode="a") as cs, cs.transaction():
        cs.add_constants("geometry", "\n# geo\n\tline\n", "2024-05-01")
        cs.add_constants("geometry", "no newline", "2024-06-01", "2024-07-01")
        cs.add_constants("common_mode", np.array(1.5), "2024-05-01")
        cs.add_constants("common_mode", np.array(7, dtype=">i8"), "2024-05-01")
        cs.add_constants("pixel_status", np.ones((4, 4), dtype=bool), "2024-05-01")
        cs.add_constants("pixel_rms", np.arange(8, dtype=np.complex64), "2024-05-01",
                         dictpars={"run": 5, "names": ["a", "b"], "ok": True, "g": 2.5})
        cs.set_pars({"site": "LCLS"})
        cs.set_predecessor("cspad-0000")
    return p


def deletions(directory: Path) -> Path:
    p = _native(directory)
    with DCStore(p, mode="a") as cs:
        for i in range(4):
            cs.add_constants("pedestals", np.full(3, i, dtype=np.uint16), 0, 1000)
        r = cs["pedestals"].rangeobj(0)
        r.del_version(4)  # the default: v3 becomes it
        r.del_version(1)
        cs.add_constants("pedestals", np.full(3, 9, dtype=np.uint16), 500)
        cs["pedestals"].rangeobj(500).del_version(1)  # now an empty range
        cs.add_constants("pixel_mask", np.zeros(2, dtype=np.uint8), 0)
        cs.del_ctype("pixel_mask")
        cs.add_constants("pedestals", np.full(3, 5, dtype=np.uint16), 2000, 3000)
        cs["pedestals"].del_range((2000, 3000))
        cs.add_constants("pedestals", np.full(3, 6, dtype=np.uint16), 0, 1000)  # v5
    return p


def legacy_sample(prefix: str) -> Path:
    hits = sorted(LEGACY_DIR.glob(f"{prefix}*.h5"))
    if not hits:
        pytest.skip(f"shared legacy sample {prefix}*.h5 not found in {LEGACY_DIR}")
    return hits[0]


def imported_by_dcs(prefix: str, directory: Path) -> Path:
    """The native store ``dcs import-legacy`` (a real process) makes of a legacy sample."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run([DCS, "import-legacy", str(legacy_sample(prefix)),
                          "--to", str(directory / "calib"), "--json"], capture_output=True,
                         text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    found = sorted((directory / "calib").glob("*/*.h5"))
    assert len(found) == 1, found
    return found[0]


def compacted(path: Path) -> Path:
    with DCStore(path, mode="a") as cs:
        cs.compact()
    return path


# ------------------------------------------------------------------ native stores
class TestNativeEmpty(WritableConformance):
    EXPECT = staticmethod(lambda s: s["ctypes"] == 0 and s["records"] >= 1)

    def make(self, directory):
        return empty_store(directory)


class TestNativeManyRanges(WritableConformance):
    EXPECT = staticmethod(lambda s: s["ranges"] == 60 and s["versions"] == 60)

    def make(self, directory):
        return many_ranges(directory)


class TestNativeOverlaps(WritableConformance):
    EXPECT = staticmethod(lambda s: s["ranges"] >= 31 and s["empty_ranges"] == 1)

    def make(self, directory):
        return overlaps(directory)


class TestNativeTextAnd0d(WritableConformance):
    EXPECT = staticmethod(lambda s: s["text"] == 2 and s["zero_d"] == 2 and s["pars"] >= 5)

    def make(self, directory):
        return text_and_0d(directory)


class TestNativeAfterDeletions(WritableConformance):
    EXPECT = staticmethod(lambda s: (s["ctypes"], s["ranges"], s["empty_ranges"],
                                     s["versions"]) == (1, 2, 1, 3))

    def make(self, directory):
        return deletions(directory)


class TestNativeCompacted(WritableConformance):
    EXPECT = staticmethod(lambda s: s["text"] == 2 and s["zero_d"] == 2)

    def make(self, directory):
        return compacted(text_and_0d(directory))


# ------------------------------------------------------------------ legacy files
class TestLegacyCspad(ReadOnlyConformance):
    EXPECT = staticmethod(lambda s: s["versions"] >= 1 and s["records"] >= 1)

    def make(self, directory):
        return legacy_sample("cspad-")


class TestLegacyEpix100a(ReadOnlyConformance):
    EXPECT = staticmethod(lambda s: s["versions"] >= 1)

    def make(self, directory):
        return legacy_sample("epix100a-")


class TestImportedCspad(WritableConformance):
    EXPECT = staticmethod(lambda s: s["versions"] >= 1 and s["records"] >= 3)

    def make(self, directory):
        return imported_by_dcs("cspad-", directory)


class TestImportedEpix100a(WritableConformance):
    EXPECT = staticmethod(lambda s: s["versions"] >= 1)

    def make(self, directory):
        return imported_by_dcs("epix100a-", directory)


class TestImportedCspadCompacted(WritableConformance):
    EXPECT = staticmethod(lambda s: s["versions"] >= 1)

    def make(self, directory):
        return compacted(imported_by_dcs("cspad-", directory))
