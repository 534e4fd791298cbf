"""Jobs: ``status``, ``pause``, ``resume``, ``cancel``, ``priority``, ``limit``.

When a daemon runs, the controls and ``status --follow`` go through its API (Unix socket);
without one they work on the index directly (:mod:`pullman.cli.controls`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import click

from pullman.cli.app import JSON, Context, cli, echo_json, pass_context
from pullman.cli.controls import controls
from pullman.cli.follow import watch
from pullman.core.jobs import FINISHED, Job
from pullman.core.units import format_rate, human, parse_rate
from pullman.daemon import daemon_pid
from pullman.errors import JobConflict, UsageError
from pullman.index import Index
from pullman.jobcontrol import MOVES, Action, no_job
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
        jobs = watch(index, [j.id for j in jobs], ProgressView("auto"), settings.paths)
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
                raise no_job(job_id)
            jobs.append(job)
        return jobs
    now = time.time()
    return [
        j
        for j in index.jobs()
        if show_all or j.state not in FINISHED or now - (j.finished_at or now) < RECENT
    ]


def _change(
    context: Context, job_ids: tuple[int, ...], every: bool, action: Action, as_json: bool
) -> None:
    """Pause, resume or cancel: through the daemon's API if one runs, else on the index."""
    if not job_ids and not every:
        raise UsageError("name the jobs, or pass --all", hint="`pullman status` lists them")
    ctl = controls(lambda: context.index, context.settings.paths)
    known = {job.id for job in ctl.jobs()}
    for job_id in job_ids:
        if job_id not in known:
            raise no_job(job_id)
    to = MOVES[action].to
    changed: list[int] = []
    left: dict[int, str] = {}
    for job_id in job_ids or sorted(known):
        try:
            ctl.apply(job_id, action)
        except JobConflict as exc:
            left[job_id] = exc.current
            if job_ids and not as_json:
                click.echo(f"job {job_id} is {exc.current}: left as it is", err=True)
            continue
        changed.append(job_id)
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
    _change(context, job_ids, every, "pause", as_json)


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
@JSON
@pass_context
def resume(context: Context, job_ids: tuple[int, ...], every: bool, as_json: bool) -> None:
    """Queue paused (or failed) jobs again; they resume where they were."""
    _change(context, job_ids, every, "resume", as_json)


@cli.command()
@click.argument("job_ids", nargs=-1, type=int)
@_ALL
@JSON
@pass_context
def cancel(context: Context, job_ids: tuple[int, ...], every: bool, as_json: bool) -> None:
    """Cancel jobs. Partial data stays until `pullman gc`."""
    _change(context, job_ids, every, "cancel", as_json)


@cli.command()
@click.argument("rate")
@JSON
@pass_context
def limit(context: Context, rate: str, as_json: bool) -> None:
    """Set the global bandwidth cap now, e.g. 20MB/s (or off). The daemon applies it at once."""
    parse_rate(rate, what="limit")  # a bad rate is a usage error here, daemon or not
    limit = controls(lambda: context.index, context.settings.paths).set_limit(rate)
    if as_json:
        echo_json(limit.to_json())
        return
    click.echo(f"global limit: {limit.shown}")


@cli.command()
@click.argument("job_id", type=int)
@click.argument("value", type=int)
@JSON
@pass_context
def priority(context: Context, job_id: int, value: int, as_json: bool) -> None:
    """Set a job's priority (higher runs first; FIFO within one). The daemon applies it at once."""
    job = controls(lambda: context.index, context.settings.paths).set_priority(job_id, value)
    if as_json:
        echo_json(job.to_json())
        return
    click.echo(f"job {job.id}: priority {job.priority}")
