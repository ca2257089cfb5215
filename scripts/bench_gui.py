#!/usr/bin/env python3
"""Page load of the web GUI's store page for a store with many ranges.

    python3 scripts/bench_gui.py [--ranges 1000] [--repeat 5] [--no-browser]

Builds a store with RANGES validity ranges (pedestals, one small version each, plus a
second version in every tenth range) in a temporary calib directory, starts a real
``dcs serve`` on 127.0.0.1 and measures:

* ``health``: GET /api/v1/health, the baseline (server round trip, no store work);
* ``api tree``: GET /api/v1/stores/NAME (the JSON tree of the same store);
* ``store page``: GET /gui/d/NAME (HTML with the timeline and the version tables,
  every default version tagged by a published tag), first (cold) and the median of
  REPEAT warm requests;
* ``tag page``: GET /gui/d/NAME/tags/TAG (the tag's frozen selection, every range);
* ``browser``: the page loaded in headless Chromium (navigation start to load event,
  median), when selenium and chromium are installed.

Prints each time and its ratio to the baseline. Target: store and tag page < 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def build(calib: Path, nranges: int) -> str:
    from pscalib import DCStore
    from pscalib.timestamps import to_ns
    t0 = to_ns("2020-01-01T00:00:00Z")
    day = 86400 * 10**9
    from pscalib.store.tags import create_tag, publish_tag
    with DCStore(calib / "cspad" / "cspad-0001.h5", mode="x") as cs:
        with cs.transaction():
            for i in range(nranges):
                b = np.datetime64(t0 + i * day, "ns")
                e = np.datetime64(t0 + (i + 1) * day, "ns")
                cs.add_constants("pedestals", np.full((4, 4), float(i), np.float32), b, e,
                                 {"run": i})
                if i % 10 == 0:
                    cs.add_constants("pedestals", np.full((4, 4), i + 0.5, np.float32), b,
                                     e, {"run": i, "reviewed": False}, make_default=False)
            cs.add_constants("pixel_status", np.zeros((4, 4), np.uint8),
                             np.datetime64(t0, "ns"))
        create_tag(cs, TAG)  # every range's default: the pages show its tags
        publish_tag(cs, TAG)
    return "cspad-0001"


#: The published tag over every range of the benchmark store.
TAG = "bench-prod"


def timed_get(base: str, path: str) -> float:
    from serve_helpers import get
    t = time.perf_counter()
    st, _, body = get(base, path, timeout=120)
    dt = time.perf_counter() - t
    if st != 200:
        raise SystemExit(f"GET {path} answered {st}: {body[:200]!r}")
    return dt


def browser_load(url: str, repeat: int):
    from pscalib.gui.browser import browser_available, headless_chromium
    if browser_available():
        return None
    out = []
    with headless_chromium() as d:
        for _ in range(repeat + 1):
            d.get(url)
            out.append(d.execute_script(
                "var t = performance.timing; return (t.loadEventEnd - t.navigationStart);")
                / 1000.0)
    return out[1:]  # the first load also starts the browser's caches


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranges", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args(argv)
    from serve_helpers import Served
    with tempfile.TemporaryDirectory(prefix="pscalib-benchgui-") as tmp:
        calib = Path(tmp) / "calib"
        t = time.perf_counter()
        name = build(calib, args.ranges)
        print(f"built a store with {args.ranges} ranges in {time.perf_counter() - t:.1f} s")
        srv = Served(calib)
        try:
            page = f"/gui/d/{name}"
            cold = timed_get(srv.base, page)
            health = statistics.median(timed_get(srv.base, "/api/v1/health")
                                       for _ in range(max(args.repeat, 3)))
            tree = statistics.median(timed_get(srv.base, f"/api/v1/stores/{name}")
                                     for _ in range(args.repeat))
            warm = statistics.median(timed_get(srv.base, page) for _ in range(args.repeat))
            tag = statistics.median(timed_get(srv.base, f"/gui/d/{name}/tags/{TAG}")
                                    for _ in range(args.repeat))
            loads = None if args.no_browser else browser_load(srv.base + page, args.repeat)
        finally:
            srv.stop()
    rows = [("health (baseline)", health), ("api tree", tree), ("store page, cold", cold),
            ("store page, warm (median)", warm), ("tag page (median)", tag)]
    if loads:
        rows.append(("browser page load (median)", statistics.median(loads)))
    for label, sec in rows:
        print(f"{label:28s} {sec * 1000:9.1f} ms   x{sec / health:8.1f} baseline")
    worst = max(cold, warm, tag, statistics.median(loads) if loads else 0.0)
    print(f"target: store page under 1 s -> {'met' if worst < 1.0 else 'NOT met'} "
          f"(worst {worst:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
