"""The scheduler: jobs from the index, run within budgets, windows and bandwidth caps.

The index is the queue. The scheduler takes queued and waiting jobs (priority first, FIFO within
one), runs up to ``[schedule] jobs`` of them at once, and gives every connection of every job a
slot of the global budget and of its host's budget (:class:`~pullman.transfer.slots.Budget`),
and every byte a token of its job's bucket and of the global one.

- A job outside its time window waits (progress kept) and starts again when the window opens;
  a running job whose window closes is stopped and waits.
- A job short of disk space waits, saying how much is needed and free, and looks again later.
- ``pause``/``cancel`` (rows changed by another process, then a wake-up) stop a running job.
- A stop of the scheduler itself (daemon shutdown) puts running jobs back in the queue; a stop
  of a foreground run (Ctrl-C, ``--until``) pauses its jobs, with the reason.

Nothing here polls: the loop sleeps until a job ends, someone calls :meth:`Scheduler.wake`, or
the next moment something is due (a window opening or closing, a disk-space check, a deadline).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import anyio

from pullman.config import Settings
from pullman.core.hosts import HostMemory
from pullman.core.jobs import ACTIVE, Job, JobOptions, JobState
from pullman.core.units import format_rate, human, parse_rate
from pullman.core.urls import shown_ref
from pullman.core.windows import Window, local_now, seconds_until
from pullman.errors import (
    DiskFull,
    InternalError,
    JobConflict,
    PullmanError,
    StorageError,
    Unreachable,
    UsageError,
    collapse_groups,
)
from pullman.hostmemory import IndexHostMemory
from pullman.index import Index
from pullman.jobrecord import Counts, JobRecorder
from pullman.procs import pid_alive
from pullman.session import PlanReport, Session
from pullman.transfer.limiter import Limiters, TokenBucket
from pullman.transfer.slots import Budget
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.scheduler")

PROGRESS_EVERY = 1.0
"""Seconds between progress rows written to the index while a job runs."""


# ------------------------------------------------------------------------------- time


class WallClock:
    """The scheduler's view of time: wall-clock now (for windows) and real seconds to wait.

    Tests inject a faster clock, so a window that opens in ten minutes opens in a second.
    """

    def now(self) -> datetime:
        return local_now()

    def seconds_until(self, when: datetime) -> float:
        return seconds_until(when, self.now())


# ------------------------------------------------------------------------------- outcomes


@dataclass
class JobResult:
    job_id: int
    ref: str
    state: str
    reports: list[PlanReport] = field(default_factory=list)
    error: PullmanError | None = None


@dataclass
class _Running:
    job: Job
    scope: anyio.CancelScope
    session: Session
    stop_as: tuple[str, str | None] | None = None
    """Why it was stopped from outside: the state to leave it in, and the reason."""


# ------------------------------------------------------------------------------- scheduler


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        *,
        clock: WallClock | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_stop: tuple[str, str | None] = ("queued", None),
        wait_for_disk: bool = True,
        token: str | None = None,
    ) -> None:
        """``on_stop``: where running jobs go when the scheduler itself is stopped: back to the
        queue for the daemon (its restart resumes them), paused for a foreground run."""
        self.settings = settings
        self.index = index
        self.clock = clock or WallClock()
        self._now = self.clock.now
        self._sleep = sleep
        self._on_stop = on_stop
        self._wait_for_disk = wait_for_disk
        self._token = token
        cfg = settings.schedule
        self.budget = Budget(cfg.connections, cfg.per_host)
        self.global_bucket = TokenBucket(self._global_limit())
        self.results: dict[int, JobResult] = {}
        self._running: dict[int, _Running] = {}
        self._wake = anyio.Event()
        self._disk_waits: dict[int, datetime] = {}
        self._recorder = JobRecorder(index)

    # ------------------------------------------------------------------ observing

    def statistics(self) -> list[TransferStats]:
        return [stat for run in self._running.values() for stat in run.session.statistics()]

    def running_jobs(self) -> list[int]:
        return list(self._running)

    def wake(self) -> None:
        """Look at the queue again now (new jobs, paused ones, a new limit)."""
        self._wake.set()

    def reconfigure(self, settings: Settings) -> None:
        """New settings (SIGHUP): new jobs use them; the global limit applies at once."""
        self.settings = settings
        self.global_bucket.set_rate(self._global_limit())
        self.wake()

    # ------------------------------------------------------------------ the loop

    async def run(
        self,
        *,
        only: Sequence[int] | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> dict[int, JobResult]:
        """Run queued jobs (``only`` these) until none is left, or ``forever`` (the daemon).

        At ``until`` every running job is paused and :class:`~pullman.errors.Interrupted`
        is raised by the caller's choice (see :meth:`deadline_passed`).
        """
        wanted = set(only) if only is not None else None
        async with anyio.create_task_group() as tg:
            while True:
                self._wake = anyio.Event()
                await self._reconcile()
                due = await self._start_runnable(tg, wanted)
                if until is not None:
                    due = min(due or until, until)
                if not forever and not self._running and not await self._pending(wanted):
                    break
                if until is not None and self._now() >= until:
                    self._stop_all("paused", f"stopped at --until {until:%H:%M}")
                    break
                timeout = None if due is None else max(0.0, self.clock.seconds_until(due))
                with anyio.move_on_after(timeout):
                    await self._wake.wait()
        return self.results

    def deadline_passed(self, until: datetime | None) -> bool:
        return until is not None and self._now() >= until

    async def _pending(self, wanted: set[int] | None) -> bool:
        """Jobs still queued or waiting (for a window or disk space) among ``wanted``."""
        jobs = await anyio.to_thread.run_sync(self.index.next_jobs, 1_000_000)
        return any(self._mine(job, wanted) for job in jobs)

    def _mine(self, job: Job, wanted: set[int] | None) -> bool:
        if wanted is not None:
            return job.id in wanted
        owner = job.request.foreground
        return owner is None or owner == os.getpid() or not pid_alive(owner)

    async def _start_runnable(
        self, tg: anyio.abc.TaskGroup, wanted: set[int] | None
    ) -> datetime | None:
        """Start what may start now; return when something next becomes due (or None)."""
        now = self._now()
        due: datetime | None = None
        free = self.settings.schedule.jobs - len(self._running)
        jobs = await anyio.to_thread.run_sync(self.index.next_jobs, 1_000_000)
        for job in jobs:
            if job.id in self._running or not self._mine(job, wanted):
                continue
            options = job.request
            window = self._window(options)
            if not window.contains(now):
                opens = window.next_open(now)
                await self._wait(job, f"outside its window {window}; starts at {opens:%H:%M}")
                due = _earliest(due, opens)
                continue
            retry_at = self._disk_waits.get(job.id)
            if retry_at is not None and now < retry_at:
                due = _earliest(due, retry_at)
                continue
            if free <= 0:
                continue
            free -= 1
            self._disk_waits.pop(job.id, None)
            closes = window.next_close(now)
            due = _earliest(due, closes)
            await self._start(tg, job, options, closes)
        for run in self._running.values():
            due = _earliest(due, self._window(run.job.request).next_close(now))
        return due

    def _window(self, options: JobOptions) -> Window:
        return Window.parse(options.window or self.settings.schedule.window)

    async def _wait(self, job: Job, reason: str) -> None:
        changed = job.state != "waiting" or job.wait_reason != reason
        if changed and await self._move(job, "waiting", wait_reason=reason):
            log.info("job %s %s: waiting: %s", job.id, shown_ref(job.ref), reason)

    async def _move(self, job: Job, state: JobState, *, wait_reason: str | None = None) -> bool:
        """Move a queued or waiting job, unless another process moved it first (then skip it:
        a ``cancel`` or ``pause`` that lands between reading the queue and this move wins)."""

        def move() -> None:
            self.index.set_state(job.id, state, only_from=ACTIVE, wait_reason=wait_reason)

        try:
            await anyio.to_thread.run_sync(move)
        except JobConflict as exc:
            log.info("job %s %s: left alone: %s", job.id, shown_ref(job.ref), exc.what)
            return False
        return True

    async def _reconcile(self) -> None:
        """Apply what other processes changed: paused or cancelled jobs, the global limit."""
        self.global_bucket.set_rate(self._global_limit())
        now = self._now()
        for job_id, run in list(self._running.items()):
            job = await anyio.to_thread.run_sync(self.index.job, job_id)
            if job is not None and job.state in ("paused", "cancelled"):
                run.stop_as = (job.state, job.wait_reason)
                run.scope.cancel()
                continue
            window = self._window(run.job.request)
            if not window.contains(now):
                opens = window.next_open(now)
                run.stop_as = ("waiting", f"outside its window {window}; starts at {opens:%H:%M}")
                run.scope.cancel()

    def _stop_all(self, state: str, reason: str) -> None:
        for run in self._running.values():
            run.stop_as = (state, reason)
            run.scope.cancel()

    def _global_limit(self) -> float | None:
        setting = self.index.get_setting("limit")
        text = setting if setting is not None else self.settings.schedule.limit
        try:
            return parse_rate(text, what="limit")
        except UsageError:
            log.warning("ignoring an invalid global limit %r", text)
            return None

    # ------------------------------------------------------------------ one job

    async def _start(
        self, tg: anyio.abc.TaskGroup, job: Job, options: JobOptions, closes: datetime | None
    ) -> None:
        memory = IndexHostMemory(self.index)
        session = job_session(
            self.settings, options, self.budget, self.global_bucket, self._token, memory
        )
        session.copies.lookup = self.index.verified_copies
        run = _Running(job, anyio.CancelScope(), session)
        self._running[job.id] = run
        if not await self._move(job, "running"):
            del self._running[job.id]
            return
        limit = f", limit {format_rate(parse_rate(options.limit))}" if options.limit else ""
        log.info("job %s %s: started%s", job.id, shown_ref(job.ref), limit)
        tg.start_soon(self._run_job, run, options)

    async def _run_job(self, run: _Running, options: JobOptions) -> None:
        job = run.job
        result = JobResult(job.id, job.ref, "running")
        self.results[job.id] = result
        try:
            with run.scope, collapse_groups():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._report_progress, run)
                    try:
                        result.reports = await run.session.get([job.ref], options.get)
                    finally:
                        tg.cancel_scope.cancel()
                await self._finish(run, result, "done")
                return
        except (DiskFull, Unreachable) as exc:
            if not self._wait_for_disk:  # a foreground run says so and stops (exit 5 or 1)
                result.error = exc
                await self._finish(run, result, "failed", error=exc)
                return
            await self._finish(run, result, "waiting", reason=self._wait_out(job, exc))
            return
        except PullmanError as exc:
            result.error = exc
            await self._finish(run, result, "failed", error=exc)
            return
        except anyio.get_cancelled_exc_class():
            # The scheduler itself is stopping (daemon shutdown, Ctrl-C): progress is on disk.
            state, reason = self._on_stop
            with anyio.CancelScope(shield=True):
                await self._finish(run, result, state, reason=reason)
            raise
        except Exception as exc:  # a bug: fail this job, keep the scheduler (and daemon) alive
            log.exception("job %s %s: internal error", job.id, shown_ref(job.ref))
            error = InternalError(f"internal error: {type(exc).__name__}: {exc}")
            result.error = error
            await self._finish(run, result, "failed", error=error)
            return
        finally:
            self._running.pop(job.id, None)
            self.wake()
        if run.stop_as is not None:  # stopped from outside: pause, cancel, window, deadline
            state, reason = run.stop_as
            await self._finish(run, result, state, reason=reason)

    def _wait_out(self, job: Job, exc: DiskFull | Unreachable) -> str:
        """The daemon waits for space or for the network, then tries the job again."""
        cfg = self.settings.schedule
        retry = cfg.disk_retry if isinstance(exc, DiskFull) else cfg.network_retry
        at = self._disk_waits[job.id] = _after(self._now(), retry)
        if isinstance(exc, DiskFull):
            return exc.explain().replace("\n", "; ")
        return f"waiting for the network: {exc.what}; trying again at {at:%H:%M:%S}"

    async def _finish(
        self,
        run: _Running,
        result: JobResult,
        state: str,
        *,
        reason: str | None = None,
        error: PullmanError | None = None,
    ) -> None:
        job = run.job
        result.state = state
        stats = run.session.statistics()
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._recorder.progress, job.id, stats)
                await anyio.to_thread.run_sync(
                    lambda: self._recorder.ended(job, state, reason, error, result.reports)
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

    async def _report_progress(self, run: _Running) -> None:
        """Progress rows every second; also notices a pause or cancel from another process
        and a new global limit, since a running job is busy anyway (no idle polling)."""
        seen = Counts()
        while True:
            await self._sleep(PROGRESS_EVERY)
            stats = run.session.statistics()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._recorder.progress, run.job.id, stats)
            job = await anyio.to_thread.run_sync(self.index.job, run.job.id)
            if job is not None and job.state in ("paused", "cancelled"):
                run.stop_as = (job.state, job.wait_reason)
                run.scope.cancel()
            self.global_bucket.set_rate(await anyio.to_thread.run_sync(self._global_limit))
            seen = await anyio.to_thread.run_sync(self._recorder.counts, run.job.id, stats, seen)


def job_session(
    settings: Settings,
    options: JobOptions,
    budget: Budget,
    global_bucket: TokenBucket,
    token: str | None,
    memory: HostMemory | None = None,
) -> Session:
    """The session one job runs in: its connections from the shared budget (per host), its
    bytes through its own bucket and the global one."""
    if options.connections:
        transfer = replace(settings.transfer, connections=options.connections)
        settings = replace(settings, transfer=transfer)
    job_bucket = TokenBucket(parse_rate(options.limit, what="--limit")) if options.limit else None
    return Session(
        settings,
        slots_for=lambda spec: budget.slots_for(spec.url, options.connections or 1),
        limiter=Limiters(job_bucket, global_bucket),
        token=token,
        memory=memory,
    )


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
