"""Who may use the API over TCP: a bearer token, a cookie traded for it once, and CSRF checks.

- The token: ``api-token`` in the state directory, random (``secrets.token_urlsafe(32)``),
  created ``0600`` on first use, shown by ``pullman web --url``. Never logged.
- A request is authenticated by ``Authorization: Bearer <token>`` or by the ``pullman_token``
  cookie (HttpOnly, SameSite=Strict), which ``GET /?token=<token>`` sets once before redirecting
  to ``/`` (so the token leaves the address bar and the browser history). Compared in constant
  time. Without either: 401 and a one-line JSON error, nothing about jobs.
- A state-changing request (POST, PUT, PATCH, DELETE) must also show it comes from the
  dashboard or a script, not from a page on another site riding the cookie: an ``Origin``
  header equal to ``http://<Host>``, or, when there is no ``Origin`` (curl, the CLI), the header
  ``X-Pullman-CSRF`` (any value; a page on another origin cannot send a custom header without a
  CORS preflight, which this server never grants). A mismatched ``Origin`` is refused whatever
  else is sent. Failing that: 403.
- The Unix socket needs none of this: it is ``0600`` in a ``0700`` directory.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pullman.errors import NotWritable, StorageError

TOKEN_FILE: Final = "api-token"  # noqa: S105 - the file's name, not a secret
COOKIE: Final = "pullman_token"
CSRF_HEADER: Final = "X-Pullman-CSRF"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_TOKEN_IN_TEXT: Final = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def load_token(state_dir: Path, *, create: bool = True) -> str | None:
    """The API token, created (``0600``) on first use; None if absent and not ``create``."""
    path = token_path(state_dir)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise StorageError(f"cannot read the API token {path}", why=exc.strerror) from exc
    if text:
        return text
    if not create:
        return None
    return _create(path)


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return path.read_text().strip() or _replace(path, token)
    except OSError as exc:
        raise NotWritable(f"cannot create the API token {path}", why=exc.strerror) from exc
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def _replace(path: Path, token: str) -> str:
    """An empty token file (a crash while writing it): write a fresh token atomically."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    tmp.replace(path)
    return token


def same_token(given: str | None, token: str) -> bool:
    """Constant-time comparison (no early exit on the first wrong character)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def authenticated(headers: Mapping[str, str], cookies: Mapping[str, str], token: str) -> bool:
    return same_token(bearer(headers), token) or same_token(cookies.get(COOKIE), token)


def csrf_refusal(method: str, headers: Mapping[str, str]) -> str | None:
    """Why a state-changing request looks forged (None: it does not)."""
    if method.upper() not in UNSAFE_METHODS:
        return None
    origin = headers.get("Origin")
    host = headers.get("Host", "")
    if origin is not None:
        if origin in (f"http://{host}", f"https://{host}"):
            return None
        return f"the Origin {origin!r} is not this server's (http://{host})"
    if headers.get(CSRF_HEADER):
        return None
    return f"a state-changing request needs an Origin header or {CSRF_HEADER}"


def redacted(text: str) -> str:
    """``text`` with every ``token=...`` value replaced (log lines, error messages)."""
    return _TOKEN_IN_TEXT.sub(r"\1<redacted>", text)


def remove_token(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        token_path(state_dir).unlink()
