"""verify: check a store file's structure, checksums, indexes, metadata and alias references.

The file is checked read-only by its backend (:mod:`pscalib.store.nativecheck` for native
stores), so a damaged file can be inspected and is never modified; every problem is
reported with the path of the object it concerns. Alias files beside the store, and ranges
added by runs against the run table, are checked here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from ..aliases import AliasFile
from ..errors import PscalibError, StoreNotFoundError
from ..locations import ALIAS_FILE_NAME, store_file_in
from ..runs import check_store_runs
from ..store import DCStore
from ..store.backends import WRITABLE
from ..store.nativecheck import ERROR, WARNING, Problem, VerifyReport
from ..txn.snapshot import frozen

__all__ = ["Problem", "VerifyReport", "verify", "ERROR", "WARNING"]


def _check_aliases(path: Path, rep: VerifyReport) -> None:
    """Alias records in ``<calib>/<dettype>/aliases.txt`` beside the store must point to
    detnames that have a store file in that calib directory."""
    afile = path.parent / ALIAS_FILE_NAME
    if not afile.is_file():
        return
    calib = path.parent.parent
    try:
        af = AliasFile.load(afile)
    except PscalibError as exc:
        rep.add(str(afile), f"alias file cannot be read: {exc}")
        return
    for rec in af.records:
        try:
            target = store_file_in(calib, rec.detname)
        except PscalibError as exc:
            rep.add(f"{afile}:{rec.line}", f"alias {rec.alias!r}: {exc}")
            continue
        if not target.is_file():
            rep.add(f"{afile}:{rec.line}", f"alias {rec.alias!r} points to {rec.detname!r}, "
                    f"which has no store ({target} does not exist)")


def _check_runs(path: Path, rep: VerifyReport) -> None:
    """Ranges added by runs must still cover what the run table says those runs are."""
    try:
        with DCStore(path) as cs:
            found = check_store_runs(cs)
    except PscalibError as exc:  # the structural checks above already report damage
        rep.notes.append(f"run check skipped: {exc}")
        return
    for where, msg, is_error in found:
        rep.add(f"/{where}", msg, ERROR if is_error else WARNING)


def verify(store: Union[str, Path, Any], *, checksums: bool = True,
           aliases: bool = True, runs: bool = True) -> VerifyReport:
    """Check a store file and return every problem found; never modifies the file.

    Parameters
    ----------
    store
        Path of a store file, or an open :class:`~pscalib.store.DCStore` (its file is
        checked as it is on disk).
    checksums
        Recompute every payload's sha256 (reads all payloads once; hard-linked payloads
        are read once).
    aliases
        Check alias files in the store's directory (see docs/exchange.rst).
    runs
        Check that ranges added by runs (dictpars ``runbegin``/``runend``/``experiment``)
        still agree with the experiment's run table (:func:`pscalib.runs.check_store_runs`).

    Returns
    -------
    VerifyReport
        ``report.ok`` is False if any error was found; ``report.problems`` lists them with
        their HDF5 paths.

    Raises
    ------
    StoreNotFoundError
        The file does not exist.
    """
    path = Path(getattr(store, "path", store))
    rep = VerifyReport(str(path))
    if not path.is_file():
        raise StoreNotFoundError(f"store file {path} does not exist")
    with frozen(path) as snap:  # an in-place commit meanwhile never shows torn pages
        WRITABLE.verify_file(snap, rep, checksums)
    if aliases:
        _check_aliases(path, rep)
    if runs and rep.ok:
        _check_runs(path, rep)
    return rep
