"""The remote client (issue 19) against a real ``dcs serve`` on 127.0.0.1.

The read half of the conformance suite runs on RemoteStore for every store of
tests/test_conformance.py, and the remote answers equal the file API on the same stores.
Also: the DCStore("http://...") hook, errors mapped to the library classes, a commit seen,
a server that is down / killed mid-transfer / sends wrong bytes (clean errors, no partial or
wrong file in the cache), and the offline rules.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the server extra: pip install 'pscalib[server]'")

from pscalib import DCStore  # noqa: E402
from pscalib.errors import (CtypeNotFoundError, IntegrityError, InvalidInputError,  # noqa: E402
                            NoValidConstantsError, ReadOnlyError, ServiceUnavailableError)
from pscalib.remote import RemoteStore, StaleAnswerWarning  # noqa: E402
from pscalib.remote.cache import ClientCache  # noqa: E402
from pscalib.remote.client import RemoteClient  # noqa: E402
from pscalib.remote.http import HttpClient  # noqa: E402
from pscalib.service.payloads import encode_payload  # noqa: E402
from pscalib.store.payload import checksum, payloads_equal  # noqa: E402
from pscalib.store.values import pars_equal  # noqa: E402
from pscalib.timestamps import OPEN_END  # noqa: E402
import pscalib.remote  # noqa: E402
from serve_helpers import Served, free_port, kill_quietly  # noqa: E402
from store_conformance import ReadOnlyConformance, survey  # noqa: E402
import test_conformance as TC  # noqa: E402

TINY = Path(__file__).with_name("tiny_http.py")


def _equal_pars(a, b) -> bool:
    return set(a) == set(b) and all(pars_equal(a[k], b[k]) for k in a)


def assert_same_as_file(fcs: DCStore, rcs: RemoteStore) -> int:
    """The remote store answers exactly like the file; returns the number of versions."""
    n = 0
    for name in ("dettype", "detid", "detname", "tscfile", "predecessor", "successor"):
        assert getattr(rcs, name)() == getattr(fcs, name)(), name
    assert rcs.ctypes() == fcs.ctypes()
    assert _equal_pars(rcs.dictpars(), fcs.dictpars())
    assert rcs.history_records() == fcs.history_records()
    for c in fcs.ctypes():
        assert _equal_pars(rcs[c].dictpars(), fcs[c].dictpars())
        assert rcs[c].history_records() == fcs[c].history_records()
        franges, rranges = fcs[c].ranges(), rcs[c].ranges()
        assert [r.range() for r in rranges] == [r.range() for r in franges]
        for fr, rr in zip(franges, rranges):
            assert rr.versdef() == fr.versdef()
            assert _equal_pars(rr.dictpars(), fr.dictpars())
            assert rr.history_records() == fr.history_records()
            assert [v.version() for v in rr.versions()] == [v.version() for v in fr.versions()]
            for fv, rv in zip(fr.versions(), rr.versions()):
                n += 1
                fi, ri = fv.info(), rv.info()
                assert fi._replace(sha256=None) == ri._replace(sha256=None)
                data = fv.calib()
                assert ri.sha256 == (fi.sha256 or checksum(data))  # legacy: computed
                assert payloads_equal(rv.calib(), data)
                assert _equal_pars(rv.dictpars(), fv.dictpars())
                assert rv.history_records() == fv.history_records()
            probes = [fr.tsbegin()] + ([fr.tsend()] if fr.tsend() != OPEN_END else [])
            for t in probes:
                at = np.datetime64(t, "ns")
                try:
                    want = fcs.get(c, at)
                except NoValidConstantsError as exc:
                    with pytest.raises(NoValidConstantsError) as ei:
                        rcs.get(c, at)
                    assert str(exc) in str(ei.value) or "no " in str(ei.value)
                    continue
                assert payloads_equal(rcs.get(c, at), want)
                if fr.versions():
                    assert rcs.get(c, at, fcs.version_at(c, at).version()) is not None
    return n


class RemoteReadConformance(ReadOnlyConformance):
    """The read half of the conformance suite on RemoteStore: the factory's store, linked
    into a calib directory, served by a real ``dcs serve`` on 127.0.0.1."""

    @pytest.fixture(scope="class")
    def served(self, source, tmp_path_factory):
        calib = tmp_path_factory.mktemp(type(self).__name__ + "-calib")
        det = source.name[:-3]
        dst = calib / det.split("-")[0] / source.name
        dst.parent.mkdir(parents=True)
        dst.symlink_to(source)
        srv = Served(calib)
        yield srv, det
        srv.stop()

    @pytest.fixture
    def store(self, served, tmp_path):
        srv, det = served
        rcs = RemoteStore(srv.base, det, cache_dir=tmp_path / "cache")
        yield rcs
        rcs.close()

    def test_remote_answers_equal_the_file(self, store, source, tmp_path):
        with DCStore(source) as fcs:
            assert assert_same_as_file(fcs, store) == survey(fcs)["versions"]
            assert survey(store) == survey(fcs)
        # every payload in the cache is named by its sha256 and holds exactly that payload
        cache = ClientCache(tmp_path / "cache")
        files = list(cache.payload_dir.glob("*")) if cache.payload_dir.exists() else []
        assert len(files) == len({f.name for f in files})
        for f in files:
            sha, ext = f.name.split(".")
            assert cache.load_payload(sha, "text" if ext == "txt" else "ndarray") is not None


def _remote_variant(base: type) -> type:
    """``base`` (a class of tests/test_conformance.py) with its stores read over HTTP."""
    return type("TestRemote" + base.__name__[4:], (RemoteReadConformance,),
                {"make": base.make, "EXPECT": staticmethod(base.EXPECT) if base.EXPECT
                 else None, "__doc__": f"{base.__name__}'s store through the service."})


for _base in (TC.TestNativeEmpty, TC.TestNativeManyRanges, TC.TestNativeOverlaps,
              TC.TestNativeTextAnd0d, TC.TestNativeAfterDeletions, TC.TestNativeCompacted,
              TC.TestLegacyCspad, TC.TestLegacyEpix100a, TC.TestImportedCspad):
    globals()[_remote_variant(_base).__name__] = _remote_variant(_base)
del _base


# ------------------------------------------------------------------ one small store
def _small_calib(root: Path) -> Path:
    calib = root / "calib"
    with DCStore(calib / "cspad" / "cspad-0001.h5", mode="a") as cs:
        cs.add_constants("pedestals", np.arange(16.0).reshape(4, 4), "2024-01-01")
        cs.add_constants("geometry", "geo v1\n", "2024-01-01")
    return calib


@pytest.fixture
def small(tmp_path):
    calib = _small_calib(tmp_path)
    srv = Served(calib)
    yield calib, srv
    srv.stop()


def test_dcstore_with_a_url_is_a_remote_store(small, tmp_path):
    calib, srv = small
    cs = DCStore(srv.base, "cspad-0001", cache_dir=tmp_path / "c")
    assert isinstance(cs, RemoteStore) and isinstance(cs, DCStore)
    assert cs.get("geometry", "2024-02-01") == "geo v1\n"
    same = pscalib.remote.open(srv.base + "/", "cspad-0001", cache_dir=tmp_path / "c")
    assert same.ctypes() == cs.ctypes() == ["geometry", "pedestals"]
    assert list(cs.get_all("2024-02-01")) == ["geometry", "pedestals"]
    assert cs.get_all("2020-01-01") == {}
    for change in (lambda: cs.add_constants("pedestals", np.ones(2), "2024-01-01"),
                   lambda: cs.set_pars({"a": 1}), lambda: cs.add_ctype("x"),
                   lambda: cs["pedestals"].ranges()[0].set_versdef(1)):
        with pytest.raises(ReadOnlyError):
            change()
    with pytest.raises(ReadOnlyError):
        DCStore(srv.base, "cspad-0001", mode="a")
    with pytest.raises(InvalidInputError):
        RemoteStore("ftp://host", "cspad-0001")
    lk = cs.lookup("pedestals", "2024-02-01")
    assert lk["version"] == 1 and lk["payload_url"].endswith(lk["sha256"])


def test_library_errors_arrive_as_the_same_classes(small, tmp_path):
    calib, srv = small
    cs = RemoteStore(srv.base, "cspad-0001", cache_dir=tmp_path / "c")
    with DCStore(calib, "cspad-0001") as fcs:
        for call in (lambda s: s.get("pixel_gain", "2024-02-01"),
                     lambda s: s.get("pedestals", "2020-01-01"),
                     lambda s: s.get("pedestals", "2024-02-01", vers=7)):
            with pytest.raises(Exception) as want:
                call(fcs)
            with pytest.raises(type(want.value)) as got:
                call(cs)
            assert str(got.value) == " ".join(str(want.value).split())
    with pytest.raises(CtypeNotFoundError):
        cs.ctypeobj("pixel_gain")
    from pscalib.errors import StoreNotFoundError
    with pytest.raises(StoreNotFoundError):
        RemoteStore(srv.base, "cspad-0042", cache_dir=tmp_path / "c")


def test_a_commit_is_seen_by_get_and_after_refresh(small, tmp_path):
    calib, srv = small
    cs = RemoteStore(srv.base, "cspad-0001", cache_dir=tmp_path / "c")
    assert len(cs["pedestals"].ranges()[0].versions()) == 1
    new = np.full((4, 4), 3.0)
    with DCStore(calib, "cspad-0001", mode="a") as w:
        w.add_constants("pedestals", new, "2024-01-01")
    assert np.array_equal(cs.get("pedestals", "2024-02-01"), new)  # lookups ask each time
    assert len(cs["pedestals"].ranges()[0].versions()) == 1  # the tree is a snapshot ...
    assert cs.refresh() is True  # ... until refreshed, like a file
    assert len(cs["pedestals"].ranges()[0].versions()) == 2
    assert cs.refresh() is False


def test_server_down_raises_cleanly_and_fast(tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as ei:
        RemoteStore(f"http://127.0.0.1:{port}", "cspad-0001", cache_dir=tmp_path / "c",
                    timeout=1, retries=3)
    assert time.monotonic() - t0 < 10
    msg = str(ei.value)
    assert f"127.0.0.1:{port}" in msg and "3 attempt" in msg and "dcs serve" in msg
    assert isinstance(ei.value, ConnectionError)


def test_offline_rules(small, tmp_path):
    calib, srv = small
    cache = tmp_path / "c"
    cs = RemoteStore(srv.base, "cspad-0001", cache_dir=cache)
    peds = cs.get("pedestals", "2024-02-01")
    srv.stop()
    # payloads are content-addressed: a tree handle already open still reads them
    assert payloads_equal(cs["pedestals"].ranges()[0].versobj().calib(), peds)
    # lookups need the service, unless a stale answer is explicitly allowed
    with pytest.raises(ServiceUnavailableError) as ei:
        cs.get("pedestals", "2024-02-01")
    assert "stale_ok=True" in str(ei.value)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        stale = RemoteStore(srv.base, "cspad-0001", cache_dir=cache, stale_ok=True, retries=1,
                            timeout=1)
        assert payloads_equal(stale.get("pedestals", "2024-02-01"), peds)
    assert stale.stale is True and any(issubclass(x.category, StaleAnswerWarning) for x in w)
    off = RemoteStore(srv.base, "cspad-0001", cache_dir=cache, offline=True)
    assert payloads_equal(off.get("pedestals", "2024-02-01"), peds)
    with pytest.raises(ServiceUnavailableError, match="offline"):
        off.get("pedestals", "2024-03-01")  # never asked before: no cached answer
    with pytest.raises(ServiceUnavailableError, match="offline"):
        off.get("geometry", "2024-02-01")
    # a damaged cached payload is never used: removed, and offline it is simply missing
    sha = checksum(peds)
    f = cache / "payloads" / f"{sha}.npy"
    raw = bytearray(f.read_bytes())
    raw[-1] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(ServiceUnavailableError, match="not in the cache"):
        off.get("pedestals", "2024-02-01")
    assert not f.exists()


def test_damaged_cache_file_is_fetched_again(small, tmp_path):
    calib, srv = small
    cache = tmp_path / "c"
    cs = RemoteStore(srv.base, "cspad-0001", cache_dir=cache)
    peds = cs.get("pedestals", "2024-02-01")
    f = cache / "payloads" / f"{checksum(peds)}.npy"
    f.write_bytes(b"\x93NUMPY junk")
    assert payloads_equal(cs.get("pedestals", "2024-02-01"), peds)
    assert payloads_equal(np.load(f), peds)


# ------------------------------------------------------------------ broken servers
@contextlib.contextmanager
def tiny_server(tmp_path: Path, mode: str, n: int = 1000, retries: int = 2):
    """A tests/tiny_http.py server in ``mode`` serving an n-element float64 payload;
    yields (client with an empty cache, the array, the server process)."""
    data = np.arange(n, dtype=np.float64)
    body = tmp_path / "body.npy"
    body.write_bytes(encode_payload(data)[0])
    proc = subprocess.Popen([sys.executable, str(TINY), mode, str(body)],
                            stdout=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        cache = ClientCache(tmp_path / "cache")
        yield RemoteClient(HttpClient(base, timeout=5, retries=retries), cache), data, proc
    finally:
        kill_quietly(proc)
        proc.stdout.close()


def _cached_files(tmp_path: Path):
    return [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_server_killed_mid_transfer_leaves_no_partial_file(tmp_path):
    with tiny_server(tmp_path, "cut", n=4_000_000, retries=3) as (client, data, proc):
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as ei:
            client.payload(checksum(data), "ndarray")
        assert time.monotonic() - t0 < 30
        proc.wait(10)
        assert proc.returncode == -9  # it really was killed while sending
        assert "3 attempt" in str(ei.value)
        assert _cached_files(tmp_path) == []  # neither a partial payload nor a temporary file


def test_wrong_bytes_are_refused_and_not_cached(tmp_path):
    with tiny_server(tmp_path, "garbage") as (client, data, _):
        with pytest.raises(IntegrityError, match="does not match its sha256"):
            client.payload(checksum(data), "ndarray")
        assert _cached_files(tmp_path) == []


def test_a_transient_503_from_a_proxy_is_retried(tmp_path):
    with tiny_server(tmp_path, "flaky") as (client, data, _):
        assert payloads_equal(client.payload(checksum(data), "ndarray"), data)
        assert os.listdir(client.cache.payload_dir) == [f"{checksum(data)}.npy"]
