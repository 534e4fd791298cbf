"""Frozen values: what one ref needs downloaded, where each file lands, and what is written last."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pullman.digests import Digest


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
    insecure: bool = False
    content_addressed: bool = False


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


Final = WriteFile | Symlink


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
    store: str = "plain"
    """Which layout the files land in: ``plain``, ``ollama`` or ``hf``."""

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)
