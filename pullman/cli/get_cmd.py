"""``pullman get``: download refs, in the foreground, through the daemon, or via the Ollama server.

The command only parses (into a :class:`GetRequest`) and prints (:mod:`pullman.cli.reports`);
each way of running is one function with one event loop.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import datetime
from typing import Any

import click

from pullman.cli import reports
from pullman.cli.app import Context, cli, pass_context, run_async
from pullman.cli.controls import daemon_socket
from pullman.cli.follow import follow_jobs
from pullman.cli.get_options import get_options
from pullman.cli.get_request import GetRequest, api_body, queue_detached
from pullman.config import Settings
from pullman.core.plan import Plan, Store
from pullman.core.proxies import Proxies
from pullman.core.refs import OllamaRef
from pullman.daemon import daemon_pid, poke
from pullman.errors import Interrupted, UsageError
from pullman.jobqueue import take
from pullman.jobrun import JobResult
from pullman.net.daemon_client import call, checked
from pullman.progress import with_view
from pullman.scheduler import Scheduler, Watched
from pullman.session import PlanReport, Session
from pullman.sources import parse

log = logging.getLogger("pullman.cli")


@cli.command()
@pass_context
@get_options
def get(context: Context, /, **params: Any) -> None:
    """Download REFS resumably, verify them, and put them in place.

    \b
    REFS are Ollama model names, Hugging Face refs or URLs:
      pullman get deepseek-coder-v2:16b        into the Ollama store
      pullman get hf://Qwen/Qwen2.5-0.5B-Instruct            into the HF cache
      pullman get hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M
      pullman get https://host/m.gguf --sha256 HEX -o ~/models/

    Run the same command again after an interruption to resume where it stopped.
    """
    request = GetRequest(**params)
    if request.via_server:
        _via_server(request, context.settings.transfer.proxies)
        return
    request = request.with_config(context.settings)
    request.check()
    settings = request.settings(context.settings)
    if request.dry_run:
        _dry_run(request, settings)
        return
    daemon = daemon_pid(settings.paths)
    if daemon is not None or request.detach:
        if request.token_file is not None:
            raise UsageError(
                "--token applies to a foreground run (a queued job never stores a token)",
                hint="stop the daemon to run it here, or give the daemon HF_TOKEN / a login",
            )
        _through_daemon(context, request, daemon)
    else:
        _in_foreground(context, request, settings)


def _dry_run(request: GetRequest, settings: Settings) -> None:
    """What each ref would fetch and where it would land; nothing is queued or fetched."""
    session = Session(settings, token=request.token())
    options = request.job().get

    async def work() -> list[Plan]:
        return [
            await session.plan(text, options, dry_run=True, to=to)
            for text in request.refs
            for to in options.to or (None,)
        ]

    reports.dry_run(run_async(work), request.as_json)


def _through_daemon(context: Context, request: GetRequest, daemon: int | None) -> None:
    """Queue the jobs: through the daemon's API when it answers, else in the index; follow
    them unless --detach."""
    if request.until is not None:
        raise UsageError("--until applies to a foreground run", hint="use --window for the daemon")
    paths = context.settings.paths
    # A job with hooks is written to the index here: the HTTP API takes no commands to run.
    hooks = request.on_done or request.on_failed or request.notify
    socket = daemon_socket(paths) if daemon is not None and not hooks else None
    if socket is not None:
        log.info("queueing through the daemon's API on %s", socket)
        queued = checked(call(socket, "POST", "/api/jobs", api_body(request)))["jobs"]
        ids = [int(job["id"]) for job in queued]
    else:
        ids = queue_detached(context.index, context.settings, request)
        poke(paths)
    if request.detach or daemon is None:
        reports.queued(ids, request.refs, daemon, request.as_json)
        return
    follow_jobs(context.index, ids, request.view(), request.as_json, paths)


def _in_foreground(context: Context, request: GetRequest, settings: Settings) -> None:
    """Run the jobs here, on one event loop; then say where each model is and if Ollama sees it."""
    index = context.index
    deadline = request.deadline()
    job = replace(request.job(), foreground=os.getpid())
    ids = take(index, request.refs, job, request.priority)
    scheduler = Scheduler(
        settings,
        index,
        on_stop=("paused", "interrupted; run the same command again to resume"),
        wait_for_disk=False,
        token=request.token(),
    )

    async def work() -> tuple[dict[int, JobResult], dict[str, str]]:
        results = await with_view(
            request.view(), Watched(scheduler), scheduler.run(only=ids, until=deadline)
        )
        done = [r for i in ids if i in results for r in results[i].reports]
        quiet = request.as_json or request.quiet
        checks = {} if quiet else await _server_checks(done, settings.transfer.proxies)
        return results, checks

    results, checks = run_async(work)
    if request.quiet:
        reports.paths(ids, results)
    else:
        reports.foreground(ids, results, checks, request.as_json)
    _raise_for(ids, results, deadline)


def _raise_for(ids: list[int], results: dict[int, JobResult], deadline: datetime | None) -> None:
    """The exit of a foreground run: the first job's error, or 75 if some did not finish."""
    failed = [results[i] for i in ids if i in results and results[i].error is not None]
    for res in failed[1:]:
        assert res.error is not None
        click.echo(f"pullman: error: {res.error.explain()}", err=True)
    if failed:
        assert failed[0].error is not None
        raise failed[0].error
    stopped = [i for i in ids if i not in results or results[i].state != "done"]
    if stopped:
        at = f" at {deadline:%H:%M}" if deadline is not None else ""
        raise Interrupted(
            f"stopped{at} with {len(stopped)} job(s) unfinished; progress is saved",
            hint="run the same command again to resume",
        )


