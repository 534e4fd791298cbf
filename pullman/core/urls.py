"""URLs and origins: who may receive credentials, what may be logged. Pure."""

from __future__ import annotations

import ipaddress
from urllib.parse import urljoin, urlsplit

Origin = tuple[str, str, int]


def origin(url: str) -> Origin:
    """(scheme, host, port) of a URL: credentials are only ever sent within one origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


def host_of(url: str) -> str:
    """The host name of a URL (for messages), or the URL itself when it has none."""
    return urlsplit(url).hostname or url


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def join_url(base: str, location: str) -> str:
    return urljoin(base, location)


def redact(url: str) -> str:
    """A URL fit for logs: no credentials and no query string (presigned URLs carry them)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return shown + ("?…" if parts.query else "")


def shown_ref(ref: str) -> str:
    """A model reference fit for logs: a URL :func:`redact`-ed, a model name as it is."""
    return redact(ref) if ref.lower().startswith(("http://", "https://")) else ref


def request_target(url: str) -> str:
    """The request line's target for ``url``: its path and query (``/`` when it has none)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def host_header(url: str) -> str:
    """The ``Host`` header for ``url``: its host (bracketed if IPv6) and any explicit port,
    never its credentials."""
    return urlsplit(url).netloc.rpartition("@")[2]
