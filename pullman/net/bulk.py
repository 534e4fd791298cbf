"""Bulk bodies without copies: ranged GETs over HTTP/1.1 on an asyncio ``BufferedProtocol``.

Through httpcore every socket read is a new ``bytes`` object that h11 copies into its receive
buffer and out again, and httpx wraps each piece in a few more frames: three copies and a dozen
Python calls for every read. Here the socket (or the TLS layer) writes the body straight into the
caller's block (``recv_into``), and the caller writes and hashes it from that same memory: no
copy in Python at all, and the caller wakes once per block, not once per read.

Only what a piece of a download needs: a GET with a ``Content-Length`` answer, on a direct
connection (proxied connections keep the httpx path, :mod:`pullman.net.client`). The head is
parsed here (:func:`parse_head`, pure); a body without a length is refused. Socket and TLS
errors are translated by :func:`pullman.net.errors.translate_socket`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import anyio

from pullman.core.urls import host_header, redact, request_target
from pullman.errors import NetworkError, ProtocolViolation
from pullman.net.errors import translate_socket

MAX_HEAD = 64 << 10
"""The most bytes a response's status line and headers may take."""

OnBytes = Callable[[int], None]


class HeadersView(Mapping[str, str]):
    """Response headers, looked up case-insensitively (repeated ones joined with ``, ``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._map: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._map[key] = f"{self._map[key]}, {value}" if key in self._map else value

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map


@dataclass(frozen=True)
class Head:
    status: int
    headers: HeadersView
    length: int
    """The body's length in bytes."""
    keep_alive: bool


def parse_head(raw: bytes, url: str) -> Head:
    """The status line and headers of an HTTP/1.1 response (``raw`` ends before the blank line)."""
    lines = raw.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit():
        raise ProtocolViolation(f"{redact(url)} sent a malformed status line")
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise ProtocolViolation(f"{redact(url)} sent a malformed header line")
        pairs.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    headers = HeadersView(pairs)
    status = int(code)
    if "transfer-encoding" in headers or "content-length" not in headers:
        raise ProtocolViolation(
            f"{redact(url)} answered {status} without a Content-Length",
            why="a piece of a download needs a body of known length",
        )
    length = headers["content-length"]
    if not length.isdigit():
        raise ProtocolViolation(f"{redact(url)} sent a malformed Content-Length")
    close = "close" in headers.get("connection", "").lower()
    return Head(status, headers, int(length), version == b"HTTP/1.1" and not close)


SPILL = 256 << 10
"""Bytes a connection takes in while its reader is busy writing (beyond that, it pauses)."""


