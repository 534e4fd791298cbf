"""Fast but real engine settings for tests and the chaos harness: small pieces and short
timeouts, so faults show up in milliseconds; the logic that runs is the real one.

One set, in two shapes: :func:`fast_config` (a ``TransferConfig`` for in-process runs) and
:func:`fast_env` (``PULLMAN_*`` variables for a ``pullman`` subprocess). Callers override
single values by name (``fast_config(connections=2)``, ``fast_env(transfer_connections=2)``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pullman.transfer.config import TransferConfig
from pullman.transfer.recycle import RecycleConfig

KiB = 1 << 10
MiB = 1 << 20

TRANSFER: dict[str, Any] = {
    "connections": 4,
    "piece_size": 256 * KiB,
    "min_piece": 64 * KiB,
    "write_block": 64 * KiB,
    "journal_interval": 0.2,
    "journal_from": 0,  # every test file is journaled (tests/test_engine.py runs without)
    "retry_attempts": 6,
    "retry_initial": 0.01,
    "retry_max": 0.05,
    "tick": 0.05,
    "space_margin": 0,
}
RECYCLE: dict[str, Any] = {
    "stall_timeout": 1.0,
    "pause": 0.01,
    "warmup": 0.2,
    "rate_window": 0.2,
    "slow_grace": 0.3,
    "min_request_bytes": 64 * KiB,
}


def fast_config(**overrides: Any) -> TransferConfig:
    """:data:`TRANSFER` and :data:`RECYCLE` with ``overrides`` (of either, by field name)."""
    recycle_fields = {f.name for f in dataclasses.fields(RecycleConfig)}
    recycle = {**RECYCLE, **{k: v for k, v in overrides.items() if k in recycle_fields}}
    transfer = {**TRANSFER, **{k: v for k, v in overrides.items() if k not in recycle_fields}}
    return TransferConfig(**transfer, recycle=RecycleConfig(**recycle))


def fast_env(**overrides: Any) -> dict[str, str]:
    """The same settings as ``PULLMAN_<SECTION>_<KEY>`` variables; ``overrides`` are named
    ``<section>_<key>`` (``transfer_connections=2``)."""
    values = {f"transfer_{k}": v for k, v in TRANSFER.items()}
    values.update({f"recycle_{k}": v for k, v in RECYCLE.items()})
    values.update(overrides)
    return {f"PULLMAN_{k.upper()}": str(v) for k, v in values.items()}
