"""Digests: what a file must hash to, and incremental hashers for them.

Two kinds exist in the wild: ``sha256`` (Ollama blobs, Hugging Face LFS files, ``--sha256``) and
``git-sha1`` (a git blob id, ``sha1(b"blob <len>\\0" + data)``, for small files on the Hub).
Digests arrive from the network and end up in file names, so :func:`parse` is strict.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from pullman.errors import UsageError

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SHA1_HEX = re.compile(r"[0-9a-f]{40}")
"""The only digest patterns: lowercase hex, full length (they become file names)."""
_HEX = {"sha256": SHA256_HEX, "git-sha1": SHA1_HEX}
_PREFIXED = re.compile(f"sha256:({SHA256_HEX.pattern})")


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        pattern = _HEX.get(self.algorithm)
        if pattern is None:
            raise ValueError(f"unknown digest algorithm {self.algorithm!r}")
        if not pattern.fullmatch(self.hex):
            raise ValueError(f"not a {self.algorithm} digest: {self.hex!r}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self, size: int) -> Hasher:
        """A fresh incremental hasher; ``size`` is needed up front for git blob ids."""
        if self.algorithm == "sha256":
            return hashlib.sha256()
        h = hashlib.sha1(usedforsecurity=False)
        h.update(b"blob %d\0" % size)
        return h


def sha256(hex_digest: str) -> Digest:
    return Digest("sha256", hex_digest)


def parse_prefixed(text: str) -> Digest | None:
    """``sha256:<64 hex>`` as registries write digests (strict: lowercase), else None."""
    m = _PREFIXED.fullmatch(text)
    return sha256(m.group(1)) if m else None


def from_blob_name(name: str) -> Digest | None:
    """The digest a content-addressed blob file is named by: ``<64 hex>`` (sha256) or
    ``<40 hex>`` (a git blob id, the Hub's small files), else None."""
    if SHA256_HEX.fullmatch(name):
        return sha256(name)
    if SHA1_HEX.fullmatch(name):
        return Digest("git-sha1", name)
    return None


def parse_sha256_option(text: str) -> Digest:
    """Parse a user's ``--sha256`` value: 64 hex digits, optionally prefixed ``sha256:``."""
    value = text.strip().lower().removeprefix("sha256:")
    if not SHA256_HEX.fullmatch(value):
        raise UsageError(
            f"--sha256 {text!r} is not a sha256 digest",
            why="a sha256 digest is 64 hexadecimal characters",
            hint="copy the digest from the model page or run `sha256sum` on a trusted copy",
        )
    return sha256(value)
