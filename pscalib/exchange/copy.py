"""copy / squeeze: make a new, self-contained store from a selection of another one.

Use case: an experiment's workspace file made from the repository file, holding only the
calibration types and time window the experiment needs.

How: in one transaction on the (new) destination, the source file is copied, everything not
selected is deleted, the payload index is rebuilt, a ``copy_from`` history record is added
and the file is rewritten compactly on commit. So every kept object keeps its attributes,
dictpars, history records (with their original times and users) and hard-linked payloads
exactly; the result is verified before it appears under its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import (CtypeNotFoundError, IntegrityError, InvalidInputError, StoreExistsError,
                      StoreFormatError)
from ..names import validate_ctype
from ..paths import store_file_in
from ..store import DCStore
from ..store import layout as L
from ..store.backend import WritableBackend
from ..store.backends import WRITABLE
from ..store.heapcheck import check_file
from ..store.changelog import record_changes
from ..store.tags import keep_whole_tags
from ..timestamps import OPEN_END, TimeLike, format_ns, now_ns, to_ns, to_ns_or_none
from ..txn.atomic import os_error
from ..txn.snapshot import consistent_copy
from ..txn.transaction import FileTransaction
from .verify import verify

__all__ = ["CopyResult", "copy_store", "dest_path", "overlaps"]


@dataclass
class CopyResult:
    """What :func:`copy_store` wrote."""
    source: str
    dest: str
    ctypes: List[str] = field(default_factory=list)
    ranges: int = 0
    versions: int = 0
    selection: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    def format(self) -> str:
        return (f"copied {self.source} -> {self.dest}: {len(self.ctypes)} calibration types "
                f"({', '.join(self.ctypes) or 'none'}), {self.ranges} ranges, {self.versions} "
                f"versions [{self.selection}]")


def dest_path(dest: Union[str, Path], detname: str) -> Path:
    """The destination file: ``dest`` itself, or the store of ``detname`` in calib dir ``dest``."""
    p = Path(dest)
    if p.is_dir() or (p.suffix != ".h5" and not p.exists()):
        return store_file_in(p, detname)
    return p


def overlaps(tsbegin: int, tsend: int, begin: Optional[int], end: Optional[int]) -> bool:
    """True if range ``[tsbegin, tsend)`` is valid at some time in ``[begin, end]``."""
    lo = -(2**63) if begin is None else begin
    hi = OPEN_END if end is None else end
    return tsbegin <= hi and tsend > lo


def _selection_text(ctypes, begin, end, defaults_only) -> str:
    parts = [f"ctypes={','.join(ctypes) if ctypes else 'all'}"]
    if begin is not None or end is not None:
        parts.append(f"window {format_ns(begin) if begin is not None else '-inf'} .. "
                     f"{format_ns(end) if end is not None else 'end'}")
    parts.append("default versions only" if defaults_only else "all versions")
    return "; ".join(parts)


def _prune(be: WritableBackend, ctypes: Optional[Sequence[str]], begin: Optional[int],
           end: Optional[int], defaults_only: bool, res: CopyResult) -> None:
    have = be.ctypes()
    if ctypes is not None:
        missing = [c for c in ctypes if c not in have]
        if missing:
            raise CtypeNotFoundError(f"{res.source} has no calibration type "
                                     f"{', '.join(map(repr, missing))}; it has "
                                     f"{', '.join(have) or 'none'}")
    for c in have:
        if ctypes is not None and c not in ctypes:
            be.delete_ctype(c)
            continue
        tab = be.range_table(c)
        for b, e, d in zip(tab.tsbegin.tolist(), tab.tsend.tolist(), tab.defaultv.tolist()):
            if not overlaps(b, e, begin, end) or (defaults_only and d == 0):
                be.delete_range(c, b, e)
                continue
            vs = be.versions(c, b, e)
            if defaults_only:
                for v in vs:
                    if v != d:
                        be.delete_version((c, b, e, v))
                vs = [d]
            res.ranges += 1
            res.versions += len(vs)
        res.ctypes.append(c)


def copy_store(src: Union[str, Path, DCStore], dest: Union[str, Path], *,
               ctypes: Optional[Sequence[str]] = None, begin: Optional[TimeLike] = None,
               end: Optional[TimeLike] = None, defaults_only: bool = False,
               lock_timeout: Optional[float] = None, comment: Optional[str] = None
               ) -> CopyResult:
    """Copy a selection of store ``src`` into the new store file ``dest``.

    Parameters
    ----------
    src
        Source store (path or open DCStore; native format).
    dest
        New store file, or a calib directory (the file is ``<dest>/<dettype>/<detname>.h5``).
        It must not exist yet: bring changes into an existing store with
        :func:`~pscalib.exchange.merge.merge_stores`.
    ctypes
        Calibration types to copy (default: all).
    begin, end
        Time window: only ranges valid at some time in ``[begin, end]`` are copied
        (either may be None: unbounded).
    defaults_only
        Copy only each range's default version (ranges without versions are dropped).
    lock_timeout
        Seconds to wait for the destination's lock.
    comment
        Text added to the ``copy_from`` history record.

    Returns
    -------
    CopyResult

    Raises
    ------
    StoreExistsError
        ``dest`` already exists.
    CtypeNotFoundError
        A requested calibration type is not in ``src``.
    IntegrityError
        The copy failed verification (damaged payloads in the source); nothing is written.
    """
    b = None if begin is None else to_ns(begin)
    e = to_ns_or_none(end)
    if b is not None and e is not None and e < b:
        raise InvalidInputError(f"window end {format_ns(e)} is before its begin {format_ns(b)}")
    if ctypes is not None:
        ctypes = [validate_ctype(c) for c in ctypes]
    store = src if isinstance(src, DCStore) else DCStore(Path(src))
    try:
        if not store.backend.writable_format:
            raise StoreFormatError(f"{store.path} is in {store.backend.format_description}; "
                                f"convert it with 'dcs import-legacy' before copying")
        src_path = Path(store.path)
        detname = store.detname()
        src_created = store.tscfile()
    finally:
        if not isinstance(src, DCStore):
            store.close()
    out = dest_path(dest, detname)
    if out.exists():
        raise StoreExistsError(f"{out} already exists; use 'dcs merge' to bring constants "
                               f"into an existing store")
    if not out.parent.is_dir():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(exc, "create directory", out.parent) from None
    sel = _selection_text(ctypes, b, e, defaults_only)
    res = CopyResult(str(src_path), str(out), selection=sel)
    txn = FileTransaction(out, lock_timeout, rewrite=WRITABLE.rewrite_file)
    txn.begin()
    try:
        if txn.existed:
            raise StoreExistsError(f"{out} was created by another process; use 'dcs merge'")
        try:
            consistent_copy(src_path, txn.tmp)
        except OSError as exc:
            raise os_error(exc, "copy", src_path) from None
        check_file(txn.tmp, name=src_path)  # HDF5 would hang on a damaged string heap
        be = WRITABLE.open_for_write(txn.tmp)
        try:
            be.check_safe(src_path)  # the copy must not keep references to other files
            _prune(be, ctypes, b, e, defaults_only, res)
            dropped = keep_whole_tags(be)
            record_changes(be)  # the copy's log continues the source's, pruning included
            be.rebuild_payload_index()
            be.set_meta(L.A_TSCFILE, np.int64(now_ns()))
            rec = (f"copied from {src_path} ({detname}, file created "
                   f"{format_ns(src_created)}): {sel}; kept {len(res.ctypes)} ctypes, "
                   f"{res.ranges} ranges, {res.versions} versions"
                   + (f"; tags not kept (versions left out): {', '.join(dropped)}"
                      if dropped else ""))
            be.append_history((), "copy_from", rec + (f" - {comment}" if comment else ""))
            be.finish()
        except BaseException:
            be.close()
            raise
        report = verify(txn.tmp, aliases=False)  # valid before it gets its name
        if not report.ok:
            raise IntegrityError(f"the copy of {src_path} failed verification, nothing was "
                                 f"written: " + "; ".join(str(p) for p in report.errors[:5])
                                 + " - run 'dcs verify' on the source")
        txn.commit(compact=True)
    except BaseException:
        txn.abort()
        raise
    return res
