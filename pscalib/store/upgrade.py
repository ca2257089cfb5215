"""Convert a native store to the newest format in place (``dcs upgrade``).

Format 3 (docs/format.rst) keeps the history of every object in one root table; files of
formats 1 and 2 keep one ``_history`` dataset per object. pscalib reads and writes every
format as it is, so upgrading is never needed to use a file; it makes later changes
cheaper (docs/design/engine-bookkeeping.rst) and stops older pscalib releases from
opening the file. The conversion is one transaction: every type, range, version, payload,
parameter, state, tag, change-log row and tombstone stays as it was, every object keeps
its history records (time, user, host, action and text), and the root gets one more record,
``format_upgrade``. The file is rewritten compactly on commit (the space of the per-object
datasets is given back).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

from ..errors import StoreFormatError
from . import layout as L

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["upgrade_store"]


def upgrade_store(store: "DCStore") -> Tuple[int, int]:
    """Upgrade ``store`` (open with mode ``'a'``) to the newest format.

    Returns
    -------
    (int, int)
        The format version before and after; equal when there was nothing to do.

    Raises
    ------
    StoreFormatError
        The store is not in the native format (a legacy DCS file: ``dcs import-legacy``
        converts those into a new native store).
    """
    if not store.backend.writable_format:
        raise StoreFormatError(f"{store.path} is in {store.backend.format_description}, "
                               f"which 'dcs upgrade' does not convert: use 'dcs "
                               f"import-legacy' to make a native store of it")
    before = store.format_version()
    if before >= L.FORMAT_TABLE:  # format 4 (in-place engine) has the table too
        return before, before
    with store.transaction():
        w = store.writer()
        if w.backend.upgrade_to_table():
            w.append_history((), "format_upgrade",
                             f"format_version {before} -> {L.FORMAT_TABLE} (one history "
                             f"table for the store; older pscalib releases cannot open it)")
            w.compact_on_commit()
    return before, store.format_version()
