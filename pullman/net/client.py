"""pullman's HTTP client: one connection per worker, and small metadata documents.

Everything else talks HTTP through :class:`Connection` (one HTTP/1.1 connection, owned by one
worker, dropped and reopened on recycle) or :func:`fetch` (small metadata documents with a size
cap). Client exceptions become :mod:`pullman.errors` through :mod:`pullman.net.errors`.

Bulk data goes over HTTP/1.1 on purpose: HTTP/2 multiplexes every range onto one TCP connection,
which is exactly what a per-connection CDN throttle punishes.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore2
import httpx2

from pullman import __version__
from pullman.core.urls import Origin, is_loopback, origin, redact
from pullman.errors import PullmanError, RemoteError
from pullman.net.errors import deadline_error, translated

USER_AGENT = f"pullman/{__version__}"
READ_SIZE = 1 << 20
"""Bytes asked of the socket per read; httpcore's default of 64 KiB costs CPU at high rates."""

Headers = Mapping[str, str]


# ---------------------------------------------------------------------------- TLS


_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def _ssl_context(url: str, insecure: bool) -> ssl.SSLContext:
    """Verification is always on, except for loopback hosts or an explicit ``--insecure``.

    Contexts are built once per process: loading the CA store costs tens of milliseconds, and
    connections are opened often (every recycle).
    """
    verify = not (insecure or is_loopback(url))
    context = _CONTEXTS.get(verify)
    if context is None:
        context = httpx2.create_ssl_context(verify=verify)
        _CONTEXTS[verify] = context
    return context


# ---------------------------------------------------------------------------- big reads


class _BigReadStream(httpcore2.AsyncNetworkStream):
    """Asks the socket for large reads instead of httpcore's 64 KiB."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_SIZE), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return _BigReadStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BigReadBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _BigReadStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _OneConnectionTransport(httpx2.AsyncHTTPTransport):
    """An HTTP/1.1 transport with a pool of exactly one connection and large socket reads."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, http1=True, http2=False, trust_env=False)
        # Replace the pool httpx built with one that has our read size and a single connection.
        # (httpx's transport has no public hook for the network backend.)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=1,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            network_backend=_BigReadBackend(),
        )


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

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes."""
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if len(body) > limit:
                raise RemoteError(
                    f"response from {redact(self.url)} is larger than {limit} bytes",
                    why="a metadata document this large is not plausible",
                    hint="check the server address; this looks like a broken or hostile server",
                )
        return bytes(body)


def _timeouts(read_timeout: float) -> httpx2.Timeout:
    return httpx2.Timeout(connect=20.0, read=read_timeout, write=20.0, pool=None)


class Connection:
    """One HTTP/1.1 connection that one worker owns. ``recycle()`` drops it for a fresh one."""

    def __init__(self, *, insecure: bool = False, read_timeout: float = 60.0) -> None:
        self._insecure = insecure
        self._read_timeout = read_timeout
        self._client: httpx2.AsyncClient | None = None
        self._origin: Origin | None = None
        self.opened = 0

    @asynccontextmanager
    async def stream(self, url: str, headers: Headers) -> AsyncIterator[Response]:
        """GET ``url`` without following redirects; the body is read by the caller."""
        client = await self._client_for(url)
        request = client.build_request("GET", url, headers=_with_defaults(headers))
        try:
            with translated(url):
                raw = await client.send(request, stream=True, follow_redirects=False)
        except PullmanError:  # a client error, translated: this connection is done for
            await self.recycle()
            raise
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
            transport = _OneConnectionTransport(_ssl_context(url, self._insecure))
            self._client = httpx2.AsyncClient(
                transport=transport, timeout=_timeouts(self._read_timeout), trust_env=False
            )
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
) -> Document:
    """Fetch a small document (a manifest, a JSON listing) without following redirects.

    The whole answer must arrive within ``deadline`` seconds: a server that never answers, or
    drips its answer a byte at a time, is cut off (a socket timeout alone would not be).
    """
    try:
        with anyio.fail_after(deadline):
            return await _fetch(url, headers, limit=limit, insecure=insecure, method=method)
    except TimeoutError:
        raise deadline_error(url, deadline) from None


async def _fetch(
    url: str, headers: Headers | None, *, limit: int, insecure: bool, method: str
) -> Document:
    async with httpx2.AsyncClient(
        verify=_ssl_context(url, insecure), timeout=_timeouts(60.0), trust_env=False
    ) as client:
        request = client.build_request(method, url, headers=_with_defaults(headers or {}))
        with translated(url):
            raw = await client.send(request, stream=True, follow_redirects=False)
        try:
            response = Response(raw.status_code, raw.headers, url, raw)
            body = b"" if method == "HEAD" else await response.read(limit)
            return Document(raw.status_code, raw.headers, body, url)
        finally:
            await raw.aclose()
