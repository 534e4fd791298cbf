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
from typing import Any, TypeVar

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
from pullman.get import FileReport, GetOptions, Session
from pullman.progress import ProgressView
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


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--sha256", "sha256", metavar="HEX", help="Expected sha256 of a URL's file.")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Where a URL's file goes (a file path, or a directory ending in /).",
)
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(1, 64),
    help="Connections per file (default 8, or [transfer] connections).",
)
@click.option("--force", is_flag=True, help="Download again even if the file is already there.")
@click.option("--insecure", is_flag=True, help="Allow http:// registries and skip TLS checks.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout.")
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
    connections: int | None,
    force: bool,
    insecure: bool,
    as_json: bool,
    progress: str,
) -> None:
    """Download REFS (URLs) resumably, verify them, and put them in place.

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
    )
    session = Session(settings)
    view = ProgressView("none" if as_json and progress == "auto" else progress)
    reports = run_async(lambda: _with_view(view, session, session.get(refs, options)))
    _print_reports(reports, as_json)


async def _with_view(view: ProgressView, session: Session, work: Awaitable[T]) -> T:
    with collapse_groups():
        return await _with_view_group(view, session, work)


async def _with_view_group(view: ProgressView, session: Session, work: Awaitable[T]) -> T:
    result: list[T] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(view.run, session.statistics)
        try:
            result.append(await work)
        finally:
            tg.cancel_scope.cancel()
    return result[0]


def _print_reports(reports: Sequence[FileReport], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_report_json(r) for r in reports], indent=2))
        return
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
