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
