"""The selection rule: latest begin wins, ties go to the narrower range, ends are half-open."""
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pscalib import DCStore
from pscalib.errors import NoValidConstantsError
from pscalib.store.backend import RangeTable
from pscalib.store.selection import LazyIndex, RangeIndex, select_bruteforce
from pscalib.timestamps import OPEN_END

E = OPEN_END


def pick(begins, ends, t, inclusive=False):
    return RangeIndex(begins, ends, inclusive).find(t)


# ------------------------------------------------------------------ RangeIndex semantics
def test_half_open_boundaries():
    b, e = [10], [20]
    assert pick(b, e, 9) is None
    assert pick(b, e, 10) == 0     # t == tsbegin is covered
    assert pick(b, e, 19) == 0
    assert pick(b, e, 20) is None  # t == tsend is NOT covered


def test_adjacent_ranges_hand_over_at_the_boundary():
    b, e = [10, 20], [20, 30]
    assert pick(b, e, 19) == 0
    assert pick(b, e, 20) == 1
    assert pick(b, e, 30) is None


def test_latest_begin_wins_over_overlap():
    b, e = [0, 10], [100, 20]    # short newer range inside a long one
    assert [pick(b, e, t) for t in (0, 9, 10, 19, 20, 99, 100)] == [0, 0, 1, 1, 0, 0, None]


def test_latest_begin_wins_even_if_wider():
    b, e = [0, 10], [50, 100]
    assert [pick(b, e, t) for t in (5, 10, 60, 100)] == [0, 1, 1, None]


def test_equal_begins_narrower_wins():
    b, e = [10, 10, 10], [E, 30, 20]
    assert [pick(b, e, t) for t in (10, 19, 20, 29, 30, 10**18)] == [2, 2, 1, 1, 0, 0]


def test_open_end_covers_everything_after():
    b, e = [10], [E]
    assert pick(b, e, 9) is None
    assert pick(b, e, 10) == 0
    assert pick(b, e, OPEN_END - 1) == 0


def test_open_and_closed_overlapping():
    b, e = [0, 50], [E, 60]
    assert [pick(b, e, t) for t in (0, 49, 50, 59, 60, 10**15)] == [0, 0, 1, 1, 0, 0]


def test_negative_times_and_no_ranges():
    assert pick([], [], 0) is None
    assert pick([-100], [-50], -100) == 0
    assert pick([-100], [-50], -50) is None


def test_identical_ranges_lowest_index_wins():
    assert pick([5, 5], [9, 9], 6) == 0


def test_legacy_end_inclusive():
    b, e = [10, 20], [20, 30]
    assert pick(b, e, 20, inclusive=True) == 1       # later begin still wins at the tie point
    assert pick([10], [20], 20, inclusive=True) == 0   # t == tsend IS covered for legacy
    assert pick([10], [20], 21, inclusive=True) is None
    assert pick([10], [E], 10**18, inclusive=True) == 0
    assert select_bruteforce([10], [20], 20, end_inclusive=True) == 0
    assert select_bruteforce([10], [20], 20) is None


def _check_against_bruteforce(begins, ends, inclusive, probes):
    idx = RangeIndex(begins, ends, inclusive)
    for t in probes:
        assert idx.find(t) == select_bruteforce(begins, ends, t, inclusive), (begins, ends, t)


def _probe_points(begins, ends):
    pts = {-1, 0}
    for x in list(begins) + [e for e in ends if e != E]:
        pts.update((x - 1, x, x + 1))
    pts.add(OPEN_END - 1)
    return sorted(pts)


@pytest.mark.parametrize("inclusive", [False, True])
def test_random_against_bruteforce(inclusive):
    rnd = random.Random(1234)
    for _ in range(300):
        n = rnd.randint(0, 12)
        begins, ends = [], []
        for _ in range(n):
            b = rnd.randint(0, 40)
            begins.append(b)
            ends.append(E if rnd.random() < 0.25 else b + rnd.randint(1, 25))
        _check_against_bruteforce(begins, ends, inclusive, _probe_points(begins, ends))


_range = st.tuples(st.integers(-50, 50), st.one_of(st.integers(1, 60), st.just(None)))


@settings(max_examples=150, deadline=None)
@given(st.lists(_range, max_size=10), st.booleans())
def test_hypothesis_against_bruteforce(rngs, inclusive):
    begins = [b for b, _ in rngs]
    ends = [E if w is None else b + w for b, w in rngs]
    _check_against_bruteforce(begins, ends, inclusive, _probe_points(begins, ends))


