"""Keeping the journal close behind the data, and writers close behind the journal.

Every ``interval`` seconds, or after ``flush_bytes`` new bytes, the data is fsynced and then the
journal slot is written (:meth:`Staging.save_journal`): the journal never claims bytes that are
not on disk. Writers call :meth:`room` first and wait while the journal lags more than twice
``flush_bytes`` behind: that bounds what a crash can lose.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from pullman.transfer.journal import Journal

Snapshot = Callable[[], Journal | None]
"""What the journal should say now (None: nothing to record yet)."""
Save = Callable[[Journal], None]
"""Fsync the data, then write ``journal`` (synchronous: run in a worker thread)."""


class JournalFlusher:
    def __init__(self, interval: float, flush_bytes: int, snapshot: Snapshot, save: Save) -> None:
        self.interval = interval
        self.flush_bytes = flush_bytes
        self.unflushed = 0
        """Bytes written to the data file that no journal records yet."""
        self._snapshot = snapshot
        self._save = save
        self._wanted = anyio.Event()
        self._flushed = anyio.Event()
        self._lock = anyio.Lock()

    def wrote(self, nbytes: int) -> None:
        self.unflushed += nbytes
        if self.unflushed >= self.flush_bytes:
            self._wanted.set()

    def forget(self) -> None:
        """The data is being fetched again from the start: nothing is pending."""
        self.unflushed = 0

    async def room(self) -> None:
        """Wait while the journal lags too far behind the data (back-pressure on writers)."""
        while self.unflushed >= 2 * self.flush_bytes:
            self._wanted.set()
            await self._flushed.wait()

    async def run(self) -> None:
        """Flush every ``interval`` seconds, or sooner when asked; errors end the loop."""
        while True:
            with anyio.move_on_after(self.interval):
                await self._wanted.wait()
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            journal = self._snapshot()
            if journal is None:
                return
            pending = self.unflushed
            await anyio.to_thread.run_sync(self._save, journal)
            self.unflushed -= pending
            self._wanted = anyio.Event()
            flushed, self._flushed = self._flushed, anyio.Event()
            flushed.set()
