"""Keeping the stores honest: ``verify`` (re-hash), ``gc`` (leftovers), ``doctor`` (rebuild index).

Both stores are content-addressed, so a blob is checked against its own name: Ollama blobs are
``sha256-<hex>``; Hugging Face blobs are the sha256 (LFS files) or the git blob sha1 (small
files) of their content. No network and no index is needed to tell a bad blob.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pullman.digests import Digest
from pullman.index import FileRecord, Index, ItemState
from pullman.layouts import hf_cache
from pullman.layouts import ollama as ollama_store
from pullman.ollama_manifest import BadManifest
from pullman.refs import OllamaRef
from pullman.transfer.staging import disk_errors

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


# ------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class BlobCheck:
    owner: str
    """The model or repo (as a ref) the blob belongs to."""
    path: Path
    digest: Digest
    size: int | None
    state: str = "unchecked"
    """``ok``, ``missing``, ``wrong size`` or ``corrupt``."""

    @property
    def bad(self) -> bool:
        return self.state not in ("ok", "unchecked")


def ollama_blobs(root: Path, only: str | None = None) -> Iterator[BlobCheck]:
    """Every blob each Ollama manifest names (``only``: one model's short name)."""
    for parts, path in ollama_store.iter_manifests(root):
        name = OllamaRef(*parts).short()
        if only is not None and name != only:
            continue
        try:
            manifest = ollama_store.read_manifest(path)
        except BadManifest:
            continue
        for layer in manifest.blobs:
            blob = ollama_store.blob_path(root, layer.digest.hex)
            yield BlobCheck(name, blob, layer.digest, layer.size)


def hf_blobs(root: Path, only: str | None = None) -> Iterator[BlobCheck]:
    """Every blob a Hugging Face snapshot links to (``only``: one ``org/repo``)."""
    if not root.is_dir():
        return
    for repo in sorted(root.glob("*--*--*")):
        kind, _, rest = repo.name.partition("--")
        repo_id = rest.replace("--", "/", 1)
        if only is not None and repo_id != only:
            continue
        owner = f"hf://{'datasets/' if kind == 'datasets' else ''}{repo_id}"
        seen: set[str] = set()
        for link in sorted((repo / "snapshots").glob("**/*")):
            if not link.is_symlink():
                continue
            name = link.readlink().name
            if name in seen:
                continue
            seen.add(name)
            blob = repo / "blobs" / name
            if _SHA256.fullmatch(name):
                yield BlobCheck(owner, blob, Digest("sha256", name), None)
            elif _SHA1.fullmatch(name):
                yield BlobCheck(owner, blob, Digest("git-sha1", name), None)


def check_blob(check: BlobCheck) -> BlobCheck:
    """Re-hash one blob (runs in a worker thread: it reads the whole file)."""
    try:
        size = check.path.stat().st_size
    except FileNotFoundError:
        return _with(check, "missing")
    if check.size is not None and size != check.size:
        return _with(check, "wrong size")
    hasher = check.digest.hasher(size)
    with disk_errors(check.path), check.path.open("rb") as f:
        while block := f.read(8 << 20):
            hasher.update(block)
    return _with(check, "ok" if hasher.hexdigest() == check.digest.hex else "corrupt")


def _with(check: BlobCheck, state: str) -> BlobCheck:
    return BlobCheck(check.owner, check.path, check.digest, check.size, state)


# ------------------------------------------------------------------------------- gc


@dataclass(frozen=True)
class Garbage:
    kind: str
    """``partial`` (an abandoned download) or ``unreferenced`` (a blob nothing uses)."""
    path: Path
    size: int


def _older_than(path: Path, min_age: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime >= min_age
    except OSError:
        return False


def _locked(lock: Path) -> bool:
    """Whether a live pullman holds this staging lock right now."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def partials(staging_dirs: Iterable[Path], min_age: float, now: float) -> Iterator[Garbage]:
    """Partial downloads nobody is working on, untouched for ``min_age`` seconds."""
    for directory in staging_dirs:
        if not directory.is_dir():
            continue
        for part in sorted(directory.glob("*.part")):
            key = part.name.removesuffix(".part")
            group = [p for p in directory.glob(f"{key}.*") if p.is_file()]
            if _locked(directory / f"{key}.lock"):
                continue
            if not all(_older_than(p, min_age, now) for p in group):
                continue
            size = sum(p.stat().st_size for p in group)
            yield Garbage("partial", part, size)


def unreferenced_ollama(root: Path, min_age: float, now: float) -> Iterator[Garbage]:
    blobs = root / "blobs"
    if not blobs.is_dir():
        return
    used: set[str] = set()
    for _, path in ollama_store.iter_manifests(root):
        try:
            used.update(layer.digest.hex for layer in ollama_store.read_manifest(path).blobs)
        except BadManifest:
            return  # a manifest we cannot read may use anything: remove nothing
    for blob in sorted(blobs.glob("sha256-*")):
        hex_digest = blob.name.removeprefix("sha256-")
        unused = _SHA256.fullmatch(hex_digest) and hex_digest not in used
        if unused and _older_than(blob, min_age, now):
            yield Garbage("unreferenced", blob, blob.stat().st_size)


def unreferenced_hf(root: Path, min_age: float, now: float) -> Iterator[Garbage]:
    if not root.is_dir():
        return
    for repo in sorted(root.glob("*--*--*")):
        used = {
            link.readlink().name for link in (repo / "snapshots").glob("**/*") if link.is_symlink()
        }
        for blob in sorted((repo / "blobs").glob("*")):
            if blob.is_file() and blob.name not in used and _older_than(blob, min_age, now):
                yield Garbage("unreferenced", blob, blob.stat().st_size)


def remove(items: Iterable[Garbage]) -> int:
    freed = 0
    for item in items:
        with disk_errors(item.path):
            if item.kind == "partial":
                key = item.path.name.removesuffix(".part")
                for path in item.path.parent.glob(f"{key}.*"):
                    path.unlink(missing_ok=True)
            else:
                item.path.unlink(missing_ok=True)
        freed += item.size
    return freed


def staging_dirs(ollama_root: Path, hf_root: Path, extra: Iterable[Path]) -> list[Path]:
    dirs = [ollama_store.staging_dir(ollama_root), *extra]
    if hf_root.is_dir():
        dirs += [hf_cache.staging_dir(repo) for repo in sorted(hf_root.glob("*--*--*"))]
    return dirs


# ------------------------------------------------------------------------------- doctor


@dataclass(frozen=True)
class Rebuilt:
    models: int
    incomplete: int
    unreadable: int


def rebuild_index(index: Index, ollama_root: Path, hf_root: Path) -> Rebuilt:
    """Describe in the index what the stores hold (the stores are the truth)."""
    models = incomplete = unreadable = 0
    for entry in ollama_store.list_models(ollama_root):
        if entry.state == "unreadable":
            unreadable += 1
            continue
        files = [
            FileRecord(
                path=str(ollama_store.blob_path(ollama_root, d).relative_to(ollama_root)),
                digest=f"sha256:{d}",
            )
            for d in entry.digests
        ]
        state: ItemState = "complete" if entry.state == "complete" else "partial"
        incomplete += state != "complete"
        index.upsert_model(
            entry.name, "ollama", ollama_root, title=entry.name, size=entry.size, state=state,
            files=files,
        )  # fmt: skip
        models += 1
    for repo in hf_cache.list_repos(hf_root):
        if repo.state == "damaged":
            unreadable += 1
            continue
        index.upsert_model(repo.name, "hf", hf_root, title=repo.name, size=repo.size)
        models += 1
    return Rebuilt(models, incomplete, unreadable)
