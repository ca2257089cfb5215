"""Format 3: the one history table of a store (docs/format.rst, "Format 3")."""
import time

import h5py
import numpy as np
import pytest

from pscalib import DCStore
from pscalib.errors import CorruptStoreError
from pscalib.exchange.verify import verify


def test_records_belong_to_their_object_and_go_with_it(store_path):
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(3), 0, 10, comment="first")
        cs["pedestals"].rangeobj(0).add_history("looked at it")
        cs["pedestals"].del_range((0, 10))
        cs.add_constants("pedestals", np.zeros(3), 0, 10, comment="again")
        rg = cs["pedestals"].rangeobj(0)
        recs = rg.history_records()
        # the deleted range's records went with it; the new range starts afresh
        assert [r.action for r in recs] == ["add_version"]
        assert recs[-1].record.endswith("- again")
        trecs = cs["pedestals"].history_records()
        assert [r.action for r in trecs] == ["add_range", "del_range", "add_range"]
        assert "re-created" in trecs[-1].record
    with h5py.File(store_path, "r") as f:
        paths = {p.decode() for p in f["_history"].fields("path")[...]}
        assert "_history" not in f["pedestals"] and "pedestals" in paths
    assert verify(store_path, aliases=False).ok


def test_damaged_string_length_is_refused_not_converted(store_path):
    """A damaged vlen length made HDF5 allocate and clear gigabytes (fuzz case)."""
    with DCStore(store_path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(3), 0, comment="x")
    with h5py.File(store_path, "r") as f:
        ds = f["_history"]
        off = ds.id.get_offset()  # None: chunked; find the chunk through its storage
        info = ds.id.get_chunk_info(0)
        assert off is None and info.byte_offset > 0
        where = info.byte_offset + 8  # row 0, field 'user': its u4 length
    with open(store_path, "r+b") as fh:
        fh.seek(where)
        fh.write((0x7FFFFFF0).to_bytes(4, "little"))
    t = time.monotonic()
    with DCStore(store_path) as cs:
        with pytest.raises(CorruptStoreError, match="longer than the file"):
            cs.history_records()
    assert time.monotonic() - t < 10
    assert not verify(store_path, aliases=False).ok
