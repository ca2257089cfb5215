"""Configuration: function arguments override ``PSCALIB_*`` environment variables, which
override built-in defaults.

Every setting has one environment variable with the prefix ``PSCALIB_``; :data:`ENV_VARS`
lists all of them (including those read by other modules) and ``docs/paths.rst`` documents
them. :func:`load_config` builds a :class:`Config` from explicit arguments and the
environment, validating every value so that a typo gives an error naming the variable.

Examples
--------
>>> cfg = load_config(repository="/data/calib", experiment="CXI/cxic0415",
...                   experiment_root="/data/exp")
>>> str(cfg.experiment_calib)
'/data/exp/CXI/cxic0415/calib'
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

from .errors import InvalidInputError

__all__ = ["Config", "load_config", "ENV_VARS", "PLACES", "parse_mode", "parse_experiment",
           "env_value", "env_file_mode", "inplace_min_bytes", "debug_enabled",
           "RemoteSettings", "remote_settings"]

PathLike = Union[str, Path]

#: Calib-directory kinds that may appear in the search order.
PLACES = ("experiment", "repository")
DEFAULT_SEARCH_ORDER = ("experiment", "repository")

#: Every environment variable pscalib reads: name -> (default, meaning).
ENV_VARS: Dict[str, Tuple[str, str]] = {
    "PSCALIB_REPOSITORY": ("(unset)", "repository calib directory (experiment-independent)"),
    "PSCALIB_EXPERIMENT_ROOT": ("(unset)", "root of experiment workspaces: "
                                "<root>/<INSTRUMENT>/<experiment>/calib"),
    "PSCALIB_EXPERIMENT": ("(unset)", "current experiment, 'cxic0415' or 'CXI/cxic0415'"),
    "PSCALIB_INSTRUMENT": ("(first 3 letters of the experiment, upper case)",
                           "instrument of the experiment when PSCALIB_EXPERIMENT has none"),
    "PSCALIB_SEARCH_ORDER": ("experiment,repository",
                             "where names are looked up when no calib directory is given"),
    "PSCALIB_FILE_MODE": ("(0666 minus umask)", "octal permissions of new store/alias files"),
    "PSCALIB_DIR_MODE": ("(0777 minus umask)", "octal permissions of new directories"),
    "PSCALIB_CREATE_FORMAT": ("3", "file format of new stores: 3, or 1 for stores older "
                              "pscalib releases must read (docs/format.rst)"),
    "PSCALIB_LOCK_TIMEOUT": ("120", "seconds a writer waits for another writer's lock"),
    "PSCALIB_LOCK_FALLBACK": ("(unset)", "'soft': marker-file locks where flock fails"),
    "PSCALIB_USER": ("(login name)", "user name recorded in history records"),
    "PSCALIB_DEBUG": ("(unset)", "1: 'dcs' shows full tracebacks"),
    "PSCALIB_TZ": ("UTC", "time zone dcs shows times in (files keep UTC), e.g. Europe/Berlin"),
    "PSCALIB_CACHE": ("~/.cache/pscalib", "cache directory of the remote client "
                      "(payloads by sha256, last lookup answers)"),
    "PSCALIB_HTTP_TIMEOUT": ("10", "seconds the remote client waits for the service per "
                             "attempt"),
    "PSCALIB_HTTP_RETRIES": ("3", "attempts of the remote client before "
                             "ServiceUnavailableError"),
    "PSCALIB_INPLACE_SIZE": ("64M", "stores at least this big are changed in place "
                                  "(journaled, format 4) instead of copied; e.g. 0, 512k, "
                                  "1G, or 'never' (docs/design/engine.rst)"),
    "PSCALIB_MANIFEST": ("(unset)", "manifest (dcs manifest -o m.json): lookups refuse store "
                         "files changed since it was written, or outside its coverage"),
}

_EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_INSTRUMENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def parse_mode(value: Union[str, int, None], what: str,
               kind: Optional[str] = None) -> Optional[int]:
    """Parse permission bits given as an int or an octal string (``'0664'``, ``'2775'``).

    ``what`` names the setting in the error message. None or ``''`` gives None (use umask).
    ``kind`` ``'file'``: no setuid/setgid/sticky bits and the owner may read and write;
    ``'dir'``: no setuid bit and the owner may list, enter and write (0700).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInputError(f"{what}={value!r} is not an octal permission mode")
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip().lower()
        text = text[2:] if text.startswith("0o") else text
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise InvalidInputError(
                f"{what}={value!r} is not an octal permission mode; use e.g. 0664 for files "
                f"or 2775 for group-writable directories")
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise InvalidInputError(f"{what}={oct(mode)} is outside 0..07777")
    if kind == "file" and (mode & 0o7000 or mode & 0o600 != 0o600):
        raise InvalidInputError(
            f"{what}={mode:04o} is not a mode for store and alias files: they need owner "
            f"read and write (0600) and no setuid/setgid/sticky bits; use e.g. 0664")
    if kind == "dir" and (mode & 0o4000 or mode & 0o700 != 0o700):
        raise InvalidInputError(
            f"{what}={mode:04o} is not a mode for calib directories: they need owner "
            f"read, write and search (0700) and no setuid bit; use e.g. 2775")
    return mode


