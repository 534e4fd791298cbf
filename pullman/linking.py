"""``pullman link REF --to APP``: a model already on this machine, shown to another app with
no model bytes fetched.

The release is read from the store that has it (the HF cache's snapshot, an Ollama manifest)
instead of from the network, placed by the destination's layout as ``get`` would, and every
file is shared from the copy that is there (:mod:`pullman.copies`). Into Ollama's store a
Hugging Face GGUF needs a manifest and small layers: from hf.co's registry when it answers
(the model layer is the GGUF itself), else written from the GGUF's own metadata
(:mod:`pullman.gguf_ollama`), as ``ollama create`` would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import parse_manifest
from pullman.core.plan import HubRepo, OllamaModel, Plan, Release, RemoteFile, Store
from pullman.core.refs import HF_HOSTS, HfRef, OllamaRef, Ref, UrlRef
from pullman.errors import NetworkError, NotFound, UsageError
from pullman.layouts import hf_cache, layout_for, ollama
from pullman.session import PlanReport, Session
from pullman.sources import parse
from pullman.sources.hf_select import HubFile, Snapshot, select
from pullman.sources.routes import route

log = logging.getLogger("pullman.linking")

SMALL = 1 << 20
"""Files up to this size may still come from the network (an Ollama model's template and
params layers from hf.co's registry); every bigger one must already be on this machine."""


async def link(
    session: Session, text: str, to: str, options: GetOptions, *, offline: bool = False
) -> PlanReport:
    """Share what ``text`` names into ``to`` (an app or a directory); refused, before anything
    is written, when a model file is not on this machine."""
    ref = parse(text, insecure=options.insecure)
    if isinstance(ref, UrlRef):
        raise UsageError(
            "link takes a model that is already in a store",
            hint="an hf:// ref (from the HF cache) or an Ollama name (from Ollama's store)",
        )
    routed = route(ref, to, options)
    options = routed.options
    if routed.store is Store.OLLAMA:
        plan = await _into_ollama(session, ref, text, options, offline=offline)
    else:
        release = await anyio.to_thread.run_sync(_from_either, routed.ref, ref, options)
        session.copies.known.update(_where_read(release, options))
        layout = layout_for(routed.store or Store.PLAIN)
        root = layout.root(options)
        await anyio.to_thread.run_sync(layout.check_writable, root)
        plan = layout.place(release, root, options)
    await anyio.to_thread.run_sync(_all_here, session, plan, options, text, to)
    return await session.fetch(plan, options)


async def _into_ollama(
    session: Session, ref: Ref, text: str, options: GetOptions, *, offline: bool
) -> Plan:
    if isinstance(ref, OllamaRef) and not _is_hub_name(ref):
        raise UsageError(f"{ref.short()} is an Ollama model already", hint="--to lmstudio")
    if not offline:
        try:
            return await session.plan(text, options, to="ollama")
        except NetworkError as exc:
            log.warning(
                "hf.co's registry did not answer (%s); writing the manifest from the GGUF's "
                "own metadata",
                exc.what,
            )
    from pullman.gguf_ollama import ollama_plan  # reads GGUF headers: only when needed

    hub = ref if isinstance(ref, HfRef) else _hub_ref(ref)
    release = await anyio.to_thread.run_sync(local_release, hub, options)
    return await anyio.to_thread.run_sync(ollama_plan, release, options)


def _is_hub_name(ref: OllamaRef) -> bool:
    return ref.host.lower() in HF_HOSTS


def _hub_ref(ref: Ref) -> HfRef:
    routed = route(ref, "hf", GetOptions())
    assert isinstance(routed.ref, HfRef)
    return routed.ref


def _from_either(first: Ref, then: Ref, options: GetOptions) -> Release:
    """An ``hf.co`` name is the Hub's repo in the HF cache (with its file names), else the
    Ollama model in Ollama's store."""
    try:
        return local_release(first, options)
    except NotFound:
        if then == first:
            raise
        return local_release(then, options)


def local_release(ref: Ref, options: GetOptions) -> Release:
    """What the store that holds ``ref`` has of it: the HF cache's snapshot (the files the
    ref selects) or the Ollama store's manifest and blobs. Nothing is fetched."""
    if isinstance(ref, HfRef):
        return _cached(ref, options)
    if isinstance(ref, OllamaRef):
        return _stored(ref, options)
    raise UsageError(f"{ref} is not a model in a store", hint="an hf:// ref or an Ollama name")


def _cached(ref: HfRef, options: GetOptions) -> Release:
    root = layout_for(Store.HF_CACHE).root(options)
    commit, cached = hf_cache.cached_snapshot(root, ref)
    snapshot = Snapshot(ref, "", commit, tuple(HubFile(f.path, f.size, f.digest) for f in cached))
    chosen, _ = select(snapshot, options.include, options.exclude)
    files = tuple(
        RemoteFile(
            url="", path=f.path, name=f.path, size=f.size, digest=f.digest, key=f"hf-{f.etag}"
        )
        for f in chosen
    )
    repo = HubRepo(ref.repo_id, ref.repo_type, ref.revision, commit)
    return Release(str(ref), f"{ref.repo_id}@{ref.revision}", str(ref), files, repo=repo)


def _where_read(release: Release, options: GetOptions) -> dict[str, Path]:
    """Where each file of a release read from a store is (small Hub files too, whose blobs
    are named by git blob ids, not sha256): the first place to share it from."""
    if release.repo is not None:
        cache = layout_for(Store.HF_CACHE).root(options)
        blobs = hf_cache.repo_dir(cache, release.repo.repo_id, release.repo.repo_type) / "blobs"
        return {str(f.digest): blobs / f.digest.hex for f in release.files if f.digest}
    if release.model is not None:
        root = layout_for(Store.OLLAMA).root(options)
        return {
            str(f.digest): ollama.blob_path(root, f.digest.hex) for f in release.files if f.digest
        }
    return {}


def _stored(ref: OllamaRef, options: GetOptions) -> Release:
    root = layout_for(Store.OLLAMA).root(options)
    path = ollama.manifest_path(root, ref)
    if not path.is_file():
        raise NotFound(
            f"no model {ref.short()} in {root}",
            hint=f"`pullman get {ref.short()}` downloads it",
        )
    raw = path.read_bytes()
    manifest = parse_manifest(raw)
    files = tuple(layer.remote() for layer in manifest.blobs)
    model = OllamaModel(ref.parts, raw)
    return Release(str(ref), ref.short(), ref.short(), files, model=model)


def _all_here(session: Session, plan: Plan, options: GetOptions, text: str, to: str) -> None:
    """Every model file is already here (in place, or a copy elsewhere), or nothing happens."""
    copies = session.copies_for(options)
    for spec in plan.files:
        there = any(p.is_file() and p.stat().st_size == spec.size for p in spec.places)
        if there or ((spec.size or 0) <= SMALL and spec.url):
            continue
        if next(copies.find(spec), None) is None:
            raise NotFound(
                f"{spec.name} of {plan.title or plan.ref} is not on this machine",
                why="link shows another app what is already downloaded; it fetches no model",
                hint=f"`pullman get {text} --to {to}` downloads it",
            )
