"""The stores: ``ls``, ``rm``, ``verify``, ``gc`` and ``doctor``, over every layout."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import anyio
import click

from pullman import maintenance
from pullman.cli.app import JSON, STORE_DIRS, Context, cli, echo_json, pass_context, run_async
from pullman.core.inventory import BlobCheck, sharing
from pullman.core.jobs import GetOptions
from pullman.core.plan import Store
from pullman.core.units import human
from pullman.daemon import daemon_pid
from pullman.errors import IntegrityError, UsageError
from pullman.fsio import inode
from pullman.layouts import layout_for, stores
from pullman.session import Session
from pullman.sources import parse, source_for
from pullman.sources.routes import APPS, route


def _options(context: Context, ollama_dir: str | None, lmstudio_dir: str | None) -> GetOptions:
    """The stores these flags (else ``[stores]``, else the defaults) name."""
    stores_config = context.settings.stores
    return GetOptions(
        ollama_dir=ollama_dir,
        lmstudio_dir=lmstudio_dir or stores_config.lmstudio,
    )


def _roots(options: GetOptions) -> maintenance.Roots:
    return maintenance.roots(options)


@cli.command("ls")
@STORE_DIRS
@JSON
@pass_context
def ls_command(
    context: Context, ollama_dir: str | None, lmstudio_dir: str | None, as_json: bool
) -> None:
    """List the models in every app's store (Ollama, the HF cache, LM Studio): size, state,
    and which other apps see the same files."""
    roots = _roots(_options(context, ollama_dir, lmstudio_dir))
    entries = [e for layout, root in roots for e in layout.entries(root)]
    shares, saved = sharing([(e, maintenance.inodes(e.files)) for e in entries])
    if as_json:
        echo_json([e.to_json() | asdict(s) for e, s in zip(entries, shares, strict=True)])
        return
    if not entries:
        click.echo(f"no models in {' or '.join(str(root) for _, root in roots)}")
    for e, share in zip(entries, shares, strict=True):
        state = f"{e.state} ({e.note})" if e.note and e.state == "incomplete" else e.state
        note = f"  {e.note}" if e.note and e.state != "incomplete" else ""
        also = f"  also in {', '.join(share.shared_with)}" if share.shared_with else ""
        click.echo(f"{e.name:<40} {e.store.value:<8} {human(e.size):>10}  {state}{note}{also}")
    if saved:
        click.echo(f"sharing saves {human(saved)}: the same files, linked into each app")


@cli.command("rm")
@click.argument("ref")
@click.option(
    "--from",
    "app",
    type=click.Choice(sorted(APPS)),
    help="The app to remove it from (default: the ref's own store); other apps keep theirs.",
)
@STORE_DIRS
@JSON
@pass_context
def rm_command(
    context: Context,
    ref: str,
    app: str | None,
    ollama_dir: str | None,
    lmstudio_dir: str | None,
    as_json: bool,
) -> None:
    """Remove a model: its manifest (or HF snapshot, or LM Studio folder), and the files
    nothing else in that store uses. Files another app shares stay there."""
    options = _options(context, ollama_dir, lmstudio_dir)
    routed = route(parse(ref), app, options)
    store = routed.store or source_for(routed.ref).store(routed.ref, options)
    layout = layout_for(store)
    root = layout.root(options)
    removal = layout.remove(root, routed.ref)
    maintenance.forget_gone(context.index, root)
    if as_json:
        echo_json(removal.to_json())
    else:
        click.echo(removal.summary)


@cli.command()
@click.argument("ref", required=False)
@STORE_DIRS
@click.option("--repair", is_flag=True, help="Delete bad blobs and fetch those models again.")
@click.option("--insecure", is_flag=True, help="For --repair: allow http:// registries.")
@JSON
@pass_context
def verify(
    context: Context,
    ref: str | None,
    ollama_dir: str | None,
    lmstudio_dir: str | None,
    repair: bool,
    insecure: bool,
    as_json: bool,
) -> None:
    """Re-hash the stores' blobs against their digests (one model with REF)."""
    options = replace(_options(context, ollama_dir, lmstudio_dir), insecure=insecure)
    checks = _blobs_to_check(ref, options) + _recorded(context, ref, options)

    async def work() -> list[BlobCheck]:
        results = await _check_all(checks)
        bad = [c for c in results if c.bad]
        if bad and repair:
            _report_checks(results, as_json)
            await _repair(context, bad, options)
        return results

    results = run_async(work)
    bad = [c for c in results if c.bad]
    if bad and repair:
        click.echo("repaired")
        return
    _report_checks(results, as_json)
    if bad:
        raise IntegrityError(
            f"{len(bad)} blob(s) do not match their digests",
            hint="`pullman verify --repair` deletes them and fetches the models again",
        )


def _report_checks(results: list[BlobCheck], as_json: bool) -> None:
    if as_json:
        echo_json(
            [
                {"owner": c.owner, "path": str(c.path), "digest": str(c.digest), "state": c.state}
                for c in results
            ]
        )
        return
    owners = sorted({c.owner for c in results})
    for owner in owners:
        mine = [c for c in results if c.owner == owner]
        wrong = [c for c in mine if c.bad]
        click.echo(f"{owner}: {'ok' if not wrong else f'{len(wrong)} bad'} ({len(mine)} blobs)")
        for c in wrong:
            click.echo(f"  {c.state}: {c.path}")
    if not owners:
        click.echo("nothing to verify")


