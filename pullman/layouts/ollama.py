"""The Ollama model store, exactly as the Ollama server reads it.

::

    <models>/blobs/sha256-<64 hex>                     every layer and the config
    <models>/manifests/<host>/<namespace>/<model>/<tag>  the raw manifest bytes, written last
    <models>/.pullman-partial/                         pullman's staging area

The server prunes odd names in ``blobs/`` at start, so partial data never lives there; it
rescans ``manifests/`` on every listing, so writing the manifest last is what makes a model
appear, complete. Directories 0755, files 0644.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from pullman.core.digests import SHA256_HEX
from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import BadManifest, Manifest, parse_manifest
from pullman.core.plan import FileSpec, Final, Move, Plan, Release, Store, Touch, WriteFile
from pullman.core.refs import OllamaRef, Ref, valid_part
from pullman.core.units import human
from pullman.errors import NotFound, NotWritable, UsageError
from pullman.fsio import disk_errors
from pullman.layouts import common
from pullman.layouts.ollama_home import models_dir

STAGING = common.STAGING


def blob_path(root: Path, digest_hex: str) -> Path:
    return root / "blobs" / f"sha256-{digest_hex}"


def staging_dir(root: Path) -> Path:
    return root / STAGING


def manifest_path(root: Path, ref: OllamaRef | tuple[str, str, str, str]) -> Path:
    """Where the manifest goes; an existing spelling of the same name (any case) is reused."""
    path = root / "manifests"
    for part in ref.parts if isinstance(ref, OllamaRef) else ref:
        path = _casefold_child(path, part)
    return path


def _casefold_child(parent: Path, name: str) -> Path:
    exact = parent / name
    if exact.exists() or not parent.is_dir():
        return exact
    wanted = name.casefold()
    for child in parent.iterdir():
        if child.name.casefold() == wanted:
            return child
    return exact


def check_writable(root: Path) -> None:
    """A clear error, before any download, when the store cannot be written."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    targets = [root / "blobs", root / "manifests", root] if root.exists() else [probe]
    for target in targets:
        if target.exists() and not os.access(target, os.W_OK):
            raise _not_writable(root, target)
    try:
        common.check_writable(staging_dir(root), hint="")
    except NotWritable:
        raise _not_writable(root, root) from None


