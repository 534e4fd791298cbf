"""Mirrors: other machines (``pullman serve``, a registry) asked first for a ref's files. Pure.

``--mirror URL`` (or ``[sources] mirrors``) mirrors Ollama's default registry (its models under
plain names, ``library/qwen2.5:7b``) and the Hugging Face Hub (``HF_ENDPOINT``-style, as
``pullman serve`` answers both on one port); ``--mirror HOST=URL`` mirrors the registry HOST
(``hf.co=…``, ``registry.lan:5000=…``), its models under plain names there too. A mirror is
trusted for metadata (manifests, listings); every byte is still verified against it, and a miss,
a failure or a bad digest falls back to the upstream. A mirror URL carries no credentials
(``[sources] mirror_token_file`` holds a token for mirrors that want one).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pullman.core.refs import DEFAULT_HOST, HfRef, OllamaRef, Ref
from pullman.errors import UsageError


@dataclass(frozen=True)
class Mirror:
    base: str
    """``scheme://host[:port][/path]``, no trailing slash."""
    host: str | None = None
    """The registry it mirrors; None: Ollama's default registry and the Hub."""


def parse_mirror(text: str) -> Mirror:
    """``URL`` or ``HOST=URL``, checked."""
    host, sep, url = text.strip().partition("=")
    if not sep or "://" in host:
        host, url = "", text.strip()
    parts = urlsplit(url)
    hint = "write --mirror http://box:11435 (or HOST=http://box:11435 for another registry)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--mirror {text!r} is not an http(s) URL", hint=hint)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            f"--mirror {parts.scheme}://…@{parts.hostname}: a mirror URL holds no credentials "
            "or query",
            hint="a token for a mirror goes in [sources] mirror_token_file",
        )
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    return Mirror(base, host.lower() or None)


def mirrors_for(mirrors: tuple[str, ...], ref: Ref) -> list[str]:
    """The mirror bases to ask for ``ref``, in order (none for a URL)."""
    return [m.base for m in map(parse_mirror, mirrors) if _serves(m, ref)]


def _serves(mirror: Mirror, ref: Ref) -> bool:
    if isinstance(ref, HfRef):
        return mirror.host is None
    if isinstance(ref, OllamaRef):
        return (mirror.host or DEFAULT_HOST) == ref.host.lower()
    return False
