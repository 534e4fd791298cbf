"""Serving files: Range / 206 / 416, ETag and Last-Modified, faults, throttling, byte counts."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import re
from dataclasses import dataclass, field

from pullman.testing.faults import (
    Drip,
    Fault,
    FlipByte,
    IgnoreRange,
    Reset,
    Short,
    Stall,
    Status,
    Throttle,
    WrongContentRange,
)
from pullman.testing.server import Request, send_simple

LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def make_data(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes (generated in 1 MiB blocks)."""
    rng = random.Random(seed)
    block = 1 << 20
    parts = [rng.randbytes(min(block, size - i)) for i in range(0, size, block)]
    return b"".join(parts)


_ZEROS = bytes(1 << 20)


class Sparse:
    """A big file that costs no disk or memory: a real ``head`` (a GGUF header, say), then
    zeros up to ``size`` bytes, generated as they are served.

    Hashing gigabytes of zeros takes a minute, so a caller may announce the sha256 the Hub or
    registry lists for it (``announced_sha256``); a full download of such a file then fails
    verification, as it should for a stand-in (tests that fetch a file whole give real data,
    or leave the digest to be computed).
    """

    def __init__(self, head: bytes, size: int, announced_sha256: str | None = None) -> None:
        if size < len(head):
            raise ValueError("a sparse file cannot be shorter than its head")
        self.head = head
        self.size = size
        self._sha256 = announced_sha256

    def __len__(self) -> int:
        return self.size

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            h = hashlib.sha256(self.head)
            left = self.size - len(self.head)
            while left:
                n = min(left, len(_ZEROS))
                h.update(_ZEROS[:n])
                left -= n
            self._sha256 = h.hexdigest()
        return self._sha256

    def view(self, start: int, end: int) -> SparseView:
        return SparseView(self, start, min(end, self.size))


class SparseView:
    """Bytes ``start``..``end`` of a :class:`Sparse` file: sliced as the server sends it, each
    small slice made real (head bytes, then zeros) only when it is sent."""

    MATERIAL = 16 << 20

    def __init__(self, f: Sparse, start: int, end: int) -> None:
        self.f, self.start, self.end = f, start, max(start, end)

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, cut: slice) -> memoryview | SparseView:
        a, b, _ = cut.indices(len(self))
        start, end = self.start + a, self.start + max(a, b)
        if end - start > self.MATERIAL:
            return SparseView(self.f, start, end)
        head = self.f.head[start:end] if start < len(self.f.head) else b""
        return memoryview(head + bytes(end - start - len(head)))


Data = bytes | Sparse


def sha256_hex(data: Data) -> str:
    """The sha256 a server lists for ``data`` (a sparse file's announced one)."""
    return data.sha256 if isinstance(data, Sparse) else hashlib.sha256(data).hexdigest()


def body_view(data: Data, start: int, end: int) -> memoryview:
    """What to send of ``data`` for bytes ``start``..``end`` (a lazy view of a sparse file)."""
    if isinstance(data, Sparse):
        return data.view(start, end)  # type: ignore[return-value]  # sliced like one
    return memoryview(data)[start:end]


@dataclass
class SimFile:
    name: str
    data: Data
    faults: list[Fault] = field(default_factory=list)
    throttle: Throttle | None = None
    etag: bool = True
    last_modified: bool = True
    via_cdn: bool = False
    cdn_expires: float | None = None
    content_type: str = "application/octet-stream"
    requests: int = 0
    bytes_sent: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    bad_links: int = 0
    """The first this many distinct CDN links serve a corrupt copy (a bad edge object)."""
    links: list[str] = field(default_factory=list)
    """The CDN links (their signatures) requests came through, in order of first use."""

    def corrupt_via(self, signature: str) -> bool:
        """Whether the CDN link with this signature serves a corrupt copy."""
        if signature not in self.links:
            self.links.append(signature)
        return self.links.index(signature) < self.bad_links

    @property
    def size(self) -> int:
        return len(self.data)

    @functools.cached_property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @property
    def etag_value(self) -> str:
        return '"' + self.sha256[:32] + '"'

    def next_fault(self, start: int, end: int) -> Fault | None:
        self.requests += 1
        for fault in self.faults:
            if fault.applies(self.requests, start, end):
                return fault
        return None

    def count(self, n: int) -> None:
        self.bytes_sent += n


