"""Running hooks when a job ends: ``--on-done`` / ``--on-failed`` (else ``[hooks]``), and the
ready-made desktop notification (``--notify``, ``[hooks] notify``).

A hook runs without a shell, in the directory the job was asked from, with the job in its
environment (:func:`pullman.core.hooks.hook_env`), for at most ``[hooks] timeout`` seconds
(then its process group is killed). Its output goes to pullman's log, line by line; the
command line itself is never logged (it is the user's and may carry a token), only its
program's name. A hook that fails or hangs never changes how the job ended.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from pullman.config import HooksConfig
from pullman.core.hooks import ENDINGS, hook_env, notification, notify_argv, parse_command
from pullman.core.jobs import JobOptions
from pullman.core.urls import redact, shown_ref
from pullman.errors import UsageError
from pullman.procs import Finished, run_limited

log = logging.getLogger("pullman.hooks")

MAX_LINES = 20
"""Lines of a hook's output written to the log (the rest is counted)."""


class Ending(NamedTuple):
    """A job that ended, as its hooks see it."""

    job: int
    ref: str
    state: str
    """``done`` or ``failed``."""
    path: str | None
    error: str | None = None
    cwd: str | None = None


class Hooks:
    """The hooks of one process (a daemon, a foreground ``get``, a Python caller)."""

    def __init__(
        self,
        *,
        platform: str = sys.platform,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self._platform = platform
        self._which = which
        self._said_no_notify = False

    def commands(
        self, config: HooksConfig, options: JobOptions, state: str
    ) -> list[tuple[str, str]]:
        """(name, command line) of the hooks a job's ending runs: the job's own over the
        config's, then a notification if either asks for one."""
        name = ENDINGS.get(state)
        if name is None:
            return []
        own = options.on_done if state == "done" else options.on_failed
        line = own or getattr(config, name)
        found = [(name, line)] if line else []
        if options.notify or config.notify:
            found.append(("notify", ""))
        return found

    async def run(self, config: HooksConfig, options: JobOptions, ending: Ending) -> None:
        """Every hook of ``ending``, one after the other; none of them raises."""
        for name, line in self.commands(config, options, ending.state):
            argv = self._notify(ending) if name == "notify" else _argv(name, line)
            if argv:
                await self._run_one(name, argv, ending, config.timeout)

    def _notify(self, ending: Ending) -> tuple[str, ...] | None:
        title, message = notification(shown_ref(ending.ref), ending.state, ending.error)
        argv = notify_argv(self._platform, self._which, title, message)
        if argv is None and not self._said_no_notify:
            self._said_no_notify = True
            log.info("desktop notifications are not available here (no notify-send/osascript)")
        return argv

    async def _run_one(
        self, name: str, argv: Sequence[str], ending: Ending, timeout: float
    ) -> None:
        env = dict(os.environ)
        env.update(hook_env(ending.job, ending.ref, ending.state, ending.path, ending.error))
        cwd = ending.cwd if ending.cwd and os.path.isdir(ending.cwd) else None  # noqa: PTH112, ASYNC240 - one stat
        what = f"job {ending.job} {shown_ref(ending.ref)}: {name} hook ({Path(argv[0]).name})"
        try:
            finished = await run_limited(argv, timeout=timeout, env=env, cwd=cwd)
        except OSError as exc:
            log.warning("%s could not start: %s", what, exc.strerror or exc)
            return
        _log_result(what, finished, timeout)


def _argv(name: str, line: str) -> tuple[str, ...] | None:
    try:
        return parse_command(line, name)
    except UsageError as exc:  # checked when it was given; a config edited since is logged
        log.warning("%s", exc.what)
        return None


def _log_result(what: str, finished: Finished, timeout: float) -> None:
    if finished.returncode is None:
        log.warning("%s was killed after %g s (the [hooks] timeout)", what, timeout)
        level = logging.WARNING
    elif finished.returncode != 0:
        log.warning("%s exited %s after %.1f s", what, finished.returncode, finished.seconds)
        level = logging.WARNING
    else:
        log.info("%s ran in %.1f s", what, finished.seconds)
        level = logging.INFO
    lines = finished.output.decode(errors="replace").splitlines()
    for line in lines[:MAX_LINES]:
        log.log(level, "  | %s", _scrub(line))
    more = len(lines) - MAX_LINES
    if more > 0 or finished.dropped:
        log.log(level, "  | (%s more lines not logged)", max(more, 0) or "some")


def _scrub(line: str) -> str:
    """A line of a hook's output fit for the log: URLs without credentials or query strings,
    nothing that looks like a Hugging Face token."""
    words = []
    for word in line.split(" "):
        if word.lower().startswith(("http://", "https://")):
            word = redact(word)
        elif word.startswith("hf_") and len(word) > 8:
            word = "hf_…"
        words.append(word)
    return " ".join(words)
