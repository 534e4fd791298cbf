"""Writing to an OCI registry: requests with bodies, docker-style auth, the registry's errors.

One :class:`RegistryClient` per push: one HTTP/1.1 connection to the registry (the transport of
:mod:`pullman.net.client`, TLS by :mod:`pullman.net.tls`, proxies from the settings), and the
``Authorization`` the registry asked for:

- ``GET /v2/`` first; a 401 names the scheme. ``Basic``: the docker config's credentials are
  sent with every request. ``Bearer``: a token for the push scopes is fetched from the realm
  (with the credentials, if any, as Basic), and fetched again once when a request is refused
  with it (tokens expire).
- Credentials and tokens go to the registry's own origin only (an upload ``Location`` on
  another host gets none) and never into a message or a log line; URLs are shown redacted
  (upload URLs carry the registry's signed state in their query).

Bodies are given as a factory of async byte streams, so a request refused for auth, or retried,
is sent again from the start. Registry JSON errors (``{"errors":[{"code":...}]}``) become
:mod:`pullman.errors` here (:func:`registry_error`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2

from pullman.core.proxies import Proxies
from pullman.core.registry_auth import (
    Challenge,
    Credentials,
    parse_challenge,
    parse_token,
    token_query,
)
from pullman.core.urls import is_loopback, same_origin
from pullman.errors import (
    AccessDenied,
    IntegrityError,
    NotFound,
    PullmanError,
    RemoteError,
)
from pullman.net.client import USER_AGENT, fetch
from pullman.net.errors import error_for_status, translated
from pullman.net.reach import REACH
from pullman.net.tls import context_for
from pullman.net.transport import OneConnectionTransport

Body = Callable[[], AsyncIterator[bytes]]
MAX_REPLY = 64 << 10
MAX_TOKEN = 64 << 10
LOGIN = "log in with `docker login {host}` (pullman reads ~/.docker/config.json, or $DOCKER_CONFIG)"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def codes(self) -> set[str]:
        """The registry's error codes (``BLOB_UNKNOWN``, ``DENIED`` ...)."""
        try:
            doc = json.loads(self.body)
            return {str(e.get("code")) for e in doc.get("errors", []) if isinstance(e, dict)}
        except (ValueError, AttributeError, TypeError, RecursionError, UnicodeDecodeError):
            return set()

    def message(self) -> str | None:
        try:
            doc = json.loads(self.body)
            texts = [str(e.get("message", "")) for e in doc.get("errors", [])]
        except (ValueError, AttributeError, TypeError, RecursionError, UnicodeDecodeError):
            return None
        text = "; ".join(t for t in texts if t)
        return "".join(ch for ch in text if ch.isprintable())[:300] or None


def registry_error(reply: Reply, subject: str) -> PullmanError:
    """The error for a registry answer the caller cannot use."""
    codes, why = reply.codes(), reply.message()
    if "DIGEST_INVALID" in codes or "SIZE_INVALID" in codes:
        return IntegrityError(
            f"{subject}: the registry says the data does not match its digest",
            why=why,
            hint="the local copy is damaged: `pullman verify` finds it, `pullman get` repairs it",
        )
    if reply.status == 405 or "UNSUPPORTED" in codes:
        return RemoteError(
            f"{subject}: the registry does not accept pushes",
            why=why or f"it answered {reply.status}",
            hint="it may be read-only or a pull-through cache; push to the registry it mirrors",
        )
    if reply.status == 413:
        return RemoteError(
            f"{subject}: the registry (or a proxy in front of it) refused a request as too large",
            why=why,
            hint="try a smaller --chunk-size",
        )
    if reply.status == 404 and "NAME_UNKNOWN" in codes:
        return NotFound(f"{subject}: the registry knows no such repository", why=why)
    return error_for_status(reply.status, reply.url, reply.headers, subject=subject, why=why)


