"""What the tasks transferring one file share: its spec and settings, the segment map, the
staging area, the resolved target, the recycle fleet, budgets and counters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pullman.core.clock import Clock, Sleep
from pullman.core.plan import FileSpec
from pullman.net.retry import RetryNote, retrying
from pullman.transfer.config import TransferConfig
from pullman.transfer.landing import Landing
from pullman.transfer.limiter import Limiter
from pullman.transfer.meter import RateMeter
from pullman.transfer.recycle import Fleet
from pullman.transfer.resolve import Resolver, Target
from pullman.transfer.segments import SegmentMap
from pullman.transfer.slots import Slots
from pullman.transfer.staging import Staging

T = TypeVar("T")
log = logging.getLogger("pullman.transfer")


@dataclass
class Shared:
    spec: FileSpec
    config: TransferConfig
    clock: Clock
    backoff: Sleep
    """Deliberate waits: between retries and after a recycle (tests record them)."""
    staging: Staging
    resolver: Resolver
    slots: Slots
    limiter: Limiter | None
    fleet: Fleet
    smap: SegmentMap
    meter: RateMeter = field(default_factory=RateMeter)
    target: Target | None = None
    ranged: bool = True
    """Whether requests ask for ranges (the server supports them and did not ignore one)."""
    fetched: int = 0
    """Bytes received over the network in this run (including those thrown away)."""
    retries: int = 0
    last_byte_at: float = 0.0
    note: str = ""
    """The retry in progress (``retry 3/8 in 4 s: connection reset``), until bytes flow again."""
    landing: Landing | None = None
    """Readers in this process waiting for the bytes (``serve --pull-through``), told of
    every write."""

    async def with_retries(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` under the retry policy; each retry is counted and shown."""

        def retried(note: RetryNote) -> None:
            self.retries += 1
            self.note = str(note)
            log.info("%s: %s", self.spec.name, note)

        return await retrying(fn, self.config.retry_policy, sleep=self.backoff, on_retry=retried)

    @property
    def current_target(self) -> Target:
        """The freshest target: a refreshed CDN link once one connection noticed the old expired."""
        target = self.resolver.current or self.target
        assert target is not None
        return target
