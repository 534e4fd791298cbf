"""Parsers of untrusted response headers: exact on good input, refusing everything else."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullman.core.headers import (
    ContentRange,
    parse_content_length,
    parse_content_range,
    parse_retry_after,
    strong_etag,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bytes 0-99/1000", ContentRange(0, 99, 1000)),
        ("bytes 10-10/11", ContentRange(10, 10, 11)),
        ("bytes 5-9/*", ContentRange(5, 9, None)),
        ("bytes */1000", ContentRange(None, None, 1000)),
        ("Bytes  0-0/1", ContentRange(0, 0, 1)),
    ],
)
def test_content_range_good(text: str, expected: ContentRange) -> None:
    assert parse_content_range(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bytes",
        "bytes 9-5/10",
        "bytes 0-10/10",
        "bytes */*",
        "items 0-1/2",
        "bytes -1-2/3",
        "bytes 0-1/99999999999999999",
        "bytes 0-1/2, 4-5/6",
    ],
)
def test_content_range_bad(text: str) -> None:
    with pytest.raises(ValueError):
        parse_content_range(text)


@given(st.text(max_size=60))
def test_content_range_never_crashes_otherwise(text: str) -> None:
    try:
        cr = parse_content_range(text)
    except ValueError:
        return
    if cr.start is not None:
        assert cr.end is not None and cr.start <= cr.end
        assert cr.total is None or cr.end < cr.total


def test_retry_after_forms() -> None:
    now = dt.datetime(2026, 11, 22, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("999999999999999") == 24 * 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.text(max_size=40))
def test_retry_after_never_crashes(text: str) -> None:
    value = parse_retry_after(text)
    assert value is None or 0.0 <= value <= 24 * 3600.0


def test_content_length_and_etag() -> None:
    assert parse_content_length("123") == 123
    assert parse_content_length("-1") is None
    assert parse_content_length("1e3") is None
    assert strong_etag('"abc"') == '"abc"'
    assert strong_etag('W/"abc"') is None
    assert strong_etag("abc") is None