def parse_range(value: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) half-open, None for no/ignored Range, or "unsatisfiable"."""
    if not value:
        return None
    m = _RANGE.fullmatch(value.strip())
    if m is None:
        return None  # multi-range or junk: RFC 9110 lets us ignore it
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size)
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        return "unsatisfiable"
    return (start, end)


def _if_range_ok(request: Request, f: SimFile) -> bool:
    value = request.header("if-range")
    if value is None:
        return True
    if value.startswith('"') or value.startswith("W/"):
        return f.etag and value == f.etag_value
    return f.last_modified and value == LAST_MODIFIED


async def serve_file(
    request: Request, f: SimFile, throttle: Throttle | None, *, corrupt: bool = False
) -> None:
    """Serve ``f`` (ranges, validators, scripted faults); ``corrupt``: flip its middle byte."""
    wanted = parse_range(request.header("range"), f.size)
    span = wanted if isinstance(wanted, tuple) else (0, f.size)
    fault = f.next_fault(*span)
    if isinstance(fault, Status):
        extra = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        f.statuses.append(fault.code)
        await send_simple(request, fault.code, b'{"error": "scripted failure"}', extra)
        return
    if wanted == "unsatisfiable":
        f.statuses.append(416)
        await send_simple(request, 416, b"", [("Content-Range", f"bytes */{f.size}")])
        return
    if isinstance(fault, IgnoreRange) or not _if_range_ok(request, f):
        wanted = None
    assert not isinstance(wanted, str)
    start, end = wanted if wanted is not None else (0, f.size)
    status = 206 if wanted is not None else 200
    headers = [
        ("Content-Length", str(end - start)),
        ("Content-Type", f.content_type),
        ("Accept-Ranges", "bytes"),
    ]
    if f.etag:
        headers.append(("ETag", f.etag_value))
    if f.last_modified:
        headers.append(("Last-Modified", LAST_MODIFIED))
    if status == 206:
        shown = start + (fault.shift if isinstance(fault, WrongContentRange) else 0)
        headers.append(("Content-Range", f"bytes {shown}-{shown + end - start - 1}/{f.size}"))
    f.ranges.append((start, end))
    f.statuses.append(status)
    await request.conn.send_head(status, headers)
    if request.method == "HEAD":
        return
    body = body_view(f.data, start, end)
    flips = [fault.offset] if isinstance(fault, FlipByte) else []
    flips += [f.size // 2] if corrupt else []
    for offset in (o for o in flips if start <= o < end):
        copy = bytearray(body)
        copy[offset - start] ^= 0xFF
        body = memoryview(copy)
    await _send_with_fault(request, f, body, fault, throttle)


async def _send_with_fault(
    request: Request, f: SimFile, body: memoryview, fault: Fault | None, throttle: Throttle | None
) -> None:
    conn = request.conn
    if isinstance(fault, Reset | Short | Stall | Drip):
        cut = min(fault.after, len(body))
        await conn.send_body(body[:cut], throttle, 0, f.count)
        if isinstance(fault, Reset):
            conn.reset()
            return
        if isinstance(fault, Short):
            conn.close()
            return
        if isinstance(fault, Stall):
            await asyncio.sleep(fault.seconds)
            await conn.send_body(body[cut:], throttle, cut, f.count)
            return
        drip = Throttle(burst=0, rate=max(1, fault.rate), per="request")
        await conn.send_body(body[cut:], drip, 0, f.count)
        return
    await conn.send_body(body, throttle, 0, f.count)
