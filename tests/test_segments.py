"""The segment map: any order of claims, writes, steals and failures tiles the file once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pullman.transfer.segments import SegmentMap, spans_from_json, spans_to_json


def test_claims_lowest_free_range_first() -> None:
    smap = SegmentMap(100, min_piece=10)
    assert (c := smap.claim("a", 30)) is not None and (c.start, c.end) == (0, 30)
    assert (c := smap.claim("b", 30)) is not None and (c.start, c.end) == (30, 60)
    smap.advance("a", 30)
    assert smap.prefix == 30


def test_idle_worker_steals_half_of_largest_range() -> None:
    smap = SegmentMap(100, min_piece=10)
    smap.claim("a", 100)
    smap.advance("a", 20)
    thief = smap.claim("b", 100)
    assert thief is not None
    assert (thief.start, thief.end) == (60, 100)
    assert smap.end_of("a") == 60
    assert smap.statistics().steals == 1


def test_no_steal_below_twice_min_piece() -> None:
    smap = SegmentMap(100, min_piece=30)
    smap.claim("a", 100)
    smap.advance("a", 50)
    assert smap.claim("b", 100) is None


def test_reserved_bytes_are_not_stolen() -> None:
    smap = SegmentMap(100, min_piece=10)
    smap.claim("a", 100)
    assert smap.reserve("a", 60) == 60
    thief = smap.claim("b", 100)
    assert thief is not None and thief.start >= 60
    smap.advance("a", 60)


def test_release_returns_the_unwritten_rest() -> None:
    smap = SegmentMap(100, min_piece=10)
    smap.claim("a", 100)
    smap.advance("a", 40)
    smap.release("a")
    assert smap.free_ranges() == [(40, 100)]
    assert smap.done_ranges() == [(0, 40)]


def test_resume_from_journal_spans() -> None:
    smap = SegmentMap(100, [(0, 10), (50, 60)], min_piece=5)
    assert smap.free_ranges() == [(10, 50), (60, 100)]
    assert spans_from_json(spans_to_json(smap.done_ranges()), 100) == [(0, 10), (50, 60)]


@pytest.mark.parametrize("raw", [None, [[0]], [[5, 1]], [[0, 101]], [["a", 1]], [[True, 2]], "x"])
def test_bad_journal_spans_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        spans_from_json(raw, 100)


class SegmentMachine(RuleBasedStateMachine):
    """Workers claim, write, get robbed and fail in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0
        self.smap: SegmentMap | None = None
        self.writes: list[int] = []

    @rule(size=st.integers(0, 5000), min_piece=st.integers(1, 300), seed=st.integers(0, 3))
    @precondition(lambda self: self.smap is None)
    def start(self, size: int, min_piece: int, seed: int) -> None:
        done = [(0, size // 4)] if seed == 1 and size else []
        self.size = size
        self.smap = SegmentMap(size, done, min_piece=min_piece)
        self.writes = [0] * size
        for s, e in done:
            for i in range(s, e):
                self.writes[i] += 1

    @rule(worker=st.integers(0, 5), max_len=st.integers(1, 2000))
    @precondition(lambda self: self.smap is not None)
    def claim(self, worker: int, max_len: int) -> None:
        assert self.smap is not None
        current = self.smap.claim_of(worker)
        if current is not None and current.remaining:
            return
        self.smap.claim(worker, max_len)

    @rule(worker=st.integers(0, 5), n=st.integers(0, 3000))
    @precondition(lambda self: self.smap is not None)
    def write(self, worker: int, n: int) -> None:
        assert self.smap is not None
        claim = self.smap.claim_of(worker)
        if claim is None:
            return
        n = self.smap.reserve(worker, n)
        start = claim.pos
        self.smap.advance(worker, n)
        for i in range(start, start + n):
            self.writes[i] += 1

    @rule(worker=st.integers(0, 5))
    @precondition(lambda self: self.smap is not None)
    def fail(self, worker: int) -> None:
        assert self.smap is not None
        self.smap.release(worker)

    @invariant()
    def partitioned_exactly(self) -> None:
        if self.smap is None:
            return
        covered = [0] * self.size
        spans = list(self.smap.done_ranges()) + self.smap.free_ranges()
        for claim in (self.smap.claim_of(w) for w in range(6)):
            if claim is not None and claim.remaining:
                spans.append((claim.pos, claim.end))
        for s, e in spans:
            for i in range(s, e):
                covered[i] += 1
        assert all(c == 1 for c in covered), "done + in flight + free must tile the file"
        assert all(w <= 1 for w in self.writes), "no byte is written twice"
        done = sum(e - s for s, e in self.smap.done_ranges())
        assert done == sum(self.writes)

    def teardown(self) -> None:
        # Finish the download with one worker: every byte ends up written exactly once.
        if self.smap is None:
            return
        for w in range(6):
            self.smap.release(w)
        while (claim := self.smap.claim("finisher", 997)) is not None:
            start = claim.pos
            self.smap.advance("finisher", claim.remaining)
            for i in range(start, claim.end):
                self.writes[i] += 1
        assert self.smap.complete
        assert self.writes == [1] * self.size


TestSegmentMachine = SegmentMachine.TestCase
TestSegmentMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=30))
def test_done_spans_merge_into_disjoint_sorted_ranges(spans: list[tuple[int, int]]) -> None:
    smap = SegmentMap(200, [(min(a, b), max(a, b)) for a, b in spans])
    ranges = smap.done_ranges()
    for (_s1, e1), (s2, _e2) in itertools.pairwise(ranges):
        assert e1 < s2
    expected = set()
    for a, b in spans:
        expected.update(range(min(a, b), max(a, b)))
    assert {i for s, e in ranges for i in range(s, e)} == expected
