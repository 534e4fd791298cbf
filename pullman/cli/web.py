"""``pullman web``: the running daemon's dashboard address (with its token), or open it."""

from __future__ import annotations

import webbrowser

import click

from pullman.api.auth import load_token
from pullman.cli.app import JSON, Context, cli, echo_json, pass_context
from pullman.cli.controls import daemon_socket
from pullman.errors import NoDaemon
from pullman.net.daemon_client import call, checked

LISTEN_HINT = (
    "start it with `pullman daemon --listen 127.0.0.1:8765` (or a LAN address to reach it from "
    "other machines); for the service, set PULLMAN_LISTEN=127.0.0.1:8765 in its environment "
    "(`systemctl --user edit pullman`) and restart it"
)


def dashboard_url(context: Context) -> str:
    """``http://HOST:PORT/?token=...`` of the running daemon; NoDaemon if there is none."""
    paths = context.settings.paths
    socket = daemon_socket(paths)
    if socket is None:
        raise NoDaemon("no pullman daemon is running here", hint=LISTEN_HINT)
    listen = checked(call(socket, "GET", "/api/health")).get("listen")
    if not listen:
        raise NoDaemon("the daemon does not serve its dashboard over TCP", hint=LISTEN_HINT)
    token = load_token(paths.data, create=False)
    if token is None:
        raise NoDaemon(f"the daemon's API token is missing ({paths.data / 'api-token'})",
                       hint="restart the daemon; it creates a new one")  # fmt: skip
    return f"{listen}?token={token}"


@cli.command()
@click.option("--url", "url_only", is_flag=True, help="Print only the address (with its token).")
@click.option("--open", "open_it", is_flag=True, help="Open the dashboard in a web browser.")
@JSON
@pass_context
def web(context: Context, url_only: bool, open_it: bool, as_json: bool) -> None:
    """The running daemon's web dashboard: its address, with the token that opens it.

    The token is a password: anyone with the address can control the daemon's jobs.
    Exit 8 when no daemon runs, or it was started without --listen.
    """
    url = dashboard_url(context)
    if as_json:
        echo_json({"url": url})
    elif url_only or not open_it:
        click.echo(url)
    if open_it and not webbrowser.open(url):
        click.echo("pullman: no web browser found here; open the address above", err=True)
