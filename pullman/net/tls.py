"""TLS: verification always on, except for loopback hosts or an explicit ``--insecure``.

Trusted CAs are the system's, or those ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name (as OpenSSL,
curl, httpx and huggingface_hub read them): a name that is not there is a usage error that says
which variable and path, before any connection.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import httpx2

from pullman.core.urls import is_loopback
from pullman.errors import UsageError

_CONTEXTS: dict[tuple[bool, str, str], ssl.SSLContext] = {}


def check_ca_env(env: Mapping[str, str] | None = None) -> None:
    """A clear error when ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name something that is not there."""
    env = os.environ if env is None else env
    for name, kind, ok in (
        ("SSL_CERT_FILE", "file", Path.is_file),
        ("SSL_CERT_DIR", "directory", Path.is_dir),
    ):
        value = env.get(name)
        if value and not ok(Path(value)):
            raise UsageError(
                f"{name} names {value}, which is not a {kind}",
                why=f"pullman trusts the CA certificates {name} points at, and there are none",
                hint=f"fix the path, or unset {name} to use the system's CA certificates",
            )


def context_for(url: str, insecure: bool) -> ssl.SSLContext:
    """The TLS context for ``url``, built once per process and CA setting (loading the CA
    store costs tens of milliseconds, and connections are opened often: every recycle)."""
    verify = not (insecure or is_loopback(url))
    key = (verify, os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    context = _CONTEXTS.get(key)
    if context is None:
        if verify:
            check_ca_env()
        context = httpx2.create_ssl_context(verify=verify)
        _CONTEXTS[key] = context
    return context
