"""How one file is transferred: connections, piece sizes, retries, timeouts. Frozen, pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pullman.core.proxies import Proxies
from pullman.transfer.recycle import RecycleConfig

if TYPE_CHECKING:
    from pullman.net.retry import RetryPolicy

MiB = 1 << 20
WRITE_BUFFERS = 24 * MiB
"""Received bytes all connections of one file buffer, at most, before writing them."""


@dataclass(frozen=True)
class TransferConfig:
    connections: int = 8
    piece_size: int = 32 * MiB
    """Largest range one request asks for; small pieces keep the verified prefix moving."""
    min_piece: int = 1 * MiB
    """Steals stop when the largest range in flight is under twice this."""
    write_block: int = 1 * MiB
    """Bytes a connection buffers before one positional write, at most (see :attr:`block`).
    Larger blocks mean fewer thread hand-offs, but measured on a quiet machine 3-4 MiB blocks
    cost 0.4-0.6 CPU s/GiB more in the kernel than 1 MiB: the copy into the page cache reads
    buffers that are no longer in the CPU's cache."""
    journal_interval: float = 1.0
    journal_from: int = 4 * MiB
    """Files smaller than this keep no journal: a crash refetches such a file whole (less than
    ``journal_from`` bytes), which costs less than the journal's three fsyncs a file (a 50-file
    repo of small files spends most of its time in them otherwise)."""
    journal_bytes: int = 0
    """Flush the journal after this many new bytes (0: 4 MiB per connection). Each flush is two
    fsyncs (data, then journal): fewer, larger batches cost less CPU; a crash refetches at most
    twice this (writers wait while the journal lags more)."""
    retry_attempts: int = 8
    retry_initial: float = 0.5
    retry_max: float = 30.0
    retry_after_max: float = 300.0
    first_contact_attempts: int = 3
    """Attempts to connect to a host this run never reached (a typo, no network) before the
    foreground gives up; the daemon then waits for the network."""
    integrity_retries: int = 1
    tick: float = 0.1
    read_timeout: float = 120.0
    space_margin: int = 64 * MiB
    recycle: RecycleConfig = field(default_factory=RecycleConfig)
    proxies: Proxies = field(default_factory=Proxies)
    """Which proxy each request goes through (``[network]``, then the environment)."""

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ValueError("connections must be between 1 and 64")
        if self.piece_size < self.min_piece or self.min_piece < 1:
            raise ValueError("need 1 <= min_piece <= piece_size")
        if self.retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1")

    @property
    def block(self) -> int:
        """The write block each connection uses: ``write_block``, but all connections together
        buffer at most :data:`WRITE_BUFFERS` (memory stays flat with more connections), and
        never less than 1 MiB (or ``write_block`` if that is smaller)."""
        floor = min(self.write_block, 1 * MiB)
        return max(floor, min(self.write_block, WRITE_BUFFERS // self.connections))

    @property
    def flush_bytes(self) -> int:
        return self.journal_bytes or 4 * MiB * self.connections

    @property
    def metadata_deadline(self) -> float:
        """Seconds a small answer (a probe, a manifest, a listing page) may take in all."""
        return 2 * self.recycle.stall_timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        from pullman.net.retry import RetryPolicy  # tenacity loads only when a transfer runs

        return RetryPolicy(
            self.retry_attempts,
            self.retry_initial,
            self.retry_max,
            self.retry_after_max,
            self.first_contact_attempts,
        )
