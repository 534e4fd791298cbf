"""What the tasks transferring one file share: its spec and settings, the segment map, the
staging area, the resolved target, the recycle fleet, budgets and counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from pullman.core.clock import Clock, Sleep
from pullman.core.plan import FileSpec
from pullman.transfer.config import TransferConfig
from pullman.transfer.limiter import Limiter
from pullman.transfer.meter import RateMeter
from pullman.transfer.recycle import Fleet
from pullman.transfer.resolve import Resolver, Target
from pullman.transfer.segments import SegmentMap
from pullman.transfer.slots import Slots
from pullman.transfer.staging import Staging


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

    @property
    def current_target(self) -> Target:
        """The freshest target: a refreshed CDN link once one connection noticed the old expired."""
        target = self.resolver.current or self.target
        assert target is not None
        return target
