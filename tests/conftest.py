import compileall
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
GEOMETRY_DIR = SHARED / "geometry"
LEGACY_DIR = SHARED / "legacy-dcs"


def pytest_configure(config):
    """Compile pscalib's bytecode once, before any test runs.

    Where PYTHONDONTWRITEBYTECODE is set, Python never caches bytecode, so each of the
    hundreds of real ``dcs`` processes the tests start would recompile every pscalib module
    (about half a second each on a loaded 2-core machine). Python still *reads* bytecode
    that exists, so one compile here makes every later start-up cheap.
    """
    if not hasattr(config, "workerinput"):  # the pytest-xdist controller (or a plain run)
        compileall.compile_dir(str(ROOT / "pscalib"), quiet=2)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: at least 3 workers. Most tests wait on real subprocesses (``dcs``,
    servers, browsers, mpirun), so even a 2-core machine keeps 3 workers busy.
    (``--dist loadscope`` in setup.cfg keeps a module's tests on one worker, so a module's
    fixtures - stores, servers, browsers - are built once, not once per worker.)"""
    return min(8, max(3, os.cpu_count() or 1))


def stable_id(val, width: int = 60) -> str:
    """``repr(val)`` without memory addresses (cut to ``width``), so that every pytest-xdist
    worker collects the same test ids."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(val))[:width]


def pytest_make_parametrize_id(config, val, argname):
    text = repr(val)
    return stable_id(val) if " at 0x" in text else None


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
