"""``pullman serve``: the aiohttp application, the listening socket, and running until a signal.

:func:`build_app` puts the guard (:mod:`pullman.serve.guard`) in front of the registry and Hub
routes over one :class:`~pullman.serve.catalog.Catalog`. :func:`bind` opens the socket first, so
a taken port or a bad address is a clear error before anything else starts. :func:`serve` runs
the site until its cancel scope is cancelled (SIGINT / SIGTERM in :func:`run`), then closes the
listener and lets the answers in flight finish for a moment.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiohttp import web

from pullman.core.listen import Listen, Network
from pullman.errors import AddressInUse, UsageError, collapse_groups
from pullman.serve.catalog import Catalog
from pullman.serve.guard import AccessLog, LimitedSite, Limits, guard
from pullman.serve.hub import Hub
from pullman.serve.registry import Registry
from pullman.serve.respond import STALL
from pullman.serve.through import upstream_errors

access_log = logging.getLogger("pullman.serve.access")


@dataclass(frozen=True)
class ServeSettings:
    listen: Listen
    allow: tuple[Network, ...]
    token: str | None = field(default=None, repr=False)
    serve_private: bool = False
    limits: Limits = field(default_factory=Limits)


class _OneLine(logging.Filter):
    """aiohttp logs a client's malformed request with a traceback ("Error handling request"):
    one line instead (which error), unless debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger("pullman").isEnabledFor(logging.DEBUG):
            exc = record.exc_info[1]
            # The type only: aiohttp's message quotes the offending header, which may be one
            # that carries a credential.
            record.msg = f"{record.getMessage()}: {type(exc).__name__}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_server_log() -> None:
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _OneLine) for f in server.filters):
        server.addFilter(_OneLine())


def build_app(catalog: Catalog, settings: ServeSettings) -> web.Application:
    app = web.Application(
        middlewares=[guard(settings.allow, settings.token), upstream_errors],
        client_max_size=settings.limits.max_body,
        handler_args={
            "keepalive_timeout": settings.limits.idle_timeout,
            "max_line_size": settings.limits.max_field,
            "max_field_size": settings.limits.max_field,
            "max_headers": settings.limits.max_headers,
            "lingering_time": 1.0,
        },
    )
    app[STALL] = settings.limits.stall_timeout
    app.add_routes(Registry(catalog).routes())
    app.add_routes(Hub(catalog, serve_private=settings.serve_private).routes())
    return app


def bind(listen: Listen) -> socket.socket:
    """The listening socket, or a clear error: the port is taken, or the address is not ours."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {listen}", why=str(exc)) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(
                f"cannot listen on {listen}: the port is taken",
                why="another program (or another pullman serve) listens there",
                hint="stop it, or choose another port with --listen HOST:PORT",
            ) from None
        raise UsageError(
            f"cannot listen on {listen}",
            why=exc.strerror or str(exc),
            hint="name an address of this machine (ip addr shows them), or 127.0.0.1",
        ) from None
    sock.setblocking(False)
    return sock


async def serve(
    catalog: Catalog,
    settings: ServeSettings,
    sock: socket.socket,
    *,
    started: Callable[[], Awaitable[None] | None] | None = None,
) -> None:
    """Serve on ``sock`` until cancelled."""
    quiet_server_log()
    app = build_app(catalog, settings)
    runner = web.AppRunner(
        app, access_log=access_log, access_log_class=AccessLog, shutdown_timeout=5.0
    )
    await runner.setup()
    try:
        site = LimitedSite(runner, sock, settings.limits.max_connections)
        await site.start()
        if started is not None:
            result = started()
            if result is not None:
                await result
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(6):
            await runner.cleanup()


def run(
    catalog: Catalog,
    settings: ServeSettings,
    sock: socket.socket,
    started: Callable[[], None],
    *,
    alongside: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> int:
    """Serve until SIGINT or SIGTERM; the signal number that stopped it (0: none).

    ``alongside``: tasks that live as long as the server, in the same task group (a
    pull-through's downloads); when one fails, the server stops and the error is raised.
    """
    stopped: list[int] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def watch(signals: Sequence[signal.Signals]) -> None:
                with anyio.open_signal_receiver(*signals) as received:
                    async for signum in received:
                        stopped.append(signum)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch, (signal.SIGINT, signal.SIGTERM))
            tg.start_soon(lambda: serve(catalog, settings, sock, started=started))
            for task in alongside:
                tg.start_soon(task)

    with collapse_groups():
        anyio.run(main)
    return stopped[0] if stopped else 0
