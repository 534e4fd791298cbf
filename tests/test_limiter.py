"""The token bucket in virtual time: exact rates, fair shares, runtime changes, the cap holds."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullman.core.units import format_rate, parse_rate
from pullman.errors import UsageError
from pullman.transfer.limiter import Limiter, Limiters, TokenBucket

MB = 1_000_000
KiB = 1024
T = TypeVar("T")


class FakeTime:
    """Virtual time: sleepers wake in order, and time jumps ahead once every task is blocked."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), wake))
        await wake.wait()

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """``anyio.run(main)``, in virtual time."""
        return anyio.run(self._drive, main)

    async def _drive(self, main: Callable[[], Awaitable[T]]) -> T:
        result: list[T] = []

        async def runner() -> None:
            result.append(await main())

        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            while True:
                await _settle()
                if result:
                    return result[0]
                assert self._sleepers, "deadlock: every task waits, none sleeps"
                self.now = self._sleepers[0][0]
                while self._sleepers and self._sleepers[0][0] <= self.now:
                    heapq.heappop(self._sleepers)[2].set()
        raise AssertionError("unreachable")


async def _settle() -> None:
    """Run the loop until every other task waits on a pending future and nothing is ready.

    (``anyio.wait_all_tasks_blocked`` polls every 0.1 s on asyncio: far too slow here.)
    """
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if loop._ready:  # type: ignore[attr-defined]
            continue
        waiters = [t._fut_waiter for t in asyncio.all_tasks() if t is not me]  # type: ignore[attr-defined]
        if all(w is not None and not w.done() for w in waiters):
            return
    raise AssertionError("the tasks never settled")


def bucket(rate: float | None, t: FakeTime, **kw: float) -> TokenBucket:
    return TokenBucket(rate, clock=t, sleep=t.sleep, **kw)


def test_is_an_engine_limiter() -> None:
    t = FakeTime()
    limiter: Limiter = bucket(MB, t)
    both: Limiter = Limiters(limiter, None)
    assert isinstance(both, Limiters)
    assert limiter.limited and both.limited
    assert not bucket(None, t).limited and not Limiters(bucket(None, t), None).limited


def test_burst_passes_without_waiting_then_the_rate_holds() -> None:
    t = FakeTime()
    b = bucket(MB, t, burst=100 * KiB)

    async def main() -> None:
        await b.acquire(100 * KiB)
        assert t.now == 0
        await b.acquire(MB)
        assert t.now == pytest.approx(1.0)

    t.run(main)


def test_one_minute_single_connection_within_one_percent() -> None:
    t = FakeTime()
    b = bucket(20 * MB, t)  # default burst: half a second

    async def main() -> int:
        total = 0
        while t.now < 60:
            await b.acquire(64 * KiB)
            total += 64 * KiB
        return total

    total = t.run(main)
    assert total / 60 == pytest.approx(20 * MB, rel=0.01)


def test_concurrent_acquirers_share_the_rate_fairly() -> None:
    t = FakeTime()
    b = bucket(8 * MB, t, burst=64 * KiB)
    got = [0, 0, 0, 0]

    async def conn(i: int) -> None:
        while t.now < 60:
            await b.acquire(64 * KiB)
            got[i] += 64 * KiB

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(conn, i)

    t.run(main)
    assert sum(got) / 60 == pytest.approx(8 * MB, rel=0.02)
    for share in got:
        assert share / sum(got) == pytest.approx(0.25, abs=0.01)
    assert b.statistics().waiting == 0


def test_a_slow_connection_leaves_its_share_to_the_others() -> None:
    t = FakeTime()
    b = bucket(8 * MB, t, burst=64 * KiB)
    got = [0, 0, 0]

    async def conn(i: int) -> None:
        while t.now < 60:
            if i == 0:
                await t.sleep(0.5)  # the upstream gives this one 128 KiB/s
            await b.acquire(64 * KiB)
            got[i] += 64 * KiB

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(conn, i)

    t.run(main)
    assert sum(got) / 60 == pytest.approx(8 * MB, rel=0.02)
    assert got[0] / 60 < 200 * KiB
    assert got[1] == pytest.approx(got[2], rel=0.01)


def test_rate_change_midway_applies_to_waiting_calls() -> None:
    t = FakeTime()
    b = bucket(1 * MB, t, burst=64 * KiB, tick=0.25)
    marks: dict[str, int] = {}

    async def conn(total: list[int]) -> None:
        while t.now < 60:
            await b.acquire(64 * KiB)
            total[0] += 64 * KiB

    async def control(total: list[int]) -> None:
        await t.sleep(30)
        marks["at30"] = total[0]
        b.set_rate(4 * MB)

    async def main() -> list[int]:
        total = [0]
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(conn, total)
            tg.start_soon(control, total)
        return total

    total = t.run(main)
    first, second = marks["at30"], total[0] - marks["at30"]
    assert first / 30 == pytest.approx(1 * MB, rel=0.03)
    assert second / 30 == pytest.approx(4 * MB, rel=0.03)


