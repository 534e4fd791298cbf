"""Who may ask, and how much one connection may cost.

- ``allow``: peers outside these networks get 403 (:mod:`pullman.core.listen` says the default);
- ``token``: when set, every request must carry it, as ``Authorization: Bearer <token>`` (what
  huggingface_hub sends for ``HF_TOKEN``) or as the password of Basic auth; registry clients
  are challenged the docker way (``Bearer realm=<this server>/v2/token``), and that endpoint
  hands the token back to whoever shows it as a Basic password (what a registry configured
  with ``proxy: username/password`` does); compared in constant time, never logged;
- limits: request bodies up to ``max_body`` bytes, request lines and header fields up to
  ``max_field`` bytes and ``max_headers`` of them (aiohttp's parser answers 400 past these), a
  connection that has not sent a complete request head within ``idle_timeout`` seconds is
  closed (aiohttp's keep-alive timer, armed from the moment a connection opens: slowloris),
  and at most ``max_connections`` at once (more are answered 503 and closed at once).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from aiohttp.web_request import BaseRequest

from pullman.core import oci_names as oci
from pullman.core.listen import Network, allowed

REALM_PATH = "/v2/token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n"
    b"Retry-After: 1\r\n\r\n"
)


@dataclass(frozen=True)
class Limits:
    max_connections: int = 512
    idle_timeout: float = 20.0
    max_body: int = 1 << 20
    max_field: int = 8190
    max_headers: int = 64


class AccessLog(AbstractAccessLogger):
    """One line per request: peer, request line, status, body bytes, seconds, user agent.

    Never a header that carries a credential (neither client puts a token in a URL). The
    bytes are the body's length as answered (``sendfile`` bypasses aiohttp's own count).
    """

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        sent = response.body_length
        if request.method != "HEAD" and response.content_length is not None:
            sent = max(sent, response.content_length)
        agent = request.headers.get("User-Agent", "-").replace('"', "'")[:200]
        version = f"{request.version.major}.{request.version.minor}"
        line = f"{request.method} {request.path_qs} HTTP/{version}"
        self.logger.info(
            '%s "%s" %d %d %.3fs "%s"', request.remote, line, response.status, sent, time, agent
        )


def _is_registry(request: web.Request) -> bool:
    return request.path == "/v2" or request.path.startswith("/v2/")


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal in the dialect of whoever asked: the registry's JSON or the Hub's headers."""
    if _is_registry(request):
        code = oci.UNAUTHORIZED if status == 401 else oci.DENIED
        headers = {"Docker-Distribution-Api-Version": "registry/2.0"}
        if status == 401:  # the docker token flow: the token for Basic auth with it
            realm = f"{request.scheme}://{request.host}{REALM_PATH}"
            headers["WWW-Authenticate"] = f'Bearer realm="{realm}",service="pullman-serve"'
        body = oci.error_body(code, message)
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )
    return web.json_response(
        {"error": message}, status=status, headers={"X-Error-Message": message}
    )


def presented_token(header: str | None) -> str | None:
    """The token an ``Authorization`` header carries (Bearer, or Basic's password)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(":")[2]
    return None


def guard(allow: Sequence[Network], token: str | None) -> Middleware:
    """The middleware: allow list first, then the token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not allowed(request.remote, allow):
            return _refuse(request, 403, "this address may not use this server (see --allow)")
        if token is not None:
            given = presented_token(request.headers.get("Authorization"))
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                return _refuse(
                    request, 401, "a token is needed here (HF_TOKEN, or the registry password)"
                )
        return await handler(request)

    return middleware


class _Busy(asyncio.Protocol):
    """Answers 503 and hangs up: over the connection limit."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class LimitedSite(web.SockSite):
    """A site on a bound socket that takes at most ``limit`` connections at once."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, limit: int) -> None:
        super().__init__(runner, sock, backlog=1024)
        self._limit = limit

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        pending = [0]
        """Accepted but not yet in ``server.connections``: a burst of accepts makes many
        protocols before the first one's ``connection_made`` runs."""

        def settle() -> None:
            pending[0] -= 1

        def factory() -> asyncio.Protocol:
            if len(server.connections) + pending[0] >= self._limit:
                return _Busy()
            pending[0] += 1
            # Two loop turns: the transport schedules connection_made after this returns.
            loop.call_soon(loop.call_soon, settle)
            return server()

        self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)
