"""Where store files live: calib directories and name -> file resolution.

Layout of a calib directory: ``<calib>/<dettype>/<dettype>-<detid>.h5``.

(Minimal version; the resolver across repository / experiment / local directories and
aliases is documented in README.rst.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

from .errors import InvalidInputError, StoreNotFoundError
from .names import split_detname

__all__ = ["ResolvedStore", "resolve_store", "store_file_in", "repository_dir"]

PathLike = Union[str, Path]


class ResolvedStore(NamedTuple):
    """Result of resolving a store: the file, the detname and where it looked."""
    path: Path
    detname: Optional[str]
    searched: Tuple[Path, ...]
    source: str


def repository_dir(repository: Optional[PathLike] = None) -> Path:
    value = repository or os.environ.get("PSCALIB_REPOSITORY")
    if not value:
        raise InvalidInputError("no calibration repository configured: set PSCALIB_REPOSITORY "
                                "or give a calib directory / file path")
    return Path(value)


def store_file_in(calib: PathLike, detname: str) -> Path:
    dettype, _ = split_detname(detname)
    return Path(calib) / dettype / f"{detname}.h5"


def resolve_store(cpath: Optional[PathLike] = None, detname: Optional[str] = None, *,
                  mode: str = "r", tsp=None) -> ResolvedStore:
    """Resolve ``(cpath, detname)`` to the store file to open."""
    if detname is None:
        if cpath is None:
            raise InvalidInputError("give a store file path, or a calib directory and a detname")
        p = Path(cpath)
        if p.is_dir():
            raise InvalidInputError(f"{p} is a directory: give the detector name too")
        return ResolvedStore(p, None, (p,), "file")
    calib = Path(cpath) if cpath is not None else repository_dir()
    if calib.suffix == ".h5" or calib.is_file():
        return ResolvedStore(calib, detname, (calib,), "file")
    p = store_file_in(calib, detname)
    if mode == "r" and not p.exists():
        raise StoreNotFoundError(f"no store for {detname!r}; searched: {p}")
    return ResolvedStore(p, detname, (p,), "local" if cpath is not None else "repository")
