"""Serving the API inside the daemon: aiohttp's runners on the daemon's own event loop.

:func:`serve_api` runs as one task of the daemon's task group (``await tg.start(...)``: it is
ready when the sockets listen). It binds the Unix socket (and the TCP listener when asked),
runs the :class:`~pullman.api.watcher.Watcher`, and, when the daemon stops (its scope is
cancelled), ends every event stream and closes the listeners before it returns.

The Unix socket is created by the daemon that holds ``daemon.lock``; so a socket file found at
start is a dead daemon's, and is removed (a file that is not a socket is left alone, and the API
says why it cannot start). A socket that cannot be made (a path too long for ``AF_UNIX``) is
logged, and the daemon runs on: the CLI then uses the index directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Final

import anyio
from aiohttp import web
from aiohttp.typedefs import Middleware

from pullman.api.address import Listen
from pullman.api.auth import load_token
from pullman.api.middleware import AccessLog, access, errors, headers, token_guard
from pullman.api.routes import STATE, ApiState, add_routes
from pullman.api.watcher import Watcher
from pullman.errors import UsageError

log = logging.getLogger("pullman.api")

SHUTDOWN: Final = 2.0
"""Seconds the listeners give open requests when the daemon stops (event streams end first)."""
MAX_UNIX_PATH: Final = 100


def make_app(state: ApiState, token: str | None) -> web.Application:
    """The application: behind the token gate when ``token`` is given (TCP)."""
    middlewares: list[Middleware] = [headers, errors]
    if token is not None:
        middlewares.append(token_guard(token))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024)
    app[STATE] = state
    add_routes(app)
    return app


def _runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN,
        handler_cancellation=True,
        access_log=access,
        access_log_class=AccessLog,
    )


def clear_stale_socket(path: Path) -> None:
    """Remove a dead daemon's socket file (the caller holds the daemon lock)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(
            f"{path} exists and is not a socket",
            hint="move it away; pullman keeps its API socket there",
        )
    path.unlink()
    log.info("removed a stale API socket left by a daemon that stopped: %s", path)


async def _unix_site(runner: web.AppRunner, path: Path) -> web.UnixSite | None:
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        log.warning(
            "no API socket: the path %s is too long for a Unix socket; the CLI will use the "
            "index directly (set PULLMAN_HOME to a shorter directory to have it)",
            path,
        )
        return None
    clear_stale_socket(path)
    site = web.UnixSite(runner, str(path))
    await site.start()
    os.chmod(path, 0o600)  # noqa: PTH101 - one syscall; the directory is 0700 too; the mode is the socket's only guard
    return site


async def serve_api(
    state: ApiState,
    listen: Listen | None,
    *,
    task_status: anyio.abc.TaskStatus[ApiState] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``task_status.started(state)`` once listening."""
    paths = state.settings.paths
    watcher = Watcher(
        state.index, state.hub, state.history, state.stats_for, state.settings.schedule.limit
    )
    state.notify = watcher.changes.notify
    runners: list[web.AppRunner] = []
    socket_path = paths.api_socket
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(watcher.run)
            unix = _runner(make_app(state, None))
            runners.append(unix)
            await unix.setup()
            await _unix_site(unix, socket_path)
            if listen is not None:
                await _tcp(state, listen, runners)
            task_status.started(state)
            await anyio.sleep_forever()
    finally:
        state.hub.close()
        with anyio.CancelScope(shield=True):
            for runner in reversed(runners):
                await runner.cleanup()
        with contextlib.suppress(OSError):
            if socket_path.is_socket():
                socket_path.unlink()


async def _tcp(state: ApiState, listen: Listen, runners: list[web.AppRunner]) -> None:
    token = await anyio.to_thread.run_sync(load_token, state.settings.paths.data)
    assert token is not None
    runner = _runner(make_app(state, token))
    runners.append(runner)
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port)
    try:
        await site.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {listen.host}:{listen.port}",
            why=exc.strerror or str(exc),
            hint="pick another port, or stop what listens there",
        ) from exc
    port = int(runner.addresses[-1][1])
    state.listen = listen.url(port)
    if not listen.loopback:
        log.warning("the API listens on %s (not loopback): anyone with the token can use it",
                    listen.host)  # fmt: skip
    log.info("API and dashboard on %s (`pullman web --url` prints the address with its token)",
             state.listen)  # fmt: skip
