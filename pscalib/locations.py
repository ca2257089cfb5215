"""Calib directories: the places stores live in, file names inside them, permissions.

The lowest layer of name resolution (it knows the configuration, not aliases or stores):
``<calib>/<dettype>/<detname>.h5`` and ``<calib>/<dettype>/aliases.txt``, the configured
places in search order, directory creation with the configured mode and permission errors
that name the workspace. :mod:`pscalib.paths` resolves names on top of it.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple, Union

from .config import Config, load_config
from .errors import InvalidInputError, InvalidNameError, StorePermissionError
from .names import split_detname, validate_dettype

__all__ = ["Place", "store_file_in", "alias_file_in", "repository_dir", "search_places",
           "place_of", "make_dirs", "permission_error", "is_detname", "ALIAS_FILE_NAME",
           "SearchStep", "place_label", "blocking_dir"]

PathLike = Union[str, Path]

#: Name of the alias file in each ``<calib>/<dettype>/`` directory.
ALIAS_FILE_NAME = "aliases.txt"


class Place(NamedTuple):
    """One calib directory that is searched: its kind, path and a human label."""
    kind: str        # 'experiment', 'repository' or 'local'
    calib: Path
    label: str       # e.g. "experiment workspace CXI/cxic0415"


class SearchStep(NamedTuple):
    """One place looked at while resolving a name, and what was found there."""
    kind: str
    label: str
    path: Optional[Path]   # the store file looked for (None if the place is not configured)
    status: str            # 'found', 'missing', 'permission denied', 'not configured'

    def describe(self) -> str:
        where = str(self.path) if self.path is not None else "-"
        return f"{self.label}: {where} ({self.status})"


def is_detname(name: object) -> bool:
    """True if ``name`` is a valid ``<dettype>-<detid>`` (otherwise it may be an alias)."""
    try:
        split_detname(name)
        return True
    except InvalidNameError:
        return False


def store_file_in(calib: PathLike, detname: str) -> Path:
    """``<calib>/<dettype>/<detname>.h5`` (``detname`` is validated)."""
    dettype, _ = split_detname(detname)
    return Path(calib) / dettype / f"{detname}.h5"


def alias_file_in(calib: PathLike, dettype: str) -> Path:
    """``<calib>/<dettype>/aliases.txt``."""
    return Path(calib) / validate_dettype(dettype) / ALIAS_FILE_NAME


def repository_dir(repository: Optional[PathLike] = None) -> Path:
    """The repository calib directory (argument > ``PSCALIB_REPOSITORY``)."""
    repo = load_config(repository=repository).repository
    if repo is None:
        raise InvalidInputError("no calibration repository configured: set PSCALIB_REPOSITORY "
                                "or give a calib directory / file path")
    return repo


def place_label(kind: str, cfg: Config, calib: Path) -> str:
    if kind == "experiment":
        return f"experiment workspace {cfg.instrument}/{cfg.experiment}"
    if kind == "repository":
        return "repository"
    return f"local calib directory {calib}"


def search_places(config: Optional[Config] = None) -> Tuple[List[Place], List[SearchStep]]:
    """The configured places in search order, and a step for each unconfigured one."""
    cfg = config or load_config()
    places: List[Place] = []
    skipped: List[SearchStep] = []
    for kind in cfg.search_order:
        calib = cfg.calib_dir(kind)
        if calib is None:
            label = "experiment workspace" if kind == "experiment" else "repository"
            skipped.append(SearchStep(kind, label, None, cfg.missing_reason(kind)))
        else:
            places.append(Place(kind, calib, place_label(kind, cfg, calib)))
    return places, skipped


def place_of(path: PathLike, config: Optional[Config] = None) -> Place:
    """The configured calib directory containing ``path`` (or a 'local' place)."""
    cfg = config or load_config()
    p = Path(os.path.abspath(path))
    for kind in ("experiment", "repository"):
        calib = cfg.calib_dir(kind)
        if calib is not None:
            c = Path(os.path.abspath(calib))
            if p == c or c in p.parents:
                return Place(kind, calib, place_label(kind, cfg, calib))
    calib = p if p.is_dir() or p.suffix != ".h5" else p.parent.parent
    return Place("local", calib, place_label("local", cfg, calib))


def blocking_dir(path: Path) -> Path:
    """The nearest existing ancestor of ``path`` (the directory whose permission matters)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def permission_error(action: str, path: PathLike, config: Optional[Config] = None,
                     detail: str = "permission denied") -> StorePermissionError:
    """A :class:`StorePermissionError` naming the workspace, the path and what to do."""
    if config is None:
        try:
            config = load_config()
        except InvalidInputError:  # a bad setting must not hide the permission problem
            config = Config()
    place = place_of(path, config)
    blocker = blocking_dir(Path(path).parent)
    if action == "read":
        return StorePermissionError(
            f"cannot read {path} in {place.label} ({place.calib}): {detail}; you need read "
            f"permission on it (and search permission on its directories) - check your group "
            f"membership or ask the owner of {path}")
    return StorePermissionError(
        f"cannot {action} {path} in {place.label} ({place.calib}): {detail}; you need write "
        f"(and search) permission on {blocker} - experiment workspaces are usually "
        f"group-writable, so check your group membership or ask the owner of {blocker}")


def make_dirs(path: PathLike, mode: Optional[int] = None,
              config: Optional[Config] = None) -> Path:
    """Create ``path`` and missing parents with permission bits ``mode``.

    ``mode`` defaults to ``PSCALIB_DIR_MODE`` (then ``0777`` minus umask). Each directory
    created here is ``chmod``-ed explicitly, so setgid and group-write bits are exact
    regardless of the umask; existing directories are left alone.
    """
    cfg = config or load_config()
    mode = cfg.dir_mode if mode is None else mode
    target = Path(path)
    missing = []
    p = target
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not d.is_dir():
                raise InvalidInputError(f"{d} exists and is not a directory") from None
            continue  # another process made it meanwhile
        except PermissionError as exc:
            raise permission_error("create directory", d, cfg,
                                   exc.strerror or "permission denied") from None
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise permission_error("create directory", d, cfg,
                                       "read-only file system") from None
            raise
        if mode is not None:
            os.chmod(d, mode)
    return target
