"""The stores: ``ls``, ``rm`` (and ``verify``, ``gc``, ``doctor``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import click

from pullman import config, maintenance
from pullman.cli.app import JSON, OLLAMA_DIR, cli, echo_json, run_async
from pullman.cli.follow import open_index
from pullman.daemon import daemon_pid
from pullman.errors import IntegrityError, UsageError
from pullman.get import GetOptions, Session
from pullman.layouts import hf_cache, plain
from pullman.layouts import ollama as ollama_store
from pullman.maintenance import BlobCheck
from pullman.refs import HfRef, OllamaRef, parse_ref
from pullman.transfer.staging import human


@cli.command("ls")
@OLLAMA_DIR
@JSON
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
        echo_json(docs)
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
@OLLAMA_DIR
@JSON
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
            echo_json(doc)
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
        echo_json(doc)
        return
    click.echo(
        f"removed {removal.name}: {len(removal.removed)} blobs, {human(removal.freed)} freed"
        + (f"; {len(removal.kept)} blobs kept (used by other models)" if removal.kept else "")
    )


@cli.command()
@click.argument("ref", required=False)
@OLLAMA_DIR
@click.option("--repair", is_flag=True, help="Delete bad blobs and fetch those models again.")
@click.option("--insecure", is_flag=True, help="For --repair: allow http:// registries.")
@JSON
def verify(
    ref: str | None, ollama_dir: str | None, repair: bool, insecure: bool, as_json: bool
) -> None:
    """Re-hash the stores' blobs against their digests (one model with REF)."""
    root = ollama_store.models_dir(ollama_dir)
    hf_root = hf_cache.cache_dir()
    checks = _blobs_to_check(ref, root, hf_root)
    results = run_async(lambda: _check_all(checks))
    bad = [c for c in results if c.bad]
    if as_json:
        echo_json(
            [
                {"owner": c.owner, "path": str(c.path), "digest": str(c.digest), "state": c.state}
                for c in results
            ]
        )
    else:
        owners = sorted({c.owner for c in results})
        for owner in owners:
            mine = [c for c in results if c.owner == owner]
            wrong = [c for c in mine if c.bad]
            click.echo(f"{owner}: {'ok' if not wrong else f'{len(wrong)} bad'} ({len(mine)} blobs)")
            for c in wrong:
                click.echo(f"  {c.state}: {c.path}")
        if not owners:
            click.echo("nothing to verify")
    if bad and repair:
        _repair(bad, str(root), insecure)
        return
    if bad:
        raise IntegrityError(
            f"{len(bad)} blob(s) do not match their digests",
            hint="`pullman verify --repair` deletes them and fetches the models again",
        )


def _blobs_to_check(ref: str | None, root: Path, hf_root: Path) -> list[BlobCheck]:
    if ref is None:
        return [*maintenance.ollama_blobs(root), *maintenance.hf_blobs(hf_root)]
    parsed = parse_ref(ref)
    if isinstance(parsed, OllamaRef):
        return list(maintenance.ollama_blobs(root, parsed.short()))
    if isinstance(parsed, HfRef):
        return list(maintenance.hf_blobs(hf_root, parsed.repo_id))
    raise UsageError(f"{ref!r} is not a model in a store", hint="give a model name or hf:// ref")


async def _check_all(checks: list[BlobCheck]) -> list[BlobCheck]:
    limiter = anyio.CapacityLimiter(2)
    return [
        await anyio.to_thread.run_sync(maintenance.check_blob, c, limiter=limiter) for c in checks
    ]


def _repair(bad: list[BlobCheck], ollama_dir: str, insecure: bool) -> None:
    for check in bad:
        check.path.unlink(missing_ok=True)
    owners = sorted({c.owner for c in bad})
    click.echo(f"deleted {len(bad)} bad blob(s); fetching {', '.join(owners)} again")
    settings = config.load()
    options = GetOptions(ollama_dir=ollama_dir, insecure=insecure)
    session = Session(settings)
    run_async(lambda: session.get(owners, options))
    click.echo("repaired")


@cli.command()
@OLLAMA_DIR
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
def gc(ollama_dir: str | None, dry_run: bool, min_age: float, as_json: bool) -> None:
    """Remove abandoned partial downloads and blobs no model uses."""
    settings = config.load()
    root = ollama_store.models_dir(ollama_dir)
    hf_root = hf_cache.cache_dir()
    extra = [settings.paths.downloads / plain.STAGING, *_job_staging_dirs(settings)]
    now = time.time()
    found = [
        *maintenance.partials(maintenance.staging_dirs(root, hf_root, extra), min_age, now),
        *maintenance.unreferenced_ollama(root, min_age, now),
        *maintenance.unreferenced_hf(hf_root, min_age, now),
    ]
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


def _job_staging_dirs(settings: config.Settings) -> list[Path]:
    """Staging areas next to destinations that jobs chose with -o or --local-dir."""
    index = open_index(settings.paths)
    dirs = set()
    for job in index.jobs():
        for key in ("out", "local_dir"):
            value = job.options.get(key)
            if isinstance(value, str):
                path = Path(value)
                base = path if key == "local_dir" or value.endswith("/") else path.parent
                dirs.add(base / plain.STAGING)
    return sorted(dirs)


@cli.command()
@OLLAMA_DIR
@JSON
def doctor(ollama_dir: str | None, as_json: bool) -> None:
    """Check pullman's state and rebuild the index from the stores (no data is touched)."""
    settings = config.load()
    index = open_index(settings.paths)
    back = index.recover_orphans()
    root = ollama_store.models_dir(ollama_dir)
    hf_root = hf_cache.cache_dir()
    rebuilt = maintenance.rebuild_index(index, root, hf_root)
    now = time.time()
    leftovers = list(maintenance.partials(maintenance.staging_dirs(root, hf_root, []), 0, now))
    doc = {
        "index": str(index.path),
        "index_recovered_from": str(index.recovered_from) if index.recovered_from else None,
        "jobs_requeued": back,
        "models": rebuilt.models,
        "incomplete_models": rebuilt.incomplete,
        "unreadable": rebuilt.unreadable,
        "partials": len(leftovers),
        "partial_bytes": sum(g.size for g in leftovers),
        "daemon_pid": daemon_pid(settings.paths),
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
    pid = daemon_pid(settings.paths)
    click.echo(f"daemon: {f'running, pid {pid}' if pid else 'not running'}")