# ------------------------------------------------------------------ through a real store
@pytest.fixture
def overlapping_store(tmp_path):
    """pedestals with overlapping ranges, each payload = its range label."""
    path = tmp_path / "cspad-0001.h5"
    spec = {  # label: (begin, end) in seconds
        1: (100, None), 2: (200, 300), 3: (200, 250), 4: (250, 400), 5: (500, 600),
    }
    with DCStore(path, mode="a") as cs:
        with cs.transaction():
            for label, (b, e) in spec.items():
                cs.add_constants("pedestals", np.array([label], dtype=np.int32), b, e)
            cs["pedestals"].add_range(150, 160)      # empty: ignored by get
            cs["pedestals"].add_range(700, None)     # empty open range: ignored by get
    return path


@pytest.mark.parametrize("t, label", [
    (100, 1), (199.999999999, 1), (200, 3), (249, 3), (250, 4), (299, 4), (399, 4),
    (400, 1), (499, 1), (500, 5), (599, 5), (600, 1), (155, 1), (700, 1), (10**9, 1),
])
def test_store_get_follows_the_rule(overlapping_store, t, label):
    with DCStore(overlapping_store) as cs:
        assert int(cs.get("pedestals", t)[0]) == label
        assert int(cs.pedestals(t)[0]) == label


def test_store_before_first_range_raises(overlapping_store):
    with DCStore(overlapping_store) as cs:
        with pytest.raises(NoValidConstantsError) as ei:
            cs.get("pedestals", 99.5)
        assert "pedestals" in str(ei.value)
        assert "1970-01-01T00:01:39.5+00:00" in str(ei.value)


def test_store_range_at_matches_get(overlapping_store):
    with DCStore(overlapping_store) as cs:
        r = cs["pedestals"].range_at(260)
        assert (r.tsbegin(), r.tsend()) == (250 * 10**9, 400 * 10**9)
        assert r.covers(260) and not r.covers(400) and r.covers(250)


def test_only_empty_range_covers_time_raises(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(2), 100, 200)
        cs["pedestals"].add_range(300, 400)
        with pytest.raises(NoValidConstantsError):
            cs.get("pedestals", 350)
        # the version-less range shadows nothing and the store still answers elsewhere
        assert cs.get("pedestals", 150).shape == (2,)


def test_deleting_last_version_makes_range_ignored(tmp_path):
    path = tmp_path / "cspad-0001.h5"
    with DCStore(path, mode="a") as cs:
        cs.add_constants("pedestals", np.array([1]), 0)
        cs.add_constants("pedestals", np.array([2]), 100, 200)
        assert cs.get("pedestals", 150)[0] == 2
        cs["pedestals"].rangeobj(100).del_version(1)
        assert cs.get("pedestals", 150)[0] == 1
        assert cs["pedestals"].rangeobj(100).versdef() == 0


def test_random_store_matches_bruteforce(tmp_path):
    rnd = random.Random(7)
    path = tmp_path / "cspad-0001.h5"
    begins, ends = [], []
    with DCStore(path, mode="a") as cs, cs.transaction():
        while len(begins) < 25:
            b = rnd.randint(0, 100)
            e = E if rnd.random() < 0.2 else b + rnd.randint(1, 40)
            if (b, e) in zip(begins, ends):
                continue
            cs.add_constants("pixel_gain", np.array([len(begins)], dtype=np.int16),
                             b, None if e == E else e)
            begins.append(b * 10**9)
            ends.append(E if e == E else e * 10**9)
    with DCStore(path) as cs:
        for t in range(-1, 150):
            want = select_bruteforce(begins, ends, t * 10**9)
            if want is None:
                with pytest.raises(NoValidConstantsError):
                    cs.pixel_gain(t)
            else:
                assert int(cs.pixel_gain(t)[0]) == want


# ------------------------------------------------------------------ the lazy index
@pytest.mark.parametrize("inclusive", [False, True])
def test_lazy_index_answers_as_the_rule_before_and_after_building(inclusive):
    """The first lookups of an open store use a vectorised pass, later ones the sweep
    index: both give the rule's answer, including ties, open ends and dead ranges."""
    rng = random.Random(18)
    for _ in range(60):
        n = rng.randint(0, 30)
        b = [rng.randint(0, 50) for _ in range(n)]
        e = [E if rng.random() < 0.2 else bi + rng.randint(1, 20) for bi in b]
        d = [rng.choice([0, 1, 2]) for _ in range(n)]
        tab = RangeTable(np.array(b, np.int64), np.array(e, np.int64), np.array(d, np.int64))
        live = tab.defaultv > 0
        lazy = LazyIndex(tab, live, inclusive)
        rows = [i for i in range(n) if live[i]]
        for t in list(range(-2, 75)) * 2:  # both sides of LazyIndex.EAGER
            want = select_bruteforce([b[i] for i in rows], [e[i] for i in rows], t,
                                     inclusive)
            assert lazy.find(t) == (None if want is None else rows[want]), (b, e, d, t)
