"""``pullman daemon``: the scheduler in the foreground, as systemd and launchd expect.

- One scheduler per ``PULLMAN_HOME``: an exclusive lock on ``daemon.lock`` (which also holds the
  pid, for messages). A second daemon gets a clear message.
- Idle means asleep. It wakes when ``pullman get`` (or pause, resume, cancel, limit) touches
  ``control/wake``, and when the config file changes (watchfiles; inotify / FSEvents, no
  polling), or when the scheduler's own next timer (a window, a disk check) falls due.
- The HTTP API (:mod:`pullman.api`) on ``daemon.sock`` in the state directory, and on TCP with
  ``--listen HOST:PORT``; it starts once the lock is held and stops with the daemon.
- SIGTERM or SIGINT: every running job stops, its data and journal on disk, and goes back to the
  queue; the process exits within seconds. On restart every unfinished job resumes where it was.
  SIGHUP: reload the config.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from pullman.config import Paths, Settings
from pullman.errors import UsageError
from pullman.fsio import disk_errors
from pullman.index import Index
from pullman.scheduler import Scheduler

if TYPE_CHECKING:
    from pullman.api.address import Listen
    from pullman.api.routes import ApiState

log = logging.getLogger("pullman.daemon")

WAKE = "wake"


class DaemonLock:
    """``daemon.lock``: held (flock) by the running daemon, holding its pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        with disk_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def daemon_pid(paths: Paths) -> int | None:
    """The pid of the daemon running for this ``PULLMAN_HOME``, or None."""
    path = paths.daemon_lock
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None


def poke(paths: Paths) -> None:
    """Wake the daemon (if any): it looks at the queue, the limit and its jobs again."""
    with contextlib.suppress(OSError):
        paths.control.mkdir(parents=True, exist_ok=True)
        (paths.control / WAKE).write_text(f"{time.time()}\n")


async def run_daemon(load: Callable[[], Settings], listen: str | None = None) -> None:
    """Run the scheduler and the HTTP API (Unix socket; TCP at ``listen``) until a signal."""
    # The API's modules (aiohttp) load before the lock is taken, so the daemon is ready (and
    # idle) soon after it holds the lock.
    import pullman.api.server  # noqa: F401
    from pullman.api.address import parse_listen

    where = parse_listen(listen) if listen is not None else None
    settings = load()
    paths = settings.paths
    await anyio.to_thread.run_sync(paths.ensure)
    lock = DaemonLock(paths.daemon_lock)
    if not await anyio.to_thread.run_sync(lock.acquire):
        raise UsageError(
            f"a pullman daemon is already running for {paths.data} (pid {daemon_pid(paths)})",
            hint="stop it first (systemctl --user stop pullman), or set PULLMAN_HOME to run "
            "another one elsewhere",
        )
    try:
        index = await anyio.to_thread.run_sync(Index.open, paths.index)
        if index.recovered_from is not None:
            log.warning("the index was damaged and moved to %s; run `pullman doctor`",
                        index.recovered_from)  # fmt: skip
        back = await anyio.to_thread.run_sync(index.recover_orphans)
        if back:
            log.info("jobs %s were interrupted; queued again", ", ".join(map(str, back)))
        scheduler = Scheduler(settings, index)
        cfg = settings.schedule
        log.info(
            "daemon started: pid %s, state in %s, %s connections (%s per host), %s jobs at once",
            os.getpid(), paths.data, cfg.connections, cfg.per_host, cfg.jobs,
        )  # fmt: skip
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signals, tg.cancel_scope, scheduler, load)
            api = await tg.start(_serve_api, settings, index, scheduler, where)
            tg.start_soon(_watch_files, paths, scheduler, load, api.notify)
            await scheduler.run(forever=True)
    finally:
        log.info("daemon stopped")
        lock.release()


async def _serve_api(
    settings: Settings,
    index: Index,
    scheduler: Scheduler,
    listen: Listen | None,
    *,
    task_status: anyio.abc.TaskStatus[ApiState] = anyio.TASK_STATUS_IGNORED,
) -> None:
    from pullman.api.routes import ApiState
    from pullman.api.server import serve_api

    state = ApiState(settings, index, stats_for=scheduler.job_statistics, wake=scheduler.wake)
    await serve_api(state, listen, task_status=task_status)


async def _signals(
    scope: anyio.CancelScope, scheduler: Scheduler, load: Callable[[], Settings]
) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading the configuration")
                _reload(scheduler, load)
                continue
            log.info("%s: stopping; running jobs go back to the queue",
                     signal.Signals(signum).name)  # fmt: skip
            scope.cancel()
            return


def _reload(scheduler: Scheduler, load: Callable[[], Settings]) -> None:
    try:
        scheduler.reconfigure(load())
    except Exception as exc:  # a broken config must not stop the daemon
        log.error("keeping the old configuration: %s", exc)  # noqa: TRY400 - no traceback for a typo


async def _watch_files(
    paths: Paths,
    scheduler: Scheduler,
    load: Callable[[], Settings],
    notify: Callable[[], None],
) -> None:
    from watchfiles import awatch

    paths.control.mkdir(parents=True, exist_ok=True)
    watched = [paths.control]
    config_dir = paths.config_file.parent
    if config_dir.is_dir():
        watched.append(config_dir)
    async for changes in awatch(*watched, debounce=100, step=20, recursive=False):
        touched = {Path(p) for _, p in changes}
        if paths.config_file in touched:
            log.info("configuration changed: reloading")
            _reload(scheduler, load)
        if any(p.parent == paths.control for p in touched):
            scheduler.wake()
            notify()  # another process changed the index: tell the API's event streams
