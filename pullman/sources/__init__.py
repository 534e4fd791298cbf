"""Sources: where a ref's files come from. A :class:`Source` turns a ref into a
:class:`~pullman.core.plan.Release` (what there is to fetch); a layout then decides where it
lands (:mod:`pullman.layouts`).

A source's file URLs must be *re-resolvable*: each is a stable URL on the source's own origin
(a registry blob URL, a Hub ``resolve`` URL) that redirects to a fresh link whenever it is asked
again, so the engine can re-resolve an expired or corrupt CDN copy by probing it once more.

:func:`source_for` is the one dispatcher. A new source is one module with a class that follows
the protocol, plus a line in :data:`SOURCES`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

from pullman.core.jobs import GetOptions
from pullman.core.plan import Release, Store
from pullman.core.proxies import Proxies
from pullman.core.refs import HfRef, Ref, UrlRef, parse_ref
from pullman.errors import UsageError
from pullman.net.retry import RetryPolicy


@dataclass(frozen=True)
class SourceContext:
    """What a source needs besides the ref: the request's options and how to ask."""

    options: GetOptions
    policy: RetryPolicy
    deadline: float
    """Seconds a metadata answer (a manifest, a listing page) may take in all."""
    proxies: Proxies = field(default_factory=Proxies)
    token: str | None = field(default=None, repr=False)
    """A Hub token given for this run (``--token``); else the source finds its own."""
    mirror: str | None = None
    """Ask this mirror (:mod:`pullman.core.mirrors`) instead of the ref's own registry or Hub;
    no credential of the upstream is sent there."""
    mirror_token: str | None = field(default=None, repr=False)
    """The token ``[sources] mirror_token_file`` holds, for a mirror that wants one."""


class Source(Protocol):
    name: str
    options: frozenset[str]
    """The :class:`GetOptions` fields that only this source (or some sources) understand."""

    def store(self, ref: Ref, options: GetOptions) -> Store:
        """Which kind of store the ref's files land in, given the options."""
        ...

    async def resolve(self, ref: Ref, ctx: SourceContext) -> Release:
        """What there is to fetch for ``ref``: files, sizes, digests, and their identity."""
        ...

    def pinned(self, options: GetOptions) -> GetOptions:
        """The options with the source's location (an endpoint) settled now."""
        ...


SPECIFIC = frozenset({"out", "digest", "include", "exclude", "local_dir", "revision"})
"""Options that some sources understand and others refuse."""


@functools.cache
def _sources() -> dict[str, Source]:
    from pullman.sources.hf import HfSource
    from pullman.sources.hf_registry import HfRegistrySource
    from pullman.sources.ollama import OllamaSource
    from pullman.sources.url import UrlSource

    return {
        "url": UrlSource(),
        "ollama": OllamaSource(),
        "hf": HfSource(),
        "hf.co": HfRegistrySource(),
    }


def parse(text: str, *, insecure: bool = False, plain: bool = False) -> Ref:
    """What the user typed, as a ref: a pasted Hub or Ollama web page is that repo or model,
    unless ``plain`` (``-o`` or ``--sha256`` asked for a URL's file as it is)."""
    from pullman.sources.web_urls import refine

    ref = parse_ref(text, insecure=insecure)
    return ref if plain else refine(ref, insecure=insecure)


def source_for(ref: Ref) -> Source:
    """The source that fetches ``ref``."""
    from pullman.sources.hf_registry import is_hf_name

    sources = _sources()
    if isinstance(ref, UrlRef):
        return sources["url"]
    if isinstance(ref, HfRef):
        return sources["hf"]
    return sources["hf.co" if is_hf_name(ref) else "ollama"]


def pin(options: GetOptions) -> GetOptions:
    """The options with every source's location settled now (see :meth:`Source.pinned`)."""
    for source in _sources().values():
        options = source.pinned(options)
    return options


def check_options(source: Source, options: GetOptions) -> None:
    """Refuse options the ref's source would silently ignore."""
    from pullman.core.jobs import GetOptions as Defaults

    given = sorted(
        name
        for name in SPECIFIC - source.options
        if getattr(options, name) != getattr(Defaults(), name)
    )
    if given:
        flags = " and ".join(_FLAGS[n] for n in given)
        verb = "does" if len(given) == 1 else "do"
        raise UsageError(
            f"{flags} {verb} not apply to {_KINDS[source.name]}", hint=_HINTS[source.name]
        )


_FLAGS = {
    "out": "-o",
    "digest": "--sha256",
    "include": "--include",
    "exclude": "--exclude",
    "local_dir": "--local-dir",
    "revision": "--revision",
}
_KINDS = {"url": "URLs", "ollama": "Ollama models", "hf": "Hugging Face refs"}
_HINTS = {
    "url": "-o and --sha256 apply to URLs; --include, --exclude, --local-dir to Hugging Face refs",
    "ollama": "models land in their store (--ollama-dir chooses it); -o and --sha256 apply to URLs",
    "hf": "HF files land in the HF cache, or in --local-dir; -o and --sha256 apply to URLs",
}
