"""Where as-of cannot answer: each case a specific error through the API and one line,
exit 1, no traceback from the real ``dcs get --asof`` (docs/reproducibility.rst,
"Limits")."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import (AsOfUnavailableError, DeprecatedVersionError, InvalidInputError,
                            PurgedVersionError, TagNotFoundError, VersionNotFoundError)
from pscalib.exchange import verify
from pscalib.timestamps import now_ns

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
S = 10**9
R = "20240101T000000Z_end"


def pair(ns):
    return divmod(ns, S)


def dcs_fails(path, *args, match: str) -> None:
    """``dcs get PATH pedestals -t 2024-02-01 ARGS`` fails with one line naming ``match``."""
    r = subprocess.run([DCS, "get", str(path), "pedestals", "-t", "2024-02-01", *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert match in r.stderr, r.stderr


def secs(ns: int) -> str:
    return f"{ns / S:.9f}"


def test_each_unanswerable_case_api_and_cli(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a", detname="cspad-0001") as cs:
        made = cs.tscfile()
        cs.add_constants("pedestals", np.zeros(2), "2024-01-01")
        t1 = now_ns()
        cs.add_constants("pedestals", np.ones(2), "2024-01-01")
        t2 = now_ns()
        cs["pedestals"].rangeobj(R).versobj(1).deprecate("bad")
        t3 = now_ns()
        ask = {"before the store": (made - S, "before"),
               "future": (now_ns() + 1000 * S, "future")}
        for t0, words in ask.values():
            with pytest.raises(AsOfUnavailableError, match=words):
                cs.get("pedestals", "2024-02-01", asof=pair(t0))
            dcs_fails(path, "--asof", secs(t0), match=words)
        # the forms answer as they did then
        assert cs.get("pedestals", "2024-02-01", asof=pair(t1))[0] == 0.0
        assert cs.get("pedestals", "2024-02-01", vers=1, asof=pair(t2))[0] == 0.0
        with pytest.raises(DeprecatedVersionError, match="deprecated as of"):
            cs.get("pedestals", "2024-02-01", vers=1, asof=pair(t3))
        dcs_fails(path, "--version", "1", "--asof", secs(t3), match="deprecated as of")
        with pytest.raises(VersionNotFoundError, match="had no version 2 as of"):
            cs.get("pedestals", "2024-02-01", vers=2, asof=pair(t1))
        dcs_fails(path, "--version", "2", "--asof", secs(t1), match="had no version 2")
        with pytest.raises(VersionNotFoundError, match="produced at or before"):
            cs.get("pedestals", "2024-02-01", tsprod=pair(made), asof=pair(t2))
    # purged: the version get returned then is gone (dcs purge --deprecated)
    r = subprocess.run([DCS, "purge", str(path), "--deprecated"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "as-of answers lost for get as of" in r.stdout  # what it makes unanswerable
    assert "; get with vers/tsprod/include as of" in r.stdout
    with DCStore(path) as cs:
        rec = [h.record for h in cs.backend.history(()) if h.action == "purge"]
        assert len(rec) == 1 and "can no longer be answered" in rec[0]
        with pytest.raises(PurgedVersionError, match="version 1 .*deleted at"):
            cs.get("pedestals", "2024-02-01", asof=pair(t1))
        _, info = cs.get("pedestals", "2024-02-01", asof=pair(t2), with_info=True)
        assert info["version"] == 2 and info["state"] == "valid" and "asof" in info
    dcs_fails(path, "--asof", secs(t1), match="no longer in")
    # a file of a pscalib without the version log: plain as-of still answers from the
    # change log, the other forms say what is missing
    with h5py.File(path, "r+") as f:
        del f["_versionlog"]
    with DCStore(path) as cs:
        assert cs.get("pedestals", "2024-02-01", asof=pair(t2))[0] == 1.0
        with pytest.raises(AsOfUnavailableError, match="no version log.*with vers as of"):
            cs.get("pedestals", "2024-02-01", vers=2, asof=pair(t2))
        with pytest.raises(AsOfUnavailableError, match="with include"):
            cs.get("pedestals", "2024-02-01", include="candidate", asof=pair(t2))
    dcs_fails(path, "--version", "2", "--asof", secs(t2), match="no version log")
    dcs_fails(path, "--candidates", "--asof", secs(t2), match="no version log")
    t4 = now_ns()
    with DCStore(path, mode="a") as cs:  # the next change starts it
        cs.add_constants("pedestals", np.full(2, 4.0), "2024-01-01")
        t5 = now_ns()
        with pytest.raises(AsOfUnavailableError, match="keeps its version log since"):
            cs.get("pedestals", "2024-02-01", vers=2, asof=pair(t4))
        assert cs.get("pedestals", "2024-02-01", vers=2, asof=pair(t5))[0] == 1.0
    dcs_fails(path, "--version", "2", "--asof", secs(t4), match="keeps its version log")
    # no change log at all, then one that begins later
    with h5py.File(path, "r+") as f:
        del f["_changelog"]
    dcs_fails(path, "--asof", secs(t5), match="has no change log")
    t6 = now_ns()
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.full(2, 6.0), "2024-01-01")
        with pytest.raises(AsOfUnavailableError, match="change log of .* begins at"):
            cs.get("pedestals", "2024-02-01", asof=pair(t6))
    dcs_fails(path, "--asof", secs(t6), match="begins at")
    assert verify(path).ok


def test_tag_errors_api_and_cli(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a", detname="cspad-0001") as cs:
        cs.add_constants("pedestals", np.zeros(2), "2024-01-01")
    with pytest.raises(TagNotFoundError, match="no tags"):
        DCStore(path).get("pedestals", "2024-02-01", tag="T")
    dcs_fails(path, "--tag", "T", match="has no tag 'T'")
    r = subprocess.run([DCS, "tag", "create", "T", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with pytest.raises(InvalidInputError, match="tag takes no vers"):
        DCStore(path).get("pedestals", "2024-02-01", vers=1, tag="T")
    dcs_fails(path, "--tag", "T", "--version", "1", match="tag takes no vers")
    dcs_fails(path, "--tag", "T", "--asof", secs(now_ns()), match="either asof or tag")
