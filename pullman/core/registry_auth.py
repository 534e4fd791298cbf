"""Registry credentials the docker way, and the challenges that ask for them. Pure.

- ``config.json`` (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``): ``auths``
  keyed by registry (``host[:port]``, or written as a URL: ``https://host/v1/``), each with
  ``auth`` = base64 ``user:password`` (or, in older files, ``username`` and ``password``).
  Credential helpers (``credsStore``, ``credHelpers``) are programs; pullman does not run them,
  and says so when one is configured for the host and no inline entry is.
- ``WWW-Authenticate: Basic realm=...`` asks for the credentials themselves;
  ``Bearer realm=...,service=...,scope=...`` for a token from the realm, fetched with them.

A :class:`Credentials` never shows its password (``repr``, ``str``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from pullman.core.headers import parse_bearer_challenge
from pullman.errors import UsageError

MAX_CONFIG = 1 << 20
DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
"""Docker Hub's names: ``docker login`` files its credentials under ``index.docker.io``."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = ""
    """Where they came from (a file path), for messages."""

    def basic(self) -> str:
        """The ``Authorization`` value for Basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __str__(self) -> str:
        return f"user {self.username!r} from {self.source or 'docker config'}"


@dataclass(frozen=True)
class Lookup:
    """What the docker config holds for one registry host."""

    credentials: Credentials | None
    helper: str | None = None
    """The credential helper configured for the host (not run), if no inline entry exists."""


def registry_key(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000`` (lowercase), as docker matches ``auths``."""
    text = key.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    return text.split("/", 1)[0].lower()


def _bad_config(source: str, why: str) -> UsageError:
    return UsageError(
        f"cannot read the docker config {source}",
        why=why,
        hint="fix the file (`docker login HOST` writes it), or point DOCKER_CONFIG elsewhere",
    )


def parse_config(raw: bytes, source: str) -> dict[str, Any]:
    if len(raw) > MAX_CONFIG:
        raise _bad_config(source, f"it is {len(raw)} bytes long")
    try:
        doc = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad_config(source, "it is not JSON") from None
    if not isinstance(doc, dict):
        raise _bad_config(source, "it is not a JSON object")
    return doc


def _entry_credentials(entry: object, source: str, host: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _bad_config(source, f"auths.{host}.auth is not base64 of user:password") from None
        if not sep or not user:
            raise _bad_config(source, f"auths.{host}.auth is not base64 of user:password")
        return Credentials(user, password, source)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return Credentials(name, secret, source)
    return None


def lookup(doc: Mapping[str, Any], host: str, source: str) -> Lookup:
    """The credentials ``doc`` (a parsed config.json) holds for ``host`` (``host[:port]``)."""
    wanted = host.lower()
    names = DOCKER_HUB if wanted in DOCKER_HUB else {wanted}
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if isinstance(key, str) and registry_key(key) in names:
                found = _entry_credentials(entry, source, wanted)
                if found is not None:
                    return Lookup(found)
    helpers = doc.get("credHelpers")
    helper = None
    if isinstance(helpers, dict):
        named = {registry_key(k): v for k, v in helpers.items() if isinstance(k, str)}
        helper = named.get(wanted) if isinstance(named.get(wanted), str) else None
    store = doc.get("credsStore")
    if helper is None and isinstance(store, str) and store:
        helper = store
    return Lookup(None, helper)


# ---------------------------------------------------------------------------- challenges


@dataclass(frozen=True)
class Challenge:
    scheme: str
    """``basic`` or ``bearer`` (lowercase); anything else is ``other``."""
    params: Mapping[str, str]


def parse_challenge(value: str | None) -> Challenge | None:
    """A ``WWW-Authenticate`` value: Bearer with its parameters, Basic, or None."""
    if not value or not value.strip():
        return None
    scheme = value.strip().split(None, 1)[0].lower()
    if scheme == "bearer":
        params = parse_bearer_challenge(value)
        return Challenge("bearer", params) if params is not None else None
    return Challenge("basic" if scheme == "basic" else "other", {})


def push_scopes(repo: str, sources: Sequence[str] = ()) -> tuple[str, ...]:
    """The token scopes a push asks for: push to ``repo``, pull from mount ``sources``."""
    out = [f"repository:{repo}:pull,push"]
    out += [f"repository:{s}:pull" for s in sources if s != repo]
    return tuple(dict.fromkeys(out))


def token_query(challenge: Challenge, scopes: Sequence[str], user: str | None) -> str:
    """The query string for the token realm: service, every scope, and docker's ``account``."""
    query: list[tuple[str, str]] = []
    service = challenge.params.get("service")
    if service:
        query.append(("service", service))
    query += [("scope", s) for s in scopes]
    if user:
        query.append(("account", user))
    return urlencode(query)


def parse_token(body: bytes) -> str | None:
    """The token of a realm's answer (``token`` or ``access_token``), or None."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0 "):
        return None
    return token
