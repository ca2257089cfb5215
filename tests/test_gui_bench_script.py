"""scripts/bench_gui.py runs (tiny mode) and reports the page-load numbers."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("starlette", reason="needs the server extra")


def test_bench_gui_tiny():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gui.py"),
                          "--ranges", "20", "--repeat", "1", "--no-browser"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for label in ("health (baseline)", "api tree", "store page, cold", "store page, warm",
                  "tag page"):
        assert label in out
    assert "target: store page under 1 s" in out
