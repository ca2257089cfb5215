"""Helpers shared by the command modules: time arguments, store opening, JSON output."""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import click
import numpy as np

from ..errors import PscalibError
from ..store import DCStore
from ..timestamps import to_ns, to_ns_or_none

__all__ = ["TimeParam", "OptionalTimeParam", "open_store", "echo_json", "lock_timeout",
           "progress", "CopyProgressBar"]


class TimeParam(click.ParamType):
    """A time: ISO 8601 or Unix seconds -> ``numpy.datetime64`` in ns.

    A datetime64 (not a bare int) so that passing it on to any library call is exact:
    the library reads bare ints as *seconds*. ``int(value)`` gives ns since the epoch.
    """
    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, np.datetime64):
            return value
        try:
            return np.datetime64(to_ns(value), "ns")
        except PscalibError as exc:
            self.fail(str(exc), param, ctx)


class OptionalTimeParam(TimeParam):
    """Like TimeParam, but 'end'/'open' give None (open end)."""

    def convert(self, value, param, ctx):
        if isinstance(value, np.datetime64):
            return value
        try:
            ns = to_ns_or_none(value)
        except PscalibError as exc:
            self.fail(str(exc), param, ctx)
        return None if ns is None else np.datetime64(ns, "ns")


def lock_timeout(ctx: Optional[click.Context] = None) -> Optional[float]:
    ctx = ctx or click.get_current_context(silent=True)
    obj = (ctx.find_root().obj or {}) if ctx else {}
    return obj.get("lock_timeout")


def open_store(spec: str, mode: str = "r", tsp: Any = None) -> DCStore:
    """Open STORE given as a file path, detname or alias (resolved like the library)."""
    p = Path(spec)
    try:
        is_file = p.is_file()
    except OSError:  # e.g. longer than the file system allows: not a file, maybe a name
        is_file = False
    if p.suffix == ".h5" or is_file or "/" in spec:
        return DCStore(p, mode=mode, lock_timeout=lock_timeout(), tsp=tsp)
    return DCStore(None, spec, mode=mode, lock_timeout=lock_timeout(), tsp=tsp)


def _default(o: Any):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=_default))


@contextlib.contextmanager
def progress(items: Iterable, length: int, label: str) -> Iterator[Iterable]:
    """A click progress bar on stderr when it is a terminal; the bare iterable otherwise."""
    if sys.stderr.isatty():
        with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield items


class CopyProgressBar:
    """Reporter for :func:`pscalib.txn.atomic.copy_progress`: a progress bar on stderr
    while a transaction copies a store of at least ``min_bytes`` (terminal only)."""

    def __init__(self, min_bytes: int = 256 * 2**20):
        self.min_bytes = min_bytes
        self._bar: Optional[Any] = None
        self._shown = 0

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_bytes or not sys.stderr.isatty():
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, file=sys.stderr,
                                          label=f"copying {total / 2**30:.1f} GiB store "
                                                f"for a safe update")
            self._bar.__enter__()
            self._shown = 0
        self._bar.update(done - self._shown)
        self._shown = done
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
