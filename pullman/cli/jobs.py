"""Jobs: ``status``, ``pause``, ``resume``, ``cancel``, ``limit``."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import click

from pullman.cli.app import JSON, Context, cli, echo_json, pass_context
from pullman.cli.follow import watch
from pullman.core.jobs import FINISHED, Job, JobState
from pullman.core.units import format_rate, human, parse_rate
from pullman.daemon import daemon_pid, poke
from pullman.errors import JobConflict, NotFound, UsageError
from pullman.index import Index
from pullman.progress import ProgressView

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
@pass_context
def status(
    context: Context, job_ids: tuple[int, ...], show_all: bool, follow: bool, as_json: bool
) -> None:
    """Show jobs: state, progress, rate, and why a job waits or failed."""
    settings, index = context.settings, context.index
    jobs = _select(index, job_ids, show_all)
    if follow:
        jobs = watch(index, [j.id for j in jobs], ProgressView("auto"))
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


def _change(
    context: Context,
    job_ids: tuple[int, ...],
    every: bool,
    to: JobState,
    allowed: Collection[JobState],
    why: str,
    as_json: bool,
) -> None:
    index = context.index
    if not job_ids and not every:
        raise UsageError("name the jobs, or pass --all", hint="`pullman status` lists them")
    targets = index.jobs() if every else _select(index, job_ids, True)
    changed: list[int] = []
    left: dict[int, str] = {}
    for job in targets:
        reason = why if to == "paused" else None
        try:
            index.set_state(job.id, to, only_from=allowed, wait_reason=reason)
        except JobConflict as exc:
            left[job.id] = exc.current
            if job_ids and not as_json:
                click.echo(f"job {job.id} is {exc.current}: left as it is", err=True)
            continue
        changed.append(job.id)
    poke(context.settings.paths)
    if as_json:
        echo_json({"state": to, "changed": changed, "left": left if job_ids else {}})
        return
    click.echo(f"{to}: {', '.join(map(str, changed)) if changed else 'no job'}")


_ALL = click.option("--all", "every", is_flag=True, help="Every job this applies to.")


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
@JSON
@pass_context
def pause(context: Context, job_ids: tuple[int, ...], every: bool, as_json: bool) -> None:
    """Pause jobs; their progress is kept. `pullman resume` carries on."""
    _change(
        context,
        job_ids,
        every,
        "paused",
        {"queued", "waiting", "running"},
        "paused by the user",
        as_json,
    )


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
@JSON
@pass_context
def resume(context: Context, job_ids: tuple[int, ...], every: bool, as_json: bool) -> None:
    """Queue paused (or failed) jobs again; they resume where they were."""
    _change(context, job_ids, every, "queued", {"paused", "failed"}, "", as_json)


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
@JSON
@pass_context
def cancel(context: Context, job_ids: tuple[int, ...], every: bool, as_json: bool) -> None:
    """Cancel jobs. Partial data stays until `pullman gc`."""
    _change(
        context,
        job_ids,
        every,
        "cancelled",
        {"queued", "waiting", "running", "paused", "failed"},
        "",
        as_json,
    )


@cli.command()
@click.argument("rate")
@JSON
@pass_context
def limit(context: Context, rate: str, as_json: bool) -> None:
    """Set the global bandwidth cap now, e.g. 20MB/s (or off). The daemon applies it at once."""
    value = parse_rate(rate, what="limit")
    context.index.set_setting("limit", rate if value is not None else "off")
    poke(context.settings.paths)
    if as_json:
        echo_json({"limit": value, "shown": format_rate(value)})
        return
    click.echo(f"global limit: {format_rate(value)}")
