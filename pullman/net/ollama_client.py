"""The ``ollama`` package's client, made here: it brings the older ``httpx`` as its HTTP library.

Its errors are understood by :mod:`pullman.net.errors` (by class name), so no other module
names an httpx type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ollama import AsyncClient


def async_client(
    host: str | None, *, connect: float | None = None, timeout: float | None = None
) -> AsyncClient:
    """An ``ollama.AsyncClient`` for ``host``: with ``connect``, no read limit (the caller
    watches the stream) and that connect timeout; else ``timeout`` for the whole request."""
    import httpx
    from ollama import AsyncClient

    limit = httpx.Timeout(None, connect=connect) if connect is not None else timeout
    return AsyncClient(host, timeout=limit)
