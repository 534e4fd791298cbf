"""The stores: ``ls``, ``rm`` (and ``verify``, ``gc``, ``doctor``)."""

from __future__ import annotations

from typing import Any

import click

from pullman.cli.app import JSON, OLLAMA_DIR, cli, echo_json
from pullman.errors import UsageError
from pullman.layouts import hf_cache
from pullman.layouts import ollama as ollama_store
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
