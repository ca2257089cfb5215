"""Property-based test: a real store against a tiny in-memory model of the selection rule.

Hypothesis drives random sequences of add (valid or candidate) / delete version / delete
range / set default / validate / deprecate / reopen (close and ``DCStore(path)`` again) on a
real file. After every step ``get`` at a grid of times (with and without candidates), every
range's default version and every version's state must agree with the model:

* a range takes part in selection only while it has a valid version (its default is > 0);
* among ranges with ``tsbegin <= t < tsend`` the latest begin wins, then the earliest end;
* a new version is numbered one above the highest ever used in its range, also after the
  range was deleted and created again (tombstones); the first valid version of a range, or
  one added valid with ``make_default=True``, becomes the default; a candidate never does;
  adding a valid payload identical to the range's default adds nothing (deduplication);
* states: candidate -> valid (validate; becomes the default when asked or when the range has
  none), candidate/valid -> deprecated; every other change is refused; the default can only
  be set to a valid version;
* deleting or deprecating the default makes the highest remaining valid version the default;
* with candidates included, a range's newest candidate above its default replaces it.
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
from pscalib.errors import CtypeNotFoundError, NoValidConstantsError, StateTransitionError

STATES = ("candidate", "valid", "deprecated")
ALLOWED = {("candidate", "valid"), ("candidate", "deprecated"), ("valid", "deprecated")}

CTYPE = "pedestals"
NS = 1_000_000_000
# a few overlapping ranges on a small grid of Unix seconds (None = open end)
RANGES = [(1, None), (1, 4), (2, 6), (3, None), (3, 4), (5, 8), (6, 7)]
PROBES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 2.5, 3.999999999]
CAND_PROBES = [1, 3.5, 5, 6.5]  # get with candidates reads every version state: fewer


class _Range:
    def __init__(self, last: int = 0):
        self.versions: Dict[int, float] = {}
        self.states: Dict[int, str] = {}
        self.default = 0
        self.last = last

    def newest_valid(self, exclude: int = 0) -> int:
        return max((v for v, st in self.states.items() if st == "valid" and v != exclude),
                   default=0)

    def effective(self, candidates: bool) -> int:
        if candidates:
            cands = [v for v, st in self.states.items() if st == "candidate" and v > self.default]
            if cands:
                return max(cands)
        return self.default


class StoreModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pscalib-model-"))
        self.path = self.dir / "cspad-0001.h5"
        self.cs = DCStore(self.path, mode="a")
        self.model: Dict[Tuple[int, Optional[int]], _Range] = {}
        self.deleted_last: Dict[Tuple[int, Optional[int]], int] = {}  # from tombstones
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

    def expected(self, t: float, candidates: bool = False) -> Optional[float]:
        tn = int(round(t * NS))
        best = None
        for (b, e), r in self.model.items():
            end = OPEN_END if e is None else e * NS
            if r.effective(candidates) and b * NS <= tn < end:
                if best is None or (b * NS, -end) > (best[0], -best[1]):
                    best = (b * NS, end, r)
        return None if best is None else best[2].versions[best[2].effective(candidates)]

    # ------------------------------------------------------------------ rules
    @rule(key=st.sampled_from(RANGES), value=st.integers(0, 3),
          make_default=st.booleans(), candidate=st.booleans())
    def add(self, key, value, make_default, candidate):
        state = "candidate" if candidate else "valid"
        ver = self.cs.add_constants(CTYPE, np.full(3, float(value)), key[0], key[1],
                                    make_default=make_default, state=state)
        if key not in self.model:
            self.model[key] = _Range(self.deleted_last.get(key, 0))
        r = self.model[key]
        if not candidate and r.default and r.versions[r.default] == float(value):
            # identical to the range's default: nothing is added (deduplication)
            assert ver.unchanged and ver.version() == r.default
            self.has_ctype = True
            return
        r.last += 1
        assert not ver.unchanged and ver.version() == r.last
        r.versions[r.last] = float(value)
        r.states[r.last] = state
        if state == "valid" and (make_default or r.default == 0):
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
        del r.states[v]
        if r.default == v:
            r.default = r.newest_valid()

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_range(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=str)))
        self.cs[CTYPE].del_range((key[0], key[1]))
        # a re-created range continues numbering after the deleted versions (tombstones)
        gone = self.model.pop(key)
        self.deleted_last[key] = max(self.deleted_last.get(key, 0), gone.last)

    @precondition(lambda self: self._with_versions())
    @rule(data=st.data())
    def set_default(self, data):
        key = data.draw(st.sampled_from(self._with_versions()))
        r = self.model[key]
        v = data.draw(st.sampled_from(sorted(r.versions)))
        if r.states[v] != "valid":
            try:
                self._rng(key).set_versdef(v)
            except StateTransitionError:
                return
            raise AssertionError(f"set_versdef({v}) of a {r.states[v]} version was accepted")
        self._rng(key).set_versdef(v)
        r.default = v

    @precondition(lambda self: self._with_versions())
    @rule(data=st.data(), new=st.sampled_from(STATES), make_default=st.booleans())
    def set_state(self, data, new, make_default):
        key = data.draw(st.sampled_from(self._with_versions()))
        r = self.model[key]
        v = data.draw(st.sampled_from(sorted(r.versions)))
        ver = self._rng(key).versobj(v)
        if (r.states[v], new) not in ALLOWED:
            try:
                ver.set_state(new, "model", make_default=make_default)
            except StateTransitionError:
                return
            raise AssertionError(f"{r.states[v]} -> {new} was accepted")
        ver.set_state(new, "model", make_default=make_default)
        r.states[v] = new
        if new == "valid" and (make_default or r.default == 0):
            r.default = v
        elif new == "deprecated" and r.default == v:
            r.default = r.newest_valid(exclude=v)

    @rule()
    def reopen(self):
        self.cs.close()
        self.cs = DCStore(self.path, mode="a")

    # ------------------------------------------------------------------ checks
    @invariant()
    def get_agrees(self):
        for t, cand in [(t, False) for t in PROBES] + [(t, True) for t in CAND_PROBES]:
            want = self.expected(t, cand)
            try:
                got = self.cs.get(CTYPE, t, include=("candidate",) if cand else ())
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
            assert {v.version(): v.state() for v in ranges[key].versions()} == r.states


StoreModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestStoreModel = StoreModel.TestCase
