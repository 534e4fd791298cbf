"""``export`` and ``import``: models to and from bundles, for machines without a network."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click

from pullman.bundle.contents import collect
from pullman.bundle.export import export
from pullman.bundle.importer import import_bundle
from pullman.cli.app import JSON, OLLAMA_DIR, Context, cli, echo_json, pass_context
from pullman.core.jobs import GetOptions
from pullman.core.units import human
from pullman.errors import Interrupted, NotFound, PullmanError, UsageError
from pullman.fsio import disk_errors
from pullman.jobrecord import record_model
from pullman.session import PlanReport

log = logging.getLogger("pullman.bundle")

CACHE_DIR = click.option(
    "--cache-dir",
    metavar="DIR",
    help="Hugging Face cache (default: $HF_HUB_CACHE, else $HF_HOME/hub).",
)


@contextlib.contextmanager
def _stoppable(what: str, why: str) -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does, so its cleanup runs; either is Interrupted."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(
            f"{what} stopped before it finished", why=why, hint="run it again"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Meter:
    """One progress line on stderr, when stderr is a terminal (redrawn at most 4 times a s)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.shown = self.finished = False
        self.last = 0.0
        self.live = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.live or not total or self.finished:
            return
        self.finished = done >= total
        if now - self.last < 0.25 and not self.finished:
            return
        self.last = now
        line = f"\r{self.label} {human(done)} of {human(total)} ({100 * done // total}%)  "
        click.echo(line, err=True, nl=False)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo(err=True)


@cli.command("export")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="FILE",
    help="The bundle to write (a plain tar, renamed into place once whole); - for stdout.",
)
@OLLAMA_DIR
@CACHE_DIR
@JSON
def export_command(
    refs: tuple[str, ...], output: str, ollama_dir: str | None, cache_dir: str | None, as_json: bool
) -> None:
    """Write models from the stores into one bundle, for a machine without a network.

    REF is an Ollama name (qwen2.5:7b, hf.co/org/repo:Q4_K_M), from the Ollama store, or
    hf://org/repo[@revision], one snapshot of the Hugging Face cache. Only whole models are
    exported. The bundle is a plain tar: `tar tf` lists it, and `sha256sum -c SHA256SUMS`
    checks it once extracted. With -o -, the summary (or --json) goes to stderr.

    \b
    Examples:
      pullman export qwen2.5:7b hf://Qwen/Qwen2.5-0.5B -o /media/usb/models.tar
      ssh box pullman export qwen2.5:7b -o - | pullman import -
    """
    to_stdout = output == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError(
            "refusing to write a bundle to a terminal",
            hint="redirect it (-o - > models.tar) or pipe it (-o - | pullman import -)",
        )
    options = GetOptions(ollama_dir=ollama_dir, hf_cache=cache_dir)
    meter = _Meter("exporting")
    with _stoppable("the export", "a bundle file gets its name only once whole"):
        contents = collect(refs, options)
        try:
            done = export(contents, output, sys.stdout.buffer, meter)
        finally:
            meter.close()
    if as_json:
        click.echo(json.dumps(done.to_json(), indent=2), err=to_stdout)
        return
    names = ", ".join(done.models)
    click.echo(f"exported {names}: {done.files} files, {human(done.size)}", err=to_stdout)
    if not to_stdout:
        click.echo(f"bundle: {done.path}")


@contextlib.contextmanager
def _opened(bundle: str) -> Iterator[tuple[BinaryIO, str]]:
    if bundle == "-":
        if sys.stdin.isatty():
            raise UsageError("no bundle on stdin", hint="pipe one in: ... | pullman import -")
        yield sys.stdin.buffer, "standard input"
        return
    path = Path(bundle).absolute()
    if not path.exists():
        raise NotFound(f"no bundle at {path}", hint="give the file `pullman export -o` wrote")
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give the bundle file itself")
    with disk_errors(path):
        stream = path.open("rb")
    with stream:
        yield stream, str(path)


@cli.command("import")
@click.argument("bundle", metavar="FILE")
@OLLAMA_DIR
@CACHE_DIR
@JSON
@pass_context
def import_command(
    context: Context, bundle: str, ollama_dir: str | None, cache_dir: str | None, as_json: bool
) -> None:
    """Put the models of a bundle from `pullman export` (FILE, or - for stdin) in the stores.

    Every blob is verified (size and sha256) into the store's staging area before anything is
    committed; then blobs go in first, manifests, snapshot links and refs last, so a reader
    never sees half a model. Blobs the store already has are not written again. A damaged,
    truncated or altered bundle is refused, and nothing is imported. Run as root, the files
    go to the store's owner. The bundle is only read: a read-only USB stick will do.
    """
    options = GetOptions(ollama_dir=ollama_dir, hf_cache=cache_dir)
    margin = context.settings.transfer.space_margin
    meter = _Meter("importing")
    why = "a model is committed only once the whole bundle verified"
    try:
        with _stoppable("the import", why), _opened(bundle) as (stream, name):
            reports = import_bundle(stream, name, options, margin=margin, progress=meter)
    finally:
        meter.close()
    _record(context, reports)
    if as_json:
        echo_json([_summary(r) for r in reports])
        return
    for report in reports:
        doc = _summary(report)
        click.echo(
            f"{doc['name']}: {doc['imported']} {report.plan.unit} imported, {doc['present']} "
            f"already there ({human(doc['size'])}) in {doc['location']}"
        )


def _summary(report: PlanReport) -> dict[str, Any]:
    plan = report.plan
    return {
        "name": plan.display or plan.ref,
        "store": plan.store.value,
        "location": str(plan.location[1] if plan.location else plan.root),
        "imported": sum(f.status == "imported" for f in report.files),
        "present": sum(f.status == "present" for f in report.files),
        "size": sum(f.size for f in report.files),
    }


def _record(context: Context, reports: list[PlanReport]) -> None:
    """The models in the index, as ``get`` records them (the import stands if this fails)."""
    try:
        for report in reports:
            record_model(context.index, report)
    except PullmanError as exc:
        log.warning("imported, but the index could not record it: %s", exc.explain())
