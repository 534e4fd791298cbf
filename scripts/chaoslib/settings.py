"""The fast engine settings of :mod:`pullman.testing.settings` (the one set tests use too), as
the soak randomises them and as the ``pullman`` subprocesses get them."""

from __future__ import annotations

import os
import random
from pathlib import Path

from pullman.testing.settings import KiB, fast_config, fast_env
from pullman.transfer.config import TransferConfig

__all__ = ["CLI_OVERRIDES", "CONFIG_OVERRIDES", "cli_env", "fast_transfer_config"]

CONFIG_OVERRIDES: dict[str, float] = {"retry_after_max": 2.0, "read_timeout": 10.0}
"""Over :func:`fast_config`: a 429's Retry-After waits at most 2 s, a silent read 10 s (a run's
deadline is 45 s)."""

CLI_OVERRIDES: dict[str, str] = {"transfer_piece_size": "512KiB"}
"""Over :func:`fast_env`: the crash loop bounds its refetched bytes by 512 KiB pieces."""


def fast_transfer_config(rng: random.Random | None = None) -> TransferConfig:
    """:func:`fast_config` with :data:`CONFIG_OVERRIDES`, and with ``rng`` randomised."""
    randomised = _randomised(rng) if rng is not None else {}
    return fast_config(**CONFIG_OVERRIDES, **randomised)


def _randomised(rng: random.Random) -> dict[str, object]:
    """The engine settings a soak run draws. The draws keep this order: a seed replays its run."""
    piece_size = rng.choice([64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB])
    stall_timeout = round(rng.uniform(0.5, 1.5), 2)
    learn = rng.random() < 0.7
    request_seconds = rng.choice([60.0, 60.0, 2.0])
    connections = rng.randint(1, 6)
    write_block = rng.choice([16 * KiB, 64 * KiB])
    retry_attempts = rng.choice([4, 6, 8])
    return {
        "piece_size": piece_size,
        "stall_timeout": stall_timeout,
        "learn": learn,
        "request_seconds": request_seconds,
        "connections": connections,
        "write_block": write_block,
        "retry_attempts": retry_attempts,
    }


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The current environment without pullman's and the Hub's variables, plus the fast
    settings (:func:`fast_env` with :data:`CLI_OVERRIDES`), ``home`` as ``PULLMAN_HOME`` and no
    Ollama server; then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULLMAN_", "HF_"))}
    env.update(fast_env(**CLI_OVERRIDES))
    env["PULLMAN_HOME"] = str(home)
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"  # no Ollama server here
    env.update(extra)
    return env
