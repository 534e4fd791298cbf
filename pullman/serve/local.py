"""The local catalog: what this machine's Ollama store and Hugging Face cache hold.

Read through the layouts (:mod:`pullman.layouts.ollama`, :mod:`pullman.layouts.hf_cache`), never
past them:

- A manifest is the file ``manifests/<host>/<ns>/<model>/<tag>`` (``host``: the registry this
  server stands in for), its bytes exactly; by digest, the tag file of that repository whose
  bytes hash to it.
- A blob is served only when a manifest **of the requested repository** names it (as a
  registry scopes blobs to repositories), and only when ``blobs/sha256-<hex>`` is a regular
  file (not a symlink) of the size the manifest says: a half-copied or foreign blob is a miss.
- A Hub file is a snapshot entry that is a symlink resolving to a regular file directly in
  that repo's own ``blobs/``, named by its digest; anything else (a link out of the repo, a
  plain file in a symlink-less cache, a dangling link) is not served.

Filesystem work runs in worker threads; nothing here keeps state between requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio

from pullman.core.digests import Digest, from_blob_name, sha256
from pullman.core.hub_entries import valid_path, valid_repo_id, valid_revision
from pullman.core.names import is_commit
from pullman.core.oci_names import parse_reference, split_name
from pullman.core.ollama_manifest import MANIFEST_V2, BadManifest, parse_manifest
from pullman.core.refs import DEFAULT_HOST, valid_part
from pullman.layouts import hf_cache, ollama
from pullman.serve.catalog import Content, RepoFile, RepoView, StoredManifest

MAX_MANIFEST = 4 << 20
MAX_FILES = 100_000


class LocalCatalog:
    """The stores on this machine (either may be None: not served)."""

    def __init__(
        self, ollama_root: Path | None, hf_root: Path | None, *, host: str = DEFAULT_HOST
    ) -> None:
        self.ollama_root = ollama_root
        self.hf_root = hf_root
        self.host = host
        self._listings = _Listings()

    # ------------------------------------------------------------------ OCI

    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        return await anyio.to_thread.run_sync(self._manifest, name, reference)

    async def blob(self, name: str, digest: Digest) -> Content | None:
        return await anyio.to_thread.run_sync(self._blob, name, digest)

    async def tags(self, name: str) -> list[str] | None:
        return await anyio.to_thread.run_sync(self._tags, name)

    async def repositories(self) -> list[str]:
        return await anyio.to_thread.run_sync(self.model_names)

    def _model_dir(self, name: str) -> Path | None:
        split = split_name(name)
        if self.ollama_root is None or split is None:
            return None
        namespace, model = split
        if not (valid_part("namespace", namespace) and valid_part("model", model)):
            return None
        directory = ollama.manifest_path(self.ollama_root, (self.host, namespace, model, "x"))
        inside = _inside(directory.parent, self.ollama_root / "manifests")
        return directory.parent if _real_dir(directory.parent) and inside else None

    def _tag_files(self, name: str) -> Iterator[tuple[str, Path]]:
        directory = self._model_dir(name)
        if directory is None:
            return
        for path in sorted(directory.iterdir()):
            if valid_part("tag", path.name) and _regular(path):
                yield path.name, path

    def _manifest(self, name: str, reference: str) -> StoredManifest | None:
        ref = parse_reference(reference)
        if ref is None:
            return None
        for tag, path in self._tag_files(name):
            if ref.tag is not None and tag.casefold() != ref.tag.casefold():
                continue
            stored = _read_manifest(path)
            if stored is not None and (ref.digest is None or stored.digest == ref.digest):
                return stored
        return None

    def _blob(self, name: str, digest: Digest) -> Content | None:
        for _, path in self._tag_files(name):
            stored = _read_manifest(path)
            if stored is None:
                continue
            layer = next((b for b in parse_manifest(stored.data).blobs if b.digest == digest), None)
            if layer is None:
                continue
            assert self.ollama_root is not None
            blob = ollama.blob_path(self.ollama_root, digest.hex)
            if _regular(blob) and _size(blob) == layer.size:
                return Content(layer.size, digest, "application/octet-stream", path=blob)
        return None

    def _tags(self, name: str) -> list[str] | None:
        if self._model_dir(name) is None:
            return None
        return sorted(tag for tag, _ in self._tag_files(name))

    def model_names(self) -> list[str]:
        """``namespace/model`` of every model of ``host`` in the store (read in this thread)."""
        if self.ollama_root is None:
            return []
        names = set()
        for parts, _ in ollama.iter_manifests(self.ollama_root):
            host, namespace, model, _tag = parts
            if host.casefold() == self.host.casefold():
                names.add(f"{namespace}/{model}".lower())  # names are looked up caselessly
        return sorted(names)

    # ------------------------------------------------------------------ Hugging Face

    async def repo_access(self, kind: str, repo_id: str) -> str | None:
        return await anyio.to_thread.run_sync(self._repo_access, kind, repo_id)

    def _repo_access(self, kind: str, repo_id: str) -> str | None:
        repo = self._repo_dir(kind, repo_id)
        return hf_cache.recorded_access(repo) if repo is not None else None

    async def revision(self, kind: str, repo_id: str, revision: str) -> RepoView | None:
        return await anyio.to_thread.run_sync(self._revision, kind, repo_id, revision)

    async def hf_file(self, view: RepoView, path: str) -> Content | None:
        return await anyio.to_thread.run_sync(self._hf_file, view, path)

    def _repo_dir(self, kind: str, repo_id: str) -> Path | None:
        if self.hf_root is None or kind not in ("model", "dataset") or not valid_repo_id(repo_id):
            return None
        repo = hf_cache.repo_dir(self.hf_root, repo_id, kind)
        return repo if _real_dir(repo / "snapshots") else None

    def _revision(self, kind: str, repo_id: str, revision: str) -> RepoView | None:
        repo = self._repo_dir(kind, repo_id)
        if repo is None or not valid_revision(revision):
            return None
        commit = revision if is_commit(revision) else _read_ref(repo, revision)
        if commit is None or not _real_dir(repo / "snapshots" / commit):
            return None
        files = self._listings.files(repo, commit)
        access = hf_cache.recorded_access(repo)
        refs = tuple(sorted(n for n in _ref_names(repo) if _read_ref(repo, n) == commit))
        return RepoView(kind, repo_id, commit, files, access == "public", access, refs)

    def _hf_file(self, view: RepoView, path: str) -> Content | None:
        entry = view.file(path)
        repo = self._repo_dir(view.kind, view.repo_id)
        if entry is None or repo is None:
            return None
        blob = _blob_of(repo, repo / "snapshots" / view.commit / path)
        if blob is None or blob.name != entry.etag.hex:
            return None
        return Content(blob.stat().st_size, entry.etag, _media_type(path), path=blob)


# ---------------------------------------------------------------------- helpers


def _regular(path: Path) -> bool:
    """A regular file, not a symlink (a link could lead out of the store)."""
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _real_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink()
    except OSError:
        return False


def _read_manifest(path: Path) -> StoredManifest | None:
    try:
        if path.stat().st_size > MAX_MANIFEST:
            return None
        data = path.read_bytes()
        parse_manifest(data)
        media_type = json.loads(data).get("mediaType") or MANIFEST_V2
    except (OSError, BadManifest, ValueError):
        return None
    return StoredManifest(data, str(media_type), sha256(hashlib.sha256(data).hexdigest()))


def _read_ref(repo: Path, revision: str) -> str | None:
    path = hf_cache.ref_path(repo, revision)
    if not _regular(path) or not _inside(path, repo / "refs"):
        return None
    try:
        commit = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return commit if is_commit(commit) else None


def _ref_names(repo: Path) -> Iterator[str]:
    refs = repo / "refs"
    if not _real_dir(refs):
        return
    for path in sorted(refs.rglob("*")):
        if _regular(path):
            yield path.relative_to(refs).as_posix()


def _inside(path: Path, directory: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return real.startswith(base + os.sep)


def _blob_of(repo: Path, link: Path) -> Path | None:
    """The blob a snapshot entry links to, if it is a regular file in this repo's blobs/."""
    try:
        if not link.is_symlink():
            return None
        blobs = Path(os.path.realpath(repo / "blobs"))
        blob = Path(os.path.realpath(link))
    except OSError:
        return None
    if blob.parent != blobs or from_blob_name(blob.name) is None or not _regular(blob):
        return None
    return blob


