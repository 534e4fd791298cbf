"""A bundle's models as the layouts' plans: where each file lands, in which order.

The header's models become :class:`~pullman.core.plan.Release` values, as a source would
describe them, and the store's own layout places them (:meth:`~pullman.layouts.Layout.place`):
so an imported model lands exactly where ``get`` puts it (an existing spelling of an Ollama
name reused, ``HF_HUB_DISABLE_SYMLINKS`` honoured), with the same finals in the same order.
Paths from the bundle are never used to write: only the layouts' paths are, built from names
and digests the header's checks accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pullman.bundle.format import BundleFile, Entry, Header, HfEntry, OllamaEntry
from pullman.core.digests import from_blob_name, sha256
from pullman.core.jobs import GetOptions
from pullman.core.plan import (
    FileSpec,
    HubRepo,
    OllamaModel,
    Plan,
    Release,
    RemoteFile,
    Store,
    Touch,
    WriteFile,
)
from pullman.core.refs import HfRef, OllamaRef
from pullman.layouts import layout_for

Key = tuple[Store, str]
"""A bundle file: its store and its path there."""


@dataclass(frozen=True)
class Target:
    """One model of the bundle, planned into its store."""

    entry: Entry
    plan: Plan
    present: frozenset[Path]
    """Where files already are in the store (right name and size): not written again."""

    def specs(self) -> list[FileSpec]:
        """Each file once (a blob that two snapshot paths share is fetched once)."""
        seen: dict[Path, FileSpec] = {}
        for spec in self.plan.files:
            seen.setdefault(spec.dest, spec)
        return list(seen.values())

    def needs(self) -> dict[Key, list[FileSpec]]:
        """The bundle's blobs this model takes: for every file not already in the store, the
        places it goes (several, when a cache without symlinks holds one blob at two paths)."""
        found: dict[Key, list[FileSpec]] = {}
        for spec in self.specs():
            if landing(spec) not in self.present:
                found.setdefault(blob_key(self.entry, spec), []).append(spec)
        return found


def landing(spec: FileSpec) -> Path:
    """Where the file is once the plan has run (a held blob moves out of staging)."""
    return spec.final or spec.dest


def blob_key(entry: Entry, spec: FileSpec) -> Key:
    """The bundle file that holds a spec's bytes (specs are named by their digest)."""
    assert spec.digest is not None
    if isinstance(entry, OllamaEntry):
        return (Store.OLLAMA, f"blobs/sha256-{spec.digest.hex}")
    return (Store.HF_CACHE, entry.blob(spec.digest.hex))


def targets(header: Header, options: GetOptions) -> list[Target]:
    """Every model of the bundle, planned into the store ``options`` choose."""
    return [_target(entry, options) for entry in header.models]


def _target(entry: Entry, options: GetOptions) -> Target:
    layout = layout_for(entry.store)
    root = layout.root(options)
    plan = layout.place(_release(entry), root, options)
    # A file already in place is left exactly as it is (not freshened either). The Ollama
    # layout holds a missing blob in staging (``final`` set) and uses a present one in place.
    plan = replace(plan, finals=tuple(f for f in plan.finals if not isinstance(f, Touch)))
    present = frozenset(s.dest for s in plan.files if s.final is None and _there(s.dest, s.size))
    return Target(entry, plan, present)


def _there(path: Path, size: int | None) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


def _release(entry: Entry) -> Release:
    if isinstance(entry, OllamaEntry):
        return _ollama_release(entry)
    return _hf_release(entry)


def _ollama_release(entry: OllamaEntry) -> Release:
    ref = OllamaRef(*entry.parts)
    files = tuple(
        RemoteFile(
            url=f"bundle:ollama/blobs/sha256-{hex_}",
            path=f"sha256-{hex_}",
            name=f"blob {hex_[:12]}",
            size=size,
            digest=sha256(hex_),
            key=f"sha256-{hex_}",
        )
        for hex_, size in entry.blobs
    )
    model = OllamaModel(entry.parts, b"")  # the manifest's bytes come last in the bundle
    return Release(str(ref), ref.short(), ref.short(), files, model=model)


def _hf_release(entry: HfEntry) -> Release:
    ref = HfRef(entry.repo_id, entry.repo_type, entry.revision)
    files = tuple(
        RemoteFile(
            url=f"bundle:hf/{entry.blob(blob)}",
            path=path,
            name=path,
            size=size,
            digest=from_blob_name(blob),
            key=f"hf-{blob}",
        )
        for path, blob, size in entry.files
    )
    repo = HubRepo(entry.repo_id, entry.repo_type, entry.revision, entry.commit)
    title = f"{entry.repo_id}@{entry.revision}"
    return Release(str(ref), title, str(ref), files, repo=repo)


def with_manifest(target: Target, raw: bytes) -> Target:
    """The target with its manifest's bytes, once they arrived and verified."""
    assert target.plan.location is not None
    where = target.plan.location[1]
    finals = tuple(
        WriteFile(f.path, raw) if isinstance(f, WriteFile) and f.path == where else f
        for f in target.plan.finals
    )
    return replace(target, plan=replace(target.plan, finals=finals))


def bundle_files(header: Header) -> dict[Key, BundleFile]:
    return {(f.store, f.path): f for f in header.files}
