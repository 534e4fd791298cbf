"""Processes: whether the pid that owns a job or a lock is still alive, and running a command
with a time limit (hooks), its output kept, the whole process group killed at the limit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import anyio
from anyio.abc import Process

KEEP_OUTPUT = 64 << 10
"""Bytes of a command's output kept (the first ones); the rest is counted, not kept."""
GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a command past its limit."""


def pid_alive(pid: int) -> bool:
    """A signal-0 probe: True for a live process, also one of another user's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


class Finished(NamedTuple):
    """How a command ended: its exit status (None: killed at the limit), its output (stdout
    and stderr, interleaved, the first :data:`KEEP_OUTPUT` bytes) and how long it ran."""

    returncode: int | None
    output: bytes
    seconds: float
    dropped: int = 0
    """Output bytes past :data:`KEEP_OUTPUT`, not kept."""


async def run_limited(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Finished:
    """Run ``argv`` (no shell) in its own session, stdin closed; past ``timeout`` seconds, or
    when the caller is cancelled, its whole process group is terminated, then killed.

    Raises ``OSError`` when the program cannot be started (not found, not executable).
    """
    start = time.monotonic()
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    kept = bytearray()
    dropped = 0
    ended = False
    try:
        with anyio.move_on_after(timeout):
            assert process.stdout is not None
            async for chunk in process.stdout:  # until every process of the group closed it
                room = max(0, KEEP_OUTPUT - len(kept))
                kept += chunk[:room]
                dropped += max(0, len(chunk) - room)
            await process.wait()
            ended = True
    finally:
        with anyio.CancelScope(shield=True):
            if not ended:  # past the limit or cancelled: the leader or a child still runs
                await _stop(process)
            await process.aclose()
    code = process.returncode if ended else None
    return Finished(code, bytes(kept), time.monotonic() - start, dropped)


async def _stop(process: Process) -> None:
    """SIGTERM to the process group, SIGKILL after :data:`GRACE` seconds."""
    _signal_group(process.pid, signal.SIGTERM)
    with anyio.move_on_after(GRACE):
        await process.wait()
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