def _recorded(context: Context, ref: str | None, options: GetOptions) -> list[BlobCheck]:
    """LM Studio keeps no digests: the files pullman verified there, by the index."""
    layout = layout_for(Store.LMSTUDIO)
    root = layout.root(options)
    return maintenance.recorded_checks(context.index, layout, root, ref)


def _blobs_to_check(ref: str | None, options: GetOptions) -> list[BlobCheck]:
    if ref is None:
        return [c for layout in stores() for c in layout.blobs(layout.root(options), None)]
    parsed = parse(ref)
    layout = layout_for(source_for(parsed).store(parsed, GetOptions()))
    if layout.store not in {s.store for s in stores()}:
        raise UsageError(
            f"{ref!r} is not a model in a store", hint="give a model name or hf:// ref"
        )
    return list(layout.blobs(layout.root(options), parsed))


async def _check_all(checks: list[BlobCheck]) -> list[BlobCheck]:
    """Each file is hashed once, however many stores (names) share it."""
    limiter = anyio.CapacityLimiter(2)
    seen: dict[tuple[int, int, str], str] = {}
    results = []
    for c in checks:
        where = inode(c.path)
        key = (*where, str(c.digest)) if where is not None else None
        if key is not None and key in seen:
            results.append(c.checked(seen[key]))
            continue
        result = await anyio.to_thread.run_sync(maintenance.check_blob, c, limiter=limiter)
        if key is not None:
            seen[key] = result.state
        results.append(result)
    return results


async def _repair(context: Context, bad: list[BlobCheck], options: GetOptions) -> None:
    for check in bad:
        check.path.unlink(missing_ok=True)
    owners = sorted({c.owner for c in bad})
    click.echo(f"deleted {len(bad)} bad blob(s); fetching {', '.join(owners)} again")
    session = Session(context.settings)  # no copies: a shared file is bad under every name
    session.copies.enabled = False
    for to in sorted({c.to or "" for c in bad}):
        again = sorted({c.owner for c in bad if (c.to or "") == to})
        # a model already kept here is repaired, whether or not it fits (no fit check)
        await session.get(again, replace(options, to=(to,) if to else (), ignore_fit=True))


@cli.command()
@STORE_DIRS
@click.option("--dry-run", is_flag=True, help="List what would go, with sizes; delete nothing.")
@click.option(
    "--min-age",
    type=float,
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Leave anything younger alone (a download may be about to use it).",
)
@JSON
@pass_context
def gc(
    context: Context,
    ollama_dir: str | None,
    lmstudio_dir: str | None,
    dry_run: bool,
    min_age: float,
    as_json: bool,
) -> None:
    """Remove abandoned partial downloads and blobs no model uses."""
    roots = _roots(_options(context, ollama_dir, lmstudio_dir))
    extra = [context.settings.paths.downloads / ".pullman-partial"]
    found = maintenance.garbage(roots, context.index.jobs(), min_age, time.time(), extra)
    freed = 0 if dry_run else maintenance.remove(found)
    if as_json:
        echo_json(
            {
                "dry_run": dry_run,
                "items": [{"kind": g.kind, "path": str(g.path), "size": g.size} for g in found],
                "freed": freed,
            }
        )
        return
    for g in found:
        click.echo(
            f"{'would remove' if dry_run else 'removed'} {g.kind}: {g.path} ({human(g.size)})"
        )
    total = sum(g.size for g in found)
    click.echo(f"{'would free' if dry_run else 'freed'} {human(total if dry_run else freed)}")


@cli.command()
@STORE_DIRS
@JSON
@pass_context
def doctor(
    context: Context, ollama_dir: str | None, lmstudio_dir: str | None, as_json: bool
) -> None:
    """Check pullman's state and rebuild the index from the stores (no data is touched)."""
    index = context.index
    back = index.recover_orphans()
    roots = _roots(_options(context, ollama_dir, lmstudio_dir))
    rebuilt = maintenance.rebuild_index(index, roots)
    leftovers = list(maintenance.partials(maintenance.staging_dirs(roots), 0, time.time()))
    pid = daemon_pid(context.settings.paths)
    doc = {
        "index": str(index.path),
        "index_recovered_from": str(index.recovered_from) if index.recovered_from else None,
        "jobs_requeued": back,
        "models": rebuilt.models,
        "incomplete_models": rebuilt.incomplete,
        "unreadable": rebuilt.unreadable,
        "partials": len(leftovers),
        "partial_bytes": sum(g.size for g in leftovers),
        "daemon_pid": pid,
    }
    if as_json:
        echo_json(doc)
        return
    damaged = " (rebuilt: the old one was damaged)" if index.recovered_from else ""
    click.echo(f"index: {index.path}{damaged}")
    click.echo(f"models found in the stores: {rebuilt.models} ({rebuilt.incomplete} incomplete)")
    if rebuilt.unreadable:
        click.echo(f"unreadable manifests or damaged cache repos: {rebuilt.unreadable}")
    if back:
        click.echo(f"interrupted jobs queued again: {', '.join(map(str, back))}")
    size = sum(g.size for g in leftovers)
    click.echo(f"partial downloads: {len(leftovers)} ({human(size)}); `pullman gc` lists them")
    click.echo(f"daemon: {f'running, pid {pid}' if pid else 'not running'}")