def test_lifting_the_cap_releases_waiters_within_a_tick() -> None:
    t = FakeTime()
    b = bucket(1000, t, burst=1000, tick=0.5)

    async def main() -> None:
        await b.acquire(1000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(b.acquire, 100_000)  # would take 100 s at 1000 B/s
            await anyio.lowlevel.checkpoint()
            b.set_rate(None)
        assert t.now <= 0.5
        await b.acquire(10**9)
        assert t.now <= 0.5

    t.run(main)


def test_setting_a_cap_on_an_unlimited_bucket_starts_full() -> None:
    t = FakeTime()
    b = bucket(None, t, burst=10 * KiB)

    async def main() -> None:
        await b.acquire(10 * MB)
        assert t.now == 0
        b.set_rate(10 * KiB)
        await b.acquire(10 * KiB)  # the fresh bucket's burst
        assert t.now == 0
        await b.acquire(10 * KiB)
        assert t.now == pytest.approx(1.0)

    t.run(main)


def test_limiters_apply_the_narrower_cap() -> None:
    t = FakeTime()
    job = bucket(2 * MB, t, burst=64 * KiB)
    shared = bucket(5 * MB, t, burst=64 * KiB)
    both = Limiters(job, None, shared)

    async def main() -> int:
        total = 0
        while t.now < 30:
            await both.acquire(64 * KiB)
            total += 64 * KiB
        return total

    total = t.run(main)
    assert total / 30 == pytest.approx(2 * MB, rel=0.02)
    assert shared.statistics().taken == job.statistics().taken == total


def test_global_cap_shared_between_two_jobs() -> None:
    t = FakeTime()
    shared = bucket(6 * MB, t, burst=64 * KiB)
    jobs = [bucket(None, t), bucket(2 * MB, t, burst=64 * KiB)]
    got = [0, 0]

    async def conn(i: int) -> None:
        limiter = Limiters(jobs[i], shared)
        while t.now < 60:
            await limiter.acquire(32 * KiB)
            got[i] += 32 * KiB

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in (0, 0, 1, 1):
                tg.start_soon(conn, i)

    t.run(main)
    assert got[1] / 60 == pytest.approx(2 * MB, rel=0.03)
    assert sum(got) / 60 == pytest.approx(6 * MB, rel=0.03)


def test_cancelled_waiter_keeps_its_bytes_taken() -> None:
    t = FakeTime()
    b = bucket(1000, t, burst=1000)

    async def main() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await b.acquire(5000)
        assert b.statistics().taken == 5000
        assert b.statistics().tokens < 0
        assert b.statistics().waiting == 0

    t.run(main)


def test_bad_arguments() -> None:
    t = FakeTime()
    for rate in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate"):
            bucket(rate, t)
    with pytest.raises(ValueError, match="burst"):
        bucket(1, t, burst=0)
    with pytest.raises(ValueError, match="nbytes"):
        anyio.run(bucket(1, t).acquire, -1)
    with pytest.raises(ValueError, match="rate"):
        bucket(1, t).set_rate(0)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=1e4, max_value=1e9),
    burst=st.floats(min_value=1, max_value=1e7),
    chunks=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.floats(0, 2.0)),
        min_size=1,
        max_size=60,
    ),
    change=st.one_of(st.none(), st.tuples(st.integers(0, 59), st.floats(1e4, 1e9))),
)
def test_never_grants_more_than_rate_times_time_plus_burst(
    rate: float,
    burst: float,
    chunks: list[tuple[int, int, float]],
    change: tuple[int, float] | None,
) -> None:
    """Whatever the chunk sizes, pauses and concurrency: granted(T) <= integral(rate) + burst."""
    t = FakeTime()
    b = bucket(rate, t, burst=burst, tick=10.0)
    granted: list[tuple[float, int]] = []
    # (time, rate from then on): the allowance is the integral of the rate over time.
    rates = [(0.0, rate)]

    def allowance(at: float) -> float:
        total = 0.0
        for (start, r), nxt in zip(rates, [*rates[1:], (at, 0.0)], strict=True):
            total += r * max(0.0, min(at, nxt[0]) - start)
        return total

    async def conn(who: int) -> None:
        for i, (owner, nbytes, pause) in enumerate(chunks):
            if owner != who:
                continue
            if change is not None and change[0] == i:
                rates.append((t.now, change[1]))
                b.set_rate(change[1])
            await t.sleep(pause)
            await b.acquire(nbytes)
            granted.append((t.now, nbytes))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for who in range(3):
                tg.start_soon(conn, who)

    t.run(main)
    total = 0
    for at, nbytes in sorted(granted):
        total += nbytes
        # Lowering the rate can never make an earlier refill disappear: allow the max burst.
        assert total <= allowance(at) + max(burst, 1) + 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20MB/s", 20e6),
        ("20 MB/s", 20e6),
        ("512KiB/s", 512 * 1024),
        ("1.5M", 1.5e6),
        ("1.5m", 1.5e6),
        ("2GiB", 2 * 1024**3),
        ("100Mbit/s", 12.5e6),
        ("100Mbps", 12.5e6),
        ("800kbit", 100e3),
        ("1000", 1000.0),
        ("1000B/s", 1000.0),
        (".5k", 500.0),
        ("3 MiB / sec", 3 * 1024**2),
        (2_000_000, 2e6),
        (2.5e6, 2.5e6),
    ],
)
def test_parse_rate(text: str | float, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["0", "off", "OFF", "none", "unlimited", " unlimited ", 0, "0MB/s"]
)
def test_parse_rate_off(text: str | int) -> None:
    assert parse_rate(text) is None


@pytest.mark.parametrize(
    "text", ["", "fast", "20XB/s", "MB/s", "-5MB/s", "1e5", "20MB/h", "5 i", "iB", "0.5", True, -1]
)
def test_parse_rate_rejects(text: str | float) -> None:
    with pytest.raises(UsageError) as info:
        parse_rate(text, what="--limit")
    assert info.value.what.startswith("--limit")
    assert info.value.hint and "20MB/s" in info.value.hint


def test_format_rate() -> None:
    assert format_rate(None) == "unlimited"
    assert format_rate(20e6) == "20 MB/s"
    assert format_rate(1.5e6) == "1.5 MB/s"
    assert format_rate(512_000) == "512 kB/s"
    assert format_rate(2.5e9) == "2.5 GB/s"
    assert format_rate(12) == "12 B/s"
    assert parse_rate(format_rate(20e6).replace(" ", "")) == 20e6
