"""A small HTTP/1.1 server on loopback with scripted faults and per-connection throttling.

It is deliberately hand-rolled: faults such as a body shorter than its Content-Length, a wrong
Content-Range or a TCP reset mid-body are things a well-behaved server library refuses to do.
Each :class:`Origin` is one listening socket (one "host"); the simulator runs two by default, an
``origin`` (the registry / Hub / plain web server) and a ``cdn`` that serves presigned URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from pullman.testing.faults import Throttle

MAX_HEADER = 64 << 10
SEND_CHUNK = 256 << 10


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    origin: Origin
    conn: ConnState
    match: re.Match[str] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class ConnState:
    """One accepted TCP connection."""

    writer: asyncio.StreamWriter
    opened: float
    throttle: Throttle | None = None
    body_sent: int = 0
    requests: int = 0
    closed: bool = False

    async def send(self, data: bytes | memoryview) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_head(
        self, status: int, headers: list[tuple[str, str]], *, reason: str | None = None
    ) -> None:
        line = f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}\r\n"
        text = line + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        await self.send(text.encode("latin-1"))

    async def send_body(
        self,
        data: memoryview,
        throttle: Throttle | None,
        request_sent: int = 0,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """Send ``data`` at full speed, or shaped by ``throttle``."""
        offset = 0
        total = len(data)
        while offset < total:
            if throttle is None:
                n = min(SEND_CHUNK, total - offset)
                await self.send(data[offset : offset + n])
            elif throttle.cap is not None:  # the client's aggregate cap first
                n = min(SEND_CHUNK, total - offset, throttle.cap.chunk)
                await asyncio.sleep(throttle.cap.reserve(n))
                await self.send(data[offset : offset + n])
            else:
                used = self.body_sent if throttle.per == "connection" else request_sent
                if used < throttle.burst:
                    n = min(SEND_CHUNK, total - offset, throttle.burst - used)
                    if throttle.peak is not None:
                        n = min(n, max(1, throttle.peak // 50))
                    await self.send(data[offset : offset + n])
                    if throttle.peak is not None:
                        await asyncio.sleep(n / throttle.peak)
                else:
                    rate = throttle.rate_at(time.monotonic() - self.opened)
                    n = min(total - offset, max(1, int(rate / 50)))
                    await self.send(data[offset : offset + n])
                    await asyncio.sleep(n / rate)
            offset += n
            self.body_sent += n
            request_sent += n
            if on_sent is not None:
                on_sent(n)

    def reset(self) -> None:
        """Abort with a TCP RST instead of a clean FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        self.closed = True

    def close(self) -> None:
        self.writer.close()
        self.closed = True


Handler = Callable[[Request], Awaitable[None]]

REASONS = {
    200: "OK",
    206: "Partial Content",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Seen:
    """A request as the server saw it (for assertions: was a token ever sent here?)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Origin:
    """One listening socket with its routes."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    active: int = 0
    max_active: int = 0
    tls: ssl.SSLContext | None = None
    """Serve HTTPS with this context (a test CA's certificate), else plain HTTP."""
    _server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def saw_header(self, name: str) -> bool:
        return any(name.lower() in s.headers for s in self.seen)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_HEADER, backlog=512, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Connections still open are left to the event loop's shutdown.
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        conn = ConnState(writer=writer, opened=time.monotonic())
        try:
            while not conn.closed:
                request = await self._read_request(reader, conn)
                if request is None:
                    break
                conn.requests += 1
                self.seen.append(Seen(request.method, request.path, dict(request.headers)))
                await self._dispatch(request)
                if (request.header("connection") or "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.active -= 1
            if not conn.closed:
                writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader, conn: ConnState) -> Request | None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x16":  # a TLS handshake on a plain-HTTP port: answer like nginx
                await conn.send_head(400, [("Content-Length", "0"), ("Connection", "close")])
                return None
            head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            await conn.send_head(400, [("Content-Length", "0")])
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
        parts = urlsplit(target)
        return Request(
            method=method.upper(),
            target=target,
            path=unquote(parts.path),
            query=parse_qs(parts.query),
            headers=headers,
            body=body,
            origin=self,
            conn=conn,
        )

    async def _dispatch(self, request: Request) -> None:
        path_matched = False
        for method, pattern, handler in self.routes:
            if pattern.fullmatch(request.path):
                path_matched = True
                if method == request.method or (method == "GET" and request.method == "HEAD"):
                    request.match = pattern.fullmatch(request.path)
                    await handler(request)
                    return
        status = 405 if path_matched else 404
        await send_simple(request, status, b'{"error": "not found"}' if status == 404 else b"")


async def send_simple(
    request: Request,
    status: int,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> None:
    """A complete small response (no faults)."""
    head = [("Content-Length", str(len(body))), ("Content-Type", content_type)]
    head += headers or []
    await request.conn.send_head(status, head)
    if request.method != "HEAD" and body:
        await request.conn.send(body)
