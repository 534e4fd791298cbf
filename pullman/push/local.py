"""The model a push sends, as the local Ollama store holds it, and the docker credentials.

The manifest is read as stored (its bytes are what the registry gets, byte for byte) and every
blob it names must be in ``blobs/`` at its size. The store also tells which repositories of the
destination registry already hold a blob (models pulled from there): mount sources.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pullman.core.ollama_manifest import (
    MANIFEST_V2,
    BadManifest,
    Layer,
    Manifest,
    parse_manifest,
)
from pullman.core.refs import OllamaRef
from pullman.core.registry_auth import Lookup, lookup, parse_config
from pullman.errors import NotFound, StorageError
from pullman.fsio import disk_errors
from pullman.layouts.ollama import blob_path, iter_manifests, manifest_path, read_manifest


@dataclass(frozen=True)
class LocalModel:
    ref: OllamaRef
    root: Path
    raw: bytes
    manifest: Manifest

    @property
    def media_type(self) -> str:
        """The manifest's own ``mediaType`` (its ``Content-Type`` on the wire)."""
        try:
            value = json.loads(self.raw).get("mediaType")
        except (ValueError, AttributeError):
            value = None
        return value if isinstance(value, str) and value else MANIFEST_V2

    def path(self, layer: Layer) -> Path:
        return blob_path(self.root, layer.digest.hex)


def local_model(root: Path, ref: OllamaRef) -> LocalModel:
    """The model ``ref`` in the store at ``root``, complete, or a clear error."""
    path = manifest_path(root, ref)
    if not path.is_file():
        raise NotFound(
            f"no model {ref.short()} in the Ollama store {root}",
            hint="`pullman ls` lists the models there; `pullman get` fetches one "
            "(--ollama-dir / OLLAMA_MODELS choose another store)",
        )
    with disk_errors(path):
        raw = path.read_bytes()
    manifest = parse_manifest(raw)
    for layer in manifest.blobs:
        blob = blob_path(root, layer.digest.hex)
        try:
            size = blob.stat().st_size
        except OSError:
            size = -1
        if size != layer.size:
            raise NotFound(
                f"{ref.short()} is incomplete in {root}: blob {layer.digest} is "
                + ("missing" if size < 0 else f"{size} bytes, not {layer.size}"),
                hint=f"`pullman get {ref.short()}` completes it",
            )
    return LocalModel(ref, root, raw, manifest)


def store_repos(root: Path, host: str) -> dict[str, list[str]]:
    """Digest -> repositories (``ns/model``) of ``host`` that the local store has models of."""
    found: dict[str, list[str]] = {}
    for parts, path in iter_manifests(root):
        if parts[0].lower() != host.lower():
            continue
        try:
            manifest = read_manifest(path)
        except (BadManifest, StorageError):  # an unreadable manifest is no mount source
            continue
        repo = f"{parts[1]}/{parts[2]}"
        for layer in manifest.blobs:
            found.setdefault(layer.digest.hex, [])
            if repo not in found[layer.digest.hex]:
                found[layer.digest.hex].append(repo)
    return found


def docker_config_path(env: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (as docker reads it)."""
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory).expanduser() / "config.json"
    return Path(env.get("HOME") or "~").expanduser() / ".docker" / "config.json"


def docker_credentials(host: str, env: Mapping[str, str] | None = None) -> Lookup:
    """What the docker config holds for ``host`` (nothing if there is no config)."""
    path = docker_config_path(os.environ if env is None else env)
    if not path.is_file():
        return Lookup(None)
    with disk_errors(path):
        raw = path.read_bytes()
    return lookup(parse_config(raw, str(path)), host, str(path))
