"""What a client may ask an OCI registry for: repository names, tags and digests. Pure, strict.

Every value here arrives in a URL and ends up choosing a file in a store, so each one is
checked against the distribution spec's grammar (and Ollama's, which is narrower) before any
path is built from it: a name or reference that does not match is a 4xx, never a lookup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pullman.core.digests import Digest, parse_prefixed

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
"""The distribution spec's repository name (lowercase, ``/``-separated components)."""
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
MAX_NAME = 255
_DIGEST_SHAPE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
BLOB_UNKNOWN = "BLOB_UNKNOWN"
NAME_UNKNOWN = "NAME_UNKNOWN"
NAME_INVALID = "NAME_INVALID"
TAG_INVALID = "TAG_INVALID"
DIGEST_INVALID = "DIGEST_INVALID"
MANIFEST_INVALID = "MANIFEST_INVALID"
UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
UNSUPPORTED = "UNSUPPORTED"
RANGE_INVALID = "RANGE_INVALID"


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Reference:
    """A manifest reference: a tag or a digest (exactly one is set)."""

    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        return self.tag if self.tag is not None else str(self.digest)


def parse_reference(text: str) -> Reference | None:
    """A tag or a ``sha256:<64 hex>`` digest, else None (a bad reference)."""
    if ":" in text:
        digest = parse_prefixed(text)
        return Reference(digest=digest) if digest is not None else None
    return Reference(tag=text) if TAG.fullmatch(text) else None


def digest_error(text: str) -> tuple[str, str]:
    """(code, message) for a digest that :func:`pullman.core.digests.parse_prefixed` refused:
    another algorithm is UNSUPPORTED, anything else DIGEST_INVALID."""
    if _DIGEST_SHAPE.fullmatch(text) and not text.startswith("sha256:"):
        return UNSUPPORTED, "only sha256 digests are served"
    return DIGEST_INVALID, "provided digest did not match the expected format"


def error_body(code: str, message: str, detail: object = None) -> bytes:
    """The registry's JSON error document (``{"errors": [{code, message, detail}]}``)."""
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


def split_name(name: str) -> tuple[str, str] | None:
    """An Ollama model's ``(namespace, model)`` from a repository name: ``library/qwen2.5``,
    or a single component (``qwen2.5``) meaning ``library``; deeper names are not Ollama's."""
    parts = name.split("/")
    if len(parts) == 1:
        return "library", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None
