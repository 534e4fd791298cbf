"""``pullman serve``: this machine's Ollama store and HF cache for the LAN (read-only)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import click

from pullman.cli.app import JSON, OLLAMA_DIR, Context, cli, pass_context
from pullman.core.jobs import GetOptions
from pullman.core.listen import Listen, Network, default_allow, parse_allow, parse_listen
from pullman.core.refs import DEFAULT_HOST, valid_part
from pullman.errors import UsageError
from pullman.layouts import hf_cache
from pullman.layouts.ollama_home import models_dir
from pullman.serve.app import ServeSettings, bind, run
from pullman.serve.catalog import Catalog
from pullman.serve.guard import Limits
from pullman.serve.local import LocalCatalog
from pullman.serve.pullthrough import PullThrough
from pullman.serve.through import PullThroughCatalog


def _token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).expanduser().read_text(errors="replace").strip()
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path}", why=exc.strerror) from None
    if not token or any(ch.isspace() for ch in token):
        raise UsageError(
            f"the token file {path} holds no token",
            why="it is empty, or holds more than one word",
            hint="put one token on one line in it",
        )
    return token


def _hf_repos(root: Path) -> dict[str, int]:
    counts = {"public": 0, "private": 0, "gated": 0, "unknown": 0}
    for folder in hf_cache.repo_dirs(root):
        counts[hf_cache.recorded_access(folder)] += 1
    return counts


def _summary(listen: Listen, catalog: LocalCatalog, serve_private: bool) -> dict[str, Any]:
    assert catalog.ollama_root is not None and catalog.hf_root is not None
    models = catalog.model_names()
    repos = _hf_repos(catalog.hf_root)
    shared = sum(repos.values()) if serve_private else repos["public"]
    base = f"http://{listen}"
    return {
        "listen": str(listen),
        "ollama": {
            "dir": str(catalog.ollama_root),
            "registry": catalog.host,
            "models": len(models),
        },
        "hf": {"cache": str(catalog.hf_root), "repos": repos, "served": shared},
        "serve_private": serve_private,
        "urls": {
            "ollama": f"ollama pull {listen}/library/<model>:<tag> --insecure",
            "hf": f"HF_ENDPOINT={base}",
            "registry": f"{base}/v2/",
        },
    }


def _print(summary: dict[str, Any], allow: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary))
        sys.stdout.flush()
        return
    o, h = summary["ollama"], summary["hf"]
    hidden = sum(h["repos"].values()) - h["served"]
    click.echo(f"pullman serve on http://{summary['listen']} (read-only); clients from {allow}")
    click.echo(f"  Ollama: {o['models']} models of {o['registry']} from {o['dir']}")
    click.echo(f"    {summary['urls']['ollama']}")
    click.echo(f"  Hugging Face: {h['served']} repos from {h['cache']}")
    if hidden:
        click.echo(
            f"    ({hidden} not shared: private, gated or not recorded public; --serve-private)"
        )
    click.echo(f"    {summary['urls']['hf']}")
    if summary["listen"].startswith(("0.0.0.0:", "[::]:")):
        click.echo("  (every interface: clients use this machine's LAN address as HOST)")
    if summary.get("pull_through"):
        click.echo(f"  Pull-through: what is missing is fetched from {o['registry']} and the Hub")
    click.echo("  Ctrl-C stops it.")
    sys.stdout.flush()


def _access_log() -> None:
    log = logging.getLogger("pullman.serve.access")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("pullman serve: %(message)s"))
        log.addHandler(handler)


def _checked(
    listen_text: str,
    registry_host: str,
    allow: tuple[str, ...],
    pull_through: bool,
    insecure: bool,
) -> tuple[Listen, tuple[Network, ...]]:
    """The flags that are wrong whatever the machine: UsageError (exit 2)."""
    listen = parse_listen(listen_text)
    if not valid_part("host", registry_host):
        raise UsageError(
            f"--registry {registry_host!r} is not a registry host", hint="e.g. registry.ollama.ai"
        )
    networks = parse_allow(allow) if allow else default_allow(listen)
    if insecure and not pull_through:
        raise UsageError("--insecure is for --pull-through", hint="add --pull-through")
    return listen, networks


def check_args(args: Sequence[str]) -> None:
    """Refuse ``args`` as ``pullman serve ARGS`` would, before it starts (``service install
    --serve``): unknown flags and values, bad addresses and networks. UsageError (exit 2)."""
    try:
        ctx = serve.make_context("serve", list(args))
    except click.UsageError as exc:
        raise UsageError(
            f"`pullman serve {' '.join(args)}` would not start",
            why=exc.format_message(),
            hint="`pullman serve --help` lists its flags",
        ) from None
    p = ctx.params
    _checked(p["listen_text"], p["registry_host"], p["allow"], p["pull_through"], p["insecure"])


@cli.command()
@click.option(
    "--listen",
    "listen_text",
    default="127.0.0.1:11435",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on; another than 127.0.0.1 only when you name it (port 0: any).",
)
@click.option(
    "--registry",
    "registry_host",
    default=DEFAULT_HOST,
    show_default=True,
    metavar="HOST",
    help="Serve this registry's Ollama models under plain names (library/x:tag).",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="CIDR",
    help="Who may connect (repeatable). Default: loopback on a loopback address; "
    "loopback and private networks (10/8, 172.16/12, 192.168/16, fc00::/7) otherwise.",
)
@click.option(
    "--token-file",
    metavar="FILE",
    help="Require this bearer token (HF_TOKEN on the clients; the password for registries).",
)
@click.option(
    "--serve-private",
    is_flag=True,
    help="Also share HF repos that were private or gated, or not recorded as public.",
)
@OLLAMA_DIR
@click.option(
    "--cache-dir",
    "--hf-cache",
    "cache_dir",
    metavar="DIR",
    help="Hugging Face cache (default: $HF_HUB_CACHE, else $HF_HOME/hub).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.1),
    default=Limits.idle_timeout,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection that has not sent a whole request in this long.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=Limits.max_connections,
    show_default=True,
    help="Connections at once; more are answered 503.",
)
@click.option(
    "--pull-through",
    is_flag=True,
    help="Fetch what the stores lack from upstream (the registry, the Hub) on first request, "
    "streaming it to every client that asks while it downloads: one download however many ask.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="With --pull-through: allow an http:// upstream registry (like `ollama pull --insecure`).",
)
@JSON
@pass_context
def serve(
    context: Context,
    listen_text: str,
    registry_host: str,
    allow: tuple[str, ...],
    token_file: str | None,
    serve_private: bool,
    ollama_dir: str | None,
    cache_dir: str | None,
    idle_timeout: float,
    max_connections: int,
    pull_through: bool,
    insecure: bool,
    as_json: bool,
) -> None:
    """Share this machine's Ollama models and HF cache with the LAN, read-only.

    An OCI registry for `ollama pull HOST:PORT/library/NAME:TAG --insecure` (and registries
    pulling through from it), and a Hugging Face endpoint for HF_ENDPOINT=http://HOST:PORT.
    With --pull-through, what the stores lack is fetched from upstream when first asked for
    (one download however many ask) and streamed to the clients as it lands.
    Stops on Ctrl-C or SIGTERM.
    """
    listen, networks = _checked(listen_text, registry_host, allow, pull_through, insecure)
    token = _token(token_file)
    hf_root = Path(cache_dir).expanduser().absolute() if cache_dir else hf_cache.cache_dir()
    local = LocalCatalog(models_dir(ollama_dir), hf_root, host=registry_host)
    catalog: Catalog = local
    alongside: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if pull_through:
        pull = pull_through_for(context, local, registry_host, insecure=insecure)
        catalog, alongside = PullThroughCatalog(local, pull), [pull.run]
    limits = Limits(max_connections=max_connections, idle_timeout=idle_timeout)
    settings = ServeSettings(listen, networks, token, serve_private, limits)
    sock = bind(listen)
    bound = Listen(listen.host, int(sock.getsockname()[1]))
    _access_log()
    summary = _summary(bound, local, serve_private)
    summary["pull_through"] = pull_through
    shown = ", ".join(str(n) for n in networks)
    run(catalog, settings, sock, lambda: _print(summary, shown, as_json), alongside=alongside)


def pull_through_for(
    context: Context, local: LocalCatalog, registry: str, *, insecure: bool
) -> PullThrough:
    """The pull-through over this box's stores: jobs land where the server reads."""
    assert local.ollama_root is not None and local.hf_root is not None
    options = GetOptions(
        insecure=insecure, ollama_dir=str(local.ollama_root), hf_cache=str(local.hf_root)
    )
    return PullThrough(context.settings, context.index, options=options, registry=registry)
