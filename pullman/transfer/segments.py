"""The segment map of one file: which bytes are done, which are in flight, which are free.

Pure logic: no I/O, no clock. A connection worker *claims* a piece (the lowest free range, so the
contiguous verified prefix grows at the speed of the whole download), *advances* through it as
bytes land on disk, and *releases* what is left when its request fails. A worker that finds no
free range *steals* half of the largest range still in flight elsewhere, down to ``min_piece``:
the last percent never waits on one slow connection.

Invariant (checked by the property tests): done, in-flight remainders and free ranges partition
``[0, size)`` exactly; every byte is advanced over exactly once.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

Span = tuple[int, int]
"""A half-open byte range ``[start, end)``."""


@dataclass
class Claim:
    """One worker's current piece: bytes ``[pos, end)`` are still to come."""

    start: int
    pos: int
    end: int
    writing: int = 0
    """Bytes after ``pos`` being written right now: a thief must not take them."""

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    @property
    def stealable(self) -> int:
        return self.end - self.pos - self.writing


class SegmentStats(NamedTuple):
    size: int
    done: int
    prefix: int
    in_flight: int
    steals: int


class SegmentMap:
    """Tracks one file's byte ranges. ``done`` survives restarts through the journal."""

    def __init__(self, size: int, done: Iterable[Span] = (), *, min_piece: int = 1 << 20) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        if min_piece < 1:
            raise ValueError("min_piece must be >= 1")
        self.size = size
        self.min_piece = min_piece
        self._done: list[Span] = []
        self._claims: dict[Hashable, Claim] = {}
        self._steals = 0
        for start, end in done:
            self._add_done(max(0, start), min(size, end))

    # ---------------------------------------------------------------- queries

    @property
    def done_bytes(self) -> int:
        return sum(end - start for start, end in self._done)

    @property
    def prefix(self) -> int:
        """Length of the contiguous done range starting at byte 0."""
        if self._done and self._done[0][0] == 0:
            return self._done[0][1]
        return 0

    @property
    def complete(self) -> bool:
        return self.prefix == self.size

    def done_ranges(self) -> list[Span]:
        return list(self._done)

    def claim_of(self, owner: Hashable) -> Claim | None:
        return self._claims.get(owner)

    def end_of(self, owner: Hashable) -> int:
        """Where ``owner`` must stop: a steal may have moved it closer."""
        return self._claims[owner].end

    def free_ranges(self) -> list[Span]:
        taken = sorted(
            [*self._done, *((c.pos, c.end) for c in self._claims.values() if c.remaining)]
        )
        free: list[Span] = []
        cursor = 0
        for start, end in taken:
            if start > cursor:
                free.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < self.size:
            free.append((cursor, self.size))
        return free

    def statistics(self) -> SegmentStats:
        in_flight = sum(c.remaining for c in self._claims.values())
        return SegmentStats(self.size, self.done_bytes, self.prefix, in_flight, self._steals)

    # ---------------------------------------------------------------- changes

    def claim(self, owner: Hashable, max_len: int, *, wanted: Iterable[int] = ()) -> Claim | None:
        """Give ``owner`` its next piece of at most ``max_len`` bytes; None when nothing is left.

        ``wanted``: offsets readers wait for (a pull-through's clients); the lowest that lies
        in a free range is where the piece starts, else the lowest free byte.
        """
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        self._drop_finished(owner)
        if owner in self._claims:
            raise RuntimeError(f"{owner!r} already holds a claim")
        free = self.free_ranges()
        if free:
            start, end = _steered(free, wanted) or free[0]
            claim = Claim(start, start, min(end, start + max_len))
        else:
            stolen = self._steal(max_len)
            if stolen is None:
                return None
            claim = stolen
        self._claims[owner] = claim
        return claim

    def reserve(self, owner: Hashable, nbytes: int) -> int:
        """``owner`` is about to write up to ``nbytes``: how many are still its to write.

        Fewer than asked when a steal moved its end; the reserved bytes cannot be stolen until
        :meth:`advance` records them.
        """
        claim = self._claims[owner]
        claim.writing = max(0, min(nbytes, claim.remaining))
        return claim.writing

    def advance(self, owner: Hashable, nbytes: int) -> None:
        """Record that ``owner`` wrote the next ``nbytes`` of its claim to disk."""
        claim = self._claims[owner]
        if nbytes < 0 or nbytes > claim.remaining:
            raise ValueError(f"advance by {nbytes} outside claim {claim}")
        claim.writing = 0
        if nbytes:
            self._add_done(claim.pos, claim.pos + nbytes)
            claim.pos += nbytes

    def release(self, owner: Hashable) -> None:
        """``owner`` stops: whatever it had not written becomes free for others."""
        self._claims.pop(owner, None)

    def reset(self) -> None:
        """Forget everything: the data on disk is being thrown away."""
        self._done.clear()
        self._claims.clear()

    # ---------------------------------------------------------------- internals

    def _drop_finished(self, owner: Hashable) -> None:
        claim = self._claims.get(owner)
        if claim is not None and claim.remaining == 0:
            del self._claims[owner]

    def _steal(self, max_len: int) -> Claim | None:
        victims = [c for c in self._claims.values() if c.stealable >= 2 * self.min_piece]
        if not victims:
            return None
        victim = max(victims, key=lambda c: c.stealable)
        mid = victim.end - victim.stealable // 2
        old_end = victim.end
        victim.end = mid
        self._steals += 1
        # Anything beyond max_len stays free for the next idle worker.
        return Claim(mid, mid, min(old_end, mid + max_len))

    def _add_done(self, start: int, end: int) -> None:
        if end <= start:
            return
        spans = self._done
        i = bisect.bisect_left(spans, (start, start))
        # Merge with the previous span if it touches or overlaps.
        if i > 0 and spans[i - 1][1] >= start:
            i -= 1
            start = spans[i][0]
            end = max(end, spans[i][1])
            del spans[i]
        # Merge with every following span that touches or overlaps.
        while i < len(spans) and spans[i][0] <= end:
            end = max(end, spans[i][1])
            del spans[i]
        spans.insert(i, (start, end))


def _steered(free: Sequence[Span], wanted: Iterable[int]) -> Span | None:
    """The free span from the lowest wanted offset that lies in one, to that span's end."""
    for pos in sorted(wanted):
        for start, end in free:
            if start <= pos < end:
                return pos, end
    return None


def spans_from_json(raw: object, size: int) -> list[Span]:
    """Parse a journal's ``done`` list, refusing anything malformed or out of bounds."""
    if not isinstance(raw, list):
        raise ValueError("done must be a list")
    spans: list[Span] = []
    for item in raw:
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise ValueError(f"bad span {item!r}")
        start, end = item
        if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
            raise ValueError(f"bad span {item!r}")
        if not 0 <= start <= end <= size:
            raise ValueError(f"span {item!r} outside [0, {size}]")
        spans.append((start, end))
    return spans


def spans_to_json(spans: Iterable[Span]) -> list[list[int]]:
    return [[start, end] for start, end in spans]
