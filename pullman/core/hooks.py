"""Hooks: the commands that run when a job ends, and what they are told. Pure: the runner is
:mod:`pullman.hooks`.

A hook is a command line split like a shell would split it (:func:`shlex.split`), but run
without one: ``notify.sh "$PULLMAN_REF"`` passes the literal text ``$PULLMAN_REF``; whoever wants
a shell writes one (``sh -c 'echo "$PULLMAN_REF" >> done.txt'``). It learns about the job from
its environment (:func:`hook_env`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Final, Literal

from pullman.errors import UsageError

HookName = Literal["on_done", "on_failed", "notify"]
ENDINGS: Final = {"done": "on_done", "failed": "on_failed"}
"""The job states that run a hook, and the hook each runs."""


def parse_command(text: str, what: str) -> tuple[str, ...]:
    """A hook's command line as argv; a clear usage error for an empty or unbalanced one."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(
            f"{what}: cannot split the command {text!r}",
            why=str(exc),
            hint="quote it as in a shell; a shell itself is `sh -c '...'`",
        ) from None
    if not argv:
        raise UsageError(f"{what}: the command is empty", hint="name a program to run")
    return argv


def hook_env(job: int, ref: str, state: str, path: str | None, error: str | None) -> dict[str, str]:
    """What a hook is told about its job (added to the environment it inherits)."""
    env = {
        "PULLMAN_JOB": str(job),
        "PULLMAN_REF": ref,
        "PULLMAN_STATE": state,
        "PULLMAN_PATH": path or "",
    }
    if error:
        env["PULLMAN_ERROR"] = error.splitlines()[0]
    return env


def notify_argv(
    platform: str, which: Callable[[str], str | None], title: str, message: str
) -> tuple[str, ...] | None:
    """The desktop notification command of this platform, or None where there is none:
    ``osascript`` on macOS, ``notify-send`` on Linux when it is installed."""
    if platform == "darwin" and which("osascript"):
        script = f"display notification {_applescript(message)} with title {_applescript(title)}"
        return ("osascript", "-e", script)
    if platform.startswith("linux") and which("notify-send"):
        return ("notify-send", "--app-name=pullman", title, message)
    return None


def _applescript(text: str) -> str:
    """``text`` as an AppleScript string literal (the ref is the user's, but still quoted)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    return f'"{escaped}"'


def notification(ref: str, state: str, error: str | None) -> tuple[str, str]:
    """The title and message of a job's desktop notification."""
    if state == "done":
        return "pullman: download done", ref
    reason = error.splitlines()[0] if error else "see `pullman status`"
    return "pullman: download failed", f"{ref}: {reason}"
