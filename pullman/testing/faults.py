"""Fault scripts for the simulator: what goes wrong, and for which requests.

A fault is attached to a served file. Each request for that file is numbered (1, 2, ...); a fault
applies to the request numbers in ``on`` if given, else to the first ``times`` requests that reach
it (``times=-1``: every request), else, with ``chance``, to a random share of requests (seeded,
so a failing run is reproducible). The first fault that applies to a request wins.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Fault:
    times: int = 1
    on: tuple[int, ...] = ()
    chance: float = 0.0
    seed: int = 0
    used: int = field(default=0, init=False)
    _rng: random.Random | None = field(default=None, init=False, repr=False)

    def covers(self, start: int, end: int) -> bool:
        """Whether this fault can strike a response carrying bytes ``[start, end)``."""
        return True

    def applies(self, request_number: int, start: int = 0, end: int = 0) -> bool:
        if not self.covers(start, end):
            return False
        if self.on:
            hit = request_number in self.on
        elif self.chance:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            hit = self._rng.random() < self.chance
        else:
            hit = self.times < 0 or self.used < self.times
        if hit:
            self.used += 1
        return hit


@dataclass
class Reset(Fault):
    """Send ``after`` bytes of the body, then reset the TCP connection (RST)."""

    after: int = 0


@dataclass
class Short(Fault):
    """Promise the full Content-Length, send ``after`` bytes, then close cleanly (FIN)."""

    after: int = 0


@dataclass
class Stall(Fault):
    """Send ``after`` bytes, then go silent for ``seconds`` (then carry on)."""

    after: int = 0
    seconds: float = 30.0


@dataclass
class Drip(Fault):
    """Send ``after`` bytes, then ``rate`` bytes a second: never silent, never useful."""

    after: int = 0
    rate: int = 4


@dataclass
class Status(Fault):
    """Answer ``code`` (500/502/503/429/404 ...) with an optional ``Retry-After``."""

    code: int = 503
    retry_after: int | None = None


@dataclass
class IgnoreRange(Fault):
    """Answer a Range request with 200 and the whole file."""


@dataclass
class WrongContentRange(Fault):
    """Answer 206 with a Content-Range that starts ``shift`` bytes after what was asked."""

    shift: int = 4096


@dataclass
class FlipByte(Fault):
    """Serve the byte at absolute ``offset`` with its bits flipped (counting only the
    requests whose bytes include it)."""

    offset: int = 0

    def covers(self, start: int, end: int) -> bool:
        return start <= self.offset < end


class ClientCap:
    """An aggregate cap on everything one client receives, all its connections together (as
    some CDNs and ISPs shape a subscriber): ``rate`` bytes/s shared by every connection whose
    throttle names this cap. Time slots are handed out in order, so no connection, fresh or
    old, gets more than its share: opening more connections cannot beat it.
    """

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 1:
            raise ValueError("rate must be >= 1 byte/s")
        self.rate = rate
        self._clock = clock
        self._free_at = 0.0
        self.sent = 0

    def reserve(self, nbytes: int) -> float:
        """Book the link for ``nbytes``: seconds to wait until they have gone out at the cap."""
        now = self._clock()
        start = max(now, self._free_at)
        self._free_at = start + nbytes / self.rate
        self.sent += nbytes
        return self._free_at - now

    @property
    def chunk(self) -> int:
        """Bytes per send: 1/50 s at the cap, so every connection gets turns."""
        return max(1, self.rate // 50)


@dataclass
class Throttle:
    """Per-connection shaping, as CDNs do: ``burst`` bytes at full speed, then ``rate`` bytes/s.

    ``per="connection"`` counts bytes over the TCP connection's life (keep-alive requests share
    the budget); ``per="request"`` starts every request with a fresh burst (nginx's
    ``limit_rate_after``). ``decay``, if set, halves the rate every ``decay`` seconds of the
    connection's life, down to ``floor`` bytes/s.
    """

    burst: int = 0
    rate: int = 1 << 20
    per: str = "connection"
    decay: float | None = None
    floor: int = 16 << 10
    peak: int | None = None
    """Bytes/s during the burst (None: as fast as the socket goes), like a real link."""
    cap: ClientCap | None = None
    """An aggregate cap shared with every connection under the same cap; when set, it alone
    shapes the connection (``burst``, ``rate`` and ``decay`` are not applied)."""

    def rate_at(self, age: float) -> float:
        if self.decay is None:
            return float(self.rate)
        return max(float(self.floor), self.rate / (2 ** (age / self.decay)))
