"""Which origins this process has heard from (any HTTP answer at all).

A failure to connect to a host this run has never reached is most likely a typo, no network or
a dead proxy: it gets a couple of quick retries, not the full backoff (see
:mod:`pullman.net.retry`). Once a host answered, the same failure is a flaky network, and is
retried patiently. Shared by every connection of the process, thread-safe.
"""

from __future__ import annotations

import threading

from pullman.core.urls import Origin, origin


class Reach:
    def __init__(self) -> None:
        self._origins: set[Origin] = set()
        self._lock = threading.Lock()

    def mark(self, url: str) -> None:
        with self._lock:
            self._origins.add(origin(url))

    def seen(self, url: str) -> bool:
        with self._lock:
            return origin(url) in self._origins


REACH = Reach()
"""This process's record."""
