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
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

import anyio

from pullman.config import Settings
from pullman.core.hosts import HostMemory
from pullman.core.jobs import ACTIVE, Job, JobOptions, JobState
from pullman.core.units import format_rate, parse_rate
from pullman.core.urls import shown_ref
from pullman.core.windows import Window, local_now, seconds_until
from pullman.errors import (
    DiskFull,
    InternalError,
    JobConflict,
    PullmanError,
    Unreachable,
    UsageError,
    collapse_groups,
)
from pullman.hooks import Ending, Hooks
from pullman.hostmemory import IndexHostMemory
from pullman.index import Index
from pullman.jobrun import JobReporter, JobResult, Running
from pullman.procs import pid_alive
from pullman.session import PlanReport, Session
from pullman.transfer.landing import Landings
from pullman.transfer.limiter import Limiters, TokenBucket
from pullman.transfer.slots import Budget
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.scheduler")


# ------------------------------------------------------------------------------- time


class WallClock:
    """The scheduler's view of time: wall-clock now (for windows) and real seconds to wait.

    Tests inject a faster clock, so a window that opens in ten minutes opens in a second.
    """

    def now(self) -> datetime:
        return local_now()

    def seconds_until(self, when: datetime) -> float:
        return seconds_until(when, self.now())


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
        landings: Landings | None = None,
    ) -> None:
        """``on_stop``: where running jobs go when the scheduler itself is stopped: back to the
        queue for the daemon (its restart resumes them), paused for a foreground run.
        ``landings``: told of every job's plans and written bytes (``serve --pull-through``)."""
        self.settings = settings
        self.index = index
        self.clock = clock or WallClock()
        self._now = self.clock.now
        self._sleep = sleep
        self._on_stop = on_stop
        self._wait_for_disk = wait_for_disk
        self._token = token
        self._landings = landings
        cfg = settings.schedule
        self.budget = Budget(cfg.connections, cfg.per_host)
        self.global_bucket = TokenBucket(self._global_limit())
        self.results: dict[int, JobResult] = {}
        self._running: dict[int, Running] = {}
        self._wake = anyio.Event()
        self._disk_waits: dict[int, datetime] = {}
        self._reporter = JobReporter(
            index, sleep=sleep, bucket=self.global_bucket, limit=self._global_limit
        )
        self.hooks = Hooks()

    # ------------------------------------------------------------------ observing

    def statistics(self) -> list[TransferStats]:
        return [stat for run in self._running.values() for stat in run.session.statistics()]

    def job_statistics(self, job_id: int) -> list[TransferStats]:
        """The files of one running job as they move (empty when it does not run here)."""
        return run.session.statistics() if (run := self._running.get(job_id)) else []

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
        return global_limit(self.index, self.settings)

    # ------------------------------------------------------------------ one job

    async def _start(
        self, tg: anyio.abc.TaskGroup, job: Job, options: JobOptions, closes: datetime | None
    ) -> None:
        memory = IndexHostMemory(self.index)
        session = job_session(
            self.settings, options, self.budget, self.global_bucket, self._token, memory
        )
        session.landings = self._landings
        session.copies.lookup = self.index.verified_copies
        session.fit.headers = self.index
        run = Running(job, anyio.CancelScope(), session)
        self._running[job.id] = run
        if not await self._move(job, "running"):
            del self._running[job.id]
            return
        limit = f", limit {format_rate(parse_rate(options.limit))}" if options.limit else ""
        log.info("job %s %s: started%s", job.id, shown_ref(job.ref), limit)
        tg.start_soon(self._run_job, run, options)

    async def _run_job(self, run: Running, options: JobOptions) -> None:
        result = self.results[run.job.id] = JobResult(run.job.id, run.job.ref, "running")
        await self._run_body(run, options, result)
        if result.state in ("done", "failed"):  # its hooks, once its slot is free
            await self.hooks.run(self.settings.hooks, options, _ending(run.job, result, options))

    async def _run_body(self, run: Running, options: JobOptions, result: JobResult) -> None:
        job = run.job
        try:
            with run.scope, collapse_groups():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._reporter.report_progress, run)
                    try:
                        result.reports = await run.session.get([job.ref], options.get)
                    finally:
                        tg.cancel_scope.cancel()
                await self._reporter.finish(run, result, "done")
                return
        except (DiskFull, Unreachable) as exc:
            if not self._wait_for_disk:  # a foreground run says so and stops (exit 5 or 1)
                result.error = exc
                await self._reporter.finish(run, result, "failed", error=exc)
                return
            await self._reporter.finish(run, result, "waiting", reason=self._wait_out(job, exc))
            return
        except PullmanError as exc:
            result.error = exc
            await self._reporter.finish(run, result, "failed", error=exc)
            return
        except anyio.get_cancelled_exc_class():
            # The scheduler itself is stopping (daemon shutdown, Ctrl-C): progress is on disk.
            state, reason = self._on_stop
            with anyio.CancelScope(shield=True):
                await self._reporter.finish(run, result, state, reason=reason)
            raise
        except Exception as exc:  # a bug: fail this job, keep the scheduler (and daemon) alive
            log.exception("job %s %s: internal error", job.id, shown_ref(job.ref))
            error = InternalError(f"internal error: {type(exc).__name__}: {exc}")
            result.error = error
            await self._reporter.finish(run, result, "failed", error=error)
            return
        finally:
            self._running.pop(job.id, None)
            self.wake()
        if run.stop_as is not None:  # stopped from outside: pause, cancel, window, deadline
            state, reason = run.stop_as
            await self._reporter.finish(run, result, state, reason=reason)

    def _wait_out(self, job: Job, exc: DiskFull | Unreachable) -> str:
        """The daemon waits for space or for the network, then tries the job again."""
        cfg = self.settings.schedule
        retry = cfg.disk_retry if isinstance(exc, DiskFull) else cfg.network_retry
        at = self._disk_waits[job.id] = _after(self._now(), retry)
        if isinstance(exc, DiskFull):
            return exc.explain().replace("\n", "; ")
        return f"waiting for the network: {exc.what}; trying again at {at:%H:%M:%S}"


class Watched(NamedTuple):
    """A scheduler as a progress view sees it: its running transfers, else (once they all
    ended) the transfers of the jobs it ran, as they ended, so a view's last draw is final."""

    scheduler: Scheduler

    def statistics(self) -> list[TransferStats]:
        live = self.scheduler.statistics()
        return live or [s for r in self.scheduler.results.values() for s in r.stats]


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


def global_limit(index: Index, settings: Settings) -> float | None:
    """The global bandwidth cap: ``pullman limit``'s (in the index), else ``[schedule] limit``."""
    setting = index.get_setting("limit")
    text = setting if setting is not None else settings.schedule.limit
    try:
        return parse_rate(text, what="limit")
    except UsageError:
        log.warning("ignoring an invalid global limit %r", text)
        return None


def _ending(job: Job, result: JobResult, options: JobOptions) -> Ending:
    """A job that ended, as its hooks see it."""
    error = result.error.explain() if result.error is not None else None
    where = _where(result.reports)
    return Ending(job.id, job.ref, result.state, where, error, options.get.cwd)


def _where(reports: Sequence[PlanReport]) -> str | None:
    """Where a job's result is, for its hooks: the first store entry, or the first file."""
    return next((str(r.where) for r in reports if r.where is not None), None)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
