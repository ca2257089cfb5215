"""Issue 13, item 4: ``refresh()`` identifies the open file by its descriptor, not its path.

A writer process commits in a tight loop while this process opens the store again and
again. Each open must record the identity of the file it actually opened (fstat of the
HDF5 file descriptor); stat-ing the path after the open recorded the *next* file in about
6 % of such opens, and refresh() then answered False with newer data on disk.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from pscalib import DCStore

WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from pscalib import DCStore
    cs = DCStore(sys.argv[1], mode="a")
    end = time.monotonic() + float(sys.argv[2])
    i = 0
    while time.monotonic() < end:
        i += 1
        cs.add_constants("pedestals", np.full(4, float(i)), 1700000000 + i)
""")


def _nversions(cs: DCStore) -> int:
    return sum(len(r) for c in cs for r in cs[c])


def test_open_records_the_opened_file_and_refresh_sees_every_commit(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="x") as cs:
        cs.add_constants("pedestals", np.zeros(4), 1_600_000_000)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "6"])
    stores, opens, wrong = [], 0, 0
    try:
        time.sleep(0.3)
        while writer.poll() is None:
            cs = DCStore(path)
            opens += 1
            st = os.fstat(cs.backend.f.id.get_vfd_handle())
            wrong += cs._stat[:2] != (st.st_dev, st.st_ino)  # the file really opened
            stores.append(cs)
            if len(stores) > 50:  # keep the last ones open for the refresh check
                stores.pop(0).close()
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert opens > 100
    assert wrong == 0, f"{wrong} of {opens} opens recorded another file than the opened one"
    with DCStore(path, mode="a") as final:  # one more commit: every kept store is stale
        final.add_constants("pedestals", np.ones(4), 1_500_000_000)
        n = _nversions(final)
    stale = 0
    for cs in stores:
        if _nversions(cs) != n:
            stale += 1
            assert cs.refresh(), "refresh() missed a commit"
            assert _nversions(cs) == n
        cs.close()
    assert stale == len(stores)
