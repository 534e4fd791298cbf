"""A sliding-window rate meter over a growing byte count. Pure: callers pass the time."""

from __future__ import annotations

from collections import deque


class RateMeter:
    def __init__(self, window: float = 3.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def feed(self, now: float, total: int) -> None:
        samples = self._samples
        if samples and now - samples[-1][0] < 0.05:
            samples[-1] = (samples[-1][0], total)
        else:
            samples.append((now, total))
        while len(samples) > 2 and samples[1][0] <= now - self._window:
            samples.popleft()

    def rate(self, now: float) -> float:
        """Bytes per second over the window (0 until two samples exist)."""
        if len(self._samples) < 2:
            return 0.0
        t0, b0 = self._samples[0]
        t1, b1 = self._samples[-1]
        if now - t1 > self._window:
            return 0.0
        span = max(now, t1) - t0
        return (b1 - b0) / span if span > 0 else 0.0
