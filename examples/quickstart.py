"""Quickstart: create a store, add constants, read them back.

Usage: python examples/quickstart.py [DIR]   (default: a new temporary directory)
"""
import sys
import tempfile
from pathlib import Path

import numpy as np

from pscalib import DCStore, format_ns, to_ns

calib = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pscalib-demo-"))
path = calib / "cspad" / "cspad-0001.h5"
print(f"creating {path}")
rng = np.random.default_rng(0)
with DCStore(path, mode="a") as cs:
    peds_may = rng.normal(1000, 5, (32, 185, 388))
    cs.add_constants("pedestals", peds_may, "2024-05-01T00:00:00Z", dictpars={"run": 12},
                     comment="dark run 12")
    peds_june = peds_may + 3.0
    cs.add_constants("pedestals", peds_june, "2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z",
                     comment="dark run 40")
    cs.add_constants("pixel_status", np.zeros((32, 185, 388), dtype=np.uint16), "2024-05-01")
    print("ctypes:", cs.ctypes())
    for r in cs["pedestals"].ranges():
        print(f"  pedestals range {r.begin()} .. {r.end()}  default v{r.versdef()}")

with DCStore(path) as cs:
    for t in ("2024-05-15T08:00:00Z", "2024-06-15T08:00:00Z", "2024-07-15T08:00:00Z"):
        peds = cs.get("pedestals", t)
        print(f"pedestals at {format_ns(to_ns(t))}: shape {peds.shape}, mean {peds.mean():.2f}")
    assert np.array_equal(cs.get("pedestals", "2024-06-15"), peds_june)
    print("history of the store:")
    print(cs.history())
print(f"done: {path}")
