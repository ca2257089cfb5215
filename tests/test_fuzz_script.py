"""scripts/fuzz_files.py: a small run finds no failures; the harness itself catches crashes,
hangs and foreign exceptions (real worker processes, real damaged files)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz_files.py"


def run(*args, timeout=240):
    return subprocess.run([sys.executable, str(SCRIPT), "--quiet", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_small_run_has_no_failures():
    r = run("--cases", "40", "--seed", "3", "--timeout", "20", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^fuzz_files: 40 cases", r.stdout, re.M)
    assert "failures: 0 (exceptions 0, crashes 0, timeouts 0)" in r.stdout
    assert "inputs unchanged: yes" in r.stdout
    # damaged files were really met: at least one pscalib format error came out
    assert re.search(r"^\s+\d+\s+(StoreFormatError|CorruptStoreError|LegacyFormatError)$",
                     r.stdout, re.M), r.stdout


@pytest.mark.parametrize("kind,outcome", [("crash", "crashes 1"), ("hang", "timeouts 1"),
                                          ("exception", "exceptions 1")])
def test_harness_reports_misbehaviour(kind, outcome, tmp_path):
    r = run("--cases", "3", "--seed", "1", "--timeout", "4", "--jobs", "1", "--legacy", "none",
            "--inject", kind, "--keep", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failures: 1" in r.stdout and outcome in r.stdout, r.stdout
    assert "inputs unchanged: yes" in r.stdout
    if kind == "crash":
        assert "SIGSEGV" in r.stdout
    if kind == "exception":
        assert "injected non-pscalib exception" in r.stdout
    assert len(list(tmp_path.iterdir())) == 1  # the damaged file is kept for reproduction
