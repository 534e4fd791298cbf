"""The command line: a thin click shell over the library.

Every error pullman raises on purpose is printed as what / why / fix, with the exit code of its
family (:mod:`pullman.errors`); nothing reaches the user as a traceback unless ``--debug``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import click

from pullman import __version__, config
from pullman.digests import parse_sha256_option
from pullman.errors import (
    EXIT_CODES,
    EXIT_FAILED,
    Interrupted,
    PullmanError,
    UsageError,
    collapse_groups,
)
from pullman.get import FileReport, GetOptions, PlanReport, Session
from pullman.layouts import hf_cache
from pullman.layouts import ollama as ollama_store
from pullman.progress import ProgressView
from pullman.refs import HfRef, OllamaRef, parse_ref
from pullman.transfer.engine import TransferStats
from pullman.transfer.staging import human

T = TypeVar("T")
log = logging.getLogger("pullman")

_EPILOG = "Exit codes:\n\n" + "\n\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.version_option(__version__, prog_name="pullman")
@click.option("-v", "--verbose", count=True, help="More log lines (repeat for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """pullman: resilient, resumable, verified downloads of model weights."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if verbose > 1 or debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="pullman: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx2").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)


_OLLAMA_DIR = click.option(
    "--ollama-dir",
    metavar="DIR",
    help="Ollama models directory (default: $OLLAMA_MODELS, else ~/.ollama/models).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--sha256", "sha256", metavar="HEX", help="Expected sha256 of a URL's file.")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where a URL's file goes (a file path, or a directory ending in /).",
)
@_OLLAMA_DIR
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
@_JSON
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
        out=output,
        digest=parse_sha256_option(sha256) if sha256 else None,
        force=force,
        insecure=insecure,
        ollama_dir=ollama_dir,
        verify_existing=verify_existing,
        include=include,
        exclude=exclude,
        local_dir=local_dir,
    )
    view = ProgressView("none" if as_json and progress == "auto" else progress)
    if via_server:
        _get_via_server(refs, options, view, recycle_after, as_json)
        return
    session = Session(settings)
    reports = run_async(lambda: _with_view(view, session, session.get(refs, options)))
    if as_json:
        docs = [_report_json(f) for r in reports for f in r.files]
        click.echo(json.dumps(docs, indent=2))
        return
    checks = run_async(lambda: _server_checks(reports))
    for report in reports:
        _print_plan(report)
        if report.plan.display in checks:
            click.echo(f"  {checks[report.plan.display]}")


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
        outcome = run_async(lambda p=pull: _with_view(view, p, p.run()))  # type: ignore[misc]
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
        click.echo(json.dumps(docs, indent=2))


class _Observable(Protocol):
    def statistics(self) -> list[TransferStats]: ...


async def _with_view(view: ProgressView, session: _Observable, work: Awaitable[T]) -> T:
    with collapse_groups():
        return await _with_view_group(view, session, work)


async def _with_view_group(view: ProgressView, session: _Observable, work: Awaitable[T]) -> T:
    result: list[T] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(view.run, session.statistics)
        try:
            result.append(await work)
        finally:
            tg.cancel_scope.cancel()
    return result[0]


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


@cli.command("ls")
@_OLLAMA_DIR
@_JSON
def ls_command(ollama_dir: str | None, as_json: bool) -> None:
    """List the models in the Ollama store and the Hugging Face cache, with size and state."""
    root = ollama_store.models_dir(ollama_dir)
    entries = ollama_store.list_models(root)
    repos = hf_cache.list_repos(hf_cache.cache_dir())
    if as_json:
        docs: list[dict[str, Any]] = [
            {
                "name": e.name,
                "store": "ollama",
                "size": e.size,
                "state": e.state,
                "missing_blobs": e.missing,
                "path": str(e.path),
            }
            for e in entries
        ]
        docs += [
            {
                "name": r.name,
                "store": "hf",
                "size": r.size,
                "state": r.state,
                "revisions": list(r.revisions),
                "path": str(r.path),
            }
            for r in repos
        ]
        click.echo(json.dumps(docs, indent=2))
        return
    if not entries and not repos:
        click.echo(f"no models in {root} or {hf_cache.cache_dir()}")
        return
    for entry in entries:
        click.echo(ollama_store.describe(entry))
    for repo in repos:
        revisions = f"  ({', '.join(repo.revisions)})" if repo.revisions else ""
        click.echo(f"{repo.name:<40} {human(repo.size):>10}  {repo.state}{revisions}")


@cli.command("rm")
@click.argument("ref")
@_OLLAMA_DIR
@_JSON
def rm_command(ref: str, ollama_dir: str | None, as_json: bool) -> None:
    """Remove a model: its manifest (or HF snapshot), and the blobs nothing else uses."""
    parsed = parse_ref(ref)
    if isinstance(parsed, HfRef):
        revision = None if "@" not in ref else parsed.revision
        gone = hf_cache.remove_repo(
            hf_cache.cache_dir(), parsed.repo_id, parsed.repo_type, revision
        )
        if as_json:
            doc = {"name": gone.name, "revisions": list(gone.revisions), "freed": gone.freed}
            click.echo(json.dumps(doc, indent=2))
        else:
            click.echo(f"removed {gone.name}: {len(gone.revisions)} revisions, {human(gone.freed)}")
        return
    if not isinstance(parsed, OllamaRef):
        raise UsageError(f"{ref!r} is not a model name", hint="give a name such as llama3:8b")
    root = ollama_store.models_dir(ollama_dir)
    removal = ollama_store.remove_model(root, parsed)
    if as_json:
        doc = {
            "name": removal.name,
            "manifest": str(removal.manifest),
            "removed": [str(p) for p in removal.removed],
            "kept": [str(p) for p in removal.kept],
            "freed": removal.freed,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"removed {removal.name}: {len(removal.removed)} blobs, {human(removal.freed)} freed"
        + (f"; {len(removal.kept)} blobs kept (used by other models)" if removal.kept else "")
    )


# ---------------------------------------------------------------------------- running


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on an event loop; SIGINT / SIGTERM stop it cleanly (progress is kept)."""

    async def main() -> T:
        result: list[T] = []
        stopped: list[int] = []
        with collapse_groups():
            await group(result, stopped)
        if stopped:
            name = signal.Signals(stopped[0]).name
            raise Interrupted(
                f"stopped by {name}; progress is saved",
                hint="run the same command again to resume",
            )
        return result[0]

    async def group(result: list[T], stopped: list[int]) -> None:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        stopped.append(signum)
                        tg.cancel_scope.cancel()
                        return

            async def work() -> None:
                result.append(await fn())
                tg.cancel_scope.cancel()

            tg.start_soon(watch_signals)
            tg.start_soon(work)

    return anyio.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: exit codes come from :mod:`pullman.errors`, in this one place."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("pullman: aborted", err=True)
        sys.exit(Interrupted.exit_code)
    except PullmanError as exc:
        click.echo(f"pullman: error: {exc.explain()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("pullman: interrupted; progress is saved, run again to resume", err=True)
        sys.exit(Interrupted.exit_code)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"pullman: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  fix: rerun with --debug for details, and please report it", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(0)
