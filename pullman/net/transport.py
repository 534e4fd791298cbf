"""The transport under every pullman connection: HTTP/1.1, a pool of exactly one connection,
large socket reads, and, when the URL calls for one, a proxy (HTTP ``CONNECT`` or SOCKS).

Bulk data goes over HTTP/1.1 on purpose: HTTP/2 multiplexes every range onto one TCP connection,
which is exactly what a per-connection CDN throttle punishes. Through a proxy each range still
has its own TCP connection (its own tunnel).
"""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from pullman.core.proxies import shown
from pullman.errors import UsageError

READ_SIZE = 1 << 20
"""Bytes asked of the socket per read; httpcore's default of 64 KiB costs CPU at high rates."""
KEEPALIVE = 30.0


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


class OneConnectionTransport(httpx2.AsyncHTTPTransport):
    """An HTTP/1.1 transport with a pool of exactly one connection and large socket reads,
    direct or through ``proxy``."""

    def __init__(self, ssl_context: ssl.SSLContext, proxy: str | None = None) -> None:
        super().__init__(verify=ssl_context, http1=True, http2=False, trust_env=False)
        # Replace the pool httpx built with one that has our read size and a single connection.
        # (httpx's transport has no public hook for the network backend.)
        self._pool = _pool(ssl_context, proxy)


def _pool(ssl_context: ssl.SSLContext, proxy: str | None) -> httpcore2.AsyncConnectionPool:
    common: dict[str, Any] = {
        "ssl_context": ssl_context,
        "max_connections": 1,
        "max_keepalive_connections": 1,
        "keepalive_expiry": KEEPALIVE,
        "http1": True,
        "http2": False,
        "network_backend": _BigReadBackend(),
    }
    if proxy is None:
        return httpcore2.AsyncConnectionPool(**common)
    settings = httpx2.Proxy(url=proxy)
    url = settings.url
    target = httpcore2.URL(
        scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
    )
    if url.scheme in ("http", "https"):
        return httpcore2.AsyncHTTPProxy(
            proxy_url=target,
            proxy_auth=settings.raw_auth,
            proxy_headers=settings.headers.raw,
            proxy_ssl_context=settings.ssl_context,
            **common,
        )
    if importlib.util.find_spec("socksio") is None:  # httpcore's SOCKS support needs it
        raise UsageError(
            f"the proxy {shown(proxy)} is a SOCKS proxy, and SOCKS support is not installed",
            hint="install it with `pip install 'pullman[socks]'` (the socksio package)",
        )
    return httpcore2.AsyncSOCKSProxy(proxy_url=target, proxy_auth=settings.raw_auth, **common)
