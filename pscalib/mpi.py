"""Calibration constants for many MPI ranks: one read, one copy per node, read-only views.

One rank (``root``) reads the constants, from a store file or calib directory or from any
object with a ``get(ctype, t)`` method (for example the remote HTTP client). The bytes go to
one *leader* rank per shared-memory node, each leader places them once in a node-wide shared
memory window (``MPI.Win.Allocate_shared``), and every rank receives read-only numpy views of
that window. A node with 64 ranks thus holds the constants once instead of 64 times, and only
one process touches the file system or the server.

Errors on the reading rank (missing ctype, bad time, damaged file, server down) are sent to
every rank before any data, so all ranks raise the same exception with the same message
instead of waiting for data that never comes. See ``docs/mpi.rst`` for lifetime rules, what
MPI does when a rank dies, and measurements.

Needs the optional extra: ``pip install 'pscalib[mpi]'`` (mpi4py and an MPI library).

>>> from pscalib.mpi import SharedConstants                 # doctest: +SKIP
>>> with SharedConstants("calib", "epix10ka-0001") as sc:    # doctest: +SKIP
...     c = sc.get_many(["pedestals", "pixel_status"], "2024-06-01T00:00:00")
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import CollectiveError, InvalidInputError, MissingDependencyError, PscalibError
from .store.dcstore import DCStore
from .store.payload import Payload, normalize_payload
from .timestamps import format_ns, to_ns

try:
    from mpi4py import MPI
except (ImportError, RuntimeError) as _exc:  # the core works without it; only this needs it
    # RuntimeError: mpi4py's binary wheels load the MPI library at import and fail so
    raise MissingDependencyError(
        f"pscalib.mpi needs mpi4py and an MPI library ({str(_exc).splitlines()[0]}); install "
        f"them with pip install 'pscalib[mpi]' and e.g. Debian's openmpi-bin libopenmpi-dev"
    ) from None

__all__ = ["SharedConstants", "get_many"]

Source = Union[str, "os.PathLike[str]", Callable[[], Any], Any, None]

# Offsets of payloads inside a window are multiples of this, so views are aligned for every
# dtype and for SIMD loads (a cache line).
_ALIGN = 64
# MPI counts are C ints: broadcast large windows in pieces below 2**31 bytes.
_CHUNK = 1 << 30


def _plan(payloads: Sequence[Tuple[str, Payload]]) -> Tuple[List[tuple], List[Any], int]:
    """Header entries, the data of each payload and the window size (root only).

    An entry is a plain tuple (sent as JSON): ctype, kind ('ndarray' or 'text'), dtype
    string, shape, offset in the window and number of bytes.
    """
    entries: List[tuple] = []
    blobs: List[Any] = []
    offset = 0
    for ctype, data in payloads:
        # what an opener returns is checked like constants to store: object arrays would
        # put this process's pointers into the other processes' memory
        data = normalize_payload(data)
        if isinstance(data, str):
            raw = data.encode("utf-8")
            entries.append((ctype, "text", "", (), offset, len(raw)))
            blobs.append(raw)
        else:
            arr = np.ascontiguousarray(data)
            entries.append((ctype, "ndarray", arr.dtype.str, arr.shape, offset, arr.nbytes))
            blobs.append(arr)
        offset += -(-entries[-1][5] // _ALIGN) * _ALIGN
    return entries, blobs, offset


def _request(ctypes: Sequence[str], t: Any, vers: Optional[Mapping[str, Any]]) -> tuple:
    """The checked request of a collective read, comparable between ranks."""
    if isinstance(ctypes, str):
        raise InvalidInputError("ctypes must be a list of names, not one string")
    names = list(ctypes)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"ctypes has duplicates: {names}")
    return names, to_ns(t), dict(vers or {})


def _show(request: Any) -> str:
    if isinstance(request, (list, tuple)) and len(request) == 3:
        names, t, vers = request
        return f"{names} at {format_ns(t)}" + (f" versions {vers}" if vers else "")
    return repr(request)


def _error_record(exc: BaseException, rank: int) -> Tuple[str, str, str]:
    """What every rank needs to raise the same exception: module, class name, message."""
    cls = type(exc)
    if isinstance(exc, PscalibError):
        return cls.__module__, cls.__qualname__, str(exc)
    return ("pscalib.errors", "CollectiveError",
            f"rank {rank} failed while reading calibration constants: {cls.__name__}: {exc}")


def _exception(record: Tuple[str, str, str]) -> PscalibError:
    """Rebuild the exception of an error record; only pscalib classes are ever imported."""
    module, name, message = record
    cls: Any = None
    if module == "pscalib" or module.startswith("pscalib."):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, PscalibError)):
        cls, message = CollectiveError, f"{name}: {message}"
    try:
        return cls(message)
    except Exception:  # a subclass with a different constructor: keep the message
        return CollectiveError(f"{name}: {message}")


class _Window:
    """One shared-memory window: the MPI handle and the uint8 array all views derive from."""

    __slots__ = ("win", "base", "local_bytes")

    def __init__(self, win: Optional[Any], base: np.ndarray, local_bytes: int):
        self.win = win
        self.base = base
        self.local_bytes = local_bytes


class SharedConstants:
    """Collective, node-shared reads of calibration constants over MPI.

    Every rank of ``comm`` creates the object and calls each method in the same order (they
    are collective). Only the ``root`` rank uses ``source``: other ranks may pass None.

    Parameters
    ----------
    source
        On the root rank: a store file or calib directory (with ``detname``), opened with
        :class:`pscalib.DCStore` at the first read; or a callable without arguments that
        returns an object with ``get(ctype, t[, vers])`` (called once, at the first read, on
        the root only: use it for the remote client); or such an object itself.
    detname
        Detector name or alias, with a calib directory (or None for the configured
        repository, as :class:`pscalib.DCStore`).
    comm
        The communicator (default ``MPI.COMM_WORLD``).
    root
        Rank of ``comm`` that reads.
    node_comm
        Communicator of the ranks that share one window (default: ``comm`` split by
        shared-memory node, ``Split_type(COMM_TYPE_SHARED)``). Its ranks must be able to
        share memory; a smaller group (e.g. per socket) is allowed.
    timeout
        Seconds a rank waits for the others at any step of a read (None: no limit). When it
        runs out the rank raises :class:`~pscalib.errors.CollectiveError`; the ranks are
        then out of step, so end the job (``comm.Abort()``).

    Notes
    -----
    Lifetime: the arrays returned are views of MPI shared memory. A window stays allocated
    while any array (or view of one) that came from it is referenced, on any rank of the
    node, and always until :meth:`close`; ``close()`` (collective) frees the windows nobody
    references any more and leaves the others for MPI to release at finalization. Never
    use the arrays after ``MPI.Finalize``.

    Examples
    --------
    >>> with SharedConstants("calib", "jungfrau-0001") as sc:        # doctest: +SKIP
    ...     peds = sc.get("pedestals", "2024-06-01T00:00:00")
    ...     more = sc.get_many(["pixel_gain", "geometry"], "2024-06-01T00:00:00")
    """

    def __init__(self, source: Source = None, detname: Optional[str] = None, *,
                 comm: Optional[Any] = None, root: int = 0, node_comm: Optional[Any] = None,
                 timeout: Optional[float] = None):
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(root, int) or not 0 <= root < self.comm.size:
            raise InvalidInputError(f"root must be a rank of the communicator "
                                    f"(0..{self.comm.size - 1}), got {root!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or not timeout > 0):
            raise InvalidInputError(f"timeout must be a number of seconds > 0 or None, got "
                                    f"{timeout!r}")
        self.root = root
        self.timeout = timeout
        self._source = source if self.comm.rank == root else None
        self._detname = detname
        self._reader: Any = None
        self._owns_reader = False
        # key 0 puts the root first in its node and among the leaders: it leads its node and
        # is rank 0 of the leaders' communicator, so its bytes need no extra hop.
        key = 0 if self.comm.rank == root else 1
        if node_comm is None:
            self.node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=key)
        else:
            self.node = node_comm.Split(0, key=key)  # reorder a given group the same way
        self.is_leader = self.node.rank == 0
        self.leaders = self.comm.Split(0 if self.is_leader else MPI.UNDEFINED, key=key)
        self._windows: List[_Window] = []
        self.bytes_received = 0  # payload bytes this rank received over MPI (statistics)
        self.window_bytes = 0    # shared-memory bytes this rank allocated (statistics)
        self._closed = ""  # why it can no longer read, once it cannot

    # ---------------------------------------------------------------- reading (root)
    def _open_reader(self) -> Any:
        if self._reader is None:
            src = self._source
            if src is None or isinstance(src, (str, os.PathLike)):
                self._reader, self._owns_reader = DCStore(
                    None if src is None else os.fspath(src), self._detname), True
            elif hasattr(src, "get") and not isinstance(src, type):
                self._reader = src
            elif callable(src):  # an opener; a class is one too (its get needs an instance)
                self._reader, self._owns_reader = src(), True
                if not hasattr(self._reader, "get"):
                    raise InvalidInputError(
                        f"the opener returned {type(self._reader).__name__}, which has no "
                        f"get(ctype, t) method")
            else:
                raise InvalidInputError(
                    f"source must be a path, an opener callable or an object with get(), "
                    f"got {type(src).__name__}")
        return self._reader

    def _read(self, ctypes: Sequence[str], t: Any, vers: Mapping[str, Any]):
        reader = self._open_reader()
        out = []
        for ctype in ctypes:
            v = vers.get(ctype)
            out.append((ctype, reader.get(ctype, t) if v is None else reader.get(ctype, t, v)))
        return out

    # ---------------------------------------------------------------- collective get
    def get(self, ctype: str, t: Any, vers: Any = None) -> Payload:
        """The constants of ``ctype`` valid at ``t`` on every rank (collective).

        Returns a read-only ndarray view of node-shared memory, or a str for text.
        Raises on every rank the exception the root rank met (same class and message).
        """
        return self.get_many([ctype], t, None if vers is None else {ctype: vers})[ctype]

    def get_many(self, ctypes: Sequence[str], t: Any,
                 vers: Optional[Mapping[str, Any]] = None) -> Dict[str, Payload]:
        """Several ctypes at time ``t`` in one collective: ``{ctype: array or str}``.

        All payloads share one window per node. ``vers`` optionally maps a ctype to a
        version number. Every rank must call this with the same arguments: if one differs
        from the root's, every rank raises :class:`~pscalib.errors.InvalidInputError`.
        """
        if self._closed:
            raise InvalidInputError(f"this SharedConstants {self._closed}; create a new one")
        blobs: List[Any] = []
        failure: Optional[BaseException] = None
        rank = self.comm.rank
        encoded = b""
        if rank == self.root:
            try:
                request = _request(ctypes, t, vers)
                entries, blobs, size = _plan(self._read(request[0], t, request[2]))
                encoded = json.dumps(["ok", entries, size, request]).encode()
            # every failure of the read goes to every rank; SystemExit too: a client that
            # calls sys.exit() must not leave the other ranks waiting for this one
            except (Exception, SystemExit) as exc:
                failure = exc
                encoded = json.dumps(["error", _error_record(exc, rank)]).encode()
        header = self._bcast_json(encoded)
        if header[0] == "error":
            err = _exception(header[1])
            if rank == self.root:
                raise err from failure
            raise err
        _, entries, size, request = header
        mismatch = None
        if rank != self.root:
            try:  # compared as the root's request arrived: through JSON
                mine: Any = json.loads(json.dumps(_request(ctypes, t, vers)))
            except Exception as exc:
                mine = f"{type(exc).__name__}: {exc}"
            if mine != request:  # reported by every rank at the allocation step below
                mismatch = ["pscalib.errors", "InvalidInputError",
                            f"rank {rank} asked for {_show(mine)} but the reading rank "
                            f"{self.root} for {_show(request)}; every rank must call get or "
                            f"get_many with the same arguments"]
        window = self._allocate(size, mismatch)
        self._fill(window, entries, blobs, size)
        del blobs  # the root's private copies: freed before the caller continues
        return {e[0]: self._view(window, e) for e in entries}

    def _allocate(self, size: int, mismatch: Optional[List[str]]) -> _Window:
        """A window of ``size`` (+ alignment slack) bytes owned by the node leader.

        Also the step where every rank learns of a failure on any rank (a failed
        allocation, or a rank whose arguments differ from the root's).
        """
        error = None
        win: Any = None
        base, local = np.zeros(0, np.uint8), 0
        try:
            if size:
                local = size + _ALIGN if self.is_leader else 0
                win = MPI.Win.Allocate_shared(local, 1, comm=self.node)  # type: ignore[arg-type]
                buf, _ = win.Shared_query(0)
                shift = (-buf.address) % _ALIGN  # same page offset on every rank
                base = np.frombuffer(buf, np.uint8, count=size, offset=shift)
        except Exception as exc:
            error = _error_record(exc, self.comm.rank)
        flag = np.array([error is not None or mismatch is not None], np.int32)
        anyflag = np.zeros(1, np.int32)
        self._wait(self.comm.Iallreduce(flag, anyflag, op=MPI.MAX), "the window allocation")
        if not anyflag[0]:
            self.window_bytes += local
            return _Window(win, base, local)
        reports = self.comm.allgather((error, mismatch))  # only after a failure somewhere
        failed = [e for e, _ in reports if e is not None]
        if win is not None and not failed:  # allocated on every rank: free it together
            win.Free()
        raise _exception((failed + [m for _, m in reports if m is not None])[0])

    def _fill(self, window: _Window, entries: List[tuple], blobs: List[Any],
              size: int) -> None:
        """Root copies into its window; leaders broadcast among themselves; nodes sync."""
        if not size:
            return
        base, win = window.base, window.win  # type: Any, Any
        # MPI-3 shared-memory idiom: stores in a passive epoch, then Sync, barrier, Sync
        win.Lock_all(MPI.MODE_NOCHECK)
        if self.comm.rank == self.root:
            for (_, _, _, _, off, n), blob in zip(entries, blobs):
                src = np.frombuffer(blob, np.uint8) if isinstance(blob, bytes) else \
                    blob.reshape(-1).view(np.uint8)
                base[off:off + n] = src
        if self.is_leader and self.leaders.size > 1:
            for start in range(0, size, _CHUNK):
                stop = min(size, start + _CHUNK)
                self._wait(self.leaders.Ibcast([base[start:stop], MPI.BYTE], root=0),
                           "the constants from the reading rank")
            if self.comm.rank != self.root:
                self.bytes_received += size
        # the leader's stores are complete and visible to every rank of the node before
        # any of them builds a view
        win.Sync()
        self._wait(self.node.Ibarrier(), "the node leader's copy of the constants")
        win.Sync()
        win.Unlock_all()
        # freeze: from here on views come from a read-only buffer, so no rank (not even the
        # leader) can make them writable again
        window.base = np.frombuffer(memoryview(base).toreadonly(), np.uint8)
        self._windows.append(window)

    def _wait(self, req: Any, what: str) -> None:
        """Wait for a non-blocking request, sleeping between tests, at most ``timeout``.

        Why sleep: ranks waiting for a slow reader leave the CPU to it (MPI's blocking
        calls spin, which starves the reader when ranks outnumber cores).
        """
        start, pause = time.monotonic(), 1e-5
        while not req.Test():
            if self.timeout is not None and time.monotonic() - start > self.timeout:
                self._closed = "gave up waiting for the other ranks"  # out of step now
                raise CollectiveError(
                    f"rank {self.comm.rank} waited {self.timeout:g} s for {what} and gave "
                    f"up; the ranks are out of step now, end the job (comm.Abort())")
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)

    def _bcast_json(self, encoded: bytes) -> Any:
        """Broadcast the root's JSON ``encoded`` (its length first); JSON, not pickle:
        nothing but plain data crosses between ranks."""
        n = np.array([len(encoded)], np.int64)
        self._wait(self.comm.Ibcast(n, root=self.root), "the reading rank's answer")
        buf = np.frombuffer(encoded, np.uint8).copy() if self.comm.rank == self.root else \
            np.empty(int(n[0]), np.uint8)
        self._wait(self.comm.Ibcast(buf, root=self.root), "the reading rank's answer")
        return json.loads(buf.tobytes())

    def _view(self, window: _Window, entry: tuple) -> Payload:
        _, kind, dtype, shape, off, n = entry
        seg = window.base[off:off + n]
        if kind == "text":
            return bytes(seg).decode("utf-8")
        # every view's numpy base is window.base: close() counts references to it
        return seg.view(np.dtype(dtype)).reshape(shape)

    # ---------------------------------------------------------------- lifetime
    def _busy(self) -> List[bool]:
        """Per window: is any array that came from it still referenced on this rank?"""
        # two references are ours (the window's attribute and getrefcount's argument);
        # every further one is a returned array or a view derived from one
        return [sys.getrefcount(w.base) > 2 for w in self._windows]

    def close(self) -> int:
        """Free the windows no rank of the node uses any more (collective); returns how
        many were freed. Windows whose arrays are still referenced stay valid until MPI
        finalizes. Also closes a store this object opened."""
        if self._closed:
            return 0
        self._closed = "was closed"
        freed = 0
        busy = np.array(self._busy(), dtype=np.int32)
        if busy.size:
            anybusy = np.zeros_like(busy)
            self.node.Allreduce(busy, anybusy, op=MPI.MAX)
            keep = []
            for w, b in zip(self._windows, anybusy):
                if b:
                    keep.append(w)  # a view is alive somewhere: leave it to MPI_Finalize
                elif w.win is not None:
                    w.base = np.zeros(0, np.uint8)
                    w.win.Free()
                    freed += 1
            self._windows = keep
        for comm in (self.leaders, self.node):
            if comm != MPI.COMM_NULL:
                comm.Free()
        if self._owns_reader and hasattr(self._reader, "close"):
            self._reader.close()
        self._reader = None
        return freed

    def __enter__(self) -> "SharedConstants":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get_many(source: Source, ctypes: Sequence[str], t: Any, detname: Optional[str] = None,
             *, comm: Optional[Any] = None, root: int = 0) -> Dict[str, Payload]:
    """One collective read of several ctypes; see :class:`SharedConstants`.

    The windows stay alive for as long as the returned arrays are referenced (they are
    released by MPI at finalization; use :class:`SharedConstants` to free them earlier).
    """
    sc = SharedConstants(source, detname, comm=comm, root=root)
    return sc.get_many(ctypes, t)
