"""Watching jobs that another process runs (the daemon): progress from the index's rows."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import anyio
import click

from pullman.cli.app import echo_json, run_async
from pullman.config import Paths
from pullman.core.jobs import FINISHED, Job
from pullman.core.units import human
from pullman.errors import EXIT_INTERRUPTED, EXIT_OK, Interrupted, PullmanError
from pullman.index import Index
from pullman.progress import ProgressView
from pullman.transfer.stats import TransferStats

FOLLOW_EVERY = 0.5


def open_index(paths: Paths) -> Index:
    paths.ensure()
    index = Index.open(paths.index)
    if index.recovered_from is not None:
        click.echo(
            f"pullman: the index was damaged and has been moved to {index.recovered_from}; "
            "run `pullman doctor` to rebuild it from the stores (no downloaded data is lost)",
            err=True,
        )
    return index


def job_stats(job: Job) -> TransferStats:
    """A job row, shaped like a transfer's statistics so the progress view can draw it."""
    total = job.bytes_total or 0
    return TransferStats(
        name=f"job {job.id} {job.ref}",
        state=job.state if job.state != "waiting" else f"waiting: {job.wait_reason}",
        size=total,
        done=job.bytes_done,
        verified=0,
        fetched=0,
        resumed=0,
        rate=job.rate if job.state == "running" else 0.0,
        connections=0,
        recycles=0,
        retries=0,
        steals=0,
        refreshes=0,
    )


class _Rows:
    def __init__(self, index: Index, ids: Sequence[int]) -> None:
        self.index = index
        self.ids = list(ids)
        self.jobs: list[Job] = []

    def refresh(self) -> None:
        self.jobs = [j for j in map(self.index.job, self.ids) if j is not None]

    def statistics(self) -> list[TransferStats]:
        return [job_stats(j) for j in self.jobs]

    def settled(self) -> bool:
        return all(j.state in FINISHED or j.state == "paused" for j in self.jobs)


def watch(index: Index, ids: Sequence[int], view: ProgressView) -> list[Job]:
    """Draw the jobs' progress until each is finished or paused; the jobs as they ended."""
    rows = _Rows(index, ids)
    rows.refresh()

    async def follow() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(view.run, rows.statistics)
            while True:
                await anyio.to_thread.run_sync(rows.refresh)
                if rows.settled():
                    break
                await anyio.sleep(FOLLOW_EVERY)
            tg.cancel_scope.cancel()

    run_async(follow)
    return rows.jobs


def follow_jobs(index: Index, ids: Sequence[int], view: ProgressView, as_json: bool) -> None:
    """Draw the jobs' progress until they end; exit as the first failure's command would."""
    try:
        jobs = watch(index, ids, view)
    except Interrupted:
        click.echo(
            "pullman: stopped following; the daemon carries on "
            f"(`pullman status {' '.join(map(str, ids))}`)",
            err=True,
        )
        return
    report(jobs, as_json)
    code = exit_code(jobs)
    if code != EXIT_OK:
        failed = next((j for j in jobs if j.state == "failed"), None)
        if failed is not None:
            raise PullmanError(failed.error or f"job {failed.id} failed").with_code(code)
        sys.exit(code)


def exit_code(jobs: Sequence[Job]) -> int:
    for job in jobs:
        if job.state == "failed":
            return job.exit_code or 1
    if any(job.state in ("paused", "cancelled") for job in jobs):
        return EXIT_INTERRUPTED
    return EXIT_OK


def report(jobs: Sequence[Job], as_json: bool) -> None:
    if as_json:
        echo_json([job.to_json() for job in jobs])
        return
    for job in jobs:
        size = human(job.bytes_total or job.bytes_done)
        line = f"job {job.id} {job.ref}: {job.state}, {size}"
        if job.state == "waiting" and job.wait_reason:
            line += f" ({job.wait_reason})"
        if job.state == "paused" and job.wait_reason:
            line += f" ({job.wait_reason})"
        click.echo(line)
