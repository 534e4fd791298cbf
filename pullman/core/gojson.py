"""JSON as Go's ``encoding/json`` writes it, and text as Go reads bytes. Pure.

Ollama writes its manifests, config blobs and params blobs with ``json.NewEncoder(w).Encode(v)``,
and a blob's digest is the sha256 of exactly those bytes, so pullman writing the same model must
write the same bytes:

- compact (no spaces), then one ``"\\n"`` (``Encoder.Encode`` ends every value with a newline);
- a struct's fields in declaration order (pass a ``dict`` built in that order), a map's keys
  sorted (``sort_keys=True`` for values that are Go maps);
- strings HTML-safe (``<``, ``>``, ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026``; U+2028 and
  U+2029 escaped), other non-ASCII as raw UTF-8, control characters as ``\\n``, ``\\r``, ``\\t``,
  ``\\b``, ``\\f`` (Go 1.22 and later) or ``\\u00XX``;
- invalid UTF-8 becomes U+FFFD, one per bad byte (:func:`go_text` reads bytes that way, as Go's
  ``[]rune(s)`` and ``encoding/json`` do).

Floats are refused: Go's float formatting is not Python's and nothing here needs one.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping, Sequence

_HTML_SAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_HTML_CHARS = re.compile("[<>&\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ERRORS = "pullman-go-runes"


def _one_rune_per_bad_byte(exc: UnicodeError) -> tuple[str, int]:
    """Go decodes an invalid byte as U+FFFD and moves on by one byte (``utf8.DecodeRune``)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error(_ERRORS, _one_rune_per_bad_byte)


def go_text(raw: bytes) -> str:
    """The runes Go sees in ``raw``: UTF-8, each invalid byte one U+FFFD."""
    return raw.decode("utf-8", errors=_ERRORS)


def _string(text: str) -> str:
    text = _SURROGATE.sub("\ufffd", text)
    quoted = json.dumps(text, ensure_ascii=False)
    return _HTML_CHARS.sub(lambda m: _HTML_SAFE[m.group(0)], quoted)


def _value(value: object, sort_keys: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = sorted(value.items()) if sort_keys else list(value.items())
        return "{" + ",".join(f"{_string(k)}:{_value(v, sort_keys)}" for k, v in items) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(_value(v, sort_keys) for v in value) + "]"
    raise TypeError(f"no Go JSON encoding for {type(value).__name__}")


def encode(value: object, *, sort_keys: bool = False) -> bytes:
    """What ``json.NewEncoder(w).Encode(value)`` writes, newline included."""
    return (_value(value, sort_keys) + "\n").encode("utf-8")
