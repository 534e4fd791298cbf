"""The only module that imports the HTTP client (``httpx2``).

Everything else talks HTTP through :class:`Connection` (one HTTP/1.1 connection, owned by one
worker, dropped and reopened on recycle) or :func:`fetch` (small metadata documents with a size
cap). Client exceptions are translated into :mod:`pullman.errors` here and nowhere else.

Bulk data goes over HTTP/1.1 on purpose: HTTP/2 multiplexes every range onto one TCP connection,
which is exactly what a per-connection CDN throttle punishes.
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore2
import httpx2

from pullman import __version__
from pullman.errors import (
    AccessDenied,
    NetworkError,
    NotFound,
    PullmanError,
    RateLimited,
    RemoteError,
    ServerError,
    TLSFailure,
)
from pullman.headers import parse_retry_after

USER_AGENT = f"pullman/{__version__}"
READ_SIZE = 1 << 20
"""Bytes asked of the socket per read; httpcore's default of 64 KiB costs CPU at high rates."""

Headers = Mapping[str, str]


# ---------------------------------------------------------------------------- URLs and hosts


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: credentials are only ever sent within one origin."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


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
    """A URL fit for logs: no query string (presigned URLs carry credentials there)."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return shown + ("?…" if parts.query else "")


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
        try:
            async for chunk in self._raw.aiter_raw():
                yield chunk
        except httpx2.HTTPError as exc:
            raise translate(exc, self.url) from exc

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
        self._origin: tuple[str, str, int] | None = None
        self.opened = 0

    @asynccontextmanager
    async def stream(self, url: str, headers: Headers) -> AsyncIterator[Response]:
        """GET ``url`` without following redirects; the body is read by the caller."""
        client = await self._client_for(url)
        request = client.build_request("GET", url, headers=_with_defaults(headers))
        try:
            raw = await client.send(request, stream=True, follow_redirects=False)
        except httpx2.HTTPError as exc:
            await self.recycle()
            raise translate(exc, url) from exc
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


def deadline_error(url: str, seconds: float) -> NetworkError:
    return NetworkError(
        f"{redact(url)} did not answer completely within {seconds:g} s",
        why="the server stalls or drips its answer",
        hint="try again later; if it persists the server is broken",
    )


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
        try:
            raw = await client.send(request, stream=True, follow_redirects=False)
        except httpx2.HTTPError as exc:
            raise translate(exc, url) from exc
        try:
            response = Response(raw.status_code, raw.headers, url, raw)
            body = b"" if method == "HEAD" else await response.read(limit)
            return Document(raw.status_code, raw.headers, body, url)
        finally:
            await raw.aclose()


# ---------------------------------------------------------------------------- status codes


def _hub_error(code: str, status: int, shown: str, headers: Headers) -> PullmanError | None:
    """The Hugging Face Hub names its errors in ``X-Error-Code`` / ``X-Error-Message``."""
    message = "".join(ch for ch in headers.get("x-error-message", "") if ch.isprintable())[:300]
    login = "log in with `hf auth login` or set HF_TOKEN"
    if code == "GatedRepo":
        return AccessDenied(
            f"{shown}: gated repo",
            why=message or "its authors must grant you access first",
            hint=f"ask for access on the repo's page, then {login}",
        )
    if code == "RepoNotFound":
        return NotFound(
            f"{shown}: repo not found",
            why=message or None,
            hint=f"check the name; if private, {login}",
        )
    if code in ("EntryNotFound", "RevisionNotFound"):
        return NotFound(f"{shown}: {code}", why=message or None)
    return None


def error_for_status(status: int, url: str, headers: Headers, body: bytes = b"") -> PullmanError:
    """The error for a response we cannot use; callers decide which statuses are acceptable."""
    shown = redact(url)
    code = headers.get("x-error-code")
    if code and (hub := _hub_error(code, status, shown, headers)) is not None:
        return hub
    if status in (404, 410):
        return NotFound(
            f"{shown} answered {status}: not found",
            hint="check the address, model name or tag",
        )
    if status in (401, 403):
        return AccessDenied(
            f"{shown} answered {status}: access denied",
            hint="the server wants credentials, or refuses the ones sent",
        )
    if status == 429:
        return RateLimited(
            f"{shown} answered 429: too many requests",
            retry_after=parse_retry_after(headers.get("retry-after")) or 5.0,
        )
    if status >= 500:
        return ServerError(
            f"{shown} answered {status}", retry_after=parse_retry_after(headers.get("retry-after"))
        )
    return RemoteError(f"{shown} answered an unexpected {status}")


# ---------------------------------------------------------------------------- exceptions


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        assert nxt is not None
        seen = nxt
    return seen


def translate(exc: Exception, url: str) -> PullmanError:
    """Map a client exception to our tree. The only place that knows httpx's exceptions."""
    shown = redact(url)
    host = urlsplit(url).hostname or url
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLError):
        return TLSFailure(
            f"TLS failure talking to {host}",
            why=str(cause),
            hint="check the system clock and CA certificates; use --insecure only for a host "
            "you trust",
        )
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        if isinstance(cause, socket.gaierror):
            return NetworkError(
                f"could not resolve host {host}",
                why=str(cause),
                hint="check the address and your DNS / network connection",
            )
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return NetworkError(
                f"connection refused by {host}",
                why="nothing is listening at that address and port",
                hint="check the address, and that the server is running",
            )
        return NetworkError(f"could not connect to {host}", why=str(exc) or type(exc).__name__)
    if isinstance(exc, httpx2.TimeoutException):
        return NetworkError(f"timed out talking to {host}", why=type(exc).__name__)
    if isinstance(exc, httpx2.RemoteProtocolError):
        return NetworkError(f"{shown}: connection closed early", why=str(exc) or "peer closed")
    if isinstance(exc, httpx2.TransportError):
        return NetworkError(f"{shown}: network error", why=str(exc) or type(exc).__name__)
    return RemoteError(f"{shown}: HTTP error", why=str(exc) or type(exc).__name__)


