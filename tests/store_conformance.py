"""Read invariants every store backend (native, legacy, ...) must satisfy.

Used by tests/test_conformance.py; ``check_store_invariants(cs)`` takes an open
:class:`pscalib.DCStore` and asserts, reading only through the public model API plus the
backend's read interface:

- metadata fields have the documented types;
- every calibration type opens and lists all rows of its range table;
- per range: versions are sorted and unique; the default is one of them (0 only when
  there are none);
- ``get()`` at each range's begin returns the default payload of the range the selection
  rule (:func:`pscalib.store.selection.select_bruteforce`) picks among non-empty ranges;
- each version's info (kind, dtype, shape, nbytes) matches its payload, and its sha256,
  when present, equals :func:`pscalib.store.payload.checksum`;
- dictpars decode to supported Python types at every level; history records have an int
  ``tsns`` and str fields.

Returns a small summary dict (counts) so callers can also check that a fixture really has
the shape it claims.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from pscalib.errors import NoValidConstantsError
from pscalib.store.payload import checksum, payloads_equal
from pscalib.store.selection import select_bruteforce
from pscalib.timestamps import OPEN_END

__all__ = ["check_store_invariants"]

_SCALARS = (str, int, float, bool)


def _check_dictpars(obj) -> int:
    pars = obj.dictpars()
    assert isinstance(pars, dict), obj
    for k, v in pars.items():
        assert isinstance(k, str) and k, (obj, k)
        if isinstance(v, np.ndarray):
            assert v.ndim == 1 and v.size > 0, (obj, k, v)
            assert v.dtype.kind in "biufU", (obj, k, v.dtype)
        else:
            assert type(v) in _SCALARS, (obj, k, type(v))
    return len(pars)


def _check_history(obj) -> int:
    recs = obj.history_records()
    for r in recs:
        assert type(r.tsns) is int, (obj, r)
        for field in (r.user, r.host, r.action, r.record):
            assert isinstance(field, str), (obj, r)
    assert isinstance(obj.history(), str)
    hd = obj.histdict()
    assert len(hd) == len(recs)  # keys never collide
    return len(recs)


def _at(t: int) -> np.datetime64:
    return np.datetime64(int(t), "ns")  # exact: ints would be read as seconds


def check_store_invariants(cs) -> Dict[str, Any]:
    """Assert the read invariants on the open store ``cs``; return counts."""
    summary = {"ctypes": 0, "ranges": 0, "empty_ranges": 0, "versions": 0, "text": 0,
               "zero_d": 0, "gets": 0, "pars": 0, "records": 0}
    be = cs.backend
    for name in ("dettype", "detid", "detname"):
        assert isinstance(getattr(cs, name)(), str) and getattr(cs, name)(), name
    assert cs.detname() == f"{cs.dettype()}-{cs.detid()}" or cs.detname()
    assert cs.tscfile() is None or type(cs.tscfile()) is int
    for link in (cs.predecessor(), cs.successor()):
        assert link is None or (isinstance(link, str) and link)
    summary["pars"] += _check_dictpars(cs)
    summary["records"] += _check_history(cs)

    ctypes = cs.ctypes()
    assert ctypes == sorted(ctypes) and len(set(ctypes)) == len(ctypes)
    for cname in ctypes:
        summary["ctypes"] += 1
        assert cname in cs
        ct = cs.ctypeobj(cname)
        summary["pars"] += _check_dictpars(ct)
        summary["records"] += _check_history(ct)
        tab = be.range_table(cname)
        ranges = ct.ranges()
        assert len(ranges) == len(tab.tsbegin) == len(ct)
        assert sorted((r.tsbegin(), r.tsend()) for r in ranges) == \
            sorted(zip(tab.tsbegin.tolist(), tab.tsend.tolist()))
        begins, ends, defaults = [], [], []
        for r in ranges:
            summary["ranges"] += 1
            assert r.tsbegin() < r.tsend() or (be.end_inclusive and r.tsbegin() == r.tsend())
            assert ct.rangeobj(r.name) == r
            nums = [v.version() for v in r.versions()]
            assert nums == sorted(set(nums)) and all(n >= 1 for n in nums), (r, nums)
            d = r.versdef()
            assert (d in nums) if nums else d == 0, (r, d, nums)
            summary["pars"] += _check_dictpars(r)
            summary["records"] += _check_history(r)
            if not nums:
                summary["empty_ranges"] += 1
            else:
                begins.append(r.tsbegin())
                ends.append(r.tsend())
                defaults.append(r.versobj())
            for v in r.versions():
                summary["versions"] += 1
                data = v.calib()
                info = v.info()
                assert info.version == v.version() and type(info.tsprod) is int
                if isinstance(data, str):
                    summary["text"] += 1
                    assert info.kind == "text" and info.nbytes == len(data.encode("utf-8"))
                else:
                    assert isinstance(data, np.ndarray) and info.kind == "ndarray"
                    assert info.dtype == data.dtype and tuple(info.shape) == data.shape
                    assert info.nbytes == data.nbytes
                    summary["zero_d"] += data.ndim == 0
                if info.sha256 is not None:
                    assert info.sha256 == checksum(data), v
                summary["pars"] += _check_dictpars(v)
                summary["records"] += _check_history(v)
        # the selection rule at every range's begin (and just before it)
        probes = set()
        for r in ranges:
            probes.add(r.tsbegin())
            probes.add(r.tsbegin() - 1)
            if r.tsend() != OPEN_END:
                probes.add(r.tsend())
        for t in sorted(probes):
            i = select_bruteforce(begins, ends, t, be.end_inclusive)
            if i is None:
                try:
                    cs.get(cname, _at(t))
                except NoValidConstantsError:
                    continue
                raise AssertionError(f"{cname}: get at {t} found constants, rule says none")
            got = cs.get(cname, _at(t))
            assert payloads_equal(got, defaults[i].calib()), (cname, t)
            assert cs.version_at(cname, _at(t)) == defaults[i]
            summary["gets"] += 1
    return summary