def _walk(snapshot: Path) -> tuple[tuple[tuple[str, int], ...], list[Path]]:
    """A snapshot's directories with their mtimes (what changes when an entry is added or
    removed), and its entries that are not directories; links to directories are not walked."""
    stamp: list[tuple[str, int]] = []
    entries: list[Path] = []
    for top, dirs, names in os.walk(snapshot, followlinks=False):
        dirs.sort()
        try:
            stamp.append((top, Path(top).stat().st_mtime_ns))
        except OSError:
            continue
        entries.extend(Path(top) / name for name in sorted(names))
        if len(entries) > MAX_FILES:
            break
    return tuple(stamp), entries[:MAX_FILES]


def _resolve(repo: Path, snapshot: Path, entries: list[Path]) -> tuple[RepoFile, ...]:
    """Every entry that links to a blob of this repo, as a file of the snapshot."""
    files = []
    for link in entries:
        path = link.relative_to(snapshot).as_posix()
        blob = _blob_of(repo, link)
        digest = from_blob_name(blob.name) if blob is not None else None
        if blob is None or digest is None or not valid_path(path):
            continue
        try:
            files.append(RepoFile(path, blob.stat().st_size, digest))
        except OSError:
            continue
    return tuple(files)


class _Listings:
    """Snapshot listings, reused while no directory of the snapshot changed (resolving every
    link of a big repo for each of its files' requests would cost n² link lookups)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[tuple[str, int], ...], tuple[RepoFile, ...]]] = {}

    def files(self, repo: Path, commit: str) -> tuple[RepoFile, ...]:
        snapshot = repo / "snapshots" / commit
        stamp, entries = _walk(snapshot)
        with self._lock:
            cached = self._cache.get(snapshot)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        files = _resolve(repo, snapshot, entries)
        with self._lock:
            self._cache.pop(snapshot, None)
            while len(self._cache) >= self._size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[snapshot] = (stamp, files)
        return files


def _media_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith((".md", ".txt")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
