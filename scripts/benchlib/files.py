"""The bench's files: seeded incompressible ones, sparse ones, and their digests."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from benchlib.cases import MiB


def make_file(path: Path, size: int, seed: int) -> str:
    """Incompressible bytes, seeded (a rerun serves the very same file); returns the sha256."""
    h = hashlib.sha256()
    block = 4 * MiB
    with path.open("wb") as f:
        for counter, done in enumerate(range(0, size, block)):
            rng = random.Random(f"pullman-bench-{seed}-{counter}")
            chunk = rng.randbytes(min(block, size - done))
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def sparse_file(path: Path, size: int) -> str:
    """A file of ``size`` zero bytes that takes no disk; returns its sha256."""
    with path.open("wb") as f:
        f.truncate(size)
    h = hashlib.sha256()
    zeros = bytes(64 * MiB)
    for _ in range(size // len(zeros)):
        h.update(zeros)
    h.update(bytes(size % len(zeros)))
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()
