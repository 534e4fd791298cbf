"""``pullman push REF DEST``: a model of the local Ollama store into an OCI registry."""

from __future__ import annotations

import click

from pullman.cli.app import (
    JSON,
    OLLAMA_DIR,
    Context,
    cli,
    echo_json,
    pass_context,
    run_async,
)
from pullman.core.push_target import parse_destination
from pullman.core.refs import parse_ollama_name
from pullman.core.units import human, parse_size
from pullman.core.uploads import MIN_CHUNK
from pullman.errors import UsageError
from pullman.layouts.ollama_home import models_dir
from pullman.progress import ProgressView, with_view
from pullman.push.run import Push, PushOptions, PushResult


@cli.command()
@click.argument("ref")
@click.argument("dest")
@click.option(
    "--insecure",
    is_flag=True,
    help="Use plain http and skip TLS verification (a loopback DEST may also say http://).",
)
@click.option(
    "--chunk-size",
    metavar="SIZE",
    default="64MiB",
    show_default=True,
    help="Upload blobs larger than this in resumable chunks of this size.",
)
@OLLAMA_DIR
@JSON
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "plain", "none"]),
    default="auto",
    show_default=True,
    help="Progress display: bars on a terminal, plain lines otherwise.",
)
@pass_context
def push(
    context: Context,
    ref: str,
    dest: str,
    insecure: bool,
    chunk_size: str,
    ollama_dir: str | None,
    as_json: bool,
    progress: str,
) -> None:
    """Push REF from the local Ollama store to DEST in an OCI registry.

    \b
    DEST is host[:port]/repository[:tag] (the tag defaults to REF's):
      pullman push qwen2.5:7b registry.lan:5000/library/qwen2.5:7b

    Blobs the registry has are skipped, blobs another repository there has are mounted, the
    rest are uploaded in chunks; the manifest goes last, byte for byte. Credentials come from
    ~/.docker/config.json (or $DOCKER_CONFIG), as `docker login` writes them. Run the same
    command again after an interruption to resume.
    """
    model = parse_ollama_name(ref)
    target = parse_destination(dest, default_tag=model.tag, insecure=insecure)
    chunk = parse_size(chunk_size, what="--chunk-size")
    if chunk < MIN_CHUNK:
        raise UsageError(f"--chunk-size {chunk_size} is too small", hint="use at least 1KiB")
    settings = context.settings
    job = Push(
        model,
        target,
        store=models_dir(ollama_dir),
        state_dir=settings.paths.ensure() / "push",
        transfer=settings.transfer,
        options=PushOptions(chunk_size=chunk, insecure=insecure),
    )
    view = ProgressView("none" if as_json and progress == "auto" else progress)
    result = run_async(lambda: with_view(view, job, job.run()))
    if as_json:
        echo_json(result.to_json())
    else:
        _report(result, insecure)


def _report(result: PushResult, insecure: bool) -> None:
    counts = ", ".join(f"{result.count(a)} {a}" for a in ("uploaded", "mounted", "skipped"))
    click.echo(
        f"pushed {result.ref.short()} to {result.target}: blobs {counts}; "
        f"{human(result.bytes_sent)} sent"
    )
    click.echo(f"  manifest: {result.manifest_digest}")
    if result.target.ollama_name:
        flag = " --insecure" if result.target.scheme == "http" or insecure else ""
        click.echo(f"  pull it with: ollama pull{flag} {result.target}")
    else:
        click.echo("  (ollama pull needs host/namespace/model:tag; this name has another shape)")