def parse_experiment(value: str, instrument: Optional[str] = None) -> Tuple[str, str]:
    """Split ``'CXI/cxic0415'`` or ``'cxic0415'`` into ``(INSTRUMENT, experiment)``.

    Without an instrument part, ``instrument`` is used, else the first three letters of the
    experiment (the LCLS naming convention) in upper case.
    """
    text = value.strip()
    if "/" in text:
        instr, _, exp = text.partition("/")
    else:
        instr, exp = (instrument or text[:3]), text
    if not _EXPERIMENT_RE.match(exp):
        raise InvalidInputError(
            f"experiment {exp!r} (from {value!r}) may only contain letters, digits and '_', "
            f"e.g. 'cxic0415' or 'CXI/cxic0415'")
    if not _INSTRUMENT_RE.match(instr):
        raise InvalidInputError(
            f"instrument {instr!r} (for experiment {value!r}) must be letters and digits, "
            f"e.g. 'CXI'; give it as 'CXI/{exp}' or set PSCALIB_INSTRUMENT")
    return instr.upper(), exp


@dataclass(frozen=True)
class Config:
    """Resolved configuration; build it with :func:`load_config`.

    Attributes
    ----------
    repository
        Repository calib directory, or None if not configured.
    experiment_root
        Root of experiment workspaces, or None.
    instrument, experiment
        Current experiment (both None if not configured).
    search_order
        Kinds of calib directory searched, in order, when no calib directory is given.
    file_mode, dir_mode
        Permission bits of new files / directories; None means "default minus umask".
    sources
        For each setting, where its value came from: ``'argument'``, ``'env <NAME>'`` or
        ``'default'``.
    """
    repository: Optional[Path] = None
    experiment_root: Optional[Path] = None
    instrument: Optional[str] = None
    experiment: Optional[str] = None
    search_order: Tuple[str, ...] = DEFAULT_SEARCH_ORDER
    file_mode: Optional[int] = None
    dir_mode: Optional[int] = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def experiment_calib(self) -> Optional[Path]:
        """``<root>/<INSTRUMENT>/<experiment>/calib``, or None if not fully configured."""
        if self.experiment_root is None or self.experiment is None:
            return None
        return self.experiment_root / str(self.instrument) / self.experiment / "calib"

    def calib_dir(self, kind: str) -> Optional[Path]:
        """The calib directory of ``kind`` ('experiment' or 'repository'), None if unset."""
        if kind == "experiment":
            return self.experiment_calib
        if kind == "repository":
            return self.repository
        raise InvalidInputError(f"unknown calib directory kind {kind!r}; use one of {PLACES}")

    def missing_reason(self, kind: str) -> str:
        """Why ``kind`` has no calib directory (for error messages and 'dcs where')."""
        if kind == "repository":
            return "not configured (set PSCALIB_REPOSITORY)"
        need = [n for n, v in (("PSCALIB_EXPERIMENT_ROOT", self.experiment_root),
                               ("PSCALIB_EXPERIMENT", self.experiment)) if v is None]
        return f"not configured (set {' and '.join(need)})"


