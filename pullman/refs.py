"""Parse refs: what the user typed, turned into a typed value. Pure.

- plain URLs: ``https://host/path/file.gguf`` (``http://`` too);
- Ollama names, by Ollama's own rules: ``model``, ``model:tag``, ``ns/model:tag``,
  ``host[:port]/ns/model:tag``, optionally prefixed ``ollama://``. Defaults: host
  ``registry.ollama.ai``, namespace ``library``, tag ``latest``.

Every part of an Ollama name ends up in a file path (``manifests/<host>/<ns>/<model>/<tag>``),
so the grammar is strict: a part starts with a letter, digit or ``_``, then letters, digits,
``_``, ``-`` and ``.`` (no ``.`` in a namespace, ``:`` only in a host); no part is ``.`` or
``..``, none is empty, hosts are at most 350 characters and other parts at most 80.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pullman.errors import RefError


@dataclass(frozen=True)
class UrlRef:
    url: str

    @property
    def filename(self) -> str:
        """A safe file name from the URL's last path segment."""
        return safe_filename(unquote(urlsplit(self.url).path.rsplit("/", 1)[-1]))

    def __str__(self) -> str:
        return self.url


DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_MISSING = "\0missing"  # a part promised by a separator but empty: never valid


@dataclass(frozen=True)
class OllamaRef:
    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = "https"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def registry(self) -> str:
        return f"{self.scheme}://{self.host}"

    def short(self) -> str:
        """The shortest display, as ``ollama list`` shows it."""
        name = self.model
        if self.host.lower() != DEFAULT_HOST or self.namespace.lower() != DEFAULT_NAMESPACE:
            name = f"{self.namespace}/{name}"
        if self.host.lower() != DEFAULT_HOST:
            name = f"{self.host}/{name}"
        return f"{name}:{self.tag}"

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"


Ref = UrlRef | OllamaRef


def _cut_last(text: str, sep: str) -> tuple[str, str, bool]:
    i = text.rfind(sep)
    if i < 0:
        return text, "", False
    after = text[i + len(sep) :]
    return text[:i], after or _MISSING, True


def split_ollama_name(text: str) -> tuple[str, str, str, str, str]:
    """(scheme, host, namespace, model, tag) as written; empty where omitted. No validation."""
    s = text
    scheme = ""
    tag = ""
    if s.rfind(":") > s.rfind("/"):
        s, tag, _ = _cut_last(s, ":")
    s, model, promised = _cut_last(s, "/")
    if not promised:
        return scheme, "", "", s, tag
    s, namespace, promised = _cut_last(s, "/")
    if not promised:
        return scheme, "", s or _MISSING, model, tag
    if "://" in s:
        scheme, s = s.split("://", 1)
    return scheme, s or _MISSING, namespace, model, tag


_KIND_LIMIT = {"host": 350, "namespace": 80, "model": 80, "tag": 80}


def valid_part(kind: str, part: str) -> bool:
    """Ollama's per-part rule (see the module docstring)."""
    if not 1 <= len(part) <= _KIND_LIMIT[kind]:
        return False
    first, rest = part[0], part[1:]
    if not (first.isascii() and (first.isalnum() or first == "_")):
        return False
    for ch in rest:
        if ch.isascii() and (ch.isalnum() or ch in "_-"):
            continue
        if ch == "." and kind != "namespace":
            continue
        if ch == ":" and kind == "host":
            continue
        return False
    return True


def parse_ollama_name(text: str) -> OllamaRef:
    """Ollama's grammar only, with its defaults; the scheme is kept as written ("" if none)."""
    raw = text.strip()
    if raw.lower().startswith("ollama://"):
        raw = raw[len("ollama://") :]
    scheme, host, namespace, model, tag = split_ollama_name(raw)
    host = host or DEFAULT_HOST
    namespace = namespace or DEFAULT_NAMESPACE
    tag = tag or DEFAULT_TAG
    for kind, part in (("host", host), ("namespace", namespace), ("model", model), ("tag", tag)):
        if not valid_part(kind, part):
            raise RefError(
                f"{text!r} is not a valid Ollama model name",
                why=_why_invalid(kind, part),
                hint="write it as model, model:tag, namespace/model:tag or "
                "host/namespace/model:tag (e.g. deepseek-coder-v2:16b)",
            )
    return OllamaRef(host, namespace, model, tag, scheme.lower())


def parse_ollama(text: str, *, insecure: bool = False) -> OllamaRef:
    """Parse an Ollama model name and settle its scheme: https, or http with ``insecure``."""
    ref = parse_ollama_name(text)
    scheme = ref.scheme or ("http" if insecure else "https")
    if scheme == "http" and not insecure:
        raise RefError(
            f"{text!r} uses plain http",
            why="an http registry is neither encrypted nor authenticated",
            hint="pass --insecure if you trust this registry (as with `ollama pull --insecure`)",
        )
    if scheme not in ("http", "https"):
        raise RefError(f"{text!r}: unsupported registry scheme {scheme!r}", hint="use https")
    return OllamaRef(ref.host, ref.namespace, ref.model, ref.tag, scheme)


def _why_invalid(kind: str, part: str) -> str:
    if part == _MISSING or not part:
        return f"the {kind} is empty"
    if len(part) > _KIND_LIMIT[kind]:
        return f"the {kind} is longer than {_KIND_LIMIT[kind]} characters"
    shown = part if len(part) <= 40 else part[:37] + "..."
    return (
        f"the {kind} {shown!r} must start with a letter, digit or _ and contain only letters, "
        "digits, _, - and ." + (" (no . in a namespace)" if kind == "namespace" else "")
    )


def safe_filename(name: str, fallback: str = "download") -> str:
    """A single path component: no separators, no NUL, not ``.``/``..``, at most 255 bytes."""
    cleaned = "".join("_" if ch in "/\\\0" or ord(ch) < 32 else ch for ch in name).strip()
    cleaned = cleaned.lstrip(".") if cleaned in (".", "..") else cleaned
    if not cleaned or cleaned in (".", ".."):
        return fallback
    while len(cleaned.encode()) > 255:
        cleaned = cleaned[:-1]
    return cleaned


def parse_url(text: str) -> UrlRef:
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise RefError(f"{text!r} is not an http(s) URL")
    if not parts.hostname:
        raise RefError(f"{text!r} has no host", hint="write a full URL such as https://host/file")
    try:
        _ = parts.port
    except ValueError:
        raise RefError(f"{text!r} has an invalid port") from None
    if any(ch.isspace() for ch in text.strip()):
        raise RefError(f"{text!r} contains spaces", hint="percent-encode them as %20")
    return UrlRef(text.strip())


def parse_ref(text: str, *, insecure: bool = False) -> Ref:
    """Parse what the user typed into a ref, or raise :class:`RefError` saying why not."""
    stripped = text.strip()
    if not stripped:
        raise RefError("empty ref", hint="give a URL, e.g. https://host/model.gguf")
    scheme = stripped.split("://", 1)[0].lower() if "://" in stripped else ""
    if scheme in ("http", "https"):
        return parse_url(stripped)
    if scheme in ("", "ollama"):
        return parse_ollama(stripped, insecure=insecure)
    raise RefError(
        f"{text!r} is not something pullman can fetch",
        why=f"unknown scheme {scheme}://",
        hint="give an Ollama model name (deepseek-coder-v2:16b) or an https:// URL",
    )
