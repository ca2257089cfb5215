"""Smoke test of scripts/bench.py at tiny sizes: it runs and prints every figure.

Speed itself is judged by running the benchmark (docs/performance.rst), never here.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench.py"

FIGURES = [
    r"get cspad pedestals \(2, 18, 38\) float64 .*/ raw h5py read",
    r"get epix10ka2m pedestals .*/ raw h5py read",
    r"get jungfrau gains .*/ raw h5py read",
    r"get\(out=\) jungfrau gains .*/ preadv into the same buffer",
    r"open store \+ get of a 4x4 float64 / raw h5py open \+ read \(the file opened before",
    r"open store \+ get of a 4x4 float64 / raw h5py open \+ read \(first open of the file",
    r"open \+ info\(\) \+ dictpars\(\) \+ history\(\) on a .* store / same on a .* one",
    r"dcs print on a .* store / same on a .* one",
    r"get with 100 ranges / with 10 ranges",
    r"open \+ first get with 100 ranges / with 10 ranges",
    r"add one 4x4 version \(a whole transaction\) / sqlite insert \+ np.save \+ fsync",
    r"100 ranges \(4x4 uint32\) added in one transaction",
    r"file bytes per small range beyond payload \(100 ranges",
    r"one small change \(add a 4x4\) to a .* store / plain copy \+ fsync",
    r"file size beyond payload bytes, 4 versions of cspad pedestals",
    r"get by run / get by time",
    r"get_all by run \(5 ctypes\) / one get by time",
    r"get\(tag=\) / get",
    r"get\(asof=\) / get",
    r"get\(vers=1, asof=\) / get\(vers=1\)",
    r"get cspad pedestals / load the same array from NDArrIO text",
    r"resolve an alias, file of \d+ records / of \d+ records",
    r"add one \d+ MB version to a .* GB store \(in place\) / write \d+ MB \+ fsync",
    r"extra disk while committing one \d+ MB version .* / the change",
]


def test_bench_tiny_prints_every_figure(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--tiny", "--tmpdir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("machine: ") and "h5py" in out and "HDF5" in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1].strip() == "figure"
    body = rows[1:]
    assert len(body) == len(FIGURES)
    for pattern, row in zip(FIGURES, body):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.search(pattern, cells[0]), (pattern, cells[0])
        assert len(cells) == 6
        assert re.fullmatch(r"[0-9.e+-]+( %| s| B)?", cells[3]), cells  # a number
        assert cells[5] in ("PASS", "FAIL", "report")
    ndarrio = [r for r in body if "NDArrIO" in r]
    assert len(ndarrio) == 1 and ndarrio[0].endswith("| report |")  # a figure without target
    assert "targets failed" in out
    # everything it built is gone: only the (empty) directory we gave remains
    assert list(tmp_path.iterdir()) == []


def test_bench_check_exit_status(tmp_path):
    """--check turns a failed target into exit status 1 (tiny sizes fail some targets:
    ratios of microsecond operations on tiny arrays are not what the targets are about)."""
    # one figure with targets is enough here: every figure runs in the test above
    proc = subprocess.run([sys.executable, str(BENCH), "--tiny", "--check", "--repeat", "1",
                           "--only", "open", "--tmpdir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    failed = int(re.search(r"(\d+) of \d+ targets failed", proc.stdout).group(1))
    assert proc.returncode == (1 if failed else 0), proc.stdout + proc.stderr
