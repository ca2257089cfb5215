"""Property-based test: a real store against a tiny in-memory model of the selection rule.

Hypothesis drives random sequences of add / delete version / delete range / set default /
reopen (close and ``DCStore(path)`` again) on a real file. After every step ``get`` at a
grid of times, and every range's default version, must agree with the model:

* a range takes part in selection only while it has a version (its default is > 0);
* among ranges with ``tsbegin <= t < tsend`` the latest begin wins, then the earliest end;
* a new version is numbered one above the highest ever used in its range; the first version
  of a range, or one added with ``make_default=True``, becomes the default; adding a payload
  identical to the range's default adds nothing (deduplication);
* deleting the default version makes the highest remaining version the default.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pscalib import DCStore, OPEN_END
from pscalib.errors import CtypeNotFoundError, NoValidConstantsError

CTYPE = "pedestals"
NS = 1_000_000_000
# a few overlapping ranges on a small grid of Unix seconds (None = open end)
RANGES = [(1, None), (1, 4), (2, 6), (3, None), (3, 4), (5, 8), (6, 7)]
PROBES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 2.5, 3.999999999]


class _Range:
    def __init__(self):
        self.versions: Dict[int, float] = {}
        self.default = 0
        self.last = 0


class StoreModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pscalib-model-"))
        self.path = self.dir / "cspad-0001.h5"
        self.cs = DCStore(self.path, mode="a")
        self.model: Dict[Tuple[int, Optional[int]], _Range] = {}
        self.has_ctype = False

    def teardown(self):
        self.cs.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _rng(self, key):
        b, e = key
        return self.cs[CTYPE].rangeobj(b, e)

    def _with_versions(self):
        return [k for k, r in self.model.items() if r.versions]

    def expected(self, t: float) -> Optional[float]:
        tn = int(round(t * NS))
        best = None
        for (b, e), r in self.model.items():
            end = OPEN_END if e is None else e * NS
            if r.default and b * NS <= tn < end:
                if best is None or (b * NS, -end) > (best[0], -best[1]):
                    best = (b * NS, end, r)
        return None if best is None else best[2].versions[best[2].default]

    # ------------------------------------------------------------------ rules
    @rule(key=st.sampled_from(RANGES), value=st.integers(0, 3),
          make_default=st.booleans())
    def add(self, key, value, make_default):
        ver = self.cs.add_constants(CTYPE, np.full(3, float(value)), key[0], key[1],
                                    make_default=make_default)
        r = self.model.setdefault(key, _Range())
        if r.default and r.versions[r.default] == float(value):
            # identical to the range's default: nothing is added (deduplication)
            assert ver.unchanged and ver.version() == r.default
            self.has_ctype = True
            return
        r.last += 1
        assert not ver.unchanged and ver.version() == r.last
        r.versions[r.last] = float(value)
        if make_default or r.default == 0:
            r.default = r.last
        self.has_ctype = True

    @precondition(lambda self: self._with_versions())
    @rule(data=st.data())
    def delete_version(self, data):
        key = data.draw(st.sampled_from(self._with_versions()))
        r = self.model[key]
        v = data.draw(st.sampled_from(sorted(r.versions)))
        self._rng(key).del_version(v)
        del r.versions[v]
        if r.default == v:
            r.default = max(r.versions) if r.versions else 0

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_range(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=str)))
        self.cs[CTYPE].del_range((key[0], key[1]))
        del self.model[key]  # a re-created range starts numbering at 1 again

    @precondition(lambda self: self._with_versions())
    @rule(data=st.data())
    def set_default(self, data):
        key = data.draw(st.sampled_from(self._with_versions()))
        r = self.model[key]
        v = data.draw(st.sampled_from(sorted(r.versions)))
        self._rng(key).set_versdef(v)
        r.default = v

    @rule()
    def reopen(self):
        self.cs.close()
        self.cs = DCStore(self.path, mode="a")

    # ------------------------------------------------------------------ checks
    @invariant()
    def get_agrees(self):
        for t in PROBES:
            want = self.expected(t)
            try:
                got = self.cs.get(CTYPE, t)
            except CtypeNotFoundError:
                assert not self.has_ctype, f"t={t}: ctype missing"
                continue
            except NoValidConstantsError:
                assert want is None, f"t={t}: store found nothing, model says {want}"
                continue
            assert want is not None, f"t={t}: store gave {got[0]}, model says nothing"
            assert got[0] == want, f"t={t}: store {got[0]} != model {want}"

    @invariant()
    def defaults_agree(self):
        if not self.has_ctype:
            return
        ranges = {(r.tsbegin() // NS, None if r.is_open() else r.tsend() // NS): r
                  for r in self.cs[CTYPE].ranges()}
        assert set(ranges) == set(self.model)
        for key, r in self.model.items():
            assert ranges[key].versdef() == r.default
            assert [v.version() for v in ranges[key].versions()] == sorted(r.versions)


StoreModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestStoreModel = StoreModel.TestCase
