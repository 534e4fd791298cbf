"""Frozen values: what one ref needs downloaded, and where each file lands."""

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
    asked for it.
    """

    url: str
    dest: Path
    key: str
    name: str
    size: int | None = None
    digest: Digest | None = None
    auth: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    insecure: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything one ref needs: its files, and a note on what they are."""

    ref: str
    files: tuple[FileSpec, ...]
    title: str = ""

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)
