"""Quantisation tags in GGUF file names (``Q4_K_M``, ``IQ3_XS``, ``F16`` ...). Pure."""

from __future__ import annotations

import re

_QUANT_IN_NAME = re.compile(r"(?<![A-Z0-9])(I?Q\d[A-Z0-9_]*?|F16|BF16|F32)(?=[-.](?!\d)|$|-\d)")


def quant_tags(path: str) -> set[str]:
    """Quantisation tags in a GGUF file's path (``Q4_K_M``, ``IQ3_XS``, ``F16`` ...)."""
    return set(_QUANT_IN_NAME.findall(path.upper()))


def has_quant(path: str, quant: str) -> bool:
    """Whether a file's path names quantisation ``quant`` (any case)."""
    wanted = quant.upper()
    return any(part == wanted for part in re.split(r"[-./]", path.upper())) or wanted in (
        quant_tags(path)
    )
