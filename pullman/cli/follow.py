"""Watching jobs that another process runs (the daemon): progress from the index's rows."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import click

from pullman.cli.app import echo_json, run_async
from pullman.cli.controls import daemon_socket, job_from_json
from pullman.config import Paths
from pullman.core.jobs import FINISHED, Job
from pullman.core.units import human
from pullman.errors import EXIT_INTERRUPTED, EXIT_OK, Interrupted, PullmanError
from pullman.index import Index
from pullman.net.daemon_client import DaemonUnreachable, events
from pullman.progress import ProgressView
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.cli")

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
        self.live: dict[int, TransferStats] = {}
        """What the daemon's ``progress`` events said (connections, recycles), by job."""

    def refresh(self) -> None:
        self.jobs = [j for j in map(self.index.job, self.ids) if j is not None]

    def statistics(self) -> list[TransferStats]:
        return [self.live.get(j.id) or job_stats(j) for j in self.jobs]

    def settled(self) -> bool:
        return all(j.state in FINISHED or j.state == "paused" for j in self.jobs)

    def apply(self, name: str, data: dict[str, Any]) -> None:
        """One event of the daemon's stream (:mod:`pullman.api`)."""
        if name == "hello":
            jobs = {j["id"]: job_from_json(j) for j in data.get("jobs", [])}
            self.jobs = [jobs[i] for i in self.ids if i in jobs]
        elif name == "job":
            job = job_from_json(data["job"])
            self.jobs = [job if j.id == job.id else j for j in self.jobs]
            if job.state != "running":
                self.live.pop(job.id, None)
        elif name == "progress" and data.get("job_id") in self.ids:
            self.live[data["job_id"]] = live_stats(data)


def live_stats(data: dict[str, Any]) -> TransferStats:
    """A ``progress`` event, shaped for the progress view."""
    return TransferStats(
        name=f"job {data['job_id']} {data['ref']}",
        state=str(data["state"]),
        size=int(data.get("size") or 0),
        done=int(data.get("done") or 0),
        verified=0,
        fetched=0,
        resumed=0,
        rate=float(data.get("rate") or 0.0),
        connections=int(data.get("connections") or 0),
        recycles=int(data.get("recycles") or 0),
        retries=int(data.get("retries") or 0),
        steals=0,
        refreshes=0,
    )


def watch(index: Index, ids: Sequence[int], view: ProgressView, paths: Paths) -> list[Job]:
    """Draw the jobs' progress until each is finished or paused; the jobs as they ended.

    With a daemon, from its event stream (pushed, no polling); else, or when the stream ends
    before the jobs do, from the index's rows."""
    rows = _Rows(index, ids)
    rows.refresh()
    socket = daemon_socket(paths)

    async def follow() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(view.run, rows.statistics)
            if socket is not None and not rows.settled():
                await _from_events(socket, rows)
            while not rows.settled():
                await anyio.sleep(FOLLOW_EVERY)
                await anyio.to_thread.run_sync(rows.refresh)
            tg.cancel_scope.cancel()

    run_async(follow)
    return rows.jobs


async def _from_events(socket: Path, rows: _Rows) -> None:
    log.info("following through the daemon's API on %s", socket)
    with contextlib.suppress(DaemonUnreachable, PullmanError):  # then the index, as without
        async for name, data in events(socket):
            rows.apply(name, data)
            if rows.settled():
                return
    await anyio.to_thread.run_sync(rows.refresh)  # the stream ended: the index has the rest


def follow_jobs(
    index: Index, ids: Sequence[int], view: ProgressView, as_json: bool, paths: Paths
) -> None:
    """Draw the jobs' progress until they end; exit as the first failure's command would."""
    try:
        jobs = watch(index, ids, view, paths)
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
