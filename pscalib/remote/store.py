"""RemoteStore: a store served by ``dcs serve``, with the read API of a store file.

The store's tree (``GET /api/v1/stores/{name}``) is read once when the store is opened and
again by :meth:`RemoteStore.refresh`, like a file that is reopened: ``ctypes``, ``ranges``,
``versions``, ``dictpars``, ``history``, ``version_at`` and the :class:`DCType` /
:class:`DCRange` / :class:`DCVersion` handles read that snapshot. :meth:`RemoteStore.get`
asks the service's lookup route every time (so it sees the latest commit, and ``run=`` /
``tag=`` / ``asof=`` work as far as the served library supports them), then loads the
payload by its sha256 from the local cache or the service.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..config import remote_settings
from ..errors import InvalidInputError, NoValidConstantsError, ReadOnlyError
from ..names import validate_ctype
from ..service.encode import decode_history, decode_pars
from ..store.backend import Backend, Key, RangeTable, VersionInfo
from ..store.dcbase import DCBase
from ..store.dcobjects import _parse_vers
from ..store.dcstore import DCStore, register_url_store
from ..store.history import HistoryRecord
from ..store.outarray import copy_into
from ..store.payload import Payload
from ..store.selection import SelectionCache
from ..timestamps import TimeLike, format_ns, to_ns
from .cache import ClientCache
from .client import API, RemoteClient
from .http import HttpClient

__all__ = ["RemoteStore", "RemoteBackend", "open"]


class RemoteBackend(Backend):
    """The :class:`~pscalib.store.backend.Backend` read interface over a store tree."""

    writable_format = False

    def __init__(self, tree: Dict[str, Any], client: RemoteClient, where: str):
        self.tree = tree
        self.client = client
        self.filename = where
        self.end_inclusive = bool(tree.get("end_inclusive", False))
        self.format_description = f"{tree.get('format', '')} served by {client.http.base}"
        self._ranges: Dict[str, Dict[tuple, Dict[str, Any]]] = {}
        self._versions: Dict[Key, Dict[str, Any]] = {}
        for cname, ct in tree["ctypes"].items():
            rmap = self._ranges[cname] = {}
            for r in ct["ranges"]:
                rk = (cname, int(r["tsbegin_ns"]), int(r["tsend_ns"]))
                rmap[rk] = r
                for v in r["versions"]:
                    self._versions[rk + (int(v["version"]),)] = v

    def _node(self, key: Key) -> Dict[str, Any]:
        if not key:
            return self.tree
        if len(key) == 1:
            return self.tree["ctypes"][key[0]]
        if len(key) == 3:
            return self._ranges[key[0]][tuple(key)]
        return self._versions[tuple(key)]

    def meta(self) -> Dict[str, Any]:
        t = self.tree
        return {"dettype": t["dettype"], "detid": t["detid"], "detname": t["detname"],
                "tscfile": t.get("tscfile_ns"), "predecessor": t.get("predecessor"),
                "successor": t.get("successor")}

    def ctypes(self) -> List[str]:
        return sorted(self.tree["ctypes"])

    def has_ctype(self, ctype: str) -> bool:
        return ctype in self.tree["ctypes"]

    def range_table(self, ctype: str) -> RangeTable:
        rs = self.tree["ctypes"][ctype]["ranges"]
        return RangeTable(np.array([r["tsbegin_ns"] for r in rs], dtype=np.int64),
                          np.array([r["tsend_ns"] for r in rs], dtype=np.int64),
                          np.array([r["versdef"] for r in rs], dtype=np.int64))

    def versions(self, ctype: str, tsbegin: int, tsend: int) -> List[int]:
        r = self._ranges.get(ctype, {}).get((ctype, tsbegin, tsend))
        return [] if r is None else sorted(int(v["version"]) for v in r["versions"])

    def version_info(self, key: Key) -> VersionInfo:
        v = self._node(key)
        return VersionInfo(int(v["version"]), int(v["tsprod_ns"]), v["kind"], v["sha256"],
                           None if v["dtype"] is None else np.dtype(v["dtype"]),
                           None if v["shape"] is None else tuple(v["shape"]), int(v["nbytes"]))

    def payload(self, key: Key) -> Payload:
        v = self._node(key)
        return self.client.payload(v["sha256"], v["kind"])

    def dictpars(self, key: Key) -> Dict[str, Any]:
        return decode_pars(self._node(key)["dictpars"])

    def history(self, key: Key) -> List[HistoryRecord]:
        return decode_history(self._node(key)["history"])

    def close(self) -> None:
        pass


class RemoteStore(DCStore):
    """A store read through the HTTP service (``dcs serve``), with the store read API.

    ``DCStore("http://host:8080", "cspad-0001")`` gives one too.

    Parameters
    ----------
    url
        Base URL of the service or of an HTTP cache in front of it.
    detname
        Detector name or alias (resolved by the service; an alias at ``tsp``).
    mode
        Only ``'r'``: remote stores are read-only.
    cache_dir, timeout, retries
        Local cache directory and network limits (default ``PSCALIB_CACHE``,
        ``PSCALIB_HTTP_TIMEOUT``, ``PSCALIB_HTTP_RETRIES``).
    stale_ok
        If the service cannot be reached, use the last cached answer (warns with
        :class:`~pscalib.remote.client.StaleAnswerWarning`; ``stale`` tells).
    offline
        Never contact the service; use cached answers and payloads only.
    tsp
        Time at which an alias in ``detname`` is resolved.
    """

    __slots__ = ("url", "name", "_client", "_tsp")

    def __init__(self, url: str, detname: Optional[str] = None, mode: str = "r", *,
                 cache_dir: Any = None, timeout: Optional[float] = None,
                 retries: Optional[int] = None, stale_ok: bool = False, offline: bool = False,
                 tsp: Optional[TimeLike] = None, lock_timeout: Any = None,
                 file_mode: Any = None):
        DCBase.__init__(self, self, ())
        if mode != "r":
            raise ReadOnlyError(f"a store served over HTTP ({url}) is read-only; change it "
                                f"where it is stored (mode={mode!r} refused)")
        if not isinstance(detname, str) or not detname:
            raise InvalidInputError("give the detector name or alias of the remote store, "
                                    "e.g. DCStore('http://host:8080', 'cspad-0001')")
        cfg = remote_settings(cache_dir=cache_dir, timeout=timeout, retries=retries)
        http = HttpClient(url, cfg.timeout, cfg.retries)
        self._client = RemoteClient(http, ClientCache(cfg.cache_dir), stale_ok=stale_ok,
                                    offline=offline)
        self.url = http.base
        self.name = detname
        # a URL where a file store has its path (used in messages the same way)
        self.path = f"{self.url}{API}/stores/{detname}"  # type: ignore[assignment]
        self.mode = "r"
        self.resolved = None  # type: ignore[assignment]  # no file was resolved
        self._lock_timeout = None
        self._file_mode = None
        self._backend = None
        self._txn = None
        self._lookup = SelectionCache(self)  # range tables of the tree, as for a file
        self._stat = None
        self._tsp = None if tsp is None else format_ns(to_ns(tsp))
        self._load()

    @property
    def stale(self) -> bool:
        """True if the last answer came from the cache (service unreachable)."""
        return self._client.stale

    def _store_path(self) -> str:
        return f"{API}/stores/{RemoteClient.quote(self.name)}"

    def _load(self) -> Optional[Dict[str, Any]]:
        params = {"t": self._tsp} if self._tsp else None
        tree = self._client.doc(self._store_path(), params)
        old = self._backend.tree if isinstance(self._backend, RemoteBackend) else None
        if tree != old:
            self._backend = RemoteBackend(tree, self._client, str(self.path))
            self._lookup.clear()
        return old

    def refresh(self) -> bool:
        """Read the store's tree again; True if it changed (a commit on the server)."""
        old = self._load()
        return old is not None and self._backend.tree is not old  # type: ignore[union-attr]

    # -------------------------------------------------------------- lookups
    def lookup(self, ctype: str, tsp: Optional[TimeLike] = None, vers: Any = None, *,
               tsprod: Optional[TimeLike] = None, **library_kw: Any) -> Dict[str, Any]:
        """The service's lookup answer: version, range, sha256, payload_url, dictpars, ...

        ``library_kw`` (``run=``, ``tag=``, ``asof=``) are passed to the served library;
        it answers InvalidInputError if it does not support one.
        """
        validate_ctype(ctype)
        params = {} if tsp is None else {"t": format_ns(to_ns(tsp))}
        if vers is not None:
            params["vers"] = str(_parse_vers(vers))
        if tsprod is not None:
            params["tsprod"] = format_ns(to_ns(tsprod))
        for k, v in library_kw.items():
            params[k] = str(v)
        return self._client.doc(f"{self._store_path()}/{RemoteClient.quote(ctype)}", params)

    def get(self, ctype: str, tsp: Optional[TimeLike] = None,
            vers: Any = None, *, tsprod: Optional[TimeLike] = None, run: Optional[int] = None,
            experiment: Optional[str] = None, out: Any = None,
            **library_kw: Any) -> Payload:
        """The constants of ``ctype`` valid at ``tsp`` or at the begin of ``run`` (as
        :meth:`DCStore.get`; the run table is the served one), asked of the service and
        loaded by sha256 from the cache or the service (verified).

        ``out`` (as :meth:`DCStore.get`) is filled by a copy: the payload arrives as an
        HTTP body or a cache file that is decoded and checked whole first."""
        if run is not None:
            library_kw["run"] = run
        if experiment is not None:
            library_kw["experiment"] = experiment
        ans = self.lookup(ctype, tsp, vers, tsprod=tsprod, **library_kw)
        payload = self._client.payload(ans["sha256"], ans["kind"])
        if out is None:
            return payload
        return copy_into(payload, out, f"the {ctype} constants")

    def get_all(self, tsp: Optional[TimeLike] = None, *, run: Optional[int] = None,
                experiment: Optional[str] = None) -> Dict[str, Payload]:
        """``{ctype: constants valid at tsp (or run)}`` for every ctype that has some."""
        out = {}
        for cname in self.ctypes():
            try:
                out[cname] = self.get(cname, tsp, run=run, experiment=experiment)
            except NoValidConstantsError:
                continue
        return out

    # -------------------------------------------------------------- no writes
    def transaction(self):
        raise ReadOnlyError(f"{self.path} is served over HTTP and read-only; change the "
                            f"store where it is stored")

    def add_constants(self, *args: Any, **kwargs: Any):
        return self.transaction()

    def close(self) -> None:
        self._backend = None
        self._lookup.clear()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteStore {self.path}{' (closed)' if self._backend is None else ''}>"


register_url_store(RemoteStore)


def open(url: str, detname: str, **kwargs: Any) -> RemoteStore:  # noqa: A001 (like io.open)
    """Open the store ``detname`` (or an alias) served at ``url``; see :class:`RemoteStore`."""
    return RemoteStore(url, detname, **kwargs)
