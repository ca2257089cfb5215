import os
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
GEOMETRY_DIR = SHARED / "geometry"
LEGACY_DIR = SHARED / "legacy-dcs"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's own configuration."""
    for name in list(os.environ):
        if name.startswith("PSCALIB_"):
            monkeypatch.delenv(name)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "calib" / "cspad" / "cspad-0001.h5"


@pytest.fixture
def geometry_files():
    if not GEOMETRY_DIR.is_dir():
        pytest.skip(f"shared geometry data not found at {GEOMETRY_DIR}")
    return sorted(GEOMETRY_DIR.glob("*.data"))


def file_digest(path) -> str:
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def small_fs():
    """A real 20 MiB tmpfs (needs root); yields its directory. Used for full-disk tests."""
    d = Path(tempfile.mkdtemp(prefix="pscalib-smallfs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the RLIMIT_FSIZE "
                    f"subprocess tests cover full disks")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        d.rmdir()
