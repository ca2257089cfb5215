import subprocess
import sys

from conftest import ROOT


def test_quickstart_runs(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pedestals at 2024-06-15T08:00:00+00:00: shape (32, 185, 388)" in out.stdout
    assert (tmp_path / "cspad" / "cspad-0001.h5").is_file()
