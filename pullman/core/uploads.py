"""The arithmetic of an OCI blob upload: chunks, ``Content-Range``, ``Range``, ``Location``. Pure.

An upload session lives at a URL the registry hands out (``Location`` of the ``POST``); every
``PATCH`` appends one chunk (``Content-Range: <start>-<end>``, inclusive, no ``bytes`` unit, as
the distribution spec writes it) and answers a new ``Location`` and ``Range: 0-<last>``; the
final ``PUT <location>?digest=sha256:<hex>`` commits the blob. The registry's ``Range`` is
authoritative: a client resumes from its end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from pullman.core.headers import MAX_SIZE
from pullman.errors import ProtocolViolation

DEFAULT_CHUNK = 64 << 20
MIN_CHUNK = 1 << 10
_RANGE = re.compile(r"(?:bytes=)?0-([0-9]{1,16})", re.ASCII)


def content_range(start: int, length: int) -> str:
    """The ``Content-Range`` of a chunk of ``length`` (> 0) bytes at ``start``."""
    if length <= 0 or start < 0:
        raise ValueError(f"no chunk of {length} bytes at {start}")
    return f"{start}-{start + length - 1}"


def chunks(size: int, offset: int, chunk: int) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of every chunk from ``offset`` to ``size``."""
    if chunk <= 0:
        raise ValueError("chunk size must be positive")
    start = offset
    while start < size:
        length = min(chunk, size - start)
        yield start, length
        start += length


def offset_from_range(value: str | None, *, size: int, url: str = "") -> int:
    """How many bytes the registry holds, from its ``Range: 0-<last>`` (absent: none).

    distribution writes ``0-0`` both for an empty upload and for one of a single byte; it is
    read as empty (re-sending one byte costs nothing, and chunks are never one byte long).
    A value out of the grammar or past the blob's end is a protocol violation.
    """
    if value is None or not value.strip():
        return 0
    m = _RANGE.fullmatch(value.strip())
    if m is None:
        raise _violation(url, f"an upload Range {value[:60]!r} out of the grammar")
    last = int(m.group(1))
    if last == 0:
        return 0
    if last >= size or last >= MAX_SIZE:
        raise _violation(url, f"an upload Range {value[:60]!r} past the blob's {size} bytes")
    return last + 1


def _violation(url: str, what: str) -> ProtocolViolation:
    return ProtocolViolation(
        f"the registry{' at ' + url if url else ''} answered {what}",
        hint="the registry is broken; the upload starts again",
    )


def next_location(current: str, location: str | None) -> str:
    """The upload URL to use next: the answer's ``Location`` joined to the request's URL (a
    registry may answer a path only), or the current one when none came."""
    if not location or not location.strip():
        return current
    joined = urljoin(current, location.strip())
    if urlsplit(joined).scheme not in ("http", "https"):
        raise _violation("", f"an upload Location with scheme {urlsplit(joined).scheme!r}")
    return joined


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (kept in order; the registry's own state
    parameters, such as distribution's ``_state``, stay as they were)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
