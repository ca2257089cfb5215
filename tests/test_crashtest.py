"""Runs scripts/crashtest.py (SIGKILLed real writers) with a small N."""
import re
import subprocess
import sys

from conftest import ROOT


def test_crashtest_small(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "crashtest.py"), "--n", "5",
                        "--seed", "7", "--size", "100000", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^crashtest: 5 kills", r.stdout, re.M), r.stdout
    assert "failures: 0" in r.stdout
    acked = int(re.search(r"transactions acknowledged: (\d+)", r.stdout).group(1))
    assert acked > 0, r.stdout  # the writer really committed before it was killed
    assert re.search(r", 0 remaining$", r.stdout, re.M), r.stdout
    assert not [p for p in tmp_path.iterdir() if ".pscalib-tmp-" in p.name]
