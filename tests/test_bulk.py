"""The copy-free body reader (pullman.net.bulk) against raw loopback servers that split, join
and cut their answers in the ways a real network does."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from pullman.errors import NetworkError, ProtocolViolation
from pullman.net.bulk import MAX_HEAD, BulkConnection, parse_head
from pullman.net.client import Connection
from pullman.testing import Simulator, make_data

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = bytes(range(256)) * 4096  # 1 MiB


def on_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        anyio.run(test)

    return run


def test_parse_head_reads_status_length_and_headers_case_insensitively() -> None:
    head = parse_head(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nX-A: 1\r\nx-a: 2", "http://h/"
    )
    assert (head.status, head.length, head.keep_alive) == (206, 10, True)
    assert head.headers["X-A"] == "1, 2" and "content-length" in head.headers


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK\r\nServer: x",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
        b"HTTP/2 200\r\nContent-Length: 1",
        b"HTTP/1.1 200 OK\r\n folded: line\r\nContent-Length: 1",
        b"HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 1",
    ],
)
def test_parse_head_refuses_what_a_piece_cannot_use(raw: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_head(raw, "http://h/")


def test_connection_close_is_not_kept_alive() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close", "u")
    assert not head.keep_alive


@asynccontextmanager
async def server(reply: Reply) -> AsyncIterator[tuple[str, int]]:
    srv = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/f", port
    finally:
        srv.close()


async def read_all(conn: BulkConnection, block_size: int = 100_003) -> bytes:
    out = bytearray()
    block = bytearray(block_size)
    landed = [0]

    def on_bytes(n: int) -> None:
        landed[0] += n

    while n := await conn.fill(memoryview(block), on_bytes, 5.0):
        out += block[:n]
        await anyio.sleep(0.001)  # a reader busy writing: the spill takes what arrives
    assert landed[0] == len(out)
    return bytes(out)


async def serve_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for _ in range(2):
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        # the head split in two, the first body bytes in the same write as its end
        writer.write(head[:7])
        await writer.drain()
        writer.write(head[7:] + BODY[:1000])
        for i in range(1000, len(BODY), 70_000):
            writer.write(BODY[i : i + 70_000])
            await writer.drain()
    writer.close()


@on_loop
async def test_two_requests_on_one_kept_alive_connection() -> None:
    async with server(serve_twice) as (url, port):
        conn = BulkConnection(url, "127.0.0.1", port, None)
        for _ in range(2):
            head = await conn.get(url, {"Range": "bytes=0-"}, 5.0)
            assert head.status == 206
            assert await read_all(conn) == BODY
            assert conn.reusable
        conn.close()


async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
    await writer.drain()
    writer.close()


@on_loop
async def test_a_body_cut_short_is_a_network_error_after_what_came() -> None:
    async with server(cut_short) as (url, port):
        conn = BulkConnection(url, "127.0.0.1", port, None)
        await conn.get(url, {}, 5.0)
        block = bytearray(10_000)
        got = [0]
        with pytest.raises(NetworkError):
            while await conn.fill(memoryview(block), lambda n: got.__setitem__(0, got[0] + n), 5.0):
                pass
        assert got[0] == 100 and not conn.reusable
        conn.close()


async def huge_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD)
    await writer.drain()
    await asyncio.sleep(5)


@on_loop
async def test_a_head_larger_than_the_limit_is_refused() -> None:
    async with server(huge_head) as (url, port):
        conn = BulkConnection(url, "127.0.0.1", port, None)
        with pytest.raises(ProtocolViolation):
            await conn.get(url, {}, 5.0)
        conn.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)


@on_loop
async def test_silence_times_out_as_a_network_error() -> None:
    async with server(silent) as (url, port):
        conn = BulkConnection(url, "127.0.0.1", port, None)
        with pytest.raises(NetworkError, match="timed out"):
            await conn.get(url, {}, 0.2)
        conn.close()


@on_loop
async def test_nothing_listening_is_unreachable() -> None:
    async with server(silent) as (url, port):
        pass  # closed again: nothing listens on that port now
    conn = BulkConnection(url, "127.0.0.1", port, None)
    with pytest.raises(NetworkError, match="refused"):
        await conn.get(url, {}, 5.0)


def test_a_body_read_part_way_is_closed_with_its_response(sim: Simulator) -> None:
    """A caller may stop before a body's end (a small file's probe reads exactly its size):
    the body's iterator ends with the response, not later in the collector (which finalizes
    a suspended generator at an arbitrary point of the loop's work)."""
    sim.add_file("p.bin", make_data(1 << 20, 4))
    suspended: list[bool] = []

    async def main() -> None:
        conn = Connection()
        async with conn.stream(sim.url("p.bin"), {}) as response:
            assert await response.fill(memoryview(bytearray(1000)), lambda _n: None) == 1000
            body = response._stream  # type: ignore[attr-defined]
            assert isinstance(body, AsyncGenerator)
        # Still on the loop (its shutdown would close any generator left over):
        suspended.append(getattr(body, "ag_frame", None) is not None)
        await conn.aclose()

    anyio.run(main)
    assert suspended == [False]
