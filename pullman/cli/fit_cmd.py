"""``pullman fit``: will a GGUF model fit this machine (or another), before downloading it."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from pullman.cli.app import JSON, Context, cli, pass_context, run_async
from pullman.cli.get_request import memory_size
from pullman.core.jobs import GetOptions
from pullman.core.units import human
from pullman.fitcheck import FitGuard, FitReport, measure, models_for
from pullman.sources import pin


@cli.command()
@click.argument("ref")
@click.option(
    "--memory", metavar="SIZE", help="The machine's memory budget, e.g. 16GiB (default: this one)."
)
@click.option(
    "--context",
    "context_length",
    type=click.IntRange(1, 1 << 24),
    metavar="N",
    help="Context length to count the KV cache for (default 4096).",
)
@click.option("--insecure", is_flag=True, help="Skip TLS verification (a registry you trust).")
@JSON
@pass_context
def fit(
    context: Context,
    /,
    ref: str,
    memory: str | None,
    context_length: int | None,
    insecure: bool,
    as_json: bool,
) -> None:
    """Will REF fit in memory? Every quant of a Hub GGUF repo, measured from its header.

    \b
    REF is a Hub repo, file or quant, an hf.co or Ollama name, or a local .gguf:
      pullman fit hf://bartowski/Qwen2.5-7B-Instruct-GGUF
      pullman fit hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M --memory 16GiB
      pullman fit qwen2.5:7b --context 32768
      pullman fit ~/models/model.gguf

    Only headers are read (a range request or two per file, cached in the index).
    """
    options = pin(GetOptions(memory=memory_size(memory), context=context_length, insecure=insecure))
    guard = FitGuard(context.settings.transfer)
    guard.headers = context.index

    async def work() -> tuple[str, FitReport]:
        title, models = await models_for(ref, guard, options)
        budget = await guard.budget(options)
        return title, await measure(models, budget, options.context, guard.headers, guard.asking())

    title, report = run_async(work)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        show(title, report)


def _size(n: int | None) -> str:
    return human(n) if n is not None else "?"


def show(title: str, report: FitReport) -> None:
    pick = report.pick
    table = Table(title=f"{title} at {report.context} context", title_justify="left")
    for name in ("", "file", "quant", "size", "weights", "KV cache", "need", "verdict"):
        table.add_column(name, justify="right" if name in ("size", "weights", "need") else "left")
    for f in report.fits:
        e = f.estimate
        mark = "*" if pick is not None and f is pick else ""
        verdict = f.verdict if f.problem is None else f"{f.verdict}: {f.problem}"
        table.add_row(
            mark,
            f.model.path,
            f.model.quant or "?",
            _size(f.model.size),
            _size(e.weights if e else None),
            _size(e.kv_cache if e else None),
            _size(e.need if e else None),
            verdict,
        )
    console = Console(width=160, soft_wrap=True)
    console.print(table)
    have = report.budget.describe()
    if pick is not None:
        click.echo(f"* pick: {pick.model.path} (the largest that fits {have})")
    else:
        click.echo(f"no pick: nothing is known to fit {have}")
