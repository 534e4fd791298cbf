"""What the harness's modules share: sizes, digests, the environment, the ``pullman`` command."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from pullman.testing.settings import KiB, MiB

__all__ = [
    "PACKAGE",
    "KiB",
    "MiB",
    "environ",
    "git_sha1",
    "run_cli",
    "sha256_hex",
    "spawn_cli",
    "wait_for",
]

PACKAGE = Path(__file__).resolve().parent
"""``scripts/chaoslib``."""


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the duration of a block."""
    old = {k: os.environ.get(k) for k in values}
    try:
        _set_environ(values)
        yield
    finally:
        _set_environ(old)


def _set_environ(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 10 ms until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_cli(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pullman ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pullman", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn_cli(
    args: list[str], env: dict[str, str], out: IO[bytes] | int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """Start ``python -m pullman ARGS`` in the background, stdout and stderr to ``out``."""
    return subprocess.Popen(
        [sys.executable, "-m", "pullman", *args], env=env, stdout=out, stderr=out
    )
