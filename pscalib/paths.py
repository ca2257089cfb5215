"""Where store files live: calib directories and name -> file resolution.

Layout of every calib directory (repository, experiment workspace or local)::

    <calib>/<dettype>/<dettype>-<detid>.h5      one store per detector
    <calib>/<dettype>/aliases.txt               aliases of detectors of that type

Resolution of ``DCStore(cpath, detname)`` (see ``docs/paths.rst``):

- ``cpath`` is a file (or ends in ``.h5``): that file.
- ``cpath`` is a calib directory: ``<cpath>/<dettype>/<detname>.h5``; aliases are looked up
  in that directory's alias files.
- ``cpath`` is None: the configured places in the search order (default: experiment
  workspace, then repository). Reading takes the first place holding the file. Writing
  (``mode='a'``) changes the file a reader would see; if there is none, the store is created
  in the first configured place of the search order (``mode='x'`` refuses if any place
  already has the file, because the new file would shadow it or be shadowed).

``detname`` may be an alias: a name that is not of the form ``<dettype>-<detid>`` is looked
up in the alias files of the places searched, at time ``tsp`` (latest record without one).
The result, :class:`ResolvedStore`, records the file used, the place it came from and every
path searched; a missing file raises :class:`~pscalib.errors.StoreNotFoundError` listing all.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from .aliases import find_alias
from .config import Config, load_config
from .errors import InvalidInputError, InvalidNameError, StoreExistsError, StoreNotFoundError
from .locations import (ALIAS_FILE_NAME, Place, SearchStep, alias_file_in, blocking_dir,
                        is_detname, make_dirs, permission_error, place_label, place_of,
                        repository_dir, search_places, store_file_in)
from .names import split_detname, validate_alias

__all__ = ["ResolvedStore", "Place", "SearchStep", "resolve_store", "resolve_file", "locate",
           "store_file_in", "alias_file_in", "repository_dir", "search_places", "place_of",
           "make_dirs", "permission_error", "is_detname", "ALIAS_FILE_NAME"]

PathLike = Union[str, Path]


class ResolvedStore(NamedTuple):
    """Result of resolving a store: the file, the detname and where it looked.

    ``source`` is the kind of place the file is in: 'file' (a path was given), 'local',
    'experiment' or 'repository'. ``alias``/``alias_file`` are set when ``detname`` came
    from an alias.
    """
    path: Path
    detname: Optional[str]
    searched: Tuple[Path, ...]
    source: str
    label: str = ""
    steps: Tuple[SearchStep, ...] = ()
    alias: Optional[str] = None
    alias_file: Optional[Path] = None
    file_mode: Optional[int] = None
    dir_mode: Optional[int] = None


def _status(path: Path) -> str:
    try:
        os.stat(path)
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"
    except PermissionError:
        return "permission denied"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return "found"


def _check_writable(path: Path, cfg: Optional[Config]) -> None:
    """Fail early, naming the workspace, if a write to ``path`` would be refused."""
    if path.exists():
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise permission_error("change", path, cfg,
                                   "no write permission on its directory (or read-only "
                                   "file system)")
        return
    blocker = blocking_dir(path.parent)
    if not blocker.is_dir():
        raise InvalidInputError(f"cannot create {path}: {blocker} is a file, not a directory")
    if not os.access(blocker, os.W_OK | os.X_OK):
        raise permission_error("create", path, cfg,
                               "no write permission (or read-only file system)")


def _places_for(cpath: Optional[Path], cfg: Config) -> Tuple[List[Place], List[SearchStep]]:
    if cpath is None:
        places, skipped = search_places(cfg)
        if not places:
            raise InvalidInputError(
                "no calib directory configured: set PSCALIB_REPOSITORY and/or "
                "PSCALIB_EXPERIMENT_ROOT with PSCALIB_EXPERIMENT, or give a calib directory or "
                "a store file")
        return places, skipped
    place = place_of(cpath, cfg)
    if Path(os.path.abspath(place.calib)) != Path(os.path.abspath(cpath)):
        place = Place("local", cpath, place_label("local", cfg, cpath))
    return [place], []


def _resolve_name(name: str, places: List[Place], tsp) -> Tuple[str, Optional[str],
                                                                Optional[Path]]:
    """``(detname, alias or None, alias file or None)`` for a detname or an alias."""
    if is_detname(name):
        return name, None, None
    try:
        validate_alias(name)
    except InvalidNameError as exc:
        try:
            split_detname(name)
        except InvalidNameError as exc2:
            raise InvalidNameError(f"{name!r} is neither a valid detector name ({exc2}) nor "
                                   f"a valid alias ({exc})") from None
    rec = find_alias(name, [(p.label, p.calib) for p in places], tsp)
    return rec.detname, name, rec.path


def locate(cpath: Optional[PathLike], name: str, *, tsp=None,
           config: Optional[Config] = None) -> Tuple[str, Optional[Path],
                                                     List[SearchStep], List[Place]]:
    """Report how ``name`` resolves without raising for a missing file.

    Returns ``(detname, alias_file, steps, places)``: the detname (an alias is resolved at
    ``tsp``), the alias file used (or None), one :class:`SearchStep` per place in search
    order (including unconfigured ones) and the places searched. Used by ``dcs where``.
    """
    cfg = config or load_config()
    places, skipped = _places_for(Path(cpath) if cpath is not None else None, cfg)
    detname, _alias, alias_file = _resolve_name(name, places, tsp)
    steps: List[SearchStep] = []
    by_kind = {p.kind: p for p in places}
    for kind in (cfg.search_order if cpath is None else [places[0].kind]):
        place = by_kind.get(kind)
        if place is None:
            steps.extend(s for s in skipped if s.kind == kind)
            continue
        path = store_file_in(place.calib, detname)
        steps.append(SearchStep(place.kind, place.label, path, _status(path)))
    return detname, alias_file, steps, places


def resolve_file(path: PathLike, *, mode: str = "r",
                 config: Optional[Config] = None) -> ResolvedStore:
    """Resolve an explicit store file without reading the configuration.

    Nothing of the configuration matters for a named file until a new file is made, so a
    bad ``PSCALIB_*`` setting does not stop reading or changing an existing store (the
    creator reads ``PSCALIB_FILE_MODE``). ``file_mode``/``dir_mode`` are those of
    ``config`` if given, else None; ``label`` is that of ``config``'s place of the file
    (without ``config``: the local calib directory).
    """
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{p} is a directory: give the detector name too")
    if mode != "r":
        _check_writable(p, config)
    elif _status(p) == "permission denied":
        raise permission_error("read", p, config, "no read permission")
    place = place_of(p, config or Config())
    return ResolvedStore(p, None, (p,), "file", place.label,
                         file_mode=config.file_mode if config else None,
                         dir_mode=config.dir_mode if config else None)


def resolve_store(cpath: Optional[PathLike] = None, detname: Optional[str] = None, *,
                  mode: str = "r", tsp=None, config: Optional[Config] = None) -> ResolvedStore:
    """Resolve ``(cpath, detname)`` to the store file to open.

    Parameters
    ----------
    cpath
        A store file, a calib directory, or None for the configured search order.
    detname
        ``<dettype>-<detid>`` or an alias; optional when ``cpath`` is a file.
    mode
        'r' read (the file must exist), 'a' change or create, 'x' create.
    tsp
        Time at which an alias is resolved (None: its latest record).
    config
        Configuration (default :func:`pscalib.config.load_config` from the environment).

    Raises
    ------
    StoreNotFoundError
        No place has the file; the message lists every place searched.
    StorePermissionError
        The file or its directory cannot be read/written; names the workspace and path.
    StoreExistsError
        ``mode='x'`` without a path while some place already has the file.
    AliasNotFoundError, AliasFileError, InvalidNameError
        ``detname`` is an unknown alias, an alias file is broken, or the name is invalid.
    """
    if detname is None:
        if cpath is None:
            raise InvalidInputError("give a store file path, or a calib directory and a detname")
        return resolve_file(cpath, mode=mode, config=config)
    cfg = config or load_config()
    fmodes: Dict[str, Any] = {"file_mode": cfg.file_mode, "dir_mode": cfg.dir_mode}
    if cpath is not None and (Path(cpath).suffix == ".h5" or Path(cpath).is_file()):
        p = Path(cpath)
        name = detname
        alias = alias_file = None
        if not is_detname(detname):  # an alias: look in the file's calib dir, then config
            calib = p.parent.parent
            extra = [Place("local", calib, place_label("local", cfg, calib))]
            name, alias, alias_file = _resolve_name(detname, extra + search_places(cfg)[0],
                                                    tsp)
        if mode != "r":
            _check_writable(p, cfg)
        return ResolvedStore(p, name, (p,), "file", place_of(p, cfg).label, alias=alias,
                             alias_file=alias_file, **fmodes)
    name, alias_file, steps, places = locate(cpath, detname, tsp=tsp, config=cfg)
    alias = detname if alias_file is not None else None
    searched = tuple(s.path for s in steps if s.path is not None)
    found = [s for s in steps if s.status == "found"]
    common: Dict[str, Any] = dict(alias=alias, alias_file=alias_file, steps=tuple(steps),
                                  **fmodes)
    if mode == "x" and found:
        raise StoreExistsError(f"a store for {name!r} already exists in {found[0].label}: "
                               f"{found[0].path}; open it with mode='a'")
    if found and mode != "x":
        s = found[0]
        assert s.path is not None  # a place that was searched has a path
        if mode == "a":
            _check_writable(s.path, cfg)
        return ResolvedStore(s.path, name, searched, s.kind, s.label, **common)
    denied = [s for s in steps if s.status == "permission denied"]
    if mode == "r":
        if denied:
            s = denied[0]
            raise permission_error("read", s.path or "", cfg, "permission denied")
        what = f"{detname!r} (alias of {name!r}, from {alias_file})" if alias else repr(name)
        raise StoreNotFoundError(
            f"no store for {what}; searched: " + "; ".join(s.describe() for s in steps)
            + ". Give the file path or calib directory, or check PSCALIB_EXPERIMENT / "
              "PSCALIB_REPOSITORY (see 'dcs where')")
    first = places[0]
    path = store_file_in(first.calib, name)
    _check_writable(path, cfg)
    return ResolvedStore(path, name, searched, first.kind, first.label, **common)
