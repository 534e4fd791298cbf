"""Connection budgets: how many connections may be open at once, in total and per host.

A connection holds one slot of every budget it belongs to from the moment it opens until it
closes. Budgets are acquired in a fixed order (per-host first, then global) so two workers can
never each hold one and wait for the other.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

import anyio

from pullman.core.urls import origin


class Slots(Protocol):
    async def acquire(self) -> None: ...

    def release(self) -> None: ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SlotSet:
    """Several budgets taken together, in order, and given back together."""

    def __init__(self, *limiters: anyio.CapacityLimiter) -> None:
        self._limiters = limiters

    async def acquire(self) -> None:
        taken: list[anyio.CapacityLimiter] = []
        try:
            for limiter in self._limiters:
                await limiter.acquire()
                taken.append(limiter)
        except BaseException:
            for limiter in reversed(taken):
                limiter.release()
            raise

    def release(self) -> None:
        for limiter in reversed(self._limiters):
            limiter.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Budget:
    """A global connection budget plus a cap per host, shared by every file of every job."""

    def __init__(self, total: int, per_host: int) -> None:
        if total < 1 or per_host < 1:
            raise ValueError("connection budgets must be >= 1")
        self.total = anyio.CapacityLimiter(total)
        self.per_host = per_host
        self._hosts: dict[tuple[str, str, int], anyio.CapacityLimiter] = {}

    def slots_for(self, url: str, at_least: int = 1) -> SlotSet:
        """The slots for connections to ``url``'s host. ``at_least``: a job asked for that many
        connections (``--connections``), so neither budget may be smaller for it."""
        key = origin(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = anyio.CapacityLimiter(self.per_host)
        for limiter in (host, self.total):
            if limiter.total_tokens < at_least:
                limiter.total_tokens = at_least
        return SlotSet(host, self.total)

    def in_use(self) -> int:
        return int(self.total.borrowed_tokens)


SMALL_FILE = 256 << 10
"""A file this small (or smaller: a template, a license, a config) goes by the small-file lane."""
SMALL_LANE = 2
"""Connections reserved for small files, beside the budget big files share."""


class Lanes:
    """Small files never wait behind a big one: they draw from a lane of their own.

    A big file's workers hold their connection slots for as long as they have pieces to fetch,
    so a 27-byte template queued behind a 30 GiB layer would wait for the layer's connections
    to wind down. Files of at most :data:`SMALL_FILE` bytes (known size) take a slot of the
    small lane instead (:data:`SMALL_LANE` connections), so at most that many connections are
    open beyond the budget, and only while small files are being fetched.
    """

    def __init__(self, small_lane: int = SMALL_LANE, small_file: int = SMALL_FILE) -> None:
        self.small_file = small_file
        self.small = anyio.CapacityLimiter(small_lane)

    def is_small(self, size: int | None) -> bool:
        return size is not None and size <= self.small_file

    def slots(self, size: int | None, big: Slots) -> Slots:
        """The budget a file of ``size`` bytes draws from; ``big`` for files that are not small."""
        return self.small if self.is_small(size) else big
