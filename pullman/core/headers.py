"""Parsing of the response headers that decide what bytes mean: pure, strict, fuzzed.

Servers are untrusted: every parser here returns None (or raises ``ValueError``) for anything
out of the grammar, and never believes a number larger than it could sanely be.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime
from typing import NamedTuple

MAX_SIZE = 1 << 50  # 1 PiB: no model file is larger
MAX_RETRY_AFTER = 24 * 3600.0

_CONTENT_RANGE = re.compile(
    r"bytes[ \t]+(?:([0-9]{1,16})-([0-9]{1,16})|\*)/([0-9]{1,16}|\*)", re.I | re.ASCII
)


class ContentRange(NamedTuple):
    start: int | None
    """First byte of the body, None for the ``bytes */N`` form (416)."""
    end: int | None
    """Last byte of the body, inclusive."""
    total: int | None
    """Full size of the file, None when the server says ``*``."""


def parse_content_range(value: str) -> ContentRange:
    """Parse ``bytes a-b/N``, ``bytes a-b/*`` or ``bytes */N``; ``ValueError`` otherwise."""
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"malformed Content-Range {value!r}")
    first, last, total_text = m.groups()
    total = None if total_text == "*" else int(total_text)
    if total is not None and total > MAX_SIZE:
        raise ValueError(f"implausible size in Content-Range {value!r}")
    if first is None:
        if total is None:
            raise ValueError(f"malformed Content-Range {value!r}")
        return ContentRange(None, None, total)
    start, end = int(first), int(last)
    if end < start or (total is not None and end >= total):
        raise ValueError(f"inconsistent Content-Range {value!r}")
    return ContentRange(start, end, total)


def parse_content_length(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        return None
    n = int(value)
    return n if n <= MAX_SIZE else None


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date), capped at a day."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(int(value[:12])), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, min((when - now).total_seconds(), MAX_RETRY_AFTER))


def strong_etag(value: str | None) -> str | None:
    """The ETag if it may be used in ``If-Range`` (strong, quoted), else None."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/") or len(value) < 2 or not (value[0] == value[-1] == '"'):
        return None
    return value


_AUTH_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?'
)


def parse_bearer_challenge(value: str | None) -> dict[str, str] | None:
    """The parameters of a ``WWW-Authenticate: Bearer k="v",...`` challenge, or None."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _AUTH_PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        key, quoted, bare = m.groups()
        params[key.lower()] = quoted.replace('\\"', '"') if quoted is not None else bare
        pos = m.end()
    return params if "realm" in params else None
