"""How much each connection buffers before a write: a configured large block (fewer thread
hand-offs per GiB) is cut so that all connections together buffer a fixed total, and memory
stays flat at 16 or 64 connections."""

from __future__ import annotations

import pytest

from pullman.transfer.config import WRITE_BUFFERS, TransferConfig

MiB = 1 << 20


@pytest.mark.parametrize(
    ("connections", "block"),
    [(1, 4 * MiB), (4, 4 * MiB), (8, 3 * MiB), (16, 3 * MiB // 2), (64, MiB)],
)
def test_a_large_write_block_shrinks_with_more_connections(connections: int, block: int) -> None:
    cfg = TransferConfig(connections=connections, write_block=4 * MiB)
    assert cfg.block == block
    assert cfg.block * connections <= max(WRITE_BUFFERS, connections * MiB)


def test_the_default_and_a_small_configured_block_are_kept() -> None:
    assert TransferConfig().block == TransferConfig().write_block == MiB
    assert TransferConfig(connections=64).block == MiB
    assert TransferConfig(connections=4, write_block=64 << 10).block == 64 << 10
