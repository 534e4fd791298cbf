"""What a transfer shows while it runs (:class:`TransferStats`) and what it ends with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


class TransferStats(NamedTuple):
    name: str
    state: str
    size: int
    done: int
    verified: int
    fetched: int
    resumed: int
    rate: float
    connections: int
    recycles: int
    retries: int
    steals: int
    refreshes: int
    note: str = ""
    """What is happening besides transferring (a retry about to happen, and why)."""

    @property
    def eta(self) -> float | None:
        """Seconds to go at the current rate (None when nothing moves or nothing is left)."""
        left = self.size - self.done
        return left / self.rate if left > 0 and self.rate > 0 else None

    def to_json(self) -> dict[str, object]:
        """Every field, and ``eta``: the shape of a file in the API's ``progress`` events."""
        return {**self._asdict(), "eta": self.eta}


@dataclass(frozen=True)
class Outcome:
    dest: Path
    size: int
    sha256: str | None
    digest: str
    verified: bool
    fetched: int
    resumed: int
    elapsed: float
    tail: float
    """Seconds from the last byte received to the committed file."""
    recycles: int
    retries: int
    discarded: int = 0
    """Bytes thrown away because they did not verify (then fetched again)."""
    reused: bool = False
    """Another process committed the file while this one waited for it: nothing fetched."""
