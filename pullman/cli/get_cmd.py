"""``pullman get``: download refs, in the foreground or through the daemon."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pullman import config
from pullman.cli.app import JSON, OLLAMA_DIR, cli, echo_json, run_async, with_view
from pullman.cli.follow import follow_jobs, open_index
from pullman.daemon import daemon_pid, poke
from pullman.digests import parse_sha256_option
from pullman.errors import Interrupted, UsageError
from pullman.get import FileReport, GetOptions, PlanReport
from pullman.index import Index
from pullman.layouts import ollama as ollama_store
from pullman.limiter import parse_rate
from pullman.progress import ProgressView
from pullman.refs import OllamaRef, parse_ref
from pullman.scheduler import JobOptions, JobResult, Scheduler, process_alive
from pullman.transfer.staging import human
from pullman.windows import Window, local_now, until_deadline


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--sha256", "sha256", metavar="HEX", help="Expected sha256 of a URL's file.")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where a URL's file goes (a file path, or a directory ending in /).",
)
@OLLAMA_DIR
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Hugging Face: only files matching GLOB (repeatable).",
)
@click.option(
    "--exclude", multiple=True, metavar="GLOB", help="Hugging Face: skip files matching GLOB."
)
@click.option(
    "--local-dir",
    metavar="DIR",
    help="Hugging Face: plain files in DIR instead of the HF cache (like hf download).",
)
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(1, 64),
    help="Connections at once (default 8, or [transfer] connections).",
)
@click.option("--force", is_flag=True, help="Download again even if the files are already there.")
@click.option(
    "--verify-existing", is_flag=True, help="Re-hash blobs already in the store before reusing."
)
@click.option(
    "--insecure", is_flag=True, help="Allow http:// registries (like `ollama pull --insecure`)."
)
@click.option(
    "--via-server",
    is_flag=True,
    help="Let the running Ollama server download the model, recycling its pull stream.",
)
@click.option(
    "--recycle-after",
    type=click.FloatRange(min=1.0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="With --via-server: stop and restart the server's pull after this long.",
)
@click.option("--detach", is_flag=True, help="Queue the jobs for the daemon and return at once.")
@click.option(
    "--priority", type=int, default=0, show_default=True, help="Higher runs first (FIFO within)."
)
@click.option("--window", metavar="HH:MM-HH:MM", help="Only download inside this daily window.")
@click.option(
    "--until", metavar="HH:MM", help="Stop cleanly at this time (exit 75); rerun to resume."
)
@click.option("--limit", metavar="RATE", help="Bandwidth cap for this job, e.g. 20MB/s.")
@JSON
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="Progress display: bars on a terminal, plain lines otherwise.",
)
def get(
    refs: tuple[str, ...],
    sha256: str | None,
    output: str | None,
    ollama_dir: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    local_dir: str | None,
    connections: int | None,
    force: bool,
    verify_existing: bool,
    insecure: bool,
    via_server: bool,
    recycle_after: float,
    detach: bool,
    priority: int,
    window: str | None,
    until: str | None,
    limit: str | None,
    as_json: bool,
    progress: str,
) -> None:
    """Download REFS resumably, verify them, and put them in place.

    \b
    REFS are Ollama model names, Hugging Face refs or URLs:
      pullman get deepseek-coder-v2:16b        into the Ollama store
      pullman get hf://Qwen/Qwen2.5-0.5B-Instruct            into the HF cache
      pullman get hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M
      pullman get https://host/m.gguf --sha256 HEX -o ~/models/

    Run the same command again after an interruption to resume where it stopped.
    """
    if sha256 is not None and len(refs) != 1:
        raise UsageError("--sha256 applies to a single URL", hint="run one get per URL")
    if output is not None and len(refs) != 1:
        raise UsageError("-o applies to a single URL", hint="run one get per URL")
    overrides: dict[str, Any] = {}
    if connections is not None:
        overrides["connections"] = connections
    settings = config.load(transfer=overrides)
    options = GetOptions(
        out=_absolute(output),
        digest=parse_sha256_option(sha256) if sha256 else None,
        force=force,
        insecure=insecure,
        ollama_dir=str(ollama_store.models_dir(ollama_dir)),
        verify_existing=verify_existing,
        include=include,
        exclude=exclude,
        local_dir=_absolute(local_dir),
    )
    view = ProgressView("none" if as_json and progress == "auto" else progress)
    if via_server:
        if ollama_dir is not None:
            raise UsageError(
                "--via-server cannot be combined with --ollama-dir",
                hint="the Ollama server writes to its own models directory",
            )
        _get_via_server(refs, replace(options, ollama_dir=None), view, recycle_after, as_json)
        return
    for text in refs:
        parse_ref(text, insecure=insecure)  # bad refs fail here, before anything is queued
    if limit is not None:
        parse_rate(limit, what="--limit")
    if window is not None:
        Window.parse(window)
    deadline = until_deadline(until, local_now()) if until else None
    job = JobOptions(options, connections=connections, limit=limit, window=window)
    index = open_index(settings.paths)
    daemon = daemon_pid(settings.paths)
    if daemon is not None or detach:
        if deadline is not None:
            raise UsageError(
                "--until applies to a foreground run", hint="use --window for the daemon"
            )
        ids = [index.add_job(text, job.to_json(), priority) for text in refs]
        poke(settings.paths)
        if detach or daemon is None:
            _say_queued(ids, refs, daemon, as_json)
            return
        follow_jobs(index, ids, view, as_json)
        return
    job = replace(job, foreground=os.getpid())
    ids = [take_job(index, text, job, priority) for text in refs]
    scheduler = Scheduler(
        settings,
        index,
        on_stop=("paused", "interrupted; run the same command again to resume"),
        wait_for_disk=False,
    )
    results = run_async(lambda: with_view(view, scheduler, scheduler.run(only=ids, until=deadline)))
    _finish_foreground(ids, results, deadline, as_json)


def _absolute(path: str | None) -> str | None:
    """Paths go into job rows the daemon reads from another directory: make them absolute."""
    if path is None:
        return None
    full = str(Path(path).expanduser().absolute())
    return full + "/" if path.endswith("/") and not full.endswith("/") else full


def take_job(index: Index, ref: str, job: JobOptions, priority: int) -> int:
    """A rerun of the same command takes its earlier, unfinished job over; else a new job."""
    for old in index.jobs(["queued", "waiting", "paused", "failed", "running"]):
        theirs = JobOptions.from_json(old.options)
        if old.ref == ref and theirs.same_request(job):
            owner = theirs.foreground
            if owner is not None and owner != os.getpid() and process_alive(owner):
                continue  # another terminal runs it right now
            if old.state == "running" and (theirs.foreground is None or old.pid is None
                                           or process_alive(old.pid)):  # fmt: skip
                continue  # the daemon runs it
            index.set_options(old.id, job.to_json())
            if old.state != "queued":
                index.set_state(old.id, "queued")
            return old.id
    return index.add_job(ref, job.to_json(), priority)


def _say_queued(ids: Sequence[int], refs: Sequence[str], daemon: int | None, as_json: bool) -> None:
    if as_json:
        echo_json([{"id": i, "ref": r, "state": "queued"} for i, r in zip(ids, refs, strict=True)])
        return
    for job_id, ref in zip(ids, refs, strict=True):
        click.echo(f"queued job {job_id}: {ref}")
    if daemon is None:
        click.echo(
            "no pullman daemon is running: start one with `pullman daemon` or "
            "`pullman service install`, or run `pullman get` without --detach"
        )
    else:
        click.echo(f"the daemon (pid {daemon}) runs them; follow with `pullman status --follow`")


def _finish_foreground(
    ids: Sequence[int], results: dict[int, JobResult], deadline: datetime | None, as_json: bool
) -> None:
    done = [results[i] for i in ids if i in results]
    reports = [r for res in done for r in res.reports]
    if as_json:
        echo_json([_report_json(f) for r in reports for f in r.files])
    else:
        checks = run_async(lambda: _server_checks(reports))
        for report in reports:
            _print_plan(report)
            if report.plan.display in checks:
                click.echo(f"  {checks[report.plan.display]}")
    failed = [res for res in done if res.error is not None]
    for res in failed[1:]:
        assert res.error is not None
        click.echo(f"pullman: error: {res.error.explain()}", err=True)
    if failed:
        assert failed[0].error is not None
        raise failed[0].error
    stopped = [i for i in ids if i not in results or results[i].state not in ("done",)]
    if stopped:
        at = f" at {deadline:%H:%M}" if deadline is not None else ""
        raise Interrupted(
            f"stopped{at} with {len(stopped)} job(s) unfinished; progress is saved",
            hint="run the same command again to resume",
        )


async def _server_checks(reports: Sequence[PlanReport]) -> dict[str, str]:
    """For each model pulled into the Ollama store: can the running server use it now?"""
    names = [r.plan.display for r in reports if r.plan.store == "ollama"]
    if not names:
        return {}
    from pullman.ollama_server import server_sees  # imports the ollama client: only when needed

    out: dict[str, str] = {}
    for name in names:
        check = await server_sees(name)
        if check.state == "ready":
            out[name] = f"ready: ollama run {name}"
        elif check.state == "not_running":
            out[name] = "Ollama is not running here; the model will appear when it starts"
        else:
            out[name] = f"warning: {check.detail}"
    return out


def _get_via_server(
    refs: Sequence[str],
    options: GetOptions,
    view: ProgressView,
    recycle_after: float,
    as_json: bool,
) -> None:
    from pullman.ollama_server import ServerPull  # imports the ollama client: only when needed

    if options.out or options.digest or options.ollama_dir:
        raise UsageError(
            "--via-server cannot be combined with -o, --sha256 or --ollama-dir",
            hint="the Ollama server writes to its own models directory",
        )
    names = []
    for text in refs:
        ref = parse_ref(text, insecure=options.insecure)
        if not isinstance(ref, OllamaRef):
            raise UsageError(f"--via-server pulls Ollama models, not {text!r}")
        names.append(ref.short())
    docs = []
    for name in names:
        pull = ServerPull(name, insecure=options.insecure, recycle_after=recycle_after)
        outcome = run_async(lambda p=pull: with_view(view, p, p.run()))  # type: ignore[misc]
        docs.append(
            {
                "ref": name,
                "elapsed": round(outcome.elapsed, 3),
                "restarts": outcome.restarts,
                "failures": outcome.failures,
                "size": outcome.total_bytes,
            }
        )
        if not as_json:
            click.echo(
                f"{name}: pulled by the Ollama server in {outcome.elapsed:.1f} s, "
                f"{outcome.restarts} restarts\n  ready: ollama run {name}"
            )
    if as_json:
        echo_json(docs)


def _print_plan(report: PlanReport) -> None:
    plan = report.plan
    if not plan.finals:
        _print_files(report.files)
        return
    fetched = [f for f in report.files if f.outcome is not None]
    present = len(report.files) - len(fetched)
    size = sum(f.size for f in report.files)
    noun = "blobs" if plan.store == "ollama" else "files"
    line = f"{plan.title}: {len(report.files)} {noun} verified, {human(size)}"
    if fetched:
        seconds = max(f.outcome.elapsed for f in fetched if f.outcome is not None)
        line += f"; fetched {human(report.fetched)} in {seconds:.1f} s"
    if present:
        line += f"; {present} already present"
    click.echo(line)
    if plan.store == "ollama":
        click.echo(f"  manifest: {plan.finals[-1].path}")
    else:
        link = plan.finals[0].path.parts
        at = len(link) - 1 - link[::-1].index("snapshots")
        click.echo(f"  snapshot: {Path(*link[: at + 2])}")


def _print_files(reports: Sequence[FileReport]) -> None:
    for r in reports:
        mark = "verified" if r.verified else "unverified: no digest to check against"
        if r.status == "present":
            click.echo(f"already present ({mark}): {r.path}")
            continue
        o = r.outcome
        assert o is not None
        rate = human(o.fetched / o.elapsed) + "/s" if o.elapsed > 0 else "-"
        click.echo(f"{r.name}: {mark}, {r.digest}")
        detail = f"{human(r.size)} in {o.elapsed:.1f} s ({rate})"
        if o.resumed:
            detail += f", resumed from {human(o.resumed)}"
        detail += f", {o.recycles} recycled, {o.retries} retried"
        click.echo(f"  {detail}")
        click.echo(f"  saved to {r.path}")


def _report_json(r: FileReport) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": r.ref,
        "name": r.name,
        "path": str(r.path),
        "size": r.size,
        "status": r.status,
        "verified": r.verified,
        "digest": r.digest,
    }
    if r.outcome is not None:
        o = r.outcome
        doc.update(
            sha256=o.sha256,
            fetched=o.fetched,
            resumed=o.resumed,
            elapsed=round(o.elapsed, 3),
            tail_seconds=round(o.tail, 3),
            recycles=o.recycles,
            retries=o.retries,
            discarded=o.discarded,
        )
    return doc
