"""Parse refs: what the user typed, turned into a typed value. Pure.

- plain URLs: ``https://host/path/file.gguf`` (``http://`` too);
- Ollama names, by Ollama's own rules: ``model``, ``model:tag``, ``ns/model:tag``,
  ``host[:port]/ns/model:tag``, optionally prefixed ``ollama://``. Defaults: host
  ``registry.ollama.ai``, namespace ``library``, tag ``latest``.
- Hugging Face: ``hf://org/repo[@revision][/path-or-glob]``, ``hf://datasets/org/name...``,
  and ``hf://org/repo[@revision]:QUANT`` (the GGUF file(s) of one quantisation).
- ``hf.co/org/repo[:QUANT]`` (and ``huggingface.co/...``) is an *Ollama* name, as for
  ``ollama pull``: the host serves an Ollama-compatible registry, and the model lands in the
  Ollama store under ``manifests/hf.co/...`` (:mod:`pullman.sources.hf_registry`).

Every part of an Ollama name ends up in a file path (``manifests/<host>/<ns>/<model>/<tag>``),
so the grammar is strict: a part starts with a letter, digit or ``_``, then letters, digits,
``_``, ``-`` and ``.`` (no ``.`` in a namespace, ``:`` only in a host); no part is ``.`` or
``..``, none is empty, hosts are at most 350 characters and other parts at most 80.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class HfRef:
    repo_id: str
    repo_type: str = "model"
    revision: str = "main"
    pattern: str | None = None
    """A path or glob inside the repo (``hf://``), or None for every file."""
    quant: str | None = None
    """The GGUF quantisation to pick (``hf://org/repo:QUANT``)."""
    gguf: bool = False
    """Pick GGUF files (``quant``, or a default) rather than every file."""
    revision_given: bool = field(default=False, compare=False)
    """Whether the revision was written (``@rev``) rather than defaulted to ``main``."""

    def __str__(self) -> str:
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        text = f"hf://{prefix}{self.repo_id}"
        if self.revision != "main":
            text += f"@{self.revision}"
        if self.pattern:
            text += f"/{self.pattern}"
        if self.quant:
            text += f":{self.quant}"
        return text


Ref = UrlRef | OllamaRef | HfRef

HF_HOSTS = ("hf.co", "huggingface.co")
_HF_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}", re.ASCII)
_HF_REVISION = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}", re.ASCII)
_QUANT = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _hf_repo_part(text: str, part: str) -> str:
    if not _HF_PART.fullmatch(part) or "--" in part or ".." in part or part.endswith("."):
        raise RefError(
            f"{text!r}: {part!r} is not a valid Hugging Face repo name",
            why="names use letters, digits, '-', '_' and '.', without '--' or '..'",
            hint="write it as org/repo, e.g. hf://Qwen/Qwen2.5-0.5B-Instruct",
        )
    return part


def parse_hf(text: str) -> HfRef:
    """``hf://[datasets/]org/repo[@rev][/path]``, or ``hf://org/repo[@rev]:QUANT`` (the GGUF
    file(s) of one quantisation, into the HF cache)."""
    raw = text.strip()
    if not raw.lower().startswith("hf://"):
        raise RefError(f"{text!r} is not a Hugging Face ref", hint="write hf://org/repo")
    return _parse_hf_url(text, raw[5:])


def _split_quant(text: str, rest: str) -> tuple[str, str | None]:
    """``org/repo[@rev]:QUANT`` (no path) gives its quant; anything else stays as it is."""
    head, colon, quant = rest.rpartition(":")
    if not colon or "/" in quant or head.count("/") != 1:
        return rest, None
    if not _QUANT.fullmatch(quant):
        raise RefError(f"{text!r}: {quant!r} is not a quantisation tag", hint="e.g. :Q4_K_M")
    return head, quant


def _parse_hf_url(text: str, rest: str) -> HfRef:
    rest, quant = _split_quant(text, rest)
    repo_type = "model"
    if rest.startswith(("datasets/", "models/")):
        kind, rest = rest.split("/", 1)
        repo_type = "dataset" if kind == "datasets" else "model"
    pieces = rest.split("/")
    if len(pieces) < 2 or not pieces[0] or not pieces[1]:
        raise RefError(
            f"{text!r} is not a Hugging Face ref",
            hint="write hf://org/repo[@revision][/path-or-glob]",
        )
    org, name = pieces[0], pieces[1]
    revision = "main"
    tail = pieces[2:]
    if "@" in name:
        name, revision = name.split("@", 1)
        if revision == "refs" and len(tail) >= 2:  # refs/pr/1 holds two slashes
            revision = "/".join([revision, tail[0], tail[1]])
            tail = tail[2:]
    repo_id = f"{_hf_repo_part(text, org)}/{_hf_repo_part(text, name)}"
    segments = revision.split("/")
    if not _HF_REVISION.fullmatch(revision) or any(s in ("", ".", "..") for s in segments):
        raise RefError(f"{text!r}: {revision!r} is not a valid revision")
    pattern = "/".join(tail) or None
    if pattern is not None and (".." in pattern.split("/") or "" in pattern.split("/")):
        raise RefError(f"{text!r}: the path {pattern!r} is not a path inside the repo")
    given = "@" in pieces[1]
    if quant is not None:
        return HfRef(repo_id, repo_type, revision, quant=quant, gguf=True, revision_given=given)
    return HfRef(repo_id, repo_type, revision, pattern, revision_given=given)


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
    try:
        parts = urlsplit(text.strip())
    except ValueError as exc:  # e.g. a stray '[' ("Invalid IPv6 URL")
        raise RefError(f"{text!r} is not a valid URL", why=str(exc)) from None
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
    if scheme == "hf":
        return parse_hf(stripped)
    if scheme in ("", "ollama"):
        return parse_ollama(stripped, insecure=insecure)
    raise RefError(
        f"{text!r} is not something pullman can fetch",
        why=f"unknown scheme {scheme}://",
        hint="give an Ollama model name (deepseek-coder-v2:16b) or an https:// URL",
    )
