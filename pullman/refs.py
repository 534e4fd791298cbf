"""Parse refs: what the user typed, turned into a typed value. Pure.

- plain URLs: ``https://host/path/file.gguf`` (``http://`` too);
- Ollama names and Hugging Face refs are parsed by their own sources' rules (added with them).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pullman.errors import RefError


@dataclass(frozen=True)
class UrlRef:
    url: str

    @property
    def filename(self) -> str:
        """A safe file name from the URL's last path segment."""
        return safe_filename(unquote(urlsplit(self.url).path.rsplit("/", 1)[-1]))

    def __str__(self) -> str:
        return self.url


Ref = UrlRef


def safe_filename(name: str, fallback: str = "download") -> str:
    """A single path component: no separators, no NUL, not ``.``/``..``, at most 255 bytes."""
    cleaned = "".join("_" if ch in "/\\\0" or ord(ch) < 32 else ch for ch in name).strip()
    cleaned = cleaned.lstrip(".") if cleaned in (".", "..") else cleaned
    if not cleaned or cleaned in (".", ".."):
        return fallback
    while len(cleaned.encode()) > 255:
        cleaned = cleaned[:-1]
    return cleaned


def parse_url(text: str) -> UrlRef:
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise RefError(f"{text!r} is not an http(s) URL")
    if not parts.hostname:
        raise RefError(f"{text!r} has no host", hint="write a full URL such as https://host/file")
    try:
        _ = parts.port
    except ValueError:
        raise RefError(f"{text!r} has an invalid port") from None
    if any(ch.isspace() for ch in text.strip()):
        raise RefError(f"{text!r} contains spaces", hint="percent-encode them as %20")
    return UrlRef(text.strip())


def parse_ref(text: str) -> Ref:
    """Parse what the user typed into a ref, or raise :class:`RefError` saying why not."""
    stripped = text.strip()
    if not stripped:
        raise RefError("empty ref", hint="give a URL, e.g. https://host/model.gguf")
    if "://" in stripped and stripped.split("://", 1)[0].lower() in ("http", "https"):
        return parse_url(stripped)
    raise RefError(
        f"{text!r} is not something pullman can fetch",
        why="expected an http(s) URL",
        hint="give a full URL, e.g. https://host/path/model.gguf",
    )
