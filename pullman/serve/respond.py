"""Answering with a :class:`~pullman.serve.catalog.Content`: HEAD, Range (206 / 416), and the
body either by ``sendfile`` from a complete file (zero-copy) or streamed from a reader.

aiohttp's ``FileResponse`` would do the Range work too, but it opens the path itself
(following links) and sets its own ``ETag`` from the file's mtime; a registry and the Hub must
send the digest. So the file is opened here with ``O_NOFOLLOW`` and sent with
``loop.sendfile`` as ``FileResponse`` does, falling back to chunked reads where the transport
cannot (TLS, or a platform without it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import IO, Any

from aiohttp import web

from pullman.core.byte_ranges import UNSATISFIABLE, Span, content_range, parse_range
from pullman.serve.catalog import Content

CHUNK = 1 << 20
PIECE = 4 << 20
"""Bytes per ``sendfile`` call: each must go out within the stall timeout."""
STALL = web.AppKey("stall", float)
"""Seconds an answer may make no progress (the client not reading) before it is cut off."""
log = logging.getLogger("pullman.serve")


def span_for(request: web.Request, content: Content, etag: str) -> Span | str | None:
    """The span to answer (None: all of it), honouring ``If-Range`` (a different validator
    means the whole body)."""
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() not in (etag, etag.removeprefix("W/")):
        return None
    return parse_range(request.headers.get("Range"), content.size)


async def send_content(
    request: web.Request, content: Content, headers: Mapping[str, str]
) -> web.StreamResponse:
    """200 / 206 / 416 with ``headers`` (digest headers, ETag ...) plus the length and range."""
    etag = headers.get("ETag", "")
    span = span_for(request, content, etag)
    if span == UNSATISFIABLE:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={"Content-Range": f"bytes */{content.size}", **headers}
        )
    assert not isinstance(span, str)
    start, end = span if span is not None else (0, content.size)
    first = await _first_chunk(request, content, start, end)
    response = _Body(request, content, start, end, status=206 if span is not None else 200)
    response.first = first
    response.headers.update(headers)
    response.headers["Accept-Ranges"] = "bytes"
    response.content_type = content.media_type
    response.content_length = end - start
    if span is not None:
        response.headers["Content-Range"] = content_range(span, content.size)
    await response.prepare(request)
    await response.send_body()
    return response


async def _first_chunk(
    request: web.Request, content: Content, start: int, end: int
) -> tuple[AsyncIterator[bytes], bytes] | None:
    """A reader's first chunk, before any header is sent: a reader that fails before its
    first byte (a pull-through whose upstream failed) then fails the request with an error
    status rather than a cut connection."""
    if content.read is None or request.method == "HEAD" or end == start:
        return None
    chunks = aiter(content.read(start, end))
    try:
        return chunks, await anext(chunks)
    except StopAsyncIteration:
        return chunks, b""


class _Body(web.StreamResponse):
    """Headers first, then exactly ``end - start`` bytes, or a cut connection."""

    def __init__(
        self, request: web.Request, content: Content, start: int, end: int, status: int
    ) -> None:
        super().__init__(status=status)
        self._request = request
        self._content = content
        self._span = (start, end)
        self._stall = request.app.get(STALL, 60.0)
        self.first: tuple[AsyncIterator[bytes], bytes] | None = None
        """A reader's first chunk, taken before the headers went out (see _first_chunk)."""

    async def send_body(self) -> None:
        """The body; if it cannot be finished (the client left, the reader or the disk
        failed) the connection is aborted, so the client sees a short body, never a whole."""
        start, end = self._span
        if self._request.method != "HEAD" and end > start:
            try:
                await self._send(start, end)
            except ConnectionError:
                log.debug("serve: %s: the client went away", self._request.path)
                self._abort()
                return
            except Exception as exc:
                log.warning("serve: %s: the answer stopped short: %s", self._request.path, exc)
                self._abort()
                return
        await self.write_eof()

    def _abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    async def _send(self, start: int, end: int) -> None:
        if self._content.path is not None:
            await self._send_file(start, end)
            return
        assert self._content.read is not None and self.first is not None
        chunks, head = self.first
        await self._write(head)
        sent = len(head)
        async for chunk in chunks:
            sent += len(chunk)
            if sent > end - start:
                raise ValueError("the reader gave more bytes than asked")
            await self._write(chunk)
        if sent != end - start:
            raise ValueError(f"the reader ended after {sent} of {end - start} bytes")

    async def _send_file(self, start: int, end: int) -> None:
        assert self._content.path is not None
        loop = asyncio.get_running_loop()
        fobj = await loop.run_in_executor(None, _open_nofollow, str(self._content.path))
        try:
            transport = self._request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            if transport.get_extra_info("sslcontext") is None:
                await self._flush()
                try:
                    await self._sendfile(transport, fobj, start, end)
                except NotImplementedError:
                    pass
                else:
                    return
            await self._copy(fobj, start, end)
        finally:
            await loop.run_in_executor(None, fobj.close)

    async def _sendfile(
        self, transport: asyncio.BaseTransport, fobj: IO[bytes], start: int, end: int
    ) -> None:
        """Zero-copy, a piece at a time: a client that takes no piece in ``stall`` seconds
        (it stopped reading) is cut off rather than holding its connection for ever."""
        loop = asyncio.get_running_loop()
        offset = start
        while offset < end:
            count = min(PIECE, end - offset)
            async with asyncio.timeout(self._stall):
                await loop.sendfile(transport, fobj, offset, count)  # type: ignore[arg-type]
            offset += count

    async def _write(self, chunk: bytes) -> None:
        async with asyncio.timeout(self._stall):
            await self.write(chunk)

    async def _flush(self) -> None:
        writer = self._payload_writer
        if writer is not None:
            await writer.drain()

    async def _copy(self, fobj: IO[bytes], start: int, end: int) -> None:
        loop = asyncio.get_running_loop()
        offset = start
        while offset < end:
            chunk = await loop.run_in_executor(
                None, os.pread, fobj.fileno(), min(CHUNK, end - offset), offset
            )
            if not chunk:
                raise ValueError("the file is shorter than its size")
            await self._write(chunk)
            offset += len(chunk)


def _open_nofollow(path: str) -> IO[Any]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    return os.fdopen(fd, "rb")
