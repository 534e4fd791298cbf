"""pullman's HTTP client: one connection per worker, and small metadata documents.

Everything else talks HTTP through :class:`Connection` (one HTTP/1.1 connection, owned by one
worker, dropped and reopened on recycle) or :func:`fetch` (small metadata documents with a size
cap). Client exceptions become :mod:`pullman.errors` through :mod:`pullman.net.errors`.

Proxies come from :class:`~pullman.core.proxies.Proxies` (``[network] proxy``, then the
environment); the transport is :mod:`pullman.net.transport`, TLS :mod:`pullman.net.tls`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx2

from pullman import __version__
from pullman.core.proxies import Proxies
from pullman.core.redirects import (
    MAX_REDIRECTS,
    REDIRECTS,
    next_hop,
    too_many_redirects,
    without_credentials,
)
from pullman.core.urls import Origin, origin, redact, same_origin
from pullman.errors import PullmanError, RemoteError
from pullman.net.errors import deadline_error, translated
from pullman.net.reach import REACH
from pullman.net.tls import context_for
from pullman.net.transport import OneConnectionTransport

USER_AGENT = f"pullman/{__version__}"
CONNECT_TIMEOUT = 20.0
DIRECT = Proxies()
"""No proxy at all (the default for callers that were given none)."""

Headers = Mapping[str, str]


# ---------------------------------------------------------------------------- responses


@dataclass
class Response:
    """What pullman needs of a streamed response; the client's own type never leaks out."""

    status: int
    headers: Headers
    url: str
    _raw: httpx2.Response

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, untouched (no decoding), with errors translated."""
        with translated(self.url):
            async for chunk in self._raw.aiter_raw():
                yield chunk

    async def read(self, limit: int, *, truncate: bool = False) -> bytes:
        """The whole body, refusing more than ``limit`` bytes (``truncate``: its first
        ``limit`` bytes, the rest never read: a header's prefix)."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if truncate and len(body) >= limit:
                return bytes(body[:limit])
            if len(body) > limit:
                raise RemoteError(
                    f"response from {redact(self.url)} is larger than {limit} bytes",
                    why="a metadata document this large is not plausible",
                    hint="check the server address; this looks like a broken or hostile server",
                )
        return bytes(body)


def _timeouts(read_timeout: float) -> httpx2.Timeout:
    return httpx2.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout, write=20.0, pool=None)


def _client(url: str, insecure: bool, proxies: Proxies, read_timeout: float) -> httpx2.AsyncClient:
    proxy = proxies.for_url(url)
    transport = OneConnectionTransport(context_for(url, insecure), proxy)
    return httpx2.AsyncClient(transport=transport, timeout=_timeouts(read_timeout), trust_env=False)


class Connection:
    """One HTTP/1.1 connection that one worker owns. ``recycle()`` drops it for a fresh one."""

    def __init__(
        self, *, insecure: bool = False, read_timeout: float = 60.0, proxies: Proxies = DIRECT
    ) -> None:
        self._insecure = insecure
        self._read_timeout = read_timeout
        self._proxies = proxies
        self._client: httpx2.AsyncClient | None = None
        self._origin: Origin | None = None
        self.opened = 0

    @asynccontextmanager
    async def stream(self, url: str, headers: Headers) -> AsyncIterator[Response]:
        """GET ``url`` without following redirects; the body is read by the caller."""
        client = await self._client_for(url)
        request = client.build_request("GET", url, headers=_with_defaults(headers))
        try:
            with translated(url, proxy=self._proxies.for_url(url)):
                raw = await client.send(request, stream=True, follow_redirects=False)
        except PullmanError:  # a client error, translated: this connection is done for
            await self.recycle()
            raise
        REACH.mark(url)
        try:
            yield Response(raw.status_code, raw.headers, url, raw)
        finally:
            await raw.aclose()

    async def recycle(self) -> None:
        """Drop the TCP connection; the next request opens a new one."""
        client, self._client, self._origin = self._client, None, None
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        await self.recycle()

    async def _client_for(self, url: str) -> httpx2.AsyncClient:
        wanted = origin(url)
        if self._client is not None and self._origin != wanted:
            await self.recycle()
        if self._client is None:
            self._client = _client(url, self._insecure, self._proxies, self._read_timeout)
            self._origin = wanted
            self.opened += 1
        return self._client


def _with_defaults(headers: Headers) -> dict[str, str]:
    merged = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    merged.update(headers)
    return merged


# ---------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class Document:
    status: int
    headers: Headers
    body: bytes
    url: str


async def fetch(
    url: str,
    headers: Headers | None = None,
    *,
    limit: int = 8 << 20,
    insecure: bool = False,
    method: str = "GET",
    deadline: float = 60.0,
    proxies: Proxies = DIRECT,
    follow: bool = False,
    truncate: bool = False,
) -> Document:
    """Fetch a small document (a manifest, a JSON listing); with ``truncate``, the first
    ``limit`` bytes of any body (a file's header, whether or not the server honours Range).

    The whole answer must arrive within ``deadline`` seconds: a server that never answers, or
    drips its answer a byte at a time, is cut off (a socket timeout alone would not be). With
    ``follow``, redirects are followed by hand (:mod:`pullman.core.redirects`): ``headers`` that
    carry credentials go to ``url``'s own origin only.
    """
    try:
        with anyio.fail_after(deadline):
            hops = MAX_REDIRECTS if follow else 0
            cap = (limit, truncate)
            return await _follow(url, headers or {}, hops, cap, insecure, method, proxies)
    except TimeoutError:
        raise deadline_error(url, deadline) from None


async def _follow(
    url: str,
    headers: Headers,
    hops: int,
    limit: tuple[int, bool],
    insecure: bool,
    method: str,
    proxies: Proxies,
) -> Document:
    current = url
    for _ in range(hops + 1):
        sent = headers if same_origin(current, url) else without_credentials(headers)
        doc = await _fetch(current, sent, limit, insecure, method, proxies)
        if not (hops and doc.status in REDIRECTS):
            return doc
        current = next_hop(current, doc.headers.get("location"), insecure=insecure)
    raise too_many_redirects(url)


async def _fetch(
    url: str,
    headers: Headers,
    limit: tuple[int, bool],
    insecure: bool,
    method: str,
    proxies: Proxies,
) -> Document:
    async with _client(url, insecure, proxies, 60.0) as client:
        request = client.build_request(method, url, headers=_with_defaults(headers))
        with translated(url, proxy=proxies.for_url(url)):
            raw = await client.send(request, stream=True, follow_redirects=False)
        REACH.mark(url)
        try:
            response = Response(raw.status_code, raw.headers, url, raw)
            most, truncate = limit
            body = b"" if method == "HEAD" else await response.read(most, truncate=truncate)
            return Document(raw.status_code, raw.headers, body, url)
        finally:
            await raw.aclose()
