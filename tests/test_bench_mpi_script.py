"""Smoke test of scripts/bench_mpi.py at a tiny size: real mpirun, every figure printed.

The figures themselves come from running the benchmark (docs/mpi.rst), never from here.
"""
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench_mpi.py"


def test_bench_mpi_tiny_prints_both_modes(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--ranks", "3", "--repeat", "2",
                           "--tmpdir", str(tmp_path)], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "HDF5" in lines[0]
    assert lines[1] == "command: python scripts/bench_mpi.py --ranks 3 --repeat 2 --tmpdir " \
        + str(tmp_path)
    assert lines[2].startswith("ranks: 3 on ")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| tiny")]
    assert [r[1] for r in rows] == ["file", "mpi"]
    for r in rows:
        assert re.fullmatch(r"[0-9.]+ ms", r[2]) and re.fullmatch(r"[0-9.]+ MiB", r[3])
        assert re.fullmatch(r"-?[0-9.]+ MiB", r[4])
        assert re.fullmatch(r"[0-9.]+", r[5]), r
    assert rows[0][5] == "1.000"  # the baseline against itself
