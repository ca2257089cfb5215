#!/usr/bin/env python3
"""Rebuild the pictures in docs/images/: example plots and screenshots of the web GUI.

    python3 scripts/screenshots.py [--out docs/images] [--plots-only]

Builds the demo calib directory in a temporary directory, draws example plots with the
library (``pscalib[plot]``), then (unless ``--plots-only``) starts ``dcs serve`` on
127.0.0.1 and takes screenshots of the GUI pages with headless Chromium (selenium,
Debian ``chromium`` + ``chromium-driver``). PNGs are reduced to a 48-colour palette so
they stay small in the repository.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def shrink(path: Path, colors: int = 48) -> None:
    """Re-save a PNG with a palette of ``colors`` colours (a fraction of the size)."""
    from PIL import Image
    with Image.open(path) as im:
        pal = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    pal.save(path, optimize=True)


def plots(out: Path, calib: Path) -> list:
    from pscalib import DCStore
    from pscalib.plot import plot_constants, plot_diff, plot_timeline, save_figure
    made = []
    epix = calib / "epix10ka" / "epix10ka-0001.h5"
    jf = calib / "jungfrau" / "jungfrau-0001.h5"
    with DCStore(epix) as cs:
        jobs = [("plot-epix-geometry.png", plot_constants(cs, "pedestals", "2024-01-20")),
                ("timeline-epix.png", plot_timeline(cs))]
        r = cs["pedestals"].range_at("2024-01-20")
        jobs.append(("plot-epix-diff.png", plot_diff(r.get(1), r.get(2), ("v1", "v2"))))
    with DCStore(jf) as cs:
        jobs.append(("plot-jungfrau-mosaic.png",
                     plot_constants(cs, "pixel_status", "2024-01-20", layout="mosaic")))
        jobs.append(("plot-jungfrau-geometry.png", plot_constants(cs, "geometry", "2024-06-01")))
    for name, fig in jobs:
        save_figure(fig, out / name, dpi=70)
        shrink(out / name)
        made.append(out / name)
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--plots-only", action="store_true")
    args = ap.parse_args(argv)
    from pscalib.demo import build_demo
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pscalib-shots-") as tmp:
        calib = Path(tmp) / "calib"
        build_demo(calib)
        made = plots(args.out, calib)
        if not args.plots_only:
            from gui_shots import gui_screenshots  # noqa: E402 (scripts/gui_shots.py)
            made += gui_screenshots(args.out, calib)
    for p in made:
        print(f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}  "
              f"{p.stat().st_size // 1024} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
