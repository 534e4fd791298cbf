"""Talking to a running Ollama server: the only module that uses the ``ollama`` client.

- :func:`server_sees` asks whether the server is up and knows a model (``/api/show``).
- :func:`pull_progress` starts a pull on the server and yields its NDJSON progress lines;
  leaving the block closes the stream, which is the only way to stop a server's pull.
  ``--via-server`` (:mod:`pullman.transfer.via_server`) recycles these streams.

Errors of the client (``ollama.ResponseError``, the HTTP client's errors) are translated into
:mod:`pullman.errors` here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
from ollama import AsyncClient, ProgressResponse, ResponseError

from pullman.core.proxies import Proxies
from pullman.errors import (
    NetworkError,
    NotFound,
    ProtocolViolation,
    PullmanError,
    ServerError,
    UsageError,
)
from pullman.net.errors import error_for_status, is_client_error, is_connect_error
from pullman.net.ollama_client import async_client

DEFAULT_HOST = "http://127.0.0.1:11434"


def host_of(host: str | None) -> str:
    """The server address as the user configured it (for messages)."""
    return host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


class ServerNotRunning(NetworkError):
    """Nothing answers at the server's address. Not retried if it never answered before."""


def _not_running(host: str | None, exc: BaseException) -> ServerNotRunning:
    return ServerNotRunning(
        f"cannot reach the Ollama server at {host_of(host)}",
        why=str(exc) or type(exc).__name__,
        hint="start it with `ollama serve` (or set OLLAMA_HOST to where it runs), "
        "or drop --via-server to let pullman download the model itself",
    )


# ---------------------------------------------------------------------- server_sees


@dataclass(frozen=True)
class ServerCheck:
    state: Literal["ready", "not_running", "not_visible"]
    detail: str


async def server_sees(
    model: str, host: str | None = None, timeout: float = 3.0, proxies: Proxies | None = None
) -> ServerCheck:
    """Whether the Ollama server at ``host`` runs and knows ``model``. Never raises for either."""
    where = host_of(host)
    client = async_client(host, timeout=timeout, proxies=proxies)
    try:
        with anyio.move_on_after(timeout):
            await client.show(model)
            return ServerCheck("ready", f"the Ollama server at {where} has {model}")
        return ServerCheck("not_running", f"the Ollama server at {where} did not answer")
    except ConnectionError:  # the client's own translation of a refused connection
        return ServerCheck("not_running", f"no Ollama server answers at {where}")
    except ResponseError as exc:
        if exc.status_code == 404:
            detail = (
                f"the Ollama server at {where} runs but does not know {model}: it may read "
                "another models directory (OLLAMA_MODELS) than the one pullman wrote to"
            )
        else:
            detail = f"the Ollama server at {where} cannot show {model}: {exc.error}"
        return ServerCheck("not_visible", detail)
    except ValueError as exc:  # an answer that is not Ollama's JSON
        return ServerCheck("not_visible", f"{where} answers, but not like an Ollama server: {exc}")
    except Exception as exc:
        if not is_client_error(exc):
            raise
        why = str(exc) or type(exc).__name__
        return ServerCheck("not_running", f"no Ollama server answers at {where} ({why})")
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()  # type: ignore[no-untyped-call]


def connect(
    host: str | None, *, connect_timeout: float, proxies: Proxies | None = None
) -> AsyncClient:
    """A client for a pull: no read limit (the stream is watched), ``connect_timeout``."""
    return async_client(host, connect=connect_timeout, proxies=proxies)


@asynccontextmanager
async def pull_progress(
    client: AsyncClient, model: str, host: str | None, insecure: bool
) -> AsyncIterator[AsyncIterator[ProgressResponse]]:
    """The progress lines of a pull of ``model``; errors in pullman's tree.

    :class:`ServerNotRunning` when nothing answers; a :class:`~pullman.errors.TransientError`
    when the stream breaks or the server reports a failure; ``NotFound``, ``AccessDenied``,
    ``UsageError`` for what retrying cannot mend.
    """
    try:
        stream = await client.pull(model, insecure=insecure, stream=True)
    except Exception as exc:
        raise _failure(exc, model, host) from exc
    try:
        yield _translated(stream, model, host)
    finally:
        with anyio.CancelScope(shield=True):
            await _close(stream)  # closes the HTTP stream: the only way to stop


async def _translated(
    stream: AsyncIterator[ProgressResponse], model: str, host: str | None
) -> AsyncIterator[ProgressResponse]:
    try:
        async for part in stream:
            yield part
    except Exception as exc:
        raise _failure(exc, model, host) from exc


def _failure(exc: Exception, model: str, host: str | None) -> PullmanError:
    """What went wrong, in pullman's tree; anything that is not the client's is a bug."""
    where = f"the Ollama server at {host_of(host)}"
    if isinstance(exc, ResponseError):
        return _answered(exc, model, where)
    if isinstance(exc, ValueError):
        return ProtocolViolation(f"{where} sent a line pullman cannot read", why=str(exc))
    if is_connect_error(exc):
        return _not_running(host, exc)
    if not is_client_error(exc):
        raise exc
    return NetworkError(f"the pull stream from {where} broke", why=str(exc) or type(exc).__name__)


def _answered(exc: ResponseError, model: str, where: str) -> PullmanError:
    """The server answered with an error (a status, or an error line in the stream)."""
    status, message = exc.status_code, str(exc.error)
    lower = message.lower()
    if status == 404 or "file does not exist" in lower or "manifest unknown" in lower:
        return NotFound(
            f"{model}: no such model in the registry",
            why=f"{where} says: {message}",
            hint="check the name and tag (https://ollama.com/library)",
        )
    if status == 400:
        return UsageError(f"{where} refused to pull {model!r}", why=message)
    if "unauthorized" in lower:
        status = 401
    if status <= 0:  # an error line in the progress stream
        return ServerError(f"{where} failed to pull {model}", why=message)
    why = f"HTTP {status}: {message}"
    return error_for_status(status, where, subject=f"{where} (pulling {model})", why=why)


async def _close(stream: AsyncIterator[ProgressResponse]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
