"""HTTP failures in pullman's terms: one table for status codes, one translation of client errors.

:func:`error_for_status` is the only place that turns an HTTP status into an error of
:mod:`pullman.errors` (pullman's own requests, huggingface_hub's and the Ollama server's answers
all come here). :func:`translate` is the only place that knows the HTTP clients' exception
types; it refuses (re-raises) anything that is not an HTTP client error, so a bug is never
mistaken for a network problem and retried.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pullman.core.headers import parse_retry_after
from pullman.core.proxies import shown
from pullman.core.urls import host_of, redact
from pullman.errors import (
    AccessDenied,
    NetworkError,
    NotFound,
    PullmanError,
    RateLimited,
    RemoteError,
    ServerError,
    TLSFailure,
    Unreachable,
)

Headers = Mapping[str, str]
_NO_HEADERS: Headers = {}
LOGIN = "log in with `hf auth login` or set HF_TOKEN"


def _printable(text: str, limit: int = 300) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _hub_error(code: str, shown: str, headers: Headers) -> PullmanError | None:
    """The Hugging Face Hub names its errors in ``X-Error-Code`` / ``X-Error-Message``."""
    message = _printable(headers.get("x-error-message", ""))
    if code == "GatedRepo":
        return AccessDenied(
            f"{shown}: gated repo",
            why=message or "its authors must grant you access first",
            hint=f"ask for access on the repo's page, then {LOGIN}",
        )
    if code == "RepoNotFound":
        return NotFound(
            f"{shown}: repo not found",
            why=message or None,
            hint=f"check the name; if private, {LOGIN}",
        )
    if code in ("EntryNotFound", "RevisionNotFound"):
        return NotFound(f"{shown}: {code}", why=message or None)
    return None


def error_for_status(
    status: int,
    url: str,
    headers: Headers = _NO_HEADERS,
    *,
    subject: str | None = None,
    why: str | None = None,
) -> PullmanError:
    """The error for an answer we cannot use; callers decide which statuses are acceptable.

    ``subject`` names what answered (default: the redacted URL), ``why`` adds what the server
    said. ``Retry-After`` is honoured for 429 and 5xx.
    """
    shown = subject or redact(url)
    code = headers.get("x-error-code")
    if code and (hub := _hub_error(code, shown, headers)) is not None:
        return hub
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status in (404, 410):
        return NotFound(
            f"{shown} answered {status}: not found",
            why=why,
            hint="check the address, model name or tag",
        )
    if status in (401, 403):
        return AccessDenied(
            f"{shown} answered {status}: access denied",
            why=why,
            hint="the server wants credentials, or refuses the ones sent",
        )
    if status == 407:
        return AccessDenied(
            f"the proxy in front of {shown} answered 407: it wants credentials",
            why=why,
            hint="give them in the proxy URL (http://user:password@proxy:port) in HTTPS_PROXY / "
            "HTTP_PROXY or [network] proxy; they are never logged",
        )
    if status == 429:
        return RateLimited(
            f"{shown} answered 429: too many requests", why=why, retry_after=retry_after or 5.0
        )
    if status >= 500:
        return ServerError(f"{shown} answered {status}", why=why, retry_after=retry_after)
    return RemoteError(f"{shown} answered an unexpected {status}", why=why)


def deadline_error(url: str, seconds: float) -> NetworkError:
    return NetworkError(
        f"{redact(url)} did not answer completely within {seconds:g} s",
        why="the server stalls or drips its answer",
        hint="try again later; if it persists the server is broken",
    )


# ---------------------------------------------------------------------------- client errors


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        assert nxt is not None
        seen = nxt
    return seen


_CLIENT_PACKAGES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2"})


def _kinds(exc: BaseException) -> set[str]:
    """The names of the HTTP clients' exception classes ``exc`` is an instance of.

    By name, so that httpx2 (pullman, huggingface_hub) and httpx (the ``ollama`` client) are
    both understood without importing the optional one.
    """
    return {
        cls.__name__
        for cls in type(exc).__mro__
        if cls.__module__.partition(".")[0] in _CLIENT_PACKAGES
    }


def is_client_error(exc: BaseException) -> bool:
    return "HTTPError" in _kinds(exc)


def translate(exc: BaseException, url: str, proxy: str | None = None) -> PullmanError:
    """Map an HTTP client exception to our tree; anything else is re-raised untouched.

    ``proxy``: the proxy the request went through, so that failing to reach *it* is not
    reported as the server's failure.
    """
    kinds = _kinds(exc)
    if "HTTPError" not in kinds:
        raise exc
    host = host_of(url)
    cause = _root_cause(exc)
    if proxy is not None and kinds & {"ConnectError", "ConnectTimeout", "ProxyError"}:
        return _proxy_error(exc, cause, proxy, url)
    if isinstance(cause, ssl.SSLError):
        return _tls_failure(host, cause)
    why = str(exc) or type(exc).__name__
    if kinds & {"ConnectError", "ConnectTimeout"}:
        return _connect_error(why, cause, url)
    if "TimeoutException" in kinds:
        return NetworkError(f"timed out talking to {host}", why=type(exc).__name__)
    if "RemoteProtocolError" in kinds:
        return NetworkError(
            f"{redact(url)}: connection closed early", why=str(exc) or "peer closed"
        )
    response = getattr(exc, "response", None) if "HTTPStatusError" in kinds else None
    if response is not None:
        return error_for_status(response.status_code, url, response.headers)
    if "TransportError" in kinds:
        return NetworkError(f"{redact(url)}: network error", why=why)
    return RemoteError(f"{redact(url)}: HTTP error", why=why)


def translate_socket(exc: OSError, url: str, *, connecting: bool) -> PullmanError:
    """A socket, TLS or timeout error on a connection of :mod:`pullman.net.bulk` (which talks
    to sockets itself, not through an HTTP client) in our tree."""
    host = host_of(url)
    if isinstance(exc, ssl.SSLError):
        return _tls_failure(host, exc)
    if isinstance(exc, TimeoutError):
        doing = "connecting to" if connecting else "waiting for data from"
        return NetworkError(f"timed out {doing} {host}", why="no answer within the timeout")
    why = str(exc) or type(exc).__name__
    if connecting:
        return _connect_error(why, exc, url)
    return NetworkError(f"{redact(url)}: network error", why=why)


def _tls_failure(host: str, cause: ssl.SSLError) -> TLSFailure:
    return TLSFailure(
        f"TLS failure talking to {host}",
        why=str(cause),
        hint="check the system clock and CA certificates; use --insecure only for a host you trust",
    )


def _connect_error(why: str, cause: BaseException, url: str) -> Unreachable:
    host = host_of(url)
    if isinstance(cause, socket.gaierror):
        return Unreachable(
            f"could not resolve host {host}",
            url=url,
            why=str(cause),
            hint="check the address and your DNS / network connection",
        )
    if isinstance(cause, ConnectionRefusedError) or (
        isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
    ):
        return Unreachable(
            f"connection refused by {host}",
            url=url,
            why="nothing is listening at that address and port",
            hint="check the address, and that the server is running",
        )
    return Unreachable(f"could not connect to {host}", url=url, why=why)


def _proxy_error(exc: BaseException, cause: BaseException, proxy: str, url: str) -> NetworkError:
    where = shown(proxy)
    hint = (
        "check HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (or [network] proxy in pullman.toml); "
        "NO_PROXY lists hosts to reach directly"
    )
    host = host_of(url)
    if "ProxyError" in _kinds(exc):
        return NetworkError(
            f"the proxy {where} refused to connect to {host}", why=str(exc), hint=hint
        )
    reason = _connect_error(str(exc) or type(exc).__name__, cause, proxy).what
    message = f"could not reach the proxy {where} (for {host})"
    return Unreachable(message, url=url, why=reason, hint=hint)


@contextmanager
def translated(url: str, proxy: str | None = None) -> Iterator[None]:
    """HTTP client errors raised inside become :mod:`pullman.errors`; nothing else is touched."""
    try:
        yield
    except Exception as exc:
        if not is_client_error(exc):
            raise
        raise translate(exc, url, proxy) from exc


def is_connect_error(exc: BaseException) -> bool:
    """Whether nothing answered at all (the ``ollama`` client raises ``ConnectionError``)."""
    return isinstance(exc, ConnectionError) or bool(
        _kinds(exc) & {"ConnectError", "ConnectTimeout"}
    )
