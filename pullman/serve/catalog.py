"""The seam between what ``pullman serve`` answers and where the bytes come from.

Handlers (:mod:`pullman.serve.registry`, :mod:`pullman.serve.hub`) never open a file: they ask
a :class:`Catalog` what to serve and get back values: a :class:`StoredManifest` (its exact
bytes), a :class:`Content` (a blob or a repo file), a :class:`RepoView` (a repo at one
commit). A :class:`Content` is either a complete file on disk (``path``: sent with
``sendfile``) or bytes still arriving (``read``: an async iterator over a span, for a
pull-through that streams a download as it lands). Names, tags, digests and paths have been
validated by the handler (:mod:`pullman.core.oci_names`, :mod:`pullman.core.hub_entries`)
before a catalog sees them.

Catalogs stack: a pull-through catalog wraps the local one
(:class:`pullman.serve.local.LocalCatalog`) and asks it first. Every method returns None for
"not here"; none raises for a miss.

Plugging one in: build it around the local catalog and hand it to
:func:`pullman.serve.app.run` (or :func:`~pullman.serve.app.serve` in a task group of your
own); ``run(..., alongside=[...])`` keeps the tasks that feed it (downloads) in the server's
task group, so they stop with it. A ``Content`` with ``read`` is answered with its ``size`` as
``Content-Length`` (``Content-Range`` for a Range request) and the bytes the reader yields for
``[start, end)``; if the reader raises or yields too few bytes, the connection is aborted, so
the client sees a short body and retries (it verifies the digest itself). For the HF side,
``repo_access`` / ``revision`` decide what exists (a wrapper may answer for repos not in the
cache); ``hf_file`` gets back the same ``RepoView`` its ``revision`` returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from pullman.core.digests import Digest

Reader = Callable[[int, int], AsyncIterator[bytes]]
"""``read(start, end)``: the bytes ``[start, end)`` in chunks, waiting for them if they are
still arriving; raising (any exception) fails the response, which is then cut short."""


@dataclass(frozen=True)
class Content:
    """Bytes to serve: their size, digest, media type, and where to read them."""

    size: int
    digest: Digest
    """sha256 for OCI blobs and LFS files, the git blob sha1 for the Hub's small files."""
    media_type: str = "application/octet-stream"
    path: Path | None = None
    """A complete, verified file (not a symlink); served with ``sendfile``."""
    read: Reader | None = field(default=None, compare=False)
    """Set instead of ``path`` for bytes still arriving."""

    def __post_init__(self) -> None:
        if (self.path is None) == (self.read is None):
            raise ValueError("a Content has either a path or a reader, not both or neither")

    @property
    def etag(self) -> str:
        """The entity tag a client sees (unquoted): the digest's hex, as the Hub sends it."""
        return self.digest.hex


@dataclass(frozen=True)
class StoredManifest:
    """A manifest exactly as stored: its bytes, their media type and digest."""

    data: bytes
    media_type: str
    digest: Digest
    """sha256 of ``data``."""


@dataclass(frozen=True)
class RepoFile:
    """One file of a Hugging Face repo at one commit."""

    path: str
    size: int
    etag: Digest
    """sha256 for LFS files, the git blob sha1 for small ones (how the cache names blobs)."""

    @property
    def lfs(self) -> bool:
        return self.etag.algorithm == "sha256"


@dataclass(frozen=True)
class RepoView:
    """A Hugging Face repo at one commit, as this box has it."""

    kind: str
    """``model`` or ``dataset``."""
    repo_id: str
    commit: str
    files: tuple[RepoFile, ...]
    public: bool
    """Recorded as neither private nor gated when it was downloaded; False when unknown."""
    access: str = "unknown"
    """``public``, ``private``, ``gated`` or ``unknown`` (no record)."""
    refs: tuple[str, ...] = ()
    """The branch names that point at this commit here."""

    def file(self, path: str) -> RepoFile | None:
        return self._by_path.get(path)

    @cached_property
    def _by_path(self) -> dict[str, RepoFile]:
        return {f.path: f for f in self.files}


class Catalog(Protocol):
    """What ``pullman serve`` can answer. Every lookup is async (a pull-through may wait)."""

    # ---- OCI (Ollama models); ``name`` is a validated repository name (``library/qwen2.5``)
    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        """A manifest by tag, or by ``sha256:<hex>`` digest."""
        ...

    async def blob(self, name: str, digest: Digest) -> Content | None:
        """A blob that a manifest of ``name`` references."""
        ...

    async def tags(self, name: str) -> list[str] | None:
        """The tags of ``name``; None when there is no such repository."""
        ...

    async def repositories(self) -> list[str]: ...

    # ---- Hugging Face; ``kind`` is ``model`` or ``dataset``, ``repo_id`` validated
    async def repo_access(self, kind: str, repo_id: str) -> str | None:
        """``public``, ``private``, ``gated`` or ``unknown`` (no record); None: no such repo."""
        ...

    async def revision(self, kind: str, repo_id: str, revision: str) -> RepoView | None:
        """The repo at a branch name or a full commit sha; None: no such revision here."""
        ...

    async def hf_file(self, view: RepoView, path: str) -> Content | None:
        """A file of ``view`` (None: not in that commit, or not readable here)."""
        ...
