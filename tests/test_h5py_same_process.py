"""Issue 13, item 6: h5py and pscalib open the same store in one process, in either order.

HDF5 shares one open file per process and refused the second open with "file locking flag
values don't match", which pscalib reported as a damaged file. Now pscalib opens with
h5py's default flags (and matches other settings on a retry), so a notebook can keep an
``h5py.File`` of a store open while pscalib reads and changes it.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from pscalib import DCStore
from pscalib.exchange.verify import verify

T0, T = "2024-01-01T00:00:00", "2024-02-01T00:00:00"


@pytest.fixture
def store(tmp_path):
    p = tmp_path / "cspad-0001.h5"
    with DCStore(p, mode="x") as cs:
        cs.add_constants("pedestals", np.arange(4.0), T0)
    return p


def _add_and_read(p):
    with DCStore(p, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(4), T0)
    with DCStore(p) as cs:
        assert cs.get("pedestals", T).tolist() == [1.0] * 4


@pytest.mark.parametrize("kwargs", [{}, {"locking": False}, {"locking": True},
                                    {"locking": "best-effort"}])
def test_h5py_first_then_pscalib_reads_and_writes(store, kwargs):
    with h5py.File(store, "r", **kwargs) as f:
        with DCStore(store) as cs:
            assert cs.get("pedestals", T).tolist() == [0.0, 1.0, 2.0, 3.0]
        assert verify(store).ok
        _add_and_read(store)
        assert f.attrs["pscalib_format"] == "pscalib-dcs"  # the user's handle still reads


def test_pscalib_first_then_h5py(store):
    with DCStore(store) as cs:
        with h5py.File(store, "r") as f:  # h5py's defaults, as in a notebook
            assert list(f["pedestals"])
        assert cs.get("pedestals", T).tolist() == [0.0, 1.0, 2.0, 3.0]
        _add_and_read(store)
        assert cs.refresh()
        assert cs.get("pedestals", T).tolist() == [1.0] * 4


def test_in_a_fresh_process_via_dcs(store):
    """The real ``dcs`` code path, from a script holding an h5py handle open."""
    code = textwrap.dedent(f"""
        import h5py, numpy as np
        from pscalib.cli.main import main
        f = h5py.File({str(store)!r})
        np.save({str(store.parent / 'x.npy')!r}, np.zeros(4))
        try:
            main(["add", {str(store)!r}, "pedestals", {str(store.parent / 'x.npy')!r},
                  "--begin", "{T0}"])
        except SystemExit as e:
            assert e.code == 0, e.code
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "damaged" not in r.stderr and "added" in r.stdout
