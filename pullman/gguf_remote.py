"""A GGUF file's header, read where the file is: over HTTP with range requests, or on disk.

Only the header is read: first :data:`FIRST_READ` bytes, then the next range while the
metadata goes on (a vocabulary of 150,000 tokens and its merges take several MiB), each time
doubling what is held, so never more than twice the header, at most :data:`MAX_HEADER`.
No tensor byte is asked for. A server that
ignores ``Range`` and answers 200 is read for the same prefix and then cut off.
Requests go through :func:`pullman.net.client.fetch`: redirects followed by hand, credentials
kept on the file's own origin (a Hub token never reaches the CDN), each read within the
metadata deadline, transient failures retried.

What cannot be read (a 404, a server that keeps failing, a header that breaks the format or
runs past :data:`MAX_HEADER`) is a :class:`HeaderRead` with no header and the reason why:
an estimate is then ``unknown``, never a crash.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pullman.core.gguf_fit import FitHeader
from pullman.core.headers import parse_content_range
from pullman.core.proxies import Proxies
from pullman.core.urls import redact
from pullman.errors import BadModelFile, ProtocolViolation, PullmanError, RemoteError
from pullman.net.client import DIRECT, fetch
from pullman.net.errors import error_for_status
from pullman.net.retry import RetryPolicy, retrying

FIRST_READ = 1 << 20
MAX_HEADER = 32 << 20
GROWTH = 2


@dataclass(frozen=True)
class GgufFile:
    """One GGUF file to read the header of: a URL (with its credentials) or a local path."""

    name: str
    size: int | None
    key: str | None = None
    """What identifies its content (a digest, or repo + commit + path) for the index's cache."""
    url: str | None = None
    auth: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    insecure: bool = False
    path: Path | None = None


@dataclass(frozen=True)
class HeaderRead:
    header: FitHeader | None
    fetched: int = 0
    """Body bytes received for it."""
    problem: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class Asking:
    """How to ask: retries, the per-request deadline, proxies."""

    policy: RetryPolicy
    deadline: float = 60.0
    proxies: Proxies = DIRECT


async def _range(f: GgufFile, start: int, end: int, how: Asking) -> tuple[int, bytes]:
    """Bytes ``start``..``end`` (exclusive) of ``f``: (status, body, at most ``end`` bytes)."""
    assert f.url is not None
    url = f.url
    headers = {**f.auth, "Range": f"bytes={start}-{end - 1}"}

    async def once() -> tuple[int, bytes]:
        doc = await fetch(
            url,
            headers,
            limit=end,  # a 206 brings end - start bytes, a 200 (Range ignored) from 0
            insecure=f.insecure,
            deadline=how.deadline,
            proxies=how.proxies,
            follow=True,
            truncate=True,
        )
        if doc.status not in (200, 206):
            raise error_for_status(doc.status, url, doc.headers)
        if doc.status == 200:  # Range ignored: the body starts at 0
            return 200, doc.body[:end]
        _check_range(doc.headers.get("content-range"), start, url)
        return 206, doc.body

    return await retrying(once, how.policy)


def _check_range(value: str | None, start: int, url: str) -> None:
    """A 206 must carry the bytes asked for, from ``start`` (else they are someone else's)."""
    try:
        got = parse_content_range(value or "").start
    except ValueError:
        got = None
    if got != start:
        raise ProtocolViolation(
            f"{redact(url)} answered bytes from {got}, not from {start}",
            why=f"Content-Range: {value!r}",
        )


def _fit_header(buf: bytes, size: int, name: str) -> FitHeader | None:
    # Imported here: the gguf reader pulls in numpy (about 0.15 s), which every command that
    # imports this module (``pullman get`` does) would otherwise pay at startup.
    from pullman.gguf_facts import fit_header

    return fit_header(buf, size, name)


async def _grow(f: GgufFile, size: int, how: Asking) -> HeaderRead:
    buf, fetched, length = b"", 0, FIRST_READ
    while True:
        end = min(size, length)
        status, body = await _range(f, len(buf), end, how)
        fetched += len(body)
        buf = body if status == 200 else buf + body
        if len(buf) < end:
            raise RemoteError(f"the server sent {len(buf)} of the {end} bytes asked for")
        header = _fit_header(buf, size, f.name)
        if header is not None:
            return HeaderRead(header, fetched)
        if end >= min(size, MAX_HEADER):
            return HeaderRead(None, fetched, f"its header is longer than {MAX_HEADER >> 20} MiB")
        length *= GROWTH


async def read_remote(f: GgufFile, how: Asking) -> HeaderRead:
    """The header of ``f`` from its URL; the reason instead when it cannot be had."""
    if f.size is None or f.size <= 0:
        return HeaderRead(None, problem="its size is not known")
    try:
        return await _grow(f, f.size, how)
    except BadModelFile as exc:
        return HeaderRead(None, problem=exc.why or exc.what)
    except PullmanError as exc:
        return HeaderRead(None, problem=exc.what)


def read_local(path: Path) -> HeaderRead:
    """The header of a file on disk (mapped; only the pages the header spans are read)."""
    try:
        size = path.stat().st_size
        if size == 0:
            return HeaderRead(None, problem="it is empty")
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return HeaderRead(_parsed(buf, size, path.name))
    except BadModelFile as exc:
        return HeaderRead(None, problem=exc.why or exc.what)
    except OSError as exc:
        return HeaderRead(None, problem=exc.strerror or str(exc))


def _parsed(buf: mmap.mmap, size: int, name: str) -> FitHeader:
    header = _fit_header(bytes(buf[: min(size, MAX_HEADER)]), size, name)
    if header is None:
        raise BadModelFile(name, why=f"its header is longer than {MAX_HEADER >> 20} MiB")
    return header
