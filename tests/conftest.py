"""Shared fixtures: a simulator on loopback per test, and fast-but-real engine settings."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pullman.core.digests import sha256
from pullman.core.plan import FileSpec
from pullman.testing import Simulator
from pullman.transfer.config import TransferConfig
from pullman.transfer.engine import Transfer
from pullman.transfer.recycle import RecycleConfig
from pullman.transfer.stats import Outcome

KiB = 1 << 10
MiB = 1 << 20


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def fast_config(**overrides: object) -> TransferConfig:
    """Small pieces and short timeouts, so faults show up quickly; the logic is the real one."""
    recycle = RecycleConfig(
        stall_timeout=float(overrides.pop("stall_timeout", 1.0)),  # type: ignore[arg-type]
        pause=0.01,
        warmup=0.2,
        rate_window=0.2,
        slow_grace=0.3,
        min_request_bytes=64 * KiB,
        learn=bool(overrides.pop("learn", True)),
    )
    base: dict[str, object] = {
        "connections": 4,
        "piece_size": 256 * KiB,
        "min_piece": 64 * KiB,
        "write_block": 64 * KiB,
        "journal_interval": 0.2,
        "retry_attempts": 6,
        "retry_initial": 0.01,
        "retry_max": 0.05,
        "tick": 0.05,
        "space_margin": 0,
        "recycle": recycle,
    }
    base.update(overrides)
    return TransferConfig(**base)  # type: ignore[arg-type]


def spec_for(url: str, tmp_path: Path, data: bytes | None = None, **kw: object) -> FileSpec:
    digest = sha256(hashlib.sha256(data).hexdigest()) if data is not None else None
    fields: dict[str, object] = {
        "url": url,
        "dest": tmp_path / "out" / "file.bin",
        "key": "test-file",
        "name": "file.bin",
        "size": len(data) if data is not None else None,
        "digest": digest,
    }
    fields.update(kw)
    return FileSpec(**fields)  # type: ignore[arg-type]


class Recorder:
    """An injected sleep that records what the engine asked for, and sleeps only a tick."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.sleep(min(seconds, 0.01))


def run_transfer(
    spec: FileSpec,
    tmp_path: Path,
    config: TransferConfig | None = None,
    staging_dir: Path | None = None,
    **kw: object,
) -> tuple[Outcome, Transfer]:
    staging = staging_dir or tmp_path / "staging"
    transfer = Transfer(spec, staging, config or fast_config(), **kw)  # type: ignore[arg-type]
    outcome = anyio.run(transfer.run)
    return outcome, transfer


def staging_is_clean(tmp_path: Path) -> bool:
    staging = tmp_path / "staging"
    return not staging.exists() or not any(staging.iterdir())