def _not_writable(root: Path, target: Path) -> NotWritable:
    owner = ""
    try:
        import pwd

        owner = pwd.getpwuid(target.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        pass
    as_owner = f"run pullman as {owner!r} (sudo -u {owner} pullman get ...), " if owner else ""
    return NotWritable(
        f"cannot write to the Ollama models directory {root}",
        why=f"{target} is not writable by this user"
        + (f" (it belongs to {owner!r})" if owner else ""),
        hint=as_owner + "or use --via-server so the Ollama server writes its own store, "
        "or choose another directory with --ollama-dir / OLLAMA_MODELS",
    )


# ------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    size: int
    state: str
    """``complete``, ``incomplete`` (blobs missing or short) or ``unreadable``."""
    missing: int
    digests: tuple[str, ...]


def _name_from(parts: tuple[str, ...]) -> str:
    host, namespace, model, tag = parts
    return OllamaRef(host, namespace, model, tag).short()


def iter_manifests(root: Path) -> Iterator[tuple[tuple[str, ...], Path]]:
    """Every ``manifests/<host>/<ns>/<model>/<tag>`` file whose parts are valid names."""
    base = root / "manifests"
    if not base.is_dir():
        return
    for path in sorted(base.glob("*/*/*/*")):
        parts = path.relative_to(base).parts
        kinds = ("host", "namespace", "model", "tag")
        if path.is_file() and all(valid_part(k, p) for k, p in zip(kinds, parts, strict=True)):
            yield parts, path


def read_manifest(path: Path) -> Manifest:
    with disk_errors(path):
        raw = path.read_bytes()
    return parse_manifest(raw)


def list_models(root: Path) -> list[ModelEntry]:
    entries = []
    for parts, path in iter_manifests(root):
        try:
            manifest = read_manifest(path)
        except BadManifest:
            entries.append(ModelEntry(_name_from(parts), path, 0, "unreadable", 0, ()))
            continue
        missing = 0
        for layer in manifest.blobs:
            blob = blob_path(root, layer.digest.hex)
            if not blob.is_file() or blob.stat().st_size != layer.size:
                missing += 1
        state = "complete" if missing == 0 else "incomplete"
        digests = tuple(layer.digest.hex for layer in manifest.blobs)
        entries.append(
            ModelEntry(_name_from(parts), path, manifest.total_size, state, missing, digests)
        )
    return entries


# ------------------------------------------------------------------------------- removing


@dataclass(frozen=True)
class ModelRemoval:
    name: str
    manifest: Path
    removed: tuple[Path, ...]
    kept: tuple[Path, ...]
    freed: int


def remove_model(root: Path, ref: OllamaRef) -> ModelRemoval:
    """Remove a model's manifest, and only the blobs no other manifest references.

    Every manifest in the store counts, whoever wrote it. If any other manifest cannot be
    read, no blob is removed (it might be referenced there).
    """
    path = manifest_path(root, ref)
    if not path.is_file():
        raise NotFound(
            f"no model {ref.short()} in {root}",
            hint="`pullman ls` shows the models in this store",
        )
    try:
        mine = {layer.digest.hex for layer in read_manifest(path).blobs}
    except BadManifest:
        mine = set()
    in_use: set[str] = set()
    unreadable = False
    for _, other in iter_manifests(root):
        if other == path:
            continue
        try:
            in_use.update(layer.digest.hex for layer in read_manifest(other).blobs)
        except BadManifest:
            unreadable = True
    removed: list[Path] = []
    kept: list[Path] = []
    freed = 0
    with disk_errors(path):
        path.unlink()
        _prune_empty(path.parent, root / "manifests")
        for hex_digest in sorted(mine):
            blob = blob_path(root, hex_digest)
            if not blob.exists():
                continue
            if hex_digest in in_use or unreadable:
                kept.append(blob)
                continue
            freed += common.unshared_size(blob)  # a blob another app shares frees nothing
            blob.unlink()
            removed.append(blob)
    return ModelRemoval(ref.short(), path, tuple(removed), tuple(kept), freed)


def _prune_empty(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _entry(root: Path, model: ModelEntry) -> StoreEntry:
    note = f"{model.missing} missing" if model.state == "incomplete" else ""
    blobs = tuple((str(blob_path(root, d).relative_to(root)), f"sha256:{d}") for d in model.digests)
    return StoreEntry(
        model.name,
        Store.OLLAMA,
        model.path,
        model.size,
        model.state,
        note,
        {"missing_blobs": model.missing},
        blobs,
        tuple(blob_path(root, d) for d in model.digests),
    )


def _removal(gone: ModelRemoval) -> Removal:
    summary = f"removed {gone.name}: {len(gone.removed)} blobs, {human(gone.freed)} freed"
    if gone.kept:
        summary += f"; {len(gone.kept)} blobs kept (used by other models)"
    details = {
        "manifest": str(gone.manifest),
        "removed": [str(p) for p in gone.removed],
        "kept": [str(p) for p in gone.kept],
    }
    return Removal(gone.name, gone.freed, summary, details)


def used_blobs(root: Path) -> set[str] | None:
    """The digests every manifest uses; None if one cannot be read (it might use anything)."""
    used: set[str] = set()
    for _, path in iter_manifests(root):
        try:
            used.update(layer.digest.hex for layer in read_manifest(path).blobs)
        except BadManifest:
            return None
    return used


def _blobs(release: Release, root: Path) -> tuple[tuple[FileSpec, ...], list[Final]]:
    """Each blob: one already in ``blobs/`` is used there (and freshened at the end); a new one
    is held in the staging area once verified and moved into ``blobs/`` just before the
    manifest, so the server's start-up prune never sees it unreferenced."""
    specs: list[FileSpec] = []
    finals: list[Final] = []
    for f in release.files:
        assert f.digest is not None and f.size is not None  # the manifest names both
        name = f"sha256-{f.digest.hex}"
        final = blob_path(root, f.digest.hex)
        if _has(final, f.size):
            specs.append(f.spec(final, f.key or name, content_addressed=True))
            finals.append(Touch(final, f.size))
        else:
            held = staging_dir(root) / name
            specs.append(f.spec(held, f.key or name, content_addressed=True, final=final))
            finals.append(Move(held, final, f.size))
    return tuple(specs), finals


def _held(root: Path, min_age: float, now: float) -> Iterator[Garbage]:
    """Verified blobs held for a model that was never finished (no job wants them any more:
    :func:`pullman.maintenance.garbage` asks only when none is unfinished)."""
    staging = staging_dir(root)
    for held in sorted(staging.glob("sha256-*")) if staging.is_dir() else []:
        hex_digest = held.name.removeprefix("sha256-")
        if SHA256_HEX.fullmatch(hex_digest) and common.older_than(held, min_age, now):
            yield Garbage("held", held, common.unshared_size(held))


def _has(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


class OllamaLayout:
    store = Store.OLLAMA

    def root(self, options: GetOptions) -> Path:
        return models_dir(options.ollama_dir)

    def pinned(self, options: GetOptions) -> GetOptions:
        return replace(options, ollama_dir=str(self.root(options)))

    def check_writable(self, root: Path) -> None:
        check_writable(root)

    def place(self, release: Release, root: Path, options: GetOptions) -> Plan:
        """Every blob into ``blobs/``, then the registry's exact manifest bytes, written last."""
        model = release.model
        if model is None:
            raise UsageError(
                f"{release.display} is not an Ollama model",
                hint="the Ollama store holds models from an Ollama registry",
            )
        files, finals = _blobs(release, root)
        manifest = manifest_path(root, model.parts)
        return Plan(
            release.ref,
            files,
            root,
            staging_dir(root),
            release.title,
            (*finals, WriteFile(manifest, model.manifest)),
            release.display,
            Store.OLLAMA,
            ("manifest", manifest),
            "blobs",
        )

    def entries(self, root: Path) -> list[StoreEntry]:
        return [_entry(root, m) for m in list_models(root)]

    def remove(self, root: Path, ref: Ref) -> Removal:
        if not isinstance(ref, OllamaRef):
            raise UsageError(f"{ref} is not an Ollama model name", hint="e.g. llama3:8b")
        return _removal(remove_model(root, ref))

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        """Every blob each Ollama manifest names (``ref``: one model's)."""
        only = ref.short() if isinstance(ref, OllamaRef) else None
        for parts, path in iter_manifests(root):
            name = _name_from(parts)
            if only is not None and name != only:
                continue
            try:
                manifest = read_manifest(path)
            except BadManifest:
                continue
            for layer in manifest.blobs:
                yield BlobCheck(name, blob_path(root, layer.digest.hex), layer.digest, layer.size)

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        used = used_blobs(root)
        if used is None:  # a manifest we cannot read may use anything: remove nothing
            return
        blobs = root / "blobs"
        for blob in sorted(blobs.glob("sha256-*")) if blobs.is_dir() else []:
            hex_digest = blob.name.removeprefix("sha256-")
            unused = SHA256_HEX.fullmatch(hex_digest) and hex_digest not in used
            if unused and common.older_than(blob, min_age, now):
                yield Garbage("unreferenced", blob, common.unshared_size(blob))
        yield from _held(root, min_age, now)

    def staging_dirs(self, root: Path) -> list[Path]:
        return [staging_dir(root)]
