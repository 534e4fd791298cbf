"""Processes: whether the pid that owns a job or a lock is still alive."""

from __future__ import annotations

import os


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