class _Protocol(asyncio.BufferedProtocol):
    """Receives a head into its own buffer, then a body into the caller's blocks.

    Between two fills (while the caller writes a block) the socket keeps being read into a
    small spill buffer, copied into the next block; only a full spill, the head's end and the
    body's end pause reading (pausing and resuming for every block costs more than the copy).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray(MAX_HEAD)
        self._head_len = 0
        self.head_end = -1
        """Where the blank line after the head ends in the head buffer (-1: not yet)."""
        self.in_body = False
        self.sink: memoryview | None = None
        self.filled = 0
        self.remaining = 0
        """Body bytes still to come from the socket."""
        self.spill = bytearray(SPILL)
        self.spill_start = self.spill_end = 0
        """What the spill holds: ``spill[spill_start:spill_end]``."""
        self.on_bytes: OnBytes | None = None
        self.closed = False
        self.error: BaseException | None = None
        self._paused = False
        self._into_sink = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never empty (an empty buffer reads as the end of the stream): reading is paused
        # whenever the head buffer or the spill is full, or the body has ended.
        if not self.in_body:
            return memoryview(self._head)[self._head_len :]
        self._into_sink = self.sink is not None and self.filled < len(self.sink)
        if self.sink is not None and self._into_sink:
            return self.sink[self.filled : self.filled + self.remaining]
        return memoryview(self.spill)[self.spill_end : self.spill_end + self.remaining]

    def buffer_updated(self, nbytes: int) -> None:
        if not self.in_body:
            self._head_updated(nbytes)
            return
        self.remaining -= nbytes
        if self.sink is not None and self._into_sink:
            self.filled += nbytes
            if self.on_bytes is not None:
                self.on_bytes(nbytes)
            if self.filled >= len(self.sink) or self.remaining <= 0:
                self._wake()
        else:
            self.spill_end += nbytes
            if self.spill_end >= len(self.spill):
                self.pause()
        if self.remaining <= 0:
            self.pause()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = self.error or exc
        self._wake()

    # -- ours
    def _head_updated(self, nbytes: int) -> None:
        start = max(0, self._head_len - 3)
        self._head_len += nbytes
        end = self._head.find(b"\r\n\r\n", start, self._head_len)
        if end >= 0:
            self.head_end = end + 4
        elif self._head_len >= len(self._head):
            self.error = ProtocolViolation(f"a response head longer than {MAX_HEAD} bytes")
        else:
            return
        self.pause()  # until the head is parsed and the body's length known
        self._wake()

    def start_body(self, length: int) -> bytes:
        """The head was parsed: take the body bytes that came with it; the rest comes from
        the socket."""
        early = bytes(self._head[self.head_end : self._head_len])
        self._head_len, self.head_end = 0, -1
        self.in_body, self.remaining = True, length - len(early)
        self.spill_start = self.spill_end = 0
        return early

    def head(self) -> bytes:
        return bytes(self._head[: self.head_end - 4])

    def end_body(self) -> None:
        self.in_body, self.sink, self.on_bytes = False, None, None

    @property
    def spilled(self) -> int:
        return self.spill_end - self.spill_start

    def unspill(self, sink: memoryview) -> int:
        """Move what the spill holds (as much as fits) into ``sink``."""
        start = self.spill_start
        n = min(len(sink), self.spill_end - start)
        if n:
            sink[:n] = memoryview(self.spill)[start : start + n]
            self.spill_start = start + n
            if self.spill_start == self.spill_end:
                self.spill_start = self.spill_end = 0
        return n

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until something happened (bytes, the end, an error), or ``timeout`` seconds without
        anything (TimeoutError). A timer, not a cancel scope: this runs once per block."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class BulkConnection:
    """One HTTP/1.1 connection to one origin, for ranged GETs read into the caller's blocks."""

    def __init__(self, url: str, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._url = url
        """The URL of the request in hand (for messages)."""
        self._host, self._port, self._tls = host, port, tls
        self._proto: _Protocol | None = None
        self._head: Head | None = None
        self._early = b""
        self.reusable = False

    async def _open(self, timeout: float) -> _Protocol:
        loop = asyncio.get_running_loop()
        with self._errors(connecting=True), anyio.fail_after(timeout):
            _, proto = await loop.create_connection(
                _Protocol,
                self._host,
                self._port,
                ssl=self._tls,
                server_hostname=self._host if self._tls is not None else None,
            )
        return proto

    async def get(self, url: str, headers: Mapping[str, str], timeout: float) -> Head:
        """Send a GET for ``url`` (of this connection's origin) and wait for the answer's head;
        the body is read by :meth:`fill`."""
        self._url = url
        if self._proto is None or not self.reusable or self._proto.closed:
            self.close()
            self._proto = await self._open(timeout)
        proto, self.reusable = self._proto, False
        lines = [f"GET {request_target(url)} HTTP/1.1", f"Host: {host_header(url)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with self._errors(connecting=False):
            assert proto.transport is not None
            proto.end_body()
            proto.transport.write(request)
            proto.resume()
            while proto.head_end < 0:
                self._check(proto)
                await proto.wait(timeout)
        head = parse_head(proto.head(), self._url)
        early = proto.start_body(head.length)
        if proto.remaining < 0:
            raise ProtocolViolation(f"{redact(self._url)} sent more than its Content-Length")
        self._head, self._early = head, early
        return head

    async def fill(self, block: memoryview, on_bytes: OnBytes, timeout: float) -> int:
        """Read body bytes into ``block`` until it is full or the body ends; 0 at the end."""
        proto, head = self._proto, self._head
        assert proto is not None and head is not None
        n = 0
        if self._early:
            n = min(len(block), len(self._early))
            block[:n] = self._early[:n]
            self._early = self._early[n:]
        n += proto.unspill(block[n:])
        if n:
            on_bytes(n)
        if n == len(block) or (proto.remaining <= 0 and not proto.spilled):
            self.reusable = self._done(proto, head)
            return n
        proto.sink, proto.filled, proto.on_bytes = block[n:], 0, on_bytes
        try:  # (not a context manager: this runs once per block)
            proto.resume()
            while proto.filled < len(proto.sink) and proto.remaining > 0:
                self._check(proto)
                await proto.wait(timeout)
        except OSError as exc:
            raise translate_socket(exc, self._url, connecting=False) from exc
        finally:
            got, proto.sink, proto.on_bytes = proto.filled, None, None
        self.reusable = self._done(proto, head)
        return n + got

    def _done(self, proto: _Protocol, head: Head) -> bool:
        """Whether the body was read to its end and the connection can carry another request."""
        whole = proto.remaining <= 0 and not proto.spilled and not self._early
        return whole and head.keep_alive and not proto.closed

    def _check(self, proto: _Protocol) -> None:
        if proto.error is not None:
            raise proto.error
        if proto.closed:
            raise NetworkError(f"{redact(self._url)}: connection closed early", why="peer closed")

    @contextmanager
    def _errors(self, *, connecting: bool) -> Iterator[None]:
        try:
            yield
        except (OSError, TimeoutError) as exc:
            raise translate_socket(exc, self._url, connecting=connecting) from exc

    def close(self) -> None:
        proto, self._proto, self.reusable = self._proto, None, False
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
