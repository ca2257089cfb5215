"""The stores of the served calib directory: name resolution, per-request opening, caches.

Every request sees the latest commit: a store is committed by an atomic rename (a new
inode), so one ``os.stat`` per request tells whether a cached handle is still current
(:meth:`pscalib.DCStore.refresh`). Answers computed from a store are memoized per file
state and dropped together with it.

Only files below the served calib directory are ever opened: names are validated by the
library (no ``/``, ``..``, NUL, control characters, over-long names) before they become
``<calib>/<dettype>/<detname>.h5``, and aliases are looked up in that directory's alias
files only.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..paths import is_detname, resolve_store, store_file_in
from ..store import DCStore
from ..timestamps import TimeLike

__all__ = ["StoreRegistry", "StoreEntry", "open_store"]

FileState = Optional[Tuple[int, int, int, int]]


def file_state(path: Path) -> FileState:
    """``(dev, inode, mtime_ns, size)`` of ``path`` or None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class StoreEntry:
    """A cached read-only handle on one store, its lock and its memoized answers.

    Use only inside :meth:`StoreRegistry.use` (which holds :attr:`lock`): h5py objects
    must not be shared between threads without it.
    """

    __slots__ = ("path", "lock", "store", "state", "memo")

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.store: Optional[DCStore] = None
        self.state: FileState = None
        self.memo: Dict[Any, Any] = {}

    @property
    def cs(self) -> DCStore:
        """The open handle (inside :meth:`StoreRegistry.use` / ``entry`` it is open)."""
        assert self.store is not None, "StoreEntry used outside StoreRegistry.entry()"
        return self.store

    def current(self) -> DCStore:
        """The handle, reopened if the file changed since the last request."""
        if self.store is None:
            self.store = DCStore(self.path)
            self.state = file_state(self.path)
        elif self.store.refresh():
            self.state = file_state(self.path)
            self.memo.clear()
        return self.store

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.memo.clear()


class StoreRegistry:
    """Resolves detector names and aliases in one calib directory and caches handles.

    Parameters
    ----------
    calib
        The served calib directory (``<calib>/<dettype>/<detname>.h5``).
    max_open
        Store files kept open at once (least recently used are closed).
    """

    def __init__(self, calib: os.PathLike, max_open: int = 64):
        self.calib = Path(os.path.abspath(calib))
        self.max_open = max_open
        self._entries: "OrderedDict[Path, StoreEntry]" = OrderedDict()
        self._lock = threading.Lock()
        self._detname_paths: Dict[str, Path] = {}

    # ------------------------------------------------------------- resolution
    def path_of(self, name: str, t: Optional[TimeLike] = None) -> Path:
        """Store file of detname or alias ``name`` (alias resolved at ``t``, else latest).

        Raises the library's errors: InvalidNameError, AliasNotFoundError,
        StoreNotFoundError, ...
        """
        hit = self._detname_paths.get(name) if isinstance(name, str) else None
        if hit is not None:
            return hit
        if isinstance(name, str) and is_detname(name):  # the common case: no alias files read
            path = store_file_in(self.calib, name)
            if len(self._detname_paths) >= 65536:
                self._detname_paths.clear()
            self._detname_paths[name] = path  # names are validated once, not per request
            return path
        return Path(resolve_store(self.calib, name, tsp=t).path)

    def open_store(self, name: str, t: Optional[TimeLike] = None) -> DCStore:
        """A new read-only :class:`~pscalib.DCStore` for ``name`` at its latest commit.

        The caller owns it (``with registry.open_store(name) as cs: ...``). For web routes
        that need a consistent snapshot of a store for one request; cheap routes use
        :meth:`use` instead.
        """
        return DCStore(self.path_of(name, t))

    @contextlib.contextmanager
    def use(self, name: str, t: Optional[TimeLike] = None) -> Iterator[StoreEntry]:
        """The cached, refreshed entry of ``name``, locked for the duration of the block."""
        path = self.path_of(name, t)
        with self.entry(path) as ent:
            yield ent

    @contextlib.contextmanager
    def entry(self, path: Path) -> Iterator[StoreEntry]:
        """The cached entry of a store file (refreshed, locked)."""
        with self._lock:
            ent = self._entries.get(path)
            if ent is None:
                ent = self._entries[path] = StoreEntry(path)
            self._entries.move_to_end(path)
            evict = []
            while len(self._entries) > self.max_open:
                evict.append(self._entries.popitem(last=False)[1])
        for old in evict:
            with old.lock:
                old.close()
        with ent.lock:
            try:
                ent.current()
            except BaseException:
                ent.close()  # e.g. the file was removed: the next request opens afresh
                raise
            yield ent

    def memo_hit(self, name: str, key: Any) -> Optional[Any]:
        """A memoized answer of store ``name`` if it is still current, without blocking.

        For the event loop's fast path: never waits for a lock or opens a file (None
        means "compute it in a worker thread"). Aliases always take the slow path.
        """
        path = self._detname_paths.get(name) if isinstance(name, str) else None
        ent = None if path is None else self._entries.get(path)
        if ent is None or not ent.lock.acquire(blocking=False):
            return None
        try:
            if ent.store is None or file_state(ent.path) != ent.state:
                return None
            return ent.memo.get(key)
        finally:
            ent.lock.release()

    # ------------------------------------------------------------------ listing
    def store_files(self) -> List[Path]:
        """Every ``<calib>/<dettype>/<dettype>-<detid>.h5`` file, sorted."""
        out = []
        try:
            dirs = sorted(os.scandir(self.calib), key=lambda d: d.name)
        except OSError:
            return []
        for d in dirs:
            if d.name.startswith(".") or not d.is_dir(follow_symlinks=False):
                continue
            try:
                files = sorted(os.scandir(d.path), key=lambda f: f.name)
            except OSError:
                continue
            for f in files:
                stem = f.name[:-3]
                # a symlinked store is served like by name (path_of follows it too)
                if (f.name.endswith(".h5") and is_detname(stem) and stem.split("-")[0] == d.name
                        and f.is_file()):
                    out.append(Path(f.path))
        return out

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for ent in entries:
            with ent.lock:
                ent.close()


def open_store(request: Any, name: str, t: Optional[TimeLike] = None) -> DCStore:
    """Per-request way for routes of the app to open a store of the served calib directory.

    ``request`` is the Starlette request (its app was made by
    :func:`pscalib.service.app.create_app`); the result is a new read-only
    :class:`~pscalib.DCStore` at the latest commit, owned by the caller.
    """
    return request.app.state.registry.open_store(name, t)
