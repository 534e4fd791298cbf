"""Where ``pullman push`` sends a model: ``[http(s)://]host[:port]/repo[:tag]``. Pure, strict.

The repository follows the OCI distribution grammar (lowercase path components separated by
``/``, each ``[a-z0-9]+`` joined by ``.``, ``_``, ``__`` or dashes; at most 255 characters), the
tag ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``. The first component must be a host, as docker reads
one: it holds a ``.`` or a ``:`` or is ``localhost``. ``ollama pull`` reads a name as
``host/namespace/model:tag``, so a repository of two components is what Ollama can pull back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pullman.core.urls import is_loopback
from pullman.errors import UsageError

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(?::[0-9]{1,5})?", re.ASCII)
_FORM = "host[:port]/repository[:tag], e.g. registry.lan:5000/library/qwen2.5:7b"


@dataclass(frozen=True)
class PushTarget:
    scheme: str
    host: str
    """``host[:port]`` as written."""
    repo: str
    tag: str

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def ollama_name(self) -> bool:
        """Whether ``ollama pull`` can name it (``host/namespace/model:tag``)."""
        return self.repo.count("/") == 1

    def __str__(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"


def _bad(text: str, why: str) -> UsageError:
    return UsageError(f"{text!r} is not a registry destination", why=why, hint=f"write {_FORM}")


def _split_tag(text: str, rest: str, default_tag: str) -> tuple[str, str]:
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon <= slash:
        return rest, default_tag
    repo, tag = rest[:colon], rest[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise _bad(text, f"the tag {tag[:60]!r} is not valid (letters, digits, '_', '.', '-')")
    return repo, tag


def _scheme(text: str, host: str, written: str, insecure: bool) -> str:
    scheme = written or ("http" if insecure else "https")
    if scheme not in ("http", "https"):
        raise _bad(text, f"unsupported scheme {scheme}://")
    if scheme == "http" and not (insecure or is_loopback(f"http://{host}")):
        raise UsageError(
            f"{text!r} uses plain http",
            why="an http registry is neither encrypted nor authenticated",
            hint="pass --insecure if you trust this registry",
        )
    return scheme


def parse_destination(text: str, *, default_tag: str, insecure: bool = False) -> PushTarget:
    """``DEST`` of ``pullman push``; the tag defaults to ``default_tag`` (the model's own).

    Without a scheme: https, or http with ``insecure`` (as ``pullman get --insecure`` reads a
    registry name); a written ``http://`` is accepted for loopback hosts or with ``insecure``.
    """
    raw = text.strip()
    written = ""
    if "://" in raw:
        written, raw = raw.split("://", 1)
        written = written.lower()
    host, slash, rest = raw.partition("/")
    if not slash or not rest:
        raise _bad(text, "it names no repository after the host")
    if not (_HOST.fullmatch(host) and ("." in host or ":" in host or host == "localhost")):
        raise _bad(
            text,
            f"{host[:60]!r} is not a registry host (it needs a '.', a port or to be localhost)",
        )
    repo, tag = _split_tag(text, rest, default_tag)
    parts = repo.split("/")
    if len(repo) > 255 or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise _bad(
            text,
            f"the repository {repo[:80]!r} is not valid: lowercase letters, digits and '.', '_', "
            "'-' between them, components separated by '/'",
        )
    return PushTarget(_scheme(text, host, written, insecure), host.lower(), repo, tag)
