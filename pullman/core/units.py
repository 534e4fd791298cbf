"""Sizes and rates as users write them and as pullman shows them. Pure.

Sizes: ``"32MiB"``, ``"1.5GB"``, ``"512k"`` or a plain number of bytes (:func:`parse_size`).
Rates: ``"20MB/s"``, ``"512KiB/s"``, ``"1.5M"``, ``"100Mbit/s"``, ``"off"`` (:func:`parse_rate`).
Shown: :func:`human` (binary units, ``"1.5 GiB"``), :func:`format_rate` (decimal, ``"20 MB/s"``).
"""

from __future__ import annotations

import math
import re

from pullman.errors import UsageError


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*", re.I | re.ASCII)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}


def parse_size(text: str | int | float, *, what: str = "size") -> int:
    """``"32MiB"``, ``"1.5GB"``, ``"512k"`` or a plain number of bytes."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: expected a size, got {text!r}")
    if isinstance(text, int | float):
        return int(text)
    m = _SIZE.fullmatch(text)
    unit = (m.group(2) or "").lower() if m else None
    if m is None or unit not in _UNITS:
        raise UsageError(
            f"{what}: {text!r} is not a size",
            hint='write a number of bytes or a number with a unit, e.g. "32MiB" or "1.5GB"',
        )
    return int(float(m.group(1)) * _UNITS[unit])


_RATE = re.compile(
    r"\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgt]?i?(?:b|bit|bps)?)\s*(?:/\s*s(?:ec)?)?\s*",
    re.IGNORECASE,
)
_DECIMAL = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_BINARY = {"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40}
_OFF = {"0", "off", "none", "unlimited"}
_RATE_HINT = 'write bytes per second with a unit, e.g. "20MB/s", "512KiB/s" or "1.5M", or "off"'


def parse_rate(text: str | float, *, what: str = "rate") -> float | None:
    """Bytes per second from ``"20MB/s"``, ``"512KiB/s"``, ``"1.5M"``, ``"100Mbit/s"`` or ``2e7``.

    ``"0"``, ``"off"``, ``"none"`` and ``"unlimited"`` mean no cap (``None``). Units are decimal
    (``MB`` = 10^6 bytes) or binary (``MiB`` = 2^20 bytes) and case-insensitive, so ``Mb`` is
    megabytes too; ``bit`` and ``bps`` (``100Mbit/s``, ``100Mbps``) count bits.
    """
    if isinstance(text, bool):
        raise UsageError(f"{what}: expected a rate, got {text!r}", hint=_RATE_HINT)
    if isinstance(text, int | float):
        return _checked(float(text), what, repr(text))
    if text.strip().lower() in _OFF:
        return None
    m = _RATE.fullmatch(text)
    unit = m.group("unit").lower() if m else ""
    prefix = unit.removesuffix("bit").removesuffix("bps").removesuffix("b")
    scale = _DECIMAL.get(prefix) or _BINARY.get(prefix)
    if m is None or scale is None:
        raise UsageError(f"{what}: {text!r} is not a rate", hint=_RATE_HINT)
    bits = unit.endswith(("bit", "bps"))
    return _checked(float(m.group("num")) * scale / (8 if bits else 1), what, repr(text))


def _checked(value: float, what: str, shown: str) -> float | None:
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what}: {shown} is not a rate", hint=_RATE_HINT)
    if value == 0:
        return None
    if value < 1:
        raise UsageError(f"{what}: {shown} is under one byte per second", hint=_RATE_HINT)
    return value


def format_rate(rate: float | None) -> str:
    """``"20 MB/s"``, ``"1.5 MB/s"``, ``"512 kB/s"`` (decimal units); ``"unlimited"`` for None."""
    if rate is None:
        return "unlimited"
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.3g} {unit}"
    return f"{rate:.0f} B/s"
