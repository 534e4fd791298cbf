"""One job as the scheduler runs it: its outcome, and what it leaves in the index while it
runs (progress rows every second, counts of recycles and retries) and when it ends.

:class:`JobReporter` also notices, once a second while a job runs anyway, a pause or cancel
from another process and a new global limit (the scheduler itself never polls).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from pullman.core.jobs import Job
from pullman.core.units import human
from pullman.core.urls import shown_ref
from pullman.errors import PullmanError, StorageError
from pullman.index import Index
from pullman.jobrecord import Counts, JobRecorder
from pullman.session import PlanReport, Session
from pullman.transfer.limiter import TokenBucket
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.scheduler")

PROGRESS_EVERY = 1.0
"""Seconds between progress rows written to the index while a job runs."""


@dataclass
class JobResult:
    job_id: int
    ref: str
    state: str
    reports: list[PlanReport] = field(default_factory=list)
    error: PullmanError | None = None
    stats: list[TransferStats] = field(default_factory=list)
    """Its transfers' statistics as it ended."""


@dataclass
class Running:
    job: Job
    scope: anyio.CancelScope
    session: Session
    stop_as: tuple[str, str | None] | None = None
    """Why it was stopped from outside: the state to leave it in, and the reason."""


class JobReporter:
    """Writes a running job's progress and its end into the index, through one recorder."""

    def __init__(
        self,
        index: Index,
        *,
        sleep: Callable[[float], Awaitable[None]],
        bucket: TokenBucket,
        limit: Callable[[], float | None],
    ) -> None:
        self.index = index
        self.recorder = JobRecorder(index)
        self._sleep = sleep
        self._bucket = bucket
        self._limit = limit

    async def finish(
        self,
        run: Running,
        result: JobResult,
        state: str,
        *,
        reason: str | None = None,
        error: PullmanError | None = None,
    ) -> None:
        job = run.job
        result.state = state
        stats = result.stats = run.session.statistics()
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self.recorder.progress, job.id, stats)
                await anyio.to_thread.run_sync(
                    lambda: self.recorder.ended(job, state, reason, error, result.reports)
                )
            except StorageError as exc:  # the index's disk is full: the data is safe anyway
                log.warning(
                    "job %s %s: could not record that it %s: %s",
                    job.id,
                    shown_ref(job.ref),
                    state,
                    exc.what,
                )
                if result.error is None and state not in ("done", "waiting"):
                    result.error = exc
        detail = f": {reason}" if reason else f": {error.what}" if error else ""
        done = sum(s.done for s in stats)
        log.info("job %s %s: %s (%s)%s", job.id, shown_ref(job.ref), state, human(done), detail)

    async def report_progress(self, run: Running) -> None:
        """Progress rows every second; also notices a pause or cancel from another process
        and a new global limit, since a running job is busy anyway (no idle polling)."""
        seen = Counts()
        while True:
            await self._sleep(PROGRESS_EVERY)
            stats = run.session.statistics()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.recorder.progress, run.job.id, stats)
            job = await anyio.to_thread.run_sync(self.index.job, run.job.id)
            if job is not None and job.state in ("paused", "cancelled"):
                run.stop_as = (job.state, job.wait_reason)
                run.scope.cancel()
            self._bucket.set_rate(await anyio.to_thread.run_sync(self._limit))
            seen = await anyio.to_thread.run_sync(self.recorder.counts, run.job.id, stats, seen)
