"""Convert files of the original LCLS DCS into native pscalib stores, exactly.

What is kept (checked before the new store is committed, so an import is exact or nothing):

- every array bit-identical (same dtype, shape and bytes), every text byte-identical;
- every parameter of the store, types, ranges and versions, with its type;
- every history record with its time stamp (and user/host when the legacy text named them,
  see :mod:`pscalib.store.legacy`), in time order, action ``'legacy'``;
- version numbers, production times (``tsprod``), each range's default version (a legacy
  ``versdef`` 0, "the highest version", is stored as that version's number), ``tscfile``,
  ``predecessor`` and ``successor``.

Range ends: legacy ends are inclusive (``begin <= t <= end``), native ones half-open, so a
legacy end ``e`` becomes ``tsend = e + 1`` ns; open ends stay open. ``get`` therefore gives the
same constants at every time before and after the import.

The new store gets two records of its own at the root: ``create_store`` (when the file was
made) and ``import_legacy`` (from which file, and the end conversion).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Union

import numpy as np

from ..errors import (InvalidInputError, IntegrityError, LegacyFormatError, PscalibError,
                      StoreExistsError)
from ..legacy import LegacyBackend
from ..names import validate_detname
from ..paths import store_file_in
from ..store import DCStore
from ..store import layout as L
from ..store.backend import Backend, Key, WritableBackend
from ..store.backends import open_backend
from ..store.payload import checksum, normalize_payload, payloads_equal
from ..store.values import pars_equal
from ..timestamps import OPEN_END, TS_MAX

__all__ = ["ImportSummary", "open_legacy", "legacy_detname", "native_key", "import_legacy",
           "import_legacy_files", "compare_backends"]

PathLike = Union[str, Path]


class ImportSummary(NamedTuple):
    """What one import wrote."""
    source: Path
    store: Path
    detname: str
    ctypes: int
    ranges: int
    versions: int


def open_legacy(src: PathLike) -> LegacyBackend:
    """Open ``src`` and check it completely against the legacy layout.

    Raises
    ------
    InvalidInputError
        ``src`` is a native store (nothing to import).
    LegacyFormatError
        ``src`` breaks the layout (the message names the object).
    """
    be = open_backend(Path(src))
    if not isinstance(be, LegacyBackend):
        desc = be.format_description
        be.close()
        raise InvalidInputError(f"{src} is already a pscalib store ({desc}); nothing to import")
    try:
        be.check()
    except BaseException:
        be.close()
        raise
    return be


def legacy_detname(be: LegacyBackend) -> str:
    """The detector name of a legacy file, checked against its dettype and detid."""
    meta = be.meta()
    name = meta[L.A_DETNAME]
    expected = f"{meta[L.A_DETTYPE]}-{meta[L.A_DETID]}"
    if name != expected:
        raise LegacyFormatError(f"{be.filename}: /detname is {name!r} but /dettype and /detid "
                                f"give {expected!r}; cannot tell which name to use")
    try:
        return validate_detname(name)
    except PscalibError as exc:
        raise LegacyFormatError(f"{be.filename}: /detname cannot name a pscalib store: "
                                f"{exc}") from None


def native_key(key: Key) -> Key:
    """The native key of a legacy key: an inclusive end ``e`` becomes ``e + 1``."""
    if len(key) < 3 or key[2] == OPEN_END:
        return key
    return (key[0], key[1], key[2] + 1) + tuple(key[3:])


def _copy_object(src: LegacyBackend, dst: WritableBackend, key: Key) -> None:
    nkey = native_key(key)
    for name, value in src.dictpars(key).items():
        dst.set_par(nkey, name, value)
    for rec in src.history(key):
        dst.append_history(nkey, rec.action, rec.record, tsns=rec.tsns, user=rec.user,
                           host=rec.host)


def _copy(src: LegacyBackend, dst: WritableBackend) -> ImportSummary:
    meta = src.meta()
    dst.set_meta(L.A_TSCFILE, np.int64(meta[L.A_TSCFILE]))
    for link in (L.A_PREDECESSOR, L.A_SUCCESSOR):
        if meta[link] is not None:
            try:
                dst.set_meta(link, validate_detname(meta[link]))
            except PscalibError as exc:
                raise LegacyFormatError(f"{src.filename}: /{link}: {exc}") from None
    n_ct = n_rng = n_ver = 0
    _copy_object(src, dst, ())
    for ctype in src.ctypes():
        dst.create_ctype(ctype)
        _copy_object(src, dst, (ctype,))
        n_ct += 1
        tab = src.range_table(ctype)
        for b, e, dv in sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist(),
                                   tab.defaultv.tolist())):
            if e == TS_MAX:  # e + 1 would collide with the open-end marker
                raise LegacyFormatError(f"{src.filename}: a {ctype!r} range ends at the last "
                                        f"representable time; it cannot be converted")
            rkey = native_key((ctype, b, e))
            dst.create_range(*rkey)
            _copy_object(src, dst, (ctype, b, e))
            n_rng += 1
            for v in src.versions(ctype, b, e):
                key = (ctype, b, e, v)
                data = normalize_payload(src.payload(key))
                dst.create_version(native_key(key), data, src.version_info(key).tsprod,
                                   checksum(data))
                _copy_object(src, dst, key)
                n_ver += 1
            if dv:
                dst.set_default(rkey[0], rkey[1], rkey[2], dv)
    return ImportSummary(Path(src.filename), Path(dst.filename), meta[L.A_DETNAME], n_ct,
                         n_rng, n_ver)


def compare_backends(legacy: LegacyBackend, native: Backend) -> List[str]:
    """Differences between a legacy file and its import (empty list: exact copy).

    Compares root metadata, ranges and defaults, version numbers, tsprod, payloads (bitwise),
    parameters and the legacy history records (which must appear, in order, in the native
    history of the same object).
    """
    out: List[str] = []
    lm, nm = legacy.meta(), native.meta()
    for name in (L.A_DETNAME, L.A_DETTYPE, L.A_DETID, L.A_TSCFILE, L.A_PREDECESSOR,
                 L.A_SUCCESSOR):
        if lm[name] != nm[name]:
            out.append(f"root {name}: {lm[name]!r} != {nm[name]!r}")
    if legacy.ctypes() != native.ctypes():
        out.append(f"ctypes {legacy.ctypes()} != {native.ctypes()}")
        return out
    for key in legacy.keys():
        nkey = native_key(key)
        where = "/".join(str(k) for k in key) or "/"
        if len(key) == 3:
            lt, nt = legacy.range_table(key[0]), native.range_table(key[0])
            li, ni = lt.row(key[1], key[2]), nt.row(nkey[1], nkey[2])
            if ni is None:
                out.append(f"{where}: range missing in the import")
                continue
            if lt.defaultv[li] != nt.defaultv[ni]:
                out.append(f"{where}: default v{lt.defaultv[li]} != v{nt.defaultv[ni]}")
            if legacy.versions(*key) != native.versions(*nkey):
                out.append(f"{where}: versions {legacy.versions(*key)} != "
                           f"{native.versions(*nkey)}")
                continue
        if len(key) == 4:
            if legacy.version_info(key).tsprod != native.version_info(nkey).tsprod:
                out.append(f"{where}: tsprod differs")
            if not payloads_equal(legacy.payload(key), native.payload(nkey)):
                out.append(f"{where}: payload differs")
        lp, npars = legacy.dictpars(key), native.dictpars(nkey)
        if sorted(lp) != sorted(npars) or not all(pars_equal(lp[k], npars[k]) for k in lp):
            out.append(f"{where}: parameters {lp!r} != {npars!r}")
        want = list(legacy.history(key))
        got = iter(native.history(nkey))
        if not all(any(r == g for g in got) for r in want):  # ordered subsequence
            out.append(f"{where}: history records missing or changed")
    if len(out) > 20:
        out[20:] = [f"... and {len(out) - 20} more"]
    return out


def import_legacy(src: PathLike, calibdir: PathLike, *,
                  lock_timeout: Optional[float] = None) -> ImportSummary:
    """Convert one legacy file into a new native store ``<calibdir>/<dettype>/<detname>.h5``.

    Parameters
    ----------
    src
        An original LCLS DCS file.
    calibdir
        Calib directory receiving the store (created as needed).
    lock_timeout
        Seconds to wait for the new store's lock.

    Returns
    -------
    ImportSummary

    Raises
    ------
    LegacyFormatError
        ``src`` breaks the legacy layout; nothing is written.
    StoreExistsError
        The store already exists (imports never merge into or overwrite a store).
    IntegrityError
        The written copy differs from the source (nothing is kept).
    """
    src = Path(src)
    be = open_legacy(src)
    try:
        detname = legacy_detname(be)
        dest = store_file_in(calibdir, detname)
        if dest.exists():
            raise StoreExistsError(f"{dest} already exists; an import never overwrites or "
                                   f"merges into a store - move it away or import elsewhere")
        cs = DCStore(calibdir, detname, mode="x", lock_timeout=lock_timeout)
        try:
            with cs.transaction():
                w = cs.writer().backend  # an exact copy: no history records of its own
                summary = _copy(be, w)
                problems = compare_backends(be, w)
                if problems:
                    raise IntegrityError(f"import of {src} is not exact, nothing was kept: "
                                         f"{'; '.join(problems)}")
                w.append_history(
                    (), "import_legacy",
                    f"imported from {src.resolve()} (original LCLS DCS format): "
                    f"{summary.ctypes} ctypes, {summary.ranges} ranges, {summary.versions} "
                    f"versions; inclusive legacy range ends e stored as tsend = e + 1 ns")
        except BaseException:
            cs.close()
            _remove_new_store(dest)
            raise
        cs.close()
    finally:
        be.close()
    return summary._replace(source=src, store=dest)


def _remove_new_store(path: Path) -> None:
    """Remove the empty store this import created (an import is exact or nothing)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def import_legacy_files(sources: Iterable[PathLike], calibdir: PathLike, *,
                        lock_timeout: Optional[float] = None) -> List[ImportSummary]:
    """Import several legacy files; all are checked before the first is written.

    Raises
    ------
    InvalidInputError
        Two sources are the same detector.
    LegacyFormatError, StoreExistsError
        As :func:`import_legacy`, found for any source before anything is written.
    """
    sources = [Path(s) for s in sources]
    if not sources:
        raise InvalidInputError("give at least one legacy file to import")
    seen: Dict[str, PathLike] = {}
    for s in sources:
        be = open_legacy(s)
        try:
            name = legacy_detname(be)
        finally:
            be.close()
        if name in seen:
            raise InvalidInputError(f"{seen[name]} and {s} are both detector {name!r}; import "
                                    f"them into different calib directories")
        seen[name] = s
        dest = store_file_in(calibdir, name)
        if dest.exists():
            raise StoreExistsError(f"{dest} already exists (import of {s}); an import never "
                                   f"overwrites or merges into a store")
    return [import_legacy(s, calibdir, lock_timeout=lock_timeout) for s in sources]