async def _server_checks(done: list[PlanReport], proxies: Proxies) -> dict[str, str]:
    """For each model pulled into the Ollama store: can the running server use it now?"""
    names = [r.plan.display for r in done if r.plan.store is Store.OLLAMA]
    if not names:
        return {}
    if not _have_ollama_client():
        return dict.fromkeys(names, "(install pullman[ollama] to check that Ollama sees it)")
    from pullman.sources.ollama_server import server_sees  # the ollama client: only when needed

    out: dict[str, str] = {}
    for name in names:
        check = await server_sees(name, proxies=proxies)
        if check.state == "ready":
            out[name] = f"ready: ollama run {name}"
        elif check.state == "not_running":
            out[name] = "Ollama is not running here; the model will appear when it starts"
        else:
            out[name] = f"warning: {check.detail}"
    return out


def _via_server(request: GetRequest, proxies: Proxies) -> None:
    """The running Ollama server pulls each model; pullman recycles its pull streams."""
    if not _have_ollama_client():
        raise UsageError(
            "--via-server needs the ollama package, which is not installed",
            hint="install it with `pip install 'pullman[ollama]'`",
        )
    from pullman.transfer.via_server import ServerPull, ServerPullOutcome  # the ollama client

    if request.output or request.sha256 or request.ollama_dir or request.to or request.mirror:
        raise UsageError(
            "--via-server cannot be combined with -o, --sha256, --to, --mirror or --ollama-dir",
            hint="the Ollama server writes to its own models directory",
        )
    if request.on_done or request.on_failed or request.notify:
        raise UsageError(
            "--on-done, --on-failed and --notify apply to pullman's own jobs, not --via-server",
            hint="run the command after `pullman get --via-server` returns (exit 0: done)",
        )
    names = []
    for text in request.refs:
        ref = parse(text, insecure=request.insecure)
        if not isinstance(ref, OllamaRef):
            raise UsageError(f"--via-server pulls Ollama models, not {text!r}")
        names.append(ref.short())
    view = request.view()

    async def work() -> list[ServerPullOutcome]:
        outcomes = []
        for name in names:
            pull = ServerPull(
                name,
                insecure=request.insecure,
                recycle_after=request.recycle_after,
                proxies=proxies,
            )
            outcomes.append(await with_view(view, pull, pull.run()))
            if not request.as_json:
                reports.via_server(outcomes[-1])
        return outcomes

    outcomes = run_async(work)
    if request.as_json:
        reports.via_server_json(outcomes)


def _have_ollama_client() -> bool:
    """Whether the optional ``ollama`` package (``pullman[ollama]``) is installed."""
    import importlib.util

    return importlib.util.find_spec("ollama") is not None
