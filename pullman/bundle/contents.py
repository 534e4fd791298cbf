"""What a ref is in its store, as the files of a bundle (for ``export``).

An Ollama name is its manifest (the raw bytes, as the store holds them) and every blob it
names; ``hf://org/repo[@rev]`` is one snapshot of the HF cache: each file's blob, the link's
path, and ``refs/<rev>``. A model with a blob missing or short is refused (export what is
whole, or nothing), and so is a ref the store does not have.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pullman import __version__
from pullman.bundle.format import BundleFile, Entry, Header, HfEntry, OllamaEntry, parse_header
from pullman.core.digests import SHA1_HEX, SHA256_HEX, Digest, from_blob_name
from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import BadManifest, parse_manifest
from pullman.core.plan import Store
from pullman.core.refs import HfRef, OllamaRef, parse_ref
from pullman.errors import IntegrityError, InternalError, NotFound, UsageError
from pullman.fsio import disk_errors, hash_file
from pullman.layouts import layout_for
from pullman.layouts.hf_cache import ref_path, repo_dir
from pullman.layouts.ollama import blob_path, manifest_path


@dataclass(frozen=True)
class Piece:
    """One file of the bundle and where its bytes come from: a store file, or ``data``."""

    file: BundleFile
    source: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Contents:
    header: Header
    pieces: tuple[Piece, ...]
    """In member order: every blob, then the manifests and refs."""


def collect(refs: Sequence[str], options: GetOptions) -> Contents:
    """The bundle of ``refs`` from the stores ``options`` name (flags, environment, defaults)."""
    models: list[Entry] = []
    blobs: dict[tuple[Store, str], Piece] = {}
    last: dict[tuple[Store, str], Piece] = {}
    for text in refs:
        entry, mine, meta = _model(text, options)
        if entry not in models:
            models.append(entry)
        for piece in mine:
            blobs.setdefault((piece.file.store, piece.file.path), piece)
        if meta is not None:
            last.setdefault((meta.file.store, meta.file.path), meta)
    pieces = (*blobs.values(), *last.values())
    header = Header(__version__, tuple(models), tuple(p.file for p in pieces))
    try:  # what import will check: never write a bundle this pullman would refuse
        parse_header(header.encode())
    except IntegrityError as exc:
        raise UsageError(f"cannot export: {exc.what}", why=exc.why) from None
    return Contents(header, pieces)


def _model(text: str, options: GetOptions) -> tuple[Entry, list[Piece], Piece | None]:
    ref = parse_ref(text)
    if isinstance(ref, OllamaRef):
        return ollama_model(layout_for(Store.OLLAMA).root(options), ref)
    if isinstance(ref, HfRef):
        return hf_model(layout_for(Store.HF_CACHE).root(options), ref)
    raise UsageError(
        f"{text!r} is not a model in a store",
        hint="export Ollama names (qwen2.5:7b, hf.co/org/repo:Q4_K_M) or hf://org/repo[@rev]",
    )


def _has(path: Path, size: int) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_size == size
    except OSError:
        return False


def _incomplete(name: str, root: Path, missing: int, total: int) -> NotFound:
    return NotFound(
        f"{name} is incomplete in {root}: {missing} of {total} files missing or short",
        why="a bundle carries whole models only",
        hint=f"finish it first (`pullman get {name}`), then export it",
    )


def _sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- Ollama


def ollama_model(root: Path, ref: OllamaRef) -> tuple[OllamaEntry, list[Piece], Piece]:
    """The manifest of ``ref`` in the store at ``root``, and every blob it names."""
    path = manifest_path(root, ref)
    if not path.is_file():
        raise NotFound(
            f"no model {ref.short()} in {root}", hint="`pullman ls` shows the models in this store"
        )
    with disk_errors(path):
        raw = path.read_bytes()
    try:
        manifest = parse_manifest(raw)
    except BadManifest as exc:
        raise IntegrityError(
            f"the manifest of {ref.short()} in {root} is unreadable",
            why=exc.why,
            hint=f"pull it again: `pullman get {ref.short()}`",
        ) from None
    parts = path.relative_to(root / "manifests").parts
    assert len(parts) == 4  # manifest_path names four parts under manifests/
    blobs = [(layer.digest.hex, layer.size) for layer in manifest.blobs]
    missing = sum(not _has(blob_path(root, h), size) for h, size in blobs)
    if missing:
        raise _incomplete(ref.short(), root, missing, len(blobs))
    entry = OllamaEntry((parts[0], parts[1], parts[2], parts[3]), tuple(blobs))
    pieces = [
        Piece(BundleFile(Store.OLLAMA, f"blobs/sha256-{h}", "blob", size, h), blob_path(root, h))
        for h, size in blobs
    ]
    meta = BundleFile(Store.OLLAMA, entry.manifest, "manifest", len(raw), _sha256_of(raw))
    return entry, pieces, Piece(meta, data=raw)


# ---------------------------------------------------------------------------- Hugging Face


def hf_model(root: Path, ref: HfRef) -> tuple[HfEntry, list[Piece], Piece | None]:
    """One snapshot of the cache at ``root``: its files' blobs, and the revision's ref."""
    if ref.pattern is not None or ref.gguf:
        raise UsageError(
            f"{ref}: export takes a whole snapshot",
            hint="write hf://org/repo or hf://org/repo@revision",
        )
    repo = repo_dir(root, ref.repo_id, ref.repo_type)
    commit = _commit(repo, ref, root)
    files, pieces = _snapshot(repo, commit, ref)
    if not files:
        raise NotFound(f"{ref} has no files in the cache {root}")
    entry = HfEntry(ref.repo_id, ref.repo_type, ref.revision, commit, tuple(files))
    if entry.folder != repo.name:
        raise InternalError(f"the cache folder of {ref} is {repo.name}, not {entry.folder}")
    if entry.ref is None:
        return entry, pieces, None
    data = commit.encode()
    return (
        entry,
        pieces,
        Piece(BundleFile(Store.HF_CACHE, entry.ref, "ref", len(data), _sha256_of(data)), data=data),
    )


def _commit(repo: Path, ref: HfRef, root: Path) -> str:
    """The commit the revision names in this cache (a ref file, or the commit itself)."""
    where = ref_path(repo, ref.revision)
    commit = ref.revision
    if where.is_file():
        with disk_errors(where):
            commit = where.read_text().strip()
    if SHA1_HEX.fullmatch(commit) and (repo / "snapshots" / commit).is_dir():
        return commit
    raise NotFound(
        f"{ref} is not in the cache {root}",
        hint="`pullman ls` shows what the cache holds (--cache-dir chooses it)",
    )


def _snapshot(
    repo: Path, commit: str, ref: HfRef
) -> tuple[list[tuple[str, str, int]], list[Piece]]:
    snapshot = repo / "snapshots" / commit
    files: list[tuple[str, str, int]] = []
    pieces: dict[str, Piece] = {}
    missing = 0
    for link in sorted(snapshot.rglob("*")):
        if link.is_dir() and not link.is_symlink():
            continue
        path = link.relative_to(snapshot).as_posix()
        blob = _blob_of(link, repo, ref, path)
        if blob is None:
            missing += 1
            continue
        size = blob.stat().st_size
        files.append((path, blob.name, size))
        if blob.name not in pieces:
            sha = _blob_sha256(blob, size)
            bundle_path = f"{repo.name}/blobs/{blob.name}"
            pieces[blob.name] = Piece(
                BundleFile(Store.HF_CACHE, bundle_path, "blob", size, sha), blob
            )
    if missing:
        raise _incomplete(str(ref), repo.parent, missing, missing + len(files))
    return files, list(pieces.values())


def _blob_of(link: Path, repo: Path, ref: HfRef, path: str) -> Path | None:
    """The blob a snapshot link points to; None if it is not there."""
    if not link.is_symlink():
        raise UsageError(
            f"{ref}: {path} is a file in the snapshot, not a link to a blob",
            why="the cache was written with HF_HUB_DISABLE_SYMLINKS",
            hint="export reads caches with symlinks (huggingface_hub's default)",
        )
    target = Path(os.path.normpath(link.parent / link.readlink()))
    if target.parent != repo / "blobs" or from_blob_name(target.name) is None:
        raise UsageError(f"{ref}: {path} links outside the repo's blobs ({target})")
    return target if target.is_file() and not target.is_symlink() else None


def _blob_sha256(blob: Path, size: int) -> str:
    """A blob's sha256: its name, or (a git blob id names it) its bytes, checked against it."""
    if SHA256_HEX.fullmatch(blob.name):
        return blob.name
    git = Digest("git-sha1", blob.name)
    if hash_file(blob, git.hasher(size)) != blob.name:
        raise IntegrityError(f"{blob} does not match its name", hint="`pullman verify --repair`")
    return hash_file(blob, hashlib.sha256())
