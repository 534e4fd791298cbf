"""From the index to the event streams: what changed since the last look, as events.

The index stays the source of truth. Every write the daemon's own :class:`~pullman.index.Index`
handle commits (the scheduler's moves and progress rows, the API's controls) calls
:meth:`Changes.notify`; a wake-up from another process (``control/wake``) does too; and while a
client is subscribed, the watcher also looks every :data:`LOOK_EVERY` seconds (a foreground
``pullman get`` in another terminal writes the index without waking the daemon). An idle daemon
with no client does not poll.

Each look reads the job rows, compares them with the previous look (:func:`diff`) and publishes
``job`` events for new jobs and state changes, ``progress`` events for running jobs that moved,
and a ``limit`` event when the global cap changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import anyio

from pullman.api.history import History, Sample
from pullman.api.hub import Hub
from pullman.api.views import job_json, progress_json
from pullman.core.jobs import Job
from pullman.errors import PullmanError
from pullman.index import Index
from pullman.jobcontrol import Limit, current_limit
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.api")

LOOK_EVERY: Final = 2.0
COALESCE: Final = 0.02
"""Seconds a look waits for more writes of the same burst before reading the index."""

StatsFor = Callable[[int], list[TransferStats]]


class Changes:
    """A flag any thread may raise (``notify``); the watcher waits on it in the event loop."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()

    def notify(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float | None) -> None:
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()


class Seen(NamedTuple):
    state: str
    wait_reason: str | None
    priority: int
    done: int
    rate: float


def seen(job: Job) -> Seen:
    return Seen(job.state, job.wait_reason, job.priority, job.bytes_done, job.rate)


def diff(
    before: dict[int, Seen], jobs: Sequence[Job]
) -> tuple[list[tuple[Job, str | None]], list[Job]]:
    """(jobs whose state, reason or priority changed, with the state they came from; running
    jobs whose bytes or rate moved). A job not seen before came from None."""
    changed: list[tuple[Job, str | None]] = []
    moving: list[Job] = []
    for job in jobs:
        old = before.get(job.id)
        now = seen(job)
        if old is None or old[:3] != now[:3]:
            changed.append((job, old.state if old is not None else None))
        if job.state == "running" and (old is None or old[3:] != now[3:]):
            moving.append(job)
    return changed, moving


class Watcher:
    def __init__(
        self, index: Index, hub: Hub, history: History, stats_for: StatsFor, limit: str
    ) -> None:
        self.index = index
        self.hub = hub
        self.history = history
        self.stats_for = stats_for
        self.default_limit = limit
        self.changes = Changes()
        self._seen: dict[int, Seen] = {}
        self._limit: Limit | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self.changes.bind()
        stop = self.index.on_change(self.changes.notify)
        try:
            await self.look()
            task_status.started()
            while True:
                await self.changes.wait(LOOK_EVERY if self.hub.subscribers else None)
                await anyio.sleep(COALESCE)
                try:
                    await self.look()
                except PullmanError as exc:  # the index failed (a full disk): look again later
                    log.warning("the API could not read the index: %s", exc.what)
                    await anyio.sleep(LOOK_EVERY)
        finally:
            stop()

    async def look(self) -> None:
        jobs, limit = await anyio.to_thread.run_sync(self._read)
        changed, moving = diff(self._seen, jobs)
        self._seen = {job.id: seen(job) for job in jobs}
        for job, before in changed:
            self.hub.publish("job", {"job": job_json(job), "from": before, "to": job.state})
        now = time.time()
        for job in moving:
            self.history.add(job.id, Sample(now, job.rate, job.bytes_done))
            self.hub.publish("progress", progress_json(job, self.stats_for(job.id)))
        if limit != self._limit:
            if self._limit is not None:
                self.hub.publish("limit", limit.to_json())
            self._limit = limit

    def _read(self) -> tuple[list[Job], Limit]:
        return self.index.jobs(), current_limit(self.index, self.default_limit)