def _pick(name: str, arg, env: Mapping[str, str], sources: Dict[str, str], key: str):
    if arg is not None:
        sources[key] = "argument"
        return arg
    raw = env.get(name)
    if raw is not None and raw.strip() != "":
        sources[key] = f"env {name}"
        return raw
    sources[key] = "default"
    return None


def _search_order(value: Union[str, Tuple[str, ...], list, None], what: str) -> Tuple[str, ...]:
    if value is None:
        return DEFAULT_SEARCH_ORDER
    items = value.split(",") if isinstance(value, str) else list(value)
    order = tuple(str(i).strip().lower() for i in items if str(i).strip())
    bad = [i for i in order if i not in PLACES]
    if bad or not order or len(set(order)) != len(order):
        raise InvalidInputError(
            f"{what}={value!r} must be a comma-separated list of distinct kinds from "
            f"{', '.join(PLACES)} (e.g. 'experiment,repository')")
    return order


def load_config(*, repository: Optional[PathLike] = None,
                experiment_root: Optional[PathLike] = None,
                experiment: Optional[str] = None, instrument: Optional[str] = None,
                search_order: Union[str, Tuple[str, ...], None] = None,
                file_mode: Union[int, str, None] = None, dir_mode: Union[int, str, None] = None,
                env: Optional[Mapping[str, str]] = None) -> Config:
    """Build the configuration: arguments > ``PSCALIB_*`` environment > defaults.

    Parameters
    ----------
    repository, experiment_root, experiment, instrument, search_order, file_mode, dir_mode
        Explicit values; None means "take the environment variable, else the default".
    env
        Environment to read (default ``os.environ``); tests pass a dict.

    Raises
    ------
    InvalidInputError
        A value is malformed; the message names the argument or variable.
    """
    env = os.environ if env is None else env
    src: Dict[str, str] = {}

    def what(key: str, name: str) -> str:
        return key if src[key] == "argument" else name

    repo = _pick("PSCALIB_REPOSITORY", repository, env, src, "repository")
    root = _pick("PSCALIB_EXPERIMENT_ROOT", experiment_root, env, src, "experiment_root")
    exp = _pick("PSCALIB_EXPERIMENT", experiment, env, src, "experiment")
    instr = _pick("PSCALIB_INSTRUMENT", instrument, env, src, "instrument")
    order = _pick("PSCALIB_SEARCH_ORDER", search_order, env, src, "search_order")
    fmode = _pick("PSCALIB_FILE_MODE", file_mode, env, src, "file_mode")
    dmode = _pick("PSCALIB_DIR_MODE", dir_mode, env, src, "dir_mode")
    instrument_name = experiment_name = None
    if exp is not None:
        instrument_name, experiment_name = parse_experiment(str(exp), instr)
        if "/" not in str(exp) and instr is None:
            src["instrument"] = "derived from the experiment name"
    return Config(
        repository=Path(repo).expanduser() if repo is not None else None,
        experiment_root=Path(root).expanduser() if root is not None else None,
        instrument=instrument_name, experiment=experiment_name,
        search_order=_search_order(order, what("search_order", "PSCALIB_SEARCH_ORDER")),
        file_mode=parse_mode(fmode, what("file_mode", "PSCALIB_FILE_MODE"), "file"),
        dir_mode=parse_mode(dmode, what("dir_mode", "PSCALIB_DIR_MODE"), "dir"),
        sources=src)


