"""pullman's HTTP client: one connection per worker, and small metadata documents.

Everything else talks HTTP through :class:`Connection` (one HTTP/1.1 connection, owned by one
worker, dropped and reopened on recycle) or :func:`fetch` (small metadata documents with a size
cap). Client exceptions become :mod:`pullman.errors` through :mod:`pullman.net.errors`.

Proxies come from :class:`~pullman.core.proxies.Proxies` (``[network] proxy``, then the
environment); the transport is :mod:`pullman.net.transport`, TLS :mod:`pullman.net.tls`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
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
from pullman.net.bulk import BulkConnection, Head
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


OnBytes = Callable[[int], None]
"""``on_bytes(n)``: ``n`` more bytes of a body landed in the caller's block."""


class Response:
    """What pullman needs of a streamed response; the clients' own types never leak out."""

    def __init__(self, status: int, headers: Headers, url: str) -> None:
        self.status = status
        self.headers = headers
        self.url = url

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, untouched (no decoding), with errors translated."""
        raise NotImplementedError

    async def fill(self, sink: memoryview, on_bytes: OnBytes) -> int:
        """Put body bytes into ``sink`` until it is full or the body ends, calling
        ``on_bytes(n)`` as they land (so a fill that is cancelled part-way still told what it
        put there); the bytes put there, 0 once the body has ended."""
        raise NotImplementedError

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


class _HttpxResponse(Response):
    def __init__(self, raw: httpx2.Response, url: str) -> None:
        super().__init__(raw.status_code, raw.headers, url)
        self._raw = raw
        self._stream: AsyncGenerator[bytes, None] | None = None
        self._left = memoryview(b"")

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        with translated(self.url):
            async for chunk in self._raw.aiter_raw():
                yield chunk

    async def fill(self, sink: memoryview, on_bytes: OnBytes) -> int:
        if self._stream is None:
            self._stream = self.chunks()
        if not len(sink):  # read to the body's end, so the connection can be kept
            if not self._left and (chunk := await anext(self._stream, None)) is not None:
                self._left = memoryview(chunk)
            return 0
        n = 0
        while n < len(sink):
            if not self._left:
                chunk = await anext(self._stream, None)
                if chunk is None:
                    break
                self._left = memoryview(chunk)
            k = min(len(sink) - n, len(self._left))
            sink[n : n + k] = self._left[:k]
            self._left = self._left[k:]
            n += k
            on_bytes(k)
        return n

    async def aclose(self) -> None:
        """End the body's iterator now (a caller may stop reading before the body's end: a
        suspended generator left to the collector is finalized at some later, arbitrary
        point, on whatever the loop is doing then)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()


class _BulkResponse(Response):
    def __init__(self, head: Head, url: str, conn: BulkConnection, timeout: float) -> None:
        super().__init__(head.status, head.headers, url)
        self._conn = conn
        self._timeout = timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        block = bytearray(256 << 10)
        while n := await self.fill(memoryview(block), _ignore):
            yield bytes(block[:n])

    async def fill(self, sink: memoryview, on_bytes: OnBytes) -> int:
        return await self._conn.fill(sink, on_bytes, self._timeout)


def _ignore(_: int) -> None:
    pass


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
        self._bulk: BulkConnection | None = None
        self._origin: Origin | None = None
        self.opened = 0

    @asynccontextmanager
    async def stream(
        self, url: str, headers: Headers, *, bulk: bool = False
    ) -> AsyncIterator[Response]:
        """GET ``url`` without following redirects; the body is read by the caller.

        ``bulk``: a piece of a download, read with :meth:`Response.fill`; on a direct
        connection it goes through :mod:`pullman.net.bulk` (no copies in Python)."""
        if bulk and self._proxies.for_url(url) is None and url.startswith(("http:", "https:")):
            async with self._bulk_stream(url, headers) as response:
                yield response
            return
        client = await self._client_for(url)
        request = client.build_request("GET", url, headers=_with_defaults(headers))
        try:
            with translated(url, proxy=self._proxies.for_url(url)):
                raw = await client.send(request, stream=True, follow_redirects=False)
        except PullmanError:  # a client error, translated: this connection is done for
            await self.recycle()
            raise
        REACH.mark(url)
        response = _HttpxResponse(raw, url)
        try:
            yield response
        finally:
            await response.aclose()
            await raw.aclose()

    @asynccontextmanager
    async def _bulk_stream(self, url: str, headers: Headers) -> AsyncIterator[Response]:
        wanted = origin(url)
        if self._bulk is not None and (self._origin != wanted or not self._bulk.reusable):
            await self.recycle()
        if self._client is not None:
            await self.recycle()
        if self._bulk is None:
            scheme, host, port = wanted
            tls = context_for(url, self._insecure) if scheme == "https" else None
            self._bulk, self._origin = BulkConnection(url, host, port, tls), wanted
            self.opened += 1
        conn = self._bulk
        try:
            head = await conn.get(url, _with_defaults(headers), self._read_timeout)
            REACH.mark(url)
            yield _BulkResponse(head, url, conn, self._read_timeout)
        finally:
            if not conn.reusable:
                await self.recycle()

    async def recycle(self) -> None:
        """Drop the TCP connection; the next request opens a new one."""
        client, self._client, self._origin = self._client, None, None
        bulk, self._bulk = self._bulk, None
        if bulk is not None:
            bulk.close()
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
            response = _HttpxResponse(raw, url)
            most, truncate = limit
            body = b"" if method == "HEAD" else await response.read(most, truncate=truncate)
            return Document(raw.status_code, raw.headers, body, url)
        finally:
            await raw.aclose()
