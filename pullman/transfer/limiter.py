"""Bandwidth caps: a token bucket shared by every connection, per job and globally.

The engine calls ``await limiter.acquire(len(chunk))`` *after* each chunk arrived (see
:class:`pullman.transfer.engine.Limiter`), so a bucket cannot refuse bytes, only delay the next
read. :class:`TokenBucket` therefore works on debt: every ``acquire`` takes its bytes at once,
the balance may go negative, and the caller sleeps until the refill has paid for its bytes.

- **Fair.** Each call takes a ticket (the running total of bytes taken, its own included) and waits
  until the refill covers that ticket. Tickets are served in the order they were taken, so N
  connections calling in turn get about ``rate / N`` each, whatever their chunk sizes.
- **Accurate.** Tokens refill at ``rate`` up to ``burst``, starting full. By time ``T`` after the
  bucket was made, the calls that have returned took at most ``rate * T + burst`` bytes; with the
  default burst (half a second of traffic) that is within 1 % of the cap over a minute.
- **Changeable at runtime.** :meth:`TokenBucket.set_rate` (``pullman limit 5MB/s``) takes effect
  within ``tick`` seconds, also for calls already waiting; ``None`` lifts the cap.
- **Testable.** ``clock`` and ``sleep`` are injected; the tests drive a fake clock and never sleep.

Bytes taken by a call that is cancelled while it waits stay taken: they had already arrived.

:class:`Limiters` applies several limiters in turn (the job's own cap, then the global cap).
Rates are parsed by :func:`pullman.core.units.parse_rate`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_BURST_SECONDS = 0.5
"""Without an explicit burst, a bucket holds this many seconds of traffic..."""
MIN_BURST = 64 << 10
"""...but never fewer bytes than this, so a low cap does not sleep after every chunk."""
DEFAULT_TICK = 0.25
"""Longest single sleep: bounds how late a waiting call notices :meth:`TokenBucket.set_rate`."""
_SLACK = 0.01
"""Bytes of float rounding forgiven, so a coarse clock cannot keep a call waiting ~0 s forever."""


class Limiter(Protocol):
    """What the transfer engine needs of a bandwidth limiter shared by connections."""

    async def acquire(self, nbytes: int) -> None: ...

    @property
    def limited(self) -> bool:
        """Whether a cap is in force now: then a slow connection is the cap, not the CDN."""
        ...


class BucketStats(NamedTuple):
    rate: float | None
    """Bytes per second, or ``None`` for no cap."""
    burst: float
    """Most bytes that pass without waiting after a quiet spell."""
    tokens: float
    """Current balance; negative while calls wait for their bytes to be paid for."""
    taken: int
    """Bytes passed through :meth:`TokenBucket.acquire` so far."""
    waiting: int
    """Calls waiting right now."""


class TokenBucket:
    """A debt-based token bucket: ``acquire(n)`` takes ``n`` bytes now and waits off the debt."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        tick: float = DEFAULT_TICK,
    ) -> None:
        _check_rate(rate)
        if burst is not None and not burst > 0:
            raise ValueError("burst must be > 0")
        if not tick > 0:
            raise ValueError("tick must be > 0")
        self._clock = clock
        self._sleep = sleep
        self._tick = tick
        self._burst = burst
        self._rate = rate
        self._taken = 0
        self._waiting = 0
        self._last = clock()
        self._credit = self.burst
        """Bytes paid for so far (the bucket starts full); never more than ``taken + burst``."""

    @property
    def rate(self) -> float | None:
        return self._rate

    @property
    def limited(self) -> bool:
        return self._rate is not None

    @property
    def burst(self) -> float:
        if self._burst is not None:
            return self._burst
        if self._rate is None:
            return float(MIN_BURST)
        return max(self._rate * DEFAULT_BURST_SECONDS, float(MIN_BURST))

    def set_rate(self, rate: float | None) -> None:
        """Change the cap now; waiting calls see it within ``tick`` seconds. ``None``: no cap."""
        _check_rate(rate)
        self._refill(self._clock())  # settle the account at the old rate first
        was_unlimited = self._rate is None
        self._rate = rate
        if was_unlimited:
            self._credit = self._taken + self.burst  # a new cap starts with a full bucket
        self._credit = min(self._credit, self._taken + self.burst)

    async def acquire(self, nbytes: int) -> None:
        """Take ``nbytes`` (already received) and return once the cap has paid for them."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        self._refill(self._clock())
        self._taken += nbytes
        ticket = self._taken
        self._waiting += 1
        try:
            while (wait := self._wait_for(ticket)) > 0:
                await self._sleep(min(wait, self._tick))
        finally:
            self._waiting -= 1

    def statistics(self) -> BucketStats:
        self._refill(self._clock())
        tokens = self._credit - self._taken
        return BucketStats(self._rate, self.burst, tokens, self._taken, self._waiting)

    def _wait_for(self, ticket: int) -> float:
        """Seconds until the refill covers ``ticket`` at the current rate (0: go now)."""
        self._refill(self._clock())
        deficit = ticket - self._credit
        if self._rate is None or deficit <= _SLACK:
            return 0.0
        return deficit / self._rate

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        if self._rate is None:
            self._credit = self._taken + self.burst
        else:
            self._credit = min(self._credit + elapsed * self._rate, self._taken + self.burst)


def _check_rate(rate: float | None) -> None:
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError("rate must be a positive number of bytes per second, or None")


class Limiters:
    """Several limiters applied in turn, e.g. the job's own cap, then the global cap.

    ``None`` entries are skipped, so ``Limiters(job_bucket, global_bucket)`` works whether or not
    either cap is set. Put the per-job bucket first: a job held back by its own cap then does not
    queue in the shared bucket ahead of other jobs.
    """

    def __init__(self, *limiters: Limiter | None) -> None:
        self.limiters: tuple[Limiter, ...] = tuple(x for x in limiters if x is not None)

    async def acquire(self, nbytes: int) -> None:
        for limiter in self.limiters:
            await limiter.acquire(nbytes)

    @property
    def limited(self) -> bool:
        return any(limiter.limited for limiter in self.limiters)
