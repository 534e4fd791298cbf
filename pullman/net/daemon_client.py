"""The CLI's client for the daemon's HTTP API, over the daemon's Unix socket.

:func:`call` makes one request and returns the status and JSON; :func:`events` follows
``GET /api/events`` (server-sent events) as ``(name, data)`` pairs. Both raise
:class:`DaemonUnreachable` when nothing answers on the socket (no daemon, or one too old to
serve the API), so the caller can fall back to the index. An error answer becomes the error of
:mod:`pullman.errors` it was made from (:func:`error_of`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import httpx2

from pullman.errors import NotFound, PullmanError, StorageError, UsageError

BASE = "http://pullman.sock"
CSRF = {"X-Pullman-CSRF": "1"}


class DaemonUnreachable(Exception):
    """Nothing answers on the daemon's socket."""


class Answer(NamedTuple):
    status: int
    doc: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _doc(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def call(
    socket: Path, method: str, path: str, body: Mapping[str, Any] | None = None, timeout: float = 30
) -> Answer:
    """One request to the API on ``socket``."""
    if not socket.is_socket():
        raise DaemonUnreachable(f"no socket at {socket}")
    transport = httpx2.HTTPTransport(uds=str(socket))
    with httpx2.Client(transport=transport, base_url=BASE, timeout=timeout, trust_env=False) as c:
        try:
            response = c.request(method, path, json=body, headers=CSRF)
        except httpx2.TransportError as exc:
            raise DaemonUnreachable(str(exc)) from exc
        return Answer(response.status_code, _doc(response.content))


def error_of(answer: Answer) -> PullmanError:
    """The error an error answer describes, of the family its status names."""
    error = answer.doc.get("error") or {}
    what = str(error.get("what") or f"the daemon answered {answer.status}")
    why, hint = error.get("why"), error.get("hint")
    kind = {400: UsageError, 404: NotFound, 503: StorageError}.get(answer.status, PullmanError)
    return kind(what, why=why, hint=hint)


def checked(answer: Answer) -> dict[str, Any]:
    if not answer.ok:
        raise error_of(answer)
    return answer.doc


async def events(socket: Path) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The daemon's event stream, as ``(event name, data)``, until the daemon ends it."""
    transport = httpx2.AsyncHTTPTransport(uds=str(socket))
    timeout = httpx2.Timeout(connect=10.0, read=None, write=10.0, pool=None)
    async with httpx2.AsyncClient(
        transport=transport, base_url=BASE, timeout=timeout, trust_env=False
    ) as client:
        try:
            async with client.stream("GET", "/api/events") as response:
                if response.status_code != 200:
                    raise error_of(Answer(response.status_code, _doc(await response.aread())))
                async for item in _parse(response.aiter_lines()):
                    yield item
        except httpx2.TransportError as exc:
            raise DaemonUnreachable(str(exc)) from exc


async def _parse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """text/event-stream: ``event:`` and ``data:`` lines, an empty line ends an event."""
    name, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield name, _doc("\n".join(data).encode())
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
