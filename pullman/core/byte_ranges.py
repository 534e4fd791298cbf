"""The ``Range`` header of a request, against a body of known size. Pure.

One range is served (what Ollama, huggingface_hub, distribution and browsers ask); a request
for several ranges is answered with the whole body, which RFC 9110 allows.
"""

from __future__ import annotations

from typing import Literal

UNSATISFIABLE: Literal["unsatisfiable"] = "unsatisfiable"
Span = tuple[int, int]
"""``(start, end)``: bytes ``start`` up to, not including, ``end``."""


def parse_range(header: str | None, size: int) -> Span | Literal["unsatisfiable"] | None:
    """The span a ``Range`` header asks for; None: the whole body (no header, several ranges,
    or one we ignore as RFC 9110 lets us); ``UNSATISFIABLE``: a 416."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if len(first) > 20 or len(last) > 20:
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0:
            return UNSATISFIABLE
        return (max(0, size - suffix), size)
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return UNSATISFIABLE
    return (start, end)


def content_range(span: Span, size: int) -> str:
    return f"bytes {span[0]}-{span[1] - 1}/{size}"
