"""Run the generic read invariants (tests/store_conformance.py) over many stores.

To add a backend or a data set, append ``(name, factory)`` to STORE_FACTORIES, where
``factory(tmp_path) -> path`` returns the path of a store file (it may create it under
``tmp_path`` or return a shared, read-only file).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np
import pytest

from pscalib import DCStore
from store_conformance import check_store_invariants

Factory = Callable[[Path], Path]


def _native(tmp_path: Path) -> Path:
    return tmp_path / "calib" / "cspad" / "cspad-0001.h5"


def empty_store(tmp_path: Path) -> Path:
    p = _native(tmp_path)
    DCStore(p, mode="a").close()
    return p


def many_ranges(tmp_path: Path) -> Path:
    p = _native(tmp_path)
    with DCStore(p, mode="a") as cs, cs.transaction():
        for i in range(60):
            cs.add_constants("pedestals", np.full((2, 3), i, dtype=np.float32),
                             i * 100, i * 100 + 100)
    return p


def overlaps(tmp_path: Path) -> Path:
    rnd = random.Random(3)
    p = _native(tmp_path)
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


def text_and_0d(tmp_path: Path) -> Path:
    p = _native(tmp_path)
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


def deletions(tmp_path: Path) -> Path:
    p = _native(tmp_path)
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


#: (name, factory) pairs; other backends append theirs.
STORE_FACTORIES: List[Tuple[str, Factory]] = [
    ("native-empty", empty_store),
    ("native-many-ranges", many_ranges),
    ("native-overlaps", overlaps),
    ("native-text-0d", text_and_0d),
    ("native-deletions", deletions),
]


# Original LCLS DCS files (read-only, shared samples) and their native imports.
def _legacy_sample(prefix: str) -> Factory:
    def factory(tmp_path: Path) -> Path:
        from conftest import LEGACY_DIR
        hits = sorted(LEGACY_DIR.glob(f"{prefix}*.h5"))
        if not hits:
            pytest.skip(f"shared legacy sample {prefix}*.h5 not found in {LEGACY_DIR}")
        return hits[0]
    return factory


def _legacy_imported(prefix: str) -> Factory:
    def factory(tmp_path: Path) -> Path:
        from pscalib.importers.legacy import import_legacy
        return import_legacy(_legacy_sample(prefix)(tmp_path), tmp_path / "calib").store
    return factory


STORE_FACTORIES += [
    ("legacy-cspad", _legacy_sample("cspad-")),
    ("legacy-epix100a", _legacy_sample("epix100a-")),
    ("legacy-cspad-imported", _legacy_imported("cspad-")),
    ("legacy-epix100a-imported", _legacy_imported("epix100a-")),
]


#: Optional checks of the summary per factory name, so that a factory cannot silently
#: degrade into a store on which the invariants pass vacuously.
EXPECTED = {
    "native-many-ranges": lambda s: s["ranges"] == 60 and s["gets"] >= 60,
    "native-overlaps": lambda s: s["ranges"] >= 31 and s["empty_ranges"] == 1
    and s["gets"] >= 30,
    "native-text-0d": lambda s: s["text"] == 2 and s["zero_d"] == 2 and s["pars"] >= 5,
    "native-deletions": lambda s: (s["ctypes"], s["ranges"], s["empty_ranges"],
                                   s["versions"]) == (1, 2, 1, 3),
}


@pytest.mark.parametrize("name, factory", STORE_FACTORIES, ids=[n for n, _ in STORE_FACTORIES])
def test_store_invariants(tmp_path, name, factory):
    path = factory(tmp_path)
    with DCStore(path) as cs:
        summary = check_store_invariants(cs)
    assert summary["records"] >= 1 or not name.startswith("native")
    if name in EXPECTED:
        assert EXPECTED[name](summary), summary