class RegistryClient:
    """Requests to one registry (``base`` = ``scheme://host[:port]``), authorized as it asks."""

    def __init__(
        self,
        base: str,
        *,
        credentials: Credentials | None,
        scopes: Sequence[str],
        insecure: bool = False,
        proxies: Proxies | None = None,
        helper: str | None = None,
        read_timeout: float = 300.0,
    ) -> None:
        self.base = base
        self.host = urlsplit(base).netloc
        self._credentials = credentials
        self._helper = helper
        self._scopes = tuple(scopes)
        self._insecure = insecure
        self._proxies = proxies or Proxies()
        self._timeout = httpx2.Timeout(connect=20.0, read=read_timeout, write=60.0, pool=None)
        self._client: httpx2.AsyncClient | None = None
        self._authorization: str | None = None
        self.requests = 0

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def recycle(self) -> None:
        """Drop the connection (after a network error); the next request opens a new one."""
        await self.aclose()

    # ------------------------------------------------------------------ auth

    async def authorize(self) -> None:
        """``GET /v2/``: learn the registry's challenge and get what it asks for."""
        reply = await self.send("GET", f"{self.base}/v2/")
        if reply.status not in (200, 401):
            raise registry_error(reply, f"the registry {self.host}")

    async def _answer(self, reply: Reply, sent: str | None) -> bool:
        """Set the ``Authorization`` a 401 asks for; False when there is nothing to try."""
        challenge = parse_challenge(reply.headers.get("www-authenticate"))
        if challenge is None or challenge.scheme == "other":
            return False
        if challenge.scheme == "basic":
            if self._credentials is None or sent == self._credentials.basic():
                return False
            self._authorization = self._credentials.basic()
            return True
        self._authorization = "Bearer " + await self._token(challenge)
        return True

    async def _token(self, challenge: Challenge) -> str:
        realm = challenge.params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"the registry {self.host} sent an unusable token realm")
        if parts.scheme == "http" and not (self._insecure or is_loopback(realm)):
            raise RemoteError(
                f"the registry {self.host} wants tokens fetched over plain http",
                hint="pass --insecure if you trust this registry",
            )
        creds = self._credentials
        query = token_query(challenge, self._scopes, creds.username if creds else None)
        url = realm + ("&" if parts.query else "?") + query
        headers = {"Authorization": creds.basic()} if creds is not None else {}
        doc = await fetch(
            url, headers, limit=MAX_TOKEN, insecure=self._insecure, proxies=self._proxies
        )
        if doc.status in (401, 403):
            raise self.denied(doc.status, why="the token service refused them")
        if doc.status != 200:
            raise error_for_status(
                doc.status, url, doc.headers, subject=f"the token service of {self.host}"
            )
        token = parse_token(doc.body)
        if token is None:
            raise RemoteError(f"the token service of {self.host} sent no usable token")
        return token

    def denied(self, status: int, why: str | None = None) -> AccessDenied:
        """Access denied, saying what was sent (never the secret) and what to do."""
        host = self.host
        if self._credentials is None:
            helper = (
                f" (the credential helper {self._helper!r} is configured; pullman runs none)"
                if self._helper
                else ""
            )
            return AccessDenied(
                f"the registry {host} wants credentials, and none were found for it{helper}",
                why=why or f"it answered {status} to an anonymous request",
                hint=LOGIN.format(host=host),
            )
        verb = "refused" if status == 401 else "does not allow this push for"
        return AccessDenied(
            f"the registry {host} {verb} {self._credentials}",
            why=why or f"it answered {status}",
            hint="check the user, the password and the user's rights on the repository; "
            + LOGIN.format(host=host),
        )

    # ------------------------------------------------------------------ requests

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: Body | bytes | None = None,
    ) -> Reply:
        """One request, answered after auth (a 401 is answered once, then returned)."""
        answered = False
        while True:
            auth = self._authorization if same_origin(url, self.base) else None
            reply = await self._send(method, url, headers or {}, body, auth)
            if reply.status != 401 or answered or not same_origin(url, self.base):
                return reply
            if not await self._answer(reply, auth):
                return reply
            answered = True

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body | bytes | None,
        auth: str | None,
    ) -> Reply:
        client = self._client_for(url)
        merged = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if auth is not None:
            merged["Authorization"] = auth
        content = body() if callable(body) else body
        request = client.build_request(method, url, headers=merged, content=content)
        self.requests += 1
        try:
            with translated(url, proxy=self._proxies.for_url(url)):
                raw = await client.send(request, stream=True, follow_redirects=False)
                try:
                    data = b"" if method == "HEAD" else await _read(raw, MAX_REPLY)
                finally:
                    await raw.aclose()
        except PullmanError:
            await self.recycle()
            raise
        REACH.mark(url)
        return Reply(raw.status_code, raw.headers, data, url)

    def _client_for(self, url: str) -> httpx2.AsyncClient:
        if self._client is None:
            transport = OneConnectionTransport(
                context_for(url, self._insecure), self._proxies.for_url(url)
            )
            self._client = httpx2.AsyncClient(
                transport=transport, timeout=self._timeout, trust_env=False
            )
        return self._client


async def _read(raw: httpx2.Response, limit: int) -> bytes:
    """A reply's body, at most ``limit`` bytes kept (the rest is read and dropped)."""
    body = bytearray()
    async for chunk in raw.aiter_raw():
        if len(body) < limit:
            body += chunk[: limit - len(body)]
    return bytes(body)
