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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pullman.errors import NotFound, NotWritable
from pullman.layouts import common
from pullman.ollama_manifest import BadManifest, Manifest, parse_manifest
from pullman.refs import OllamaRef, valid_part
from pullman.transfer.staging import disk_errors, human

STAGING = ".pullman-partial"


def models_dir(flag: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``--ollama-dir``, else ``OLLAMA_MODELS``, else ``~/.ollama/models``."""
    env = os.environ if env is None else env
    chosen = flag or env.get("OLLAMA_MODELS") or "~/.ollama/models"
    return Path(chosen).expanduser().absolute()


def blob_path(root: Path, digest_hex: str) -> Path:
    return root / "blobs" / f"sha256-{digest_hex}"


def staging_dir(root: Path) -> Path:
    return root / STAGING


def manifest_path(root: Path, ref: OllamaRef) -> Path:
    """Where the manifest goes; an existing spelling of the same name (any case) is reused."""
    path = root / "manifests"
    for part in ref.parts:
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
class Removal:
    name: str
    manifest: Path
    removed: tuple[Path, ...]
    kept: tuple[Path, ...]
    freed: int


def remove_model(root: Path, ref: OllamaRef) -> Removal:
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
            freed += blob.stat().st_size
            blob.unlink()
            removed.append(blob)
    return Removal(ref.short(), path, tuple(removed), tuple(kept), freed)


def _prune_empty(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def describe(entry: ModelEntry) -> str:
    state = entry.state if entry.state != "incomplete" else f"incomplete ({entry.missing} missing)"
    return f"{entry.name:<40} {human(entry.size):>10}  {state}"
