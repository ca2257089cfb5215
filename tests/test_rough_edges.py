"""Issue 13, rough edges: verify wording, settings validation, version paths, read-only
mode checked first, control characters in history output, DCStore docstring."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import ReadOnlyError

T0, T = "2024-01-01T00:00:00", "2024-02-01T00:00:00"


def _dcs(args, cwd, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    e.update(env)
    return subprocess.run(["dcs", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=e, stdin=subprocess.DEVNULL)


@pytest.fixture
def store(tmp_path):
    p = tmp_path / "calib" / "cspad" / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pedestals", np.arange(4.0), T0)
        cs.add_constants("pedestals", np.ones(4), T0, make_default=False)
    return p


def test_verify_wording_and_plurals(store, tmp_path):
    r = _dcs(["verify", str(store)], tmp_path)
    assert r.returncode == 0
    assert "1 ctype, 1 range, 2 versions, 2 payloads read; 0 errors, 0 warnings" in r.stdout
    bad = tmp_path / "cspad-0002.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    r = _dcs(["verify", str(bad)], tmp_path)
    assert r.returncode == 1
    assert "FAILED (1 error, 0 warnings)" in r.stdout and "(;" not in r.stdout


@pytest.mark.parametrize("name,value,word", [
    ("PSCALIB_LOCK_TIMEOUT", "nan", "finite"), ("PSCALIB_LOCK_TIMEOUT", "inf", "finite"),
    ("PSCALIB_FILE_MODE", "7777", "setuid"), ("PSCALIB_FILE_MODE", "0444", "0600"),
    ("PSCALIB_DIR_MODE", "0", "0700")])
def test_bad_settings_are_refused_when_creating(tmp_path, name, value, word):
    np.save(tmp_path / "x.npy", np.ones(2))
    r = _dcs(["add", "calib/cspad/cspad-0001.h5", "pedestals", "x.npy", "-b", T0,
              "--create"], tmp_path, **{name: value})
    assert r.returncode == 1, r.stdout + r.stderr
    assert name in r.stderr and word in r.stderr and "internal error" not in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "calib" / "cspad" / "cspad-0001.h5").exists()


def test_version_paths_v2(store, tmp_path):
    rng = "20240101T000000Z_end"
    r = _dcs(["set-default", str(store), "pedestals", "v2", "--range", rng], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _dcs(["par", str(store), f"pedestals/{rng}/v2", "set", "k=1"], tmp_path)
    assert r.returncode == 0, r.stderr
    with DCStore(store) as cs:
        assert cs.get("pedestals", T, "v2").tolist() == [1.0] * 4
        assert cs.get("pedestals", T, "V0002").tolist() == [1.0] * 4
        assert cs["pedestals"].ranges()[0].versobj("v2").par("k") == 1


def test_add_on_read_only_store_says_read_only(store):
    with DCStore(store) as cs:
        for data in ([1, 2, 3], "text", object()):
            with pytest.raises(ReadOnlyError):
                cs.add_constants("pedestals", data, T0)


def test_history_escapes_control_characters(store, tmp_path):
    with DCStore(store, mode="a") as cs:
        cs.add_history("ring\x07 and return\r over\x1b[2J")
    r = _dcs(["history", str(store)], tmp_path)
    assert r.returncode == 0
    assert "\x07" not in r.stdout and "\r" not in r.stdout and "\x1b" not in r.stdout
    assert "ring\\x07 and return\\r over\\x1b[2J" in r.stdout


def test_docstring_says_what_none_does():
    assert "search order" in DCStore.__doc__ and "workspace, then the repository" in " ".join(
        DCStore.__doc__.split())


def test_lock_timeout_names_the_holder(store, tmp_path):
    import sys
    import textwrap
    code = textwrap.dedent(f"""
        import time
        from pscalib import DCStore
        cs = DCStore({str(store)!r}, mode="a")
        with cs.transaction():
            print("HOLDING", flush=True)
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        r = _dcs(["par", str(store), "set", "k=1"], tmp_path, PSCALIB_LOCK_TIMEOUT="0.5")
        assert r.returncode == 1
        assert f"pid {holder.pid} on host" in r.stderr and "user" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_write_commands_json_and_reasons(store, tmp_path):
    import json
    rng = "20240101T000000Z_end"
    np.save(tmp_path / "x.npy", np.full(4, 7.0))
    r = _dcs(["add", str(store), "pedestals", "x.npy", "-b", T0, "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == 3 and doc["default"] and not doc["unchanged"]
    r = _dcs(["set-default", str(store), "pedestals", "1", "--range", rng, "-m",
              "v3 was bad", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["default"] == 1
    r = _dcs(["delete", str(store), "pedestals", "--range", rng, "--version", "3", "--yes",
              "-m", "bad calibration run", "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deleted"] == f"pedestals/{rng}/v0003"
    r = _dcs(["history", str(store), "-r"], tmp_path)
    assert "v3 was bad" in r.stdout and "bad calibration run" in r.stdout
