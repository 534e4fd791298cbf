"""Jobs: ``status``, ``pause``, ``resume``, ``cancel``, ``limit``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import click

from pullman import config
from pullman.cli.app import JSON, cli, echo_json, run_async
from pullman.cli.follow import job_stats, open_index
from pullman.daemon import daemon_pid, poke
from pullman.errors import NotFound, UsageError
from pullman.index import FINISHED, Index, Job, JobState
from pullman.limiter import format_rate, parse_rate
from pullman.progress import ProgressView
from pullman.transfer.engine import TransferStats
from pullman.transfer.staging import human

RECENT = 24 * 3600.0
"""Finished jobs younger than this are shown by ``status`` without --all."""


def _line(job: Job) -> str:
    total = job.bytes_total or 0
    pct = f"{100 * job.bytes_done / total:5.1f}%" if total else "    -"
    rate = f"{human(job.rate)}/s" if job.state == "running" and job.rate else ""
    note = job.wait_reason or (job.error or "").split("\n")[0]
    return (
        f"{job.id:>4}  {job.state:<9} {pct} {human(job.bytes_done):>10}/{human(total):<10} "
        f"{rate:>12}  {job.ref}" + (f"  ({note})" if note else "")
    )


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all", "show_all", is_flag=True, help="Include jobs that ended long ago.")
@click.option("--follow", is_flag=True, help="Keep showing progress until the jobs end.")
@JSON
def status(job_ids: tuple[int, ...], show_all: bool, follow: bool, as_json: bool) -> None:
    """Show jobs: state, progress, rate, and why a job waits or failed."""
    settings = config.load()
    index = open_index(settings.paths)
    jobs = _select(index, job_ids, show_all)
    if follow:
        _follow(index, [j.id for j in jobs])
        jobs = [j for j in map(index.job, [j.id for j in jobs]) if j is not None]
    if as_json:
        echo_json([job.to_json() for job in jobs])
        return
    daemon = daemon_pid(settings.paths)
    click.echo(f"daemon: {'running (pid ' + str(daemon) + ')' if daemon else 'not running'}")
    limit = index.get_setting("limit") or settings.schedule.limit
    click.echo(f"global limit: {format_rate(parse_rate(limit))}")
    if not jobs:
        click.echo("no jobs")
    for job in jobs:
        click.echo(_line(job))


def _select(index: Index, ids: Sequence[int], show_all: bool) -> list[Job]:
    if ids:
        jobs = []
        for job_id in ids:
            job = index.job(job_id)
            if job is None:
                raise NotFound(f"no job {job_id}", hint="`pullman status --all` lists them")
            jobs.append(job)
        return jobs
    now = time.time()
    return [
        j
        for j in index.jobs()
        if show_all or j.state not in FINISHED or now - (j.finished_at or now) < RECENT
    ]


def _follow(index: Index, ids: list[int]) -> None:
    rows: list[Job] = []

    def stats() -> list[TransferStats]:
        return [job_stats(j) for j in rows]

    async def watch() -> None:
        async with anyio.create_task_group() as tg:
            view = ProgressView("auto")
            tg.start_soon(view.run, stats)
            while True:
                rows[:] = [j for j in map(index.job, ids) if j is not None]
                if all(j.state in FINISHED or j.state == "paused" for j in rows):
                    break
                await anyio.sleep(0.5)
            tg.cancel_scope.cancel()

    run_async(watch)


def _change(
    job_ids: tuple[int, ...], every: bool, to: JobState, allowed: set[str], why: str
) -> None:
    settings = config.load()
    index = open_index(settings.paths)
    if not job_ids and not every:
        raise UsageError("name the jobs, or pass --all", hint="`pullman status` lists them")
    targets = index.jobs() if every else _select(index, job_ids, True)
    changed = []
    for job in targets:
        if job.state in allowed:
            index.set_state(job.id, to, wait_reason=why if to == "paused" else None)
            changed.append(job.id)
        elif job_ids:
            click.echo(f"job {job.id} is {job.state}: left as it is", err=True)
    poke(settings.paths)
    click.echo(f"{to}: {', '.join(map(str, changed)) if changed else 'no job'}")


_ALL = click.option("--all", "every", is_flag=True, help="Every job this applies to.")


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
def pause(job_ids: tuple[int, ...], every: bool) -> None:
    """Pause jobs; their progress is kept. `pullman resume` carries on."""
    _change(job_ids, every, "paused", {"queued", "waiting", "running"}, "paused by the user")


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
def resume(job_ids: tuple[int, ...], every: bool) -> None:
    """Queue paused (or failed) jobs again; they resume where they were."""
    _change(job_ids, every, "queued", {"paused", "failed"}, "")


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
def cancel(job_ids: tuple[int, ...], every: bool) -> None:
    """Cancel jobs. Partial data stays until `pullman gc`."""
    _change(job_ids, every, "cancelled", {"queued", "waiting", "running", "paused", "failed"}, "")


@cli.command()
@click.argument("rate")
def limit(rate: str) -> None:
    """Set the global bandwidth cap now, e.g. 20MB/s (or off). The daemon applies it at once."""
    value = parse_rate(rate, what="limit")
    settings = config.load()
    index = open_index(settings.paths)
    index.set_setting("limit", rate if value is not None else "off")
    poke(settings.paths)
    click.echo(f"global limit: {format_rate(value)}")
