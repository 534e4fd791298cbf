"""``pullman get``: download refs, in the foreground, through the daemon, or via the Ollama server.

The command only parses (into a :class:`GetRequest`) and prints (:mod:`pullman.cli.reports`);
each way of running is one function with one event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pullman.cli import reports
from pullman.cli.app import JSON, OLLAMA_DIR, Context, cli, pass_context, run_async, with_view
from pullman.cli.follow import follow_jobs
from pullman.config import Settings
from pullman.core.digests import parse_sha256_option
from pullman.core.jobs import GetOptions, JobOptions
from pullman.core.plan import Store
from pullman.core.proxies import Proxies
from pullman.core.refs import OllamaRef
from pullman.core.units import parse_rate
from pullman.core.windows import Window, local_now, until_deadline
from pullman.daemon import daemon_pid, poke
from pullman.errors import Interrupted, UsageError
from pullman.jobqueue import submit, take
from pullman.layouts import pin as pin_store
from pullman.progress import ProgressView
from pullman.scheduler import JobResult, Scheduler
from pullman.session import PlanReport
from pullman.sources import parse
from pullman.sources import pin as pin_source


@dataclass(frozen=True)
class GetRequest:
    """Everything ``pullman get`` was asked, as typed (one field per flag)."""

    refs: tuple[str, ...]
    sha256: str | None
    output: str | None
    ollama_dir: str | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    local_dir: str | None
    connections: int | None
    force: bool
    verify_existing: bool
    insecure: bool
    via_server: bool
    recycle_after: float
    detach: bool
    priority: int
    window: str | None
    until: str | None
    limit: str | None
    as_json: bool
    progress: str

    def check(self) -> None:
        """Usage errors, before anything is queued or fetched."""
        if self.sha256 is not None and len(self.refs) != 1:
            raise UsageError("--sha256 applies to a single URL", hint="run one get per URL")
        if self.output is not None and len(self.refs) != 1:
            raise UsageError("-o applies to a single URL", hint="run one get per URL")
        for text in self.refs:
            plain = self.output is not None or self.sha256 is not None
            parse(text, insecure=self.insecure, plain=plain)  # bad refs fail here
        if self.limit is not None:
            parse_rate(self.limit, what="--limit")
        if self.window is not None:
            Window.parse(self.window)

    def options(self) -> GetOptions:
        return GetOptions(
            out=_absolute(self.output),
            digest=parse_sha256_option(self.sha256) if self.sha256 else None,
            force=self.force,
            insecure=self.insecure,
            ollama_dir=self.ollama_dir,
            verify_existing=self.verify_existing,
            include=self.include,
            exclude=self.exclude,
            local_dir=_absolute(self.local_dir),
        )

    def job(self) -> JobOptions:
        """What the job row records: the stores and the Hub this process would use."""
        options = pin_source(pin_store(self.options()))
        return JobOptions(options, self.connections, self.limit, self.window)

    def deadline(self) -> datetime | None:
        return until_deadline(self.until, local_now()) if self.until else None

    def view(self) -> ProgressView:
        return ProgressView("none" if self.as_json and self.progress == "auto" else self.progress)

    def settings(self, base: Settings) -> Settings:
        if self.connections is None:
            return base
        return replace(base, transfer=replace(base.transfer, connections=self.connections))


@cli.command()
@pass_context
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
    request.check()
    settings = request.settings(context.settings)
    daemon = daemon_pid(settings.paths)
    if daemon is not None or request.detach:
        _through_daemon(context, request, daemon)
    else:
        _in_foreground(context, request, settings)


def _absolute(path: str | None) -> str | None:
    """Paths go into job rows the daemon reads from another directory: make them absolute."""
    if path is None:
        return None
    full = str(Path(path).expanduser().absolute())
    return full + "/" if path.endswith("/") and not full.endswith("/") else full


def _through_daemon(context: Context, request: GetRequest, daemon: int | None) -> None:
    if request.until is not None:
        raise UsageError("--until applies to a foreground run", hint="use --window for the daemon")
    index = context.index
    ids = submit(index, request.refs, request.job(), request.priority)
    poke(context.settings.paths)
    if request.detach or daemon is None:
        reports.queued(ids, request.refs, daemon, request.as_json)
        return
    follow_jobs(index, ids, request.view(), request.as_json)


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
    )

    async def work() -> tuple[dict[int, JobResult], dict[str, str]]:
        results = await with_view(
            request.view(), scheduler, scheduler.run(only=ids, until=deadline)
        )
        done = [r for i in ids if i in results for r in results[i].reports]
        checks = {} if request.as_json else await _server_checks(done, settings.transfer.proxies)
        return results, checks

    results, checks = run_async(work)
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
    from pullman.transfer.via_server import ServerPull, ServerPullOutcome  # the ollama client

    if request.output or request.sha256 or request.ollama_dir:
        raise UsageError(
            "--via-server cannot be combined with -o, --sha256 or --ollama-dir",
            hint="the Ollama server writes to its own models directory",
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
