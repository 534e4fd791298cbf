"""Running the real ``pullman`` command as a subprocess, with test-sized settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAST_ENV = {
    "PULLMAN_TRANSFER_CONNECTIONS": "4",
    "PULLMAN_TRANSFER_PIECE_SIZE": "512KiB",
    "PULLMAN_TRANSFER_MIN_PIECE": "64KiB",
    "PULLMAN_TRANSFER_WRITE_BLOCK": "64KiB",
    "PULLMAN_TRANSFER_JOURNAL_INTERVAL": "0.2",
    "PULLMAN_TRANSFER_RETRY_ATTEMPTS": "4",
    "PULLMAN_TRANSFER_RETRY_INITIAL": "0.01",
    "PULLMAN_TRANSFER_RETRY_MAX": "0.05",
    "PULLMAN_TRANSFER_SPACE_MARGIN": "0",
    "PULLMAN_RECYCLE_STALL_TIMEOUT": "1",
    "PULLMAN_RECYCLE_PAUSE": "0.01",
}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAN_")}
    env.update(FAST_ENV)
    env["PULLMAN_HOME"] = str(home)
    env.update(extra)
    return env


def pullman(
    *args: str, home: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pullman", *args],
        env=env or cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pullman", *args],
        env=env or cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