# ---------------------------------------------------------------------------- the ollama client
#
# The ``ollama`` package brings the older ``httpx`` line as its own HTTP library. Its exception
# and timeout types are named here, so that this stays the only module importing an HTTP client.


def ollama_client_timeout(connect: float) -> Any:
    """A timeout for ``ollama.AsyncClient``: no read limit (streams are watched), ``connect``."""
    import httpx

    return httpx.Timeout(None, connect=connect)


def ollama_connect_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)


def ollama_transport_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.TransportError,)


# ---------------------------------------------------------------------------- huggingface_hub
#
# huggingface_hub makes its own requests (with httpx2) and sends some with no timeout at all.
# Its client factory is set here to one whose transport enforces our timeouts on every request.


class HubCallStopped(Exception):
    """Raised inside huggingface_hub's thread (not an HTTP error, so it is not retried there)."""


class HubCall:
    """One metadata call through huggingface_hub, which pullman can stop from outside.

    ``hub_call`` (a context variable) carries it into the worker thread making the requests;
    once :meth:`stop` is called, or after ``max_requests``, its next request fails at once, so
    an abandoned call ends instead of paging on for ever.
    """

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self.requests = 0
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def check(self) -> None:
        self.requests += 1
        if self._stopped.is_set():
            raise HubCallStopped("pullman stopped waiting for the Hub")
        if self.requests > self.max_requests:
            raise HubCallStopped(f"more than {self.max_requests} requests for one listing")


hub_call: contextvars.ContextVar[HubCall | None] = contextvars.ContextVar("hub_call", default=None)


class _FixedTimeouts(httpx2.BaseTransport):
    def __init__(self, inner: httpx2.BaseTransport, timeout: httpx2.Timeout) -> None:
        self._inner = inner
        self._timeout = timeout

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        call = hub_call.get()
        if call is not None:
            call.check()
        request.extensions["timeout"] = self._timeout.as_dict()
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


_HUB_READ_TIMEOUT: float | None = None


def configure_hub_client(read_timeout: float) -> None:
    """Every request huggingface_hub makes gets ``read_timeout`` (idempotent)."""
    global _HUB_READ_TIMEOUT
    if read_timeout == _HUB_READ_TIMEOUT:
        return
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    timeout = httpx2.Timeout(connect=20.0, read=read_timeout, write=20.0, pool=20.0)

    def factory() -> httpx2.Client:
        base = default_client_factory()
        hooks = base.event_hooks
        base.close()
        transport = _FixedTimeouts(httpx2.HTTPTransport(), timeout)
        return httpx2.Client(event_hooks=hooks, follow_redirects=True, transport=transport)

    set_client_factory(factory)
    _HUB_READ_TIMEOUT = read_timeout
