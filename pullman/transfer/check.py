"""Whether an answer's bytes are exactly the bytes asked for. Pure: a status and headers in, a
verdict out (``None``: use the body), table-tested.

Refused answers raise: :class:`StartOver` when the partial data cannot be used any more (the file
changed, the server ignores ranges), :class:`~pullman.errors.ProtocolViolation` when the server
broke HTTP's rules for this request (retried, the data never used),
:class:`~pullman.errors.LinkExpired` when a CDN link the source handed out stopped working, and
the error of the status otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pullman.core.headers import (
    ContentRange,
    parse_content_length,
    parse_content_range,
    strong_etag,
)
from pullman.core.urls import redact
from pullman.errors import LinkExpired, ProtocolViolation
from pullman.net.errors import error_for_status


class StartOver(Exception):
    """The partial data is unusable (range ignored, file changed): fetch the file afresh."""

    def __init__(self, why: str, *, single_stream: bool) -> None:
        super().__init__(why)
        self.why = why
        self.single_stream = single_stream


@dataclass(frozen=True)
class Asked:
    """What one request asked for: ``[start, end)`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int
    ranged: bool
    """Whether the request carried a Range header (the server said it supports ranges)."""
    etag: str | None = None
    """The file's strong ETag when it was resolved."""
    redirected: bool = False
    """Whether the URL is a CDN link the source redirected to."""


def content_range(url: str, value: str | None) -> ContentRange:
    if value is None:
        raise ProtocolViolation(f"{redact(url)} sent a partial answer without Content-Range")
    try:
        return parse_content_range(value)
    except ValueError as exc:
        raise ProtocolViolation(f"{redact(url)} sent a malformed Content-Range") from exc


def encoded(headers: Mapping[str, str]) -> str:
    """The body's content coding, if it is not the bytes themselves (``""`` for identity)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    return "" if encoding in ("", "identity") else encoding


def check_response(status: int, headers: Mapping[str, str], url: str, asked: Asked) -> None:
    """Refuse any answer whose body would not be exactly ``[asked.start, ...)`` of the file."""
    encoding = encoded(headers)
    if status in (200, 206) and encoding:
        raise ProtocolViolation(f"{redact(url)} sent {encoding}-encoded data")
    etag = strong_etag(headers.get("etag"))
    if status in (200, 206) and asked.etag and etag and etag != asked.etag:
        raise StartOver("the file changed on the server (new ETag)", single_stream=False)
    if status == 206:
        _check_partial(url, headers, asked)
    elif status == 200:
        _check_whole(headers, asked)
    elif asked.redirected and status in (401, 403, 404, 410):
        raise LinkExpired(f"{redact(url)} answered {status}: the CDN link expired")
    elif status == 416:
        raise StartOver("the server says the range is past the end", single_stream=False)
    else:
        raise error_for_status(status, url, headers)


def _check_partial(url: str, headers: Mapping[str, str], asked: Asked) -> None:
    cr = content_range(url, headers.get("content-range"))
    if cr.start != asked.start:
        raise ProtocolViolation(
            f"{redact(url)} answered bytes from {cr.start} when asked for {asked.start}",
            why="a wrong Content-Range; the data was not used",
        )
    if cr.total is not None and cr.total != asked.size:
        raise StartOver("the file changed size on the server", single_stream=False)


def _check_whole(headers: Mapping[str, str], asked: Asked) -> None:
    if asked.ranged and not (asked.start == 0 and asked.end == asked.size):
        raise StartOver("the server ignored the Range header", single_stream=True)
    length = parse_content_length(headers.get("content-length"))
    if length is not None and length != asked.size:
        raise StartOver("the file changed size on the server", single_stream=False)