def env_value(name: str, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The raw value of the ``PSCALIB_*`` variable ``name`` (None if unset).

    Every module reads the environment through this function (or :func:`load_config`), so
    :data:`ENV_VARS` is the complete list of what pscalib reads.
    """
    if name not in ENV_VARS:
        raise InvalidInputError(f"internal error: {name} is not a pscalib setting")
    return (os.environ if env is None else env).get(name)


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
#: Default of PSCALIB_INPLACE_SIZE: below it, a copy costs < ~0.2 s (docs/design).
DEFAULT_INPLACE_MIN_BYTES = 64 * 2**20


def inplace_min_bytes(env: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """``PSCALIB_INPLACE_SIZE`` parsed: the store size from which writers switch to the
    in-place engine; None for ``never``."""
    raw = env_value("PSCALIB_INPLACE_SIZE", env)
    if raw is None or raw.strip() == "":
        return DEFAULT_INPLACE_MIN_BYTES
    if raw.strip().lower() == "never":
        return None
    m = _SIZE_RE.match(raw)
    if not m:
        raise InvalidInputError(f"PSCALIB_INPLACE_SIZE={raw!r} is not a size in bytes "
                                f"(e.g. 0, 512k, 64M, 1G) or 'never'")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def env_file_mode() -> Optional[int]:
    """``PSCALIB_FILE_MODE`` parsed (None if unset); read only when a file is created."""
    return parse_mode(env_value("PSCALIB_FILE_MODE"), "PSCALIB_FILE_MODE", "file")


def debug_enabled(args: Optional[list] = None) -> bool:
    """True if ``--debug`` is in ``args`` or ``PSCALIB_DEBUG`` is set (not '0')."""
    return bool(args and "--debug" in args) or (env_value("PSCALIB_DEBUG") or "") not in ("", "0")


@dataclass(frozen=True)
class RemoteSettings:
    """Settings of the remote client (:mod:`pscalib.remote`), see :func:`remote_settings`."""
    cache_dir: Path
    timeout: float
    retries: int


def remote_settings(*, cache_dir: Optional[PathLike] = None, timeout: Optional[float] = None,
                    retries: Optional[int] = None,
                    env: Optional[Mapping[str, str]] = None) -> RemoteSettings:
    """Remote-client settings: arguments > ``PSCALIB_CACHE`` / ``PSCALIB_HTTP_TIMEOUT`` /
    ``PSCALIB_HTTP_RETRIES`` > defaults (``~/.cache/pscalib``, 10 s, 3 attempts).

    Raises
    ------
    InvalidInputError
        A timeout that is not a positive number or a retry count that is not an int >= 1.
    """
    env = os.environ if env is None else env
    src: Dict[str, str] = {}
    cache = _pick("PSCALIB_CACHE", cache_dir, env, src, "cache_dir")
    tmo = _pick("PSCALIB_HTTP_TIMEOUT", timeout, env, src, "timeout")
    tries = _pick("PSCALIB_HTTP_RETRIES", retries, env, src, "retries")
    path = Path(cache).expanduser() if cache is not None else Path.home() / ".cache" / "pscalib"
    try:
        tmo_s = 10.0 if tmo is None else float(tmo)
    except (TypeError, ValueError):
        tmo_s = -1.0
    if not tmo_s > 0 or tmo_s == float("inf"):
        name = "timeout" if src["timeout"] == "argument" else "PSCALIB_HTTP_TIMEOUT"
        raise InvalidInputError(f"{name}={tmo!r} must be a positive number of seconds")
    try:
        n = 3 if tries is None else int(tries)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or isinstance(tries, bool):
        name = "retries" if src["retries"] == "argument" else "PSCALIB_HTTP_RETRIES"
        raise InvalidInputError(f"{name}={tries!r} must be an integer >= 1 (attempts)")
    return RemoteSettings(path, tmo_s, n)
