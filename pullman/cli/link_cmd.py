"""``pullman link``: show a model that is already downloaded to another app."""

from __future__ import annotations

from pathlib import Path

import anyio
import click

from pullman.cli import reports
from pullman.cli.app import JSON, STORE_DIRS, Context, cli, echo_json, pass_context, run_async
from pullman.copies import Copies
from pullman.core.jobs import GetOptions
from pullman.jobrecord import record_model
from pullman.linking import link
from pullman.session import PlanReport, Session
from pullman.sources.routes import check_to


@cli.command("link")
@click.argument("ref")
@click.option(
    "--to",
    "targets",
    multiple=True,
    required=True,
    metavar="APP|DIR",
    help="The app to show it to: lmstudio, ollama, hf, or a directory (repeatable).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Into Ollama: write the manifest from the GGUF's own metadata, without asking "
    "hf.co's registry for it.",
)
@click.option("--cache-dir", metavar="DIR", help="The HF cache (default: $HF_HUB_CACHE ...).")
@STORE_DIRS
@JSON
@pass_context
def link_command(
    context: Context,
    ref: str,
    targets: tuple[str, ...],
    offline: bool,
    cache_dir: str | None,
    ollama_dir: str | None,
    lmstudio_dir: str | None,
    as_json: bool,
) -> None:
    """Show REF, already downloaded, to another app: its files are hard-linked in (one copy
    on disk), no model bytes are fetched.

    \b
      pullman link hf://org/repo:Q4_K_M --to lmstudio     the HF cache's GGUF in LM Studio
      pullman link hf://org/repo:Q4_K_M --to ollama       ... as an Ollama model
      pullman link qwen2.5:7b --to lmstudio               Ollama's GGUF in LM Studio
    """
    stores = context.settings.stores
    options = GetOptions(
        hf_cache=str(Path(cache_dir).expanduser().absolute()) if cache_dir else None,
        ollama_dir=ollama_dir,
        lmstudio_dir=lmstudio_dir or stores.lmstudio,
    )
    index = context.index
    session = Session(context.settings, copies=Copies(lookup=index.verified_copies))
    destinations = [check_to(t) for t in dict.fromkeys(targets)]

    async def work() -> list[PlanReport]:
        done = []
        for to in destinations:
            report = await link(session, ref, to, options, offline=offline)
            await anyio.to_thread.run_sync(record_model, index, report)
            done.append(report)
        return done

    done = run_async(work)
    if as_json:
        echo_json([reports.file_json(f) for r in done for f in r.files])
        return
    for report in done:
        reports.plan(report)
