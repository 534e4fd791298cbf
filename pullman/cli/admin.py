"""Running in the background: ``daemon`` and ``service install|uninstall|status``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import click

from pullman import config
from pullman.cli.app import JSON, cli, echo_json, run_async
from pullman.errors import UsageError

if TYPE_CHECKING:
    from pullman.service import Unit

# The daemon and service modules are imported by the commands that use them: every other
# command starts faster without them.


@cli.command()
@click.option(
    "--listen",
    metavar="HOST:PORT",
    envvar="PULLMAN_LISTEN",
    help="Also serve the HTTP API and dashboard on TCP (token required; `pullman web` prints "
    "the address). 127.0.0.1 unless you name another address, e.g. :8765 or 192.168.1.5:8765. "
    "Default: $PULLMAN_LISTEN (e.g. in the service's environment).",
)
def daemon(listen: str | None) -> None:
    """Run the scheduler in the foreground (what systemd and launchd start).

    It sleeps until there is work: jobs from `pullman get`, a config change, a time window.
    SIGTERM stops it cleanly (jobs go back to the queue); SIGHUP reloads the config.
    Its HTTP API listens on a Unix socket in the state directory (the CLI's channel), and
    on TCP with --listen.
    """
    # One line per meaningful event; journald adds its own timestamps, a log file does not.
    stamp = "" if os.environ.get("INVOCATION_ID") else "%(asctime)s "
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter(stamp + "pullman: %(message)s"))
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("pullman.transfer").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)  # pullman.api.access logs requests
    from pullman.daemon import run_daemon

    run_async(lambda: run_daemon(config.load, listen))


@cli.group()
def service_group() -> None:
    """Install pullman's daemon (or `pullman serve`) as a user service (systemd, launchd)."""


def _service() -> ModuleType:
    from pullman import service

    return service


_DRY = click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")


_SERVE = click.option(
    "--serve",
    is_flag=True,
    help="The `pullman serve` service (pullman-serve.service, com.pullman.serve) instead of "
    "the daemon; flags after `--` go to `pullman serve`.",
)
_SERVE_ARGS = click.argument("serve_args", nargs=-1, type=click.UNPROCESSED)
_PASS_THROUGH = {"ignore_unknown_options": True}


def _unit(serve: bool, serve_args: tuple[str, ...]) -> Unit:
    """The service a command is about: the daemon, or ``pullman serve`` with its flags."""
    from pullman import service

    if not serve:
        if serve_args:
            raise UsageError(
                f"unexpected arguments: {' '.join(serve_args)}",
                hint="flags for `pullman serve` go after `--serve --`",
            )
        return service.DAEMON
    from pullman.cli.serve_cmd import check_args

    check_args(serve_args)  # what `pullman serve` would refuse, before anything is written
    return service.serve_unit(serve_args)


@service_group.command("install", context_settings=_PASS_THROUGH)
@_DRY
@_SERVE
@JSON
@_SERVE_ARGS
def service_install(dry_run: bool, serve: bool, as_json: bool, serve_args: tuple[str, ...]) -> None:
    """Write the unit / LaunchAgent and start it; prints the commands it runs.

    `pullman service install --serve -- --listen 192.168.1.10:11435 --allow 192.168.1.0/24`
    installs `pullman serve` with those flags instead (its own unit, next to the daemon's).
    """
    unit = _unit(serve, serve_args)
    _steps(
        lambda echo: _service().install(sys.platform, dry_run=dry_run, unit=unit, echo=echo),
        as_json,
    )


@service_group.command("uninstall")
@_DRY
@_SERVE
@JSON
def service_uninstall(dry_run: bool, serve: bool, as_json: bool) -> None:
    """Stop the service and remove its unit / LaunchAgent."""
    unit = _unit(serve, ())
    _steps(
        lambda echo: _service().uninstall(sys.platform, dry_run=dry_run, unit=unit, echo=echo),
        as_json,
    )


def _steps(run: Callable[[Callable[[str], None]], object], as_json: bool) -> None:
    """Run a service step, printing each command (or, with --json, listing them at the end)."""
    if not as_json:
        run(click.echo)
        return
    lines: list[str] = []
    run(lines.append)
    echo_json({"steps": lines})


@service_group.command("status")
@_SERVE
@JSON
def service_status(serve: bool, as_json: bool) -> None:
    """Whether the service is installed and running."""
    state = _service().status(sys.platform, unit=_unit(serve, ()))
    if as_json:
        echo_json(state.to_json())
        return
    for key, value in state.to_json().items():
        click.echo(f"{key}: {value}")


service_group.name = "service"
cli.add_command(service_group, "service")
