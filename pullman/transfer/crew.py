"""One pass over a file: its workers, the watchdog, the journal flusher and the hasher, in one
task group.

- N :class:`~pullman.transfer.worker.Worker` s, one connection each;
- the **watchdog** ticks the :class:`~pullman.transfer.recycle.Fleet` (the sans-IO recycle policy)
  every ``tick`` seconds and recycles the connections it names;
- the **flusher** (:class:`~pullman.transfer.flusher.JournalFlusher`) and the **hasher**
  (:class:`~pullman.transfer.hashing.PrefixHasher`).

The first failure cancels the pass; :meth:`Crew.run` raises it once every task has stopped and
the journal recorded what is on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from pullman.errors import DiskFull, NetworkError, PullmanError, collapse_groups
from pullman.transfer.check import StartOver
from pullman.transfer.flusher import JournalFlusher
from pullman.transfer.hashing import PrefixHasher
from pullman.transfer.shared import Shared
from pullman.transfer.worker import DiskFullError, Worker

log = logging.getLogger("pullman.transfer")


class Crew:
    def __init__(
        self,
        shared: Shared,
        flusher: JournalFlusher,
        hasher: PrefixHasher,
        disk_full: DiskFullError,
        on_hashed: Callable[[], None],
    ) -> None:
        self.shared = shared
        self.workers: dict[int, Worker] = {}
        self._flusher = flusher
        self._hasher = hasher
        self._disk_full = disk_full
        self._on_hashed = on_hashed
        self._failure: PullmanError | StartOver | None = None
        self._work_scope: anyio.CancelScope | None = None

    async def run(self, count: int) -> None:
        """Run ``count`` workers until the file is complete and hashed, or something failed."""
        try:
            with collapse_groups():
                await self._tasks(count)
        finally:
            with anyio.CancelScope(shield=True):
                await self._final_flush()
        if self._failure is not None:
            raise self._failure

    def fail(self, error: PullmanError | StartOver) -> None:
        if self._failure is None:
            self._failure = error
        if self._work_scope is not None:
            self._work_scope.cancel()

    async def _tasks(self, count: int) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_loop)
            tg.start_soon(self._watchdog)
            async with anyio.create_task_group() as work:
                self._work_scope = work.cancel_scope
                work.start_soon(self._hash)
                for wid in range(count):
                    self.workers[wid] = Worker(
                        wid, self.shared, self._flusher, self._hasher, self._disk_full
                    )
                    work.start_soon(self._work, wid)
            tg.cancel_scope.cancel()

    async def _work(self, wid: int) -> None:
        worker = self.workers[wid]
        try:
            await worker.run()
        except (PullmanError, StartOver) as exc:
            self.fail(exc)
        finally:
            self.workers.pop(wid, None)
            if not self.workers and not self.shared.smap.complete and self._failure is None:
                self.fail(NetworkError(f"{self.shared.spec.name}: every connection stopped early"))

    async def _hash(self) -> None:
        await self._hasher.run(lambda: self.shared.smap.prefix)
        self._on_hashed()

    async def _watchdog(self) -> None:
        sh = self.shared
        while True:
            await sh.clock.sleep(sh.config.tick)
            # Under a bandwidth cap connections are slow on purpose: judge stalls, not speed.
            judge_speed = sh.limiter is None or not sh.limiter.limited
            for wid, reason in sh.fleet.tick(sh.clock.now(), judge_speed=judge_speed):
                worker = self.workers.get(int(str(wid)))
                if worker is not None:
                    log.debug("%s: recycling connection %s (%s)", sh.spec.name, wid, reason.value)
                    worker.recycle(reason)

    async def _flush_loop(self) -> None:
        try:
            await self._flusher.run()
        except DiskFull:
            self.fail(self._disk_full())
        except PullmanError as exc:
            self.fail(exc)

    async def _final_flush(self) -> None:
        """Record what is on disk before returning, whatever happened."""
        try:
            await self._flusher.flush()
        except DiskFull:
            # The journal keeps its last good slot (a torn write spoils one slot, never both);
            # the error worth showing is the one about space, with what is needed and free.
            log.warning("%s: could not update the journal: disk full", self.shared.spec.name)
            if self._failure is None:
                raise self._disk_full() from None
