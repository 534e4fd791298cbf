"""Running in the background: ``daemon`` and ``service install|uninstall|status``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

import click

from pullman import config
from pullman.cli.app import JSON, cli, echo_json, run_async

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
    """Install pullman's daemon as a user service (systemd on Linux, launchd on macOS)."""


def _service() -> ModuleType:
    from pullman import service

    return service


_DRY = click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")


@service_group.command("install")
@_DRY
@JSON
def service_install(dry_run: bool, as_json: bool) -> None:
    """Write the unit / LaunchAgent and start it; prints the commands it runs."""
    _steps(lambda echo: _service().install(sys.platform, dry_run=dry_run, echo=echo), as_json)


@service_group.command("uninstall")
@_DRY
@JSON
def service_uninstall(dry_run: bool, as_json: bool) -> None:
    """Stop the service and remove its unit / LaunchAgent."""
    _steps(lambda echo: _service().uninstall(sys.platform, dry_run=dry_run, echo=echo), as_json)


def _steps(run: Callable[[Callable[[str], None]], object], as_json: bool) -> None:
    """Run a service step, printing each command (or, with --json, listing them at the end)."""
    if not as_json:
        run(click.echo)
        return
    lines: list[str] = []
    run(lines.append)
    echo_json({"steps": lines})


@service_group.command("status")
@JSON
def service_status(as_json: bool) -> None:
    """Whether the service is installed and running."""
    state = _service().status(sys.platform)
    if as_json:
        echo_json(state.to_json())
        return
    for key, value in state.to_json().items():
        click.echo(f"{key}: {value}")


service_group.name = "service"
cli.add_command(service_group, "service")
