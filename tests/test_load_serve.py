"""scripts/load_serve.py at a small size: real dcs serve, nginx (static and proxy_cache) and
Squid on 127.0.0.1. Checks what the script reports, not speed (that is the script's job):
no errors, every phase ran, and with a cache in front pscalib sees at most one request per
distinct payload. nginx and squid are Debian packages that .ci/run installs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'pscalib[server]'")

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "load_serve.py"


def test_load_script_small_run():
    for exe in ("nginx", "squid"):
        assert shutil.which(exe) or Path(f"/usr/sbin/{exe}").exists(), \
            f"{exe} is missing: apt-get install nginx squid (as .ci/run does)"
    r = subprocess.run([sys.executable, str(SCRIPT), "--clients", "3", "--ops", "20",
                        "--distinct", "4", "--time-limit", "30", "--rounds", "2", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    res = {(x["phase"], x["mode"]): x for x in doc["results"]}
    assert set(res) == {("nginx-static", "same"), ("direct", "same"), ("direct", "diff"),
                        ("nginx-cache", "same"), ("nginx-cache", "diff"),
                        ("squid", "same"), ("squid", "diff")}
    for key, x in res.items():
        n = 60 * x["rounds"]
        assert x["rounds"] == (2 if key in (("nginx-static", "same"), ("direct", "same")) else 1)
        assert x["errors"] == 0 and x["ops"] == n, (key, x)
        assert x["requests"] == 2 * n and x["bytes"] > 0 and x["p99_ms"] >= x["p50_ms"] > 0
    assert res[("nginx-static", "same")]["reached_pscalib"] == 0
    for mode in ("same", "diff"):  # every direct request is counted by the server
        x = res[("direct", mode)]
        assert x["reached_pscalib"] == x["requests"] and x["reached_payloads"] == x["ops"]
    for phase in ("nginx-cache", "squid"):
        same, diff = res[(phase, "same")], res[(phase, "diff")]
        assert same["reached_payloads"] <= 1 and same["reached_lookups"] <= 1, same
        assert same["reached_payloads"] + diff["reached_payloads"] <= 4, diff
        assert same["reached_lookups"] + diff["reached_lookups"] <= 4, diff
    assert len(doc["ratios"]) == 2 and doc["direct_vs_nginx_static"] > 0
