"""Following redirects by hand: where the next hop goes, and who may see credentials. Pure.

Credentials (``Authorization``, ``Cookie``) are sent to the first URL's own origin only, never
to a host it redirects to (a CDN, a mirror). A redirect from https to plain http is refused
unless the user said ``--insecure`` or the target is loopback.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from pullman.core.urls import is_loopback, join_url, redact
from pullman.errors import ProtocolViolation, RemoteError

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


def without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIALS}


def next_hop(url: str, location: str | None, *, insecure: bool) -> str:
    """The URL a redirect from ``url`` to ``location`` leads to, if it may be followed."""
    if not location:
        raise ProtocolViolation(f"{redact(url)} redirected without a Location")
    nxt = join_url(url, location)
    scheme = urlsplit(nxt).scheme.lower()
    if scheme not in ("http", "https"):
        raise RemoteError(f"{redact(url)} redirected to an unsupported URL scheme")
    downgrade = urlsplit(url).scheme.lower() == "https" and scheme == "http"
    if downgrade and not (insecure or is_loopback(nxt)):
        raise RemoteError(
            f"{redact(url)} redirected from https to plain http",
            why="following it would send the download over an unencrypted connection",
            hint="pass --insecure if you trust this network",
        )
    return nxt


def too_many_redirects(url: str) -> RemoteError:
    return RemoteError(
        f"too many redirects fetching {redact(url)}",
        hint="the server is misconfigured; report it to its operator",
    )
