"""The ``ollama`` package's client, made here: it brings the older ``httpx`` as its HTTP library.

Its errors are understood by :mod:`pullman.net.errors` (by class name), so no other module
names an httpx type.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pullman.core.proxies import Proxies

if TYPE_CHECKING:
    from ollama import AsyncClient


def async_client(
    host: str | None,
    *,
    connect: float | None = None,
    timeout: float | None = None,
    proxies: Proxies | None = None,
) -> AsyncClient:
    """An ``ollama.AsyncClient`` for ``host``: with ``connect``, no read limit (the caller
    watches the stream) and that connect timeout; else ``timeout`` for the whole request.
    The proxy is pullman's choice for the server's URL (``NO_PROXY`` usually lists it)."""
    import httpx
    from ollama import AsyncClient

    limit = httpx.Timeout(None, connect=connect) if connect is not None else timeout
    proxy = proxies.for_url(server_url(host)) if proxies is not None else None
    return AsyncClient(host, timeout=limit, proxy=proxy, trust_env=False)


def server_url(host: str | None) -> str:
    """The server's base URL as the ``ollama`` client reads ``host`` / ``OLLAMA_HOST``."""
    value = host or os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434"
    return value if "://" in value else f"http://{value}"
