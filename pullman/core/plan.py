"""Frozen values: what a source found (a :class:`Release`), and where a layout puts it (a
:class:`Plan`: the files to fetch, where each lands, and what is written last).

A source says *what* there is to download: files with their URLs, sizes, digests and logical
paths, plus what identifies them in their own world (an Ollama manifest, a Hub commit). A layout
says *where* it goes: it turns a release into a plan for one store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

from pullman.core.digests import Digest


class Store(Enum):
    """The kinds of destination a plan lands in (each has a layout, :mod:`pullman.layouts`)."""

    PLAIN = "plain"
    """Plain files in a directory of the user's choosing (URLs, ``--local-dir``)."""
    OLLAMA = "ollama"
    """The Ollama models directory: ``blobs/`` and ``manifests/``."""
    HF_CACHE = "hf"
    """The Hugging Face hub cache: ``blobs/``, ``snapshots/<commit>/``, ``refs/``."""
    LMSTUDIO = "lmstudio"
    """LM Studio's models directory: ``<publisher>/<repo>/<file>.gguf``."""

    @property
    def index_source(self) -> IndexSource:
        """What the index calls models of this store (its ``source`` column)."""
        return _INDEX_SOURCES[self]


IndexSource = Literal["ollama", "hf", "url", "lmstudio"]
_INDEX_SOURCES: dict[Store, IndexSource] = {
    Store.PLAIN: "url",
    Store.OLLAMA: "ollama",
    Store.HF_CACHE: "hf",
    Store.LMSTUDIO: "lmstudio",
}


# ---------------------------------------------------------------------- what a source found


@dataclass(frozen=True)
class RemoteFile:
    """One file a source offers.

    ``path`` is the file's place in its release (a repo path such as ``onnx/model.onnx``, a
    file name), already checked to stay inside it. ``key`` names its staging files when the
    source knows a stable identity (a digest); else the layout derives one from URL and path.
    ``auth`` headers go to ``url``'s own origin only (never to a CDN it redirects to).
    """

    url: str
    path: str
    name: str
    size: int | None = None
    digest: Digest | None = None
    key: str | None = None
    auth: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    auth_to: tuple[str, ...] = ()
    """Other origins (as URLs) the source trusts with ``auth``, such as every Hub host."""
    insecure: bool = False
    role: str = ""
    """What the file is to its model, where the source says: an Ollama layer's kind
    (``model``, ``projector``, ``template``, ...)."""

    def spec(
        self,
        dest: Path,
        key: str,
        *,
        name: str | None = None,
        content_addressed: bool = False,
        final: Path | None = None,
    ) -> FileSpec:
        """This file, to be fetched to ``dest`` (staged under ``key``)."""
        return FileSpec(
            url=self.url,
            dest=dest,
            key=key,
            name=name or self.name,
            size=self.size,
            digest=self.digest,
            auth=self.auth,
            auth_to=self.auth_to,
            insecure=self.insecure,
            content_addressed=content_addressed,
            final=final,
        )


@dataclass(frozen=True)
class OllamaModel:
    """An Ollama registry model: its name's four parts and the manifest's exact bytes."""

    parts: tuple[str, str, str, str]
    """``(host, namespace, model, tag)``, as they appear under ``manifests/``."""
    manifest: bytes


@dataclass(frozen=True)
class HubRepo:
    """A Hugging Face repo at one commit."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    access: str | None = None
    """``public``, ``private`` or ``gated``, as the Hub said (None: not asked). Recorded in
    the cache so that ``pullman serve`` shares only public repos unless told otherwise."""


@dataclass(frozen=True)
class Release:
    """Everything a source found for one ref; at most one of ``model`` and ``repo`` is set."""

    ref: str
    title: str
    display: str
    files: tuple[RemoteFile, ...]
    model: OllamaModel | None = None
    repo: HubRepo | None = None

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)


# ---------------------------------------------------------------------- where it lands


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch.

    ``url`` may redirect (a registry blob URL to a CDN); ``auth`` headers are sent to ``url``'s
    own origin only, never to a host it redirects to, and are never shown (``repr=False``).
    ``size`` and ``digest``, when known, come from the source and are checked against what the
    server serves. ``key`` names the staging files, so the same blob resumes whichever command
    asked for it. A ``content_addressed`` file is named by its digest: one that is already there
    with the right size is the right file (``--verify-existing`` re-hashes it anyway).
    """

    url: str
    dest: Path
    key: str
    name: str
    size: int | None = None
    digest: Digest | None = None
    auth: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    auth_to: tuple[str, ...] = ()
    """Other origins (as URLs) trusted with ``auth``, such as every Hub host; never a CDN."""
    insecure: bool = False
    content_addressed: bool = False
    final: Path | None = None
    """Where the file ends up once the plan's finals ran, when that is not ``dest`` (a blob
    held in staging); a content-addressed file found there is the file, too."""

    @property
    def places(self) -> tuple[Path, ...]:
        """Where a finished copy of this file may be found."""
        return (self.dest,) if self.final is None else (self.dest, self.final)


@dataclass(frozen=True)
class WriteFile:
    """A small file (a manifest, a ref) written atomically once every blob has verified."""

    path: Path
    data: bytes


@dataclass(frozen=True)
class Symlink:
    """A relative symlink (a Hugging Face snapshot entry) created atomically."""

    path: Path
    target: str


@dataclass(frozen=True)
class Move:
    """A verified file held back in the staging area, moved into place (``path``) at the end.

    Ollama's server prunes unreferenced blobs at start: a model's blobs wait beside its partial
    files until every blob verified, then move into ``blobs/`` just before the manifest. Another
    pullman may have moved the same blob already: a present ``path`` of ``size`` bytes is done.
    """

    source: Path
    path: Path
    size: int


@dataclass(frozen=True)
class Touch:
    """A file that must still be there (``size`` bytes), made fresh (mtime now) at the end."""

    path: Path
    size: int


@dataclass(frozen=True)
class Stamped:
    """A small text file: ``head``, then the time it is written (huggingface_hub's
    ``--local-dir`` download metadata, whose timestamp must not be older than the file)."""

    path: Path
    head: bytes


Final = WriteFile | Symlink | Move | Touch | Stamped


@dataclass(frozen=True)
class Plan:
    """Everything one ref needs: its files, the staging area, and what is written last.

    Every path (``files[].dest``, ``finals[].path``) must lie inside ``root``: a source builds
    them from names and digests that came from the network, and the runner refuses a plan that
    would write anywhere else.
    """

    ref: str
    files: tuple[FileSpec, ...]
    root: Path
    staging: Path
    title: str = ""
    finals: tuple[Final, ...] = ()
    display: str = ""
    store: Store = Store.PLAIN
    """Which layout the files land in."""
    location: tuple[str, Path] | None = None
    """What to show the user as where the result is: ``("manifest", path)``."""
    unit: str = "files"
    """What the store calls its files (``blobs`` in Ollama's store)."""
    itemized: bool = False
    """Report each file on its own (plain files), rather than the store entry."""
    early: tuple[Path, ...] = ()
    """Directories made before any byte is fetched (a reader of the store then sees a repo
    in progress, not a damaged one)."""
    home: Path | None = None
    """Where ``staging`` may lie when that is outside ``root`` (LM Studio's home: partial
    files stay out of its models tree)."""
    mirror: str | None = None
    """The mirror the files come from (``--mirror``); on a failure the upstream is asked."""

    @property
    def staging_root(self) -> Path:
        return self.home or self.root

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)
