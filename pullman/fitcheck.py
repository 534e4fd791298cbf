"""Will it fit? GGUF models measured from their headers against a memory budget.

One place for the whole check, used by ``pullman fit`` and by ``get``:

- :func:`models_of`: the GGUF models among a release's files (an Ollama model layer, a Hub
  ``.gguf`` that is not a vision projector), split files (``-00001-of-00003.gguf``) grouped
  as one model: only the first split holds the metadata, each holds its own tensor table.
- :func:`measure`: each model's header read (:mod:`pullman.gguf_remote`: a range request or
  two, never a tensor byte), cached in the index by the file's identity (its digest, else
  repo + commit + path) so a later ``fit`` or ``get`` reads nothing; then the estimate and
  the verdict (:mod:`pullman.core.gguf_fit`).
- :func:`refuse_if_too_big`: ``get``'s check before any weight byte, exit 7
  (:class:`~pullman.errors.WontFit`) with need vs have and which quant would fit.
- :func:`choose`: the largest quant that fits, for a ref without one (``hf.co/org/repo``).

A budget that is not known (no ``--memory`` and nothing read from this machine) changes
nothing: ``get`` behaves as it did before fit checks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from pullman.core.gguf_fit import (
    DEFAULT_CONTEXT,
    Budget,
    Estimate,
    FitHeader,
    Verdict,
    estimate,
    fits,
    verdict,
    worth_measuring,
)
from pullman.core.jobs import GetOptions
from pullman.core.plan import FileSpec, RemoteFile
from pullman.core.quants import quant_tags
from pullman.core.refs import HfRef, OllamaRef, Ref, UrlRef
from pullman.core.units import human
from pullman.errors import NotFound, PullmanError, UsageError, WontFit
from pullman.gguf_remote import (
    MAX_HEADER,
    Asking,
    GgufFile,
    HeaderRead,
    read_local,
    read_remote,
)
from pullman.machine import this_machine
from pullman.sources import SourceContext, source_for
from pullman.transfer.config import TransferConfig

log = logging.getLogger("pullman.fit")

_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_QUANT_ORDER = ("F32", "BF16", "F16")


class HeaderCache(Protocol):
    def gguf_header(self, key: str) -> dict[str, Any] | None: ...

    def remember_gguf_header(self, key: str, facts: Mapping[str, Any]) -> None: ...


class MemoryCache:
    """A cache that lasts one run (when there is no index to keep headers in)."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, Any]] = {}

    def gguf_header(self, key: str) -> dict[str, Any] | None:
        return self.headers.get(key)

    def remember_gguf_header(self, key: str, facts: Mapping[str, Any]) -> None:
        self.headers[key] = dict(facts)


# ---------------------------------------------------------------------- models


@dataclass(frozen=True)
class Model:
    """One GGUF model: its file, or its split files in order."""

    path: str
    quant: str | None
    files: tuple[GgufFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)


def quant_of(path: str) -> str | None:
    """The quantisation a file name says; the longest tag where it says several."""
    tags = quant_tags(path.rsplit("/", 1)[-1])
    return max(sorted(tags), key=len) if tags else None


def is_model_file(path: str, role: str = "") -> bool:
    if role:
        return role == "model"
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(".gguf") and "mmproj" not in name


def gguf_file(f: RemoteFile | FileSpec, path: str) -> GgufFile:
    key = str(f.digest) if f.digest is not None else f"url:{f.url}:{f.size}"
    return GgufFile(path, f.size, key, f.url, f.auth, f.insecure)


def group(files: Iterable[tuple[str, GgufFile]]) -> list[Model]:
    """``(path, file)`` pairs as models: split parts of one model together, in order."""
    groups: dict[str, list[tuple[str, GgufFile]]] = {}
    for path, f in files:
        groups.setdefault(_SPLIT.sub(".gguf", path), []).append((path, f))
    models = []
    for parts in groups.values():
        parts.sort(key=lambda p: p[0])
        first = parts[0][0]
        models.append(Model(first, quant_of(first), tuple(f for _, f in parts)))
    return sorted(models, key=lambda m: m.size)


def models_of(files: Iterable[RemoteFile]) -> list[Model]:
    """The GGUF models among a release's files."""
    return group((f.path, gguf_file(f, f.path)) for f in files if is_model_file(f.path, f.role))


def models_of_specs(specs: Iterable[FileSpec]) -> list[Model]:
    """The GGUF models among the files a plan is about to fetch."""
    return group(
        (s.name, gguf_file(s, s.name)) for s in specs if s.url and is_model_file(s.name, s.role)
    )


def _local_file(text: str) -> Path | None:
    path = Path(text).expanduser()
    return path if path.is_file() else None


def local_model(path: Path) -> Model:
    f = GgufFile(path.name, path.stat().st_size, path=path)
    return Model(str(path), quant_of(path.name), (f,))


# ---------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class ModelFit:
    model: Model
    estimate: Estimate | None
    verdict: Verdict
    problem: str | None = None
    fetched: int = 0
    """Bytes read over the network for its headers (0: from the cache, or local)."""

    @property
    def need(self) -> int | None:
        return self.estimate.need if self.estimate is not None else None

    def to_json(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "path": self.model.path,
            "quant": self.model.quant,
            "size": self.model.size,
            "weights": e.weights if e else None,
            "kv_cache": e.kv_cache if e else None,
            "need": e.need if e else None,
            "fits": fits(self.verdict),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class FitReport:
    budget: Budget
    context: int
    fits: tuple[ModelFit, ...]

    @property
    def pick(self) -> ModelFit | None:
        """The largest model that fits."""
        fitting = [f for f in self.fits if fits(f.verdict)]
        return max(fitting, key=lambda f: f.model.size) if fitting else None

    def to_json(self) -> dict[str, Any]:
        pick = self.pick
        return {
            "memory": self.budget.total,
            "context": self.context,
            "files": [f.to_json() for f in self.fits],
            "pick": pick.model.path if pick is not None else None,
        }


async def _header(f: GgufFile, cache: HeaderCache, how: Asking) -> HeaderRead:
    if f.path is not None:
        return await anyio.to_thread.run_sync(read_local, f.path)
    cached = await anyio.to_thread.run_sync(_cached, f, cache)
    if cached is not None:
        return HeaderRead(cached, cached=True)
    read = await read_remote(f, how)
    if read.header is not None and f.key is not None:
        await anyio.to_thread.run_sync(_remember, f, read.header, cache)
    return read


def _remember(f: GgufFile, header: FitHeader, cache: HeaderCache) -> None:
    assert f.key is not None
    try:
        cache.remember_gguf_header(f.key, header.to_json())
    except PullmanError as exc:  # a full or read-only index costs a re-read, no more
        log.warning("could not cache the header of %s: %s", f.name, exc.what)


def _cached(f: GgufFile, cache: HeaderCache) -> FitHeader | None:
    if f.key is None:
        return None
    try:
        doc = cache.gguf_header(f.key)
        return FitHeader.from_json(doc) if doc is not None else None
    except (PullmanError, TypeError, ValueError):
        return None


async def measure_one(
    model: Model, budget: Budget, context: int, cache: HeaderCache, how: Asking
) -> ModelFit:
    headers, fetched = [], 0
    for f in model.files:
        read = await _header(f, cache, how)
        fetched += read.fetched
        if read.header is None:
            return ModelFit(model, None, "unknown", f"{f.name}: {read.problem}", fetched)
        headers.append(read.header)
    found = estimate(headers, context)
    problem = None if found is not None else "its metadata is missing or implausible"
    need = found.need if found is not None else None
    return ModelFit(model, found, verdict(need, budget), problem, fetched)


async def measure(
    models: Sequence[Model],
    budget: Budget,
    context: int | None,
    cache: HeaderCache,
    how: Asking,
) -> FitReport:
    ctx = context or DEFAULT_CONTEXT
    found = [await measure_one(m, budget, ctx, cache, how) for m in models]
    return FitReport(budget, ctx, tuple(found))


async def measure_largest(
    models: Sequence[Model],
    budget: Budget,
    context: int | None,
    cache: HeaderCache,
    how: Asking,
) -> FitReport:
    """Enough of ``models`` to know the largest that fits: from the largest down, skipping
    (unread) any whose files alone exceed the budget, stopping at the first that fits."""
    ctx = context or DEFAULT_CONTEXT
    total = budget.total
    found: list[ModelFit] = []
    for model in sorted(models, key=lambda m: m.size, reverse=True):
        if total is not None and model.size - MAX_HEADER > total:
            continue  # its weights alone are more than there is
        found.append(await measure_one(model, budget, ctx, cache, how))
        if fits(found[-1].verdict):
            break
    return FitReport(budget, ctx, tuple(found))


# ---------------------------------------------------------------------- decisions


def budget_for(memory: int | None, machine: Budget) -> Budget:
    """``--memory`` when given, else the machine's."""
    return Budget(memory) if memory is not None else machine


def choose(report: FitReport) -> tuple[Model | None, str]:
    """The largest model that fits, and why (for a ref that named no quant)."""
    pick = report.pick
    have = report.budget.describe()
    if pick is None:
        return None, f"no quantisation fits {have} at {report.context} context"
    need = human(pick.need or 0)
    return pick.model, (
        f"no quantisation given: picked {pick.model.quant or pick.model.path}, the largest that "
        f"fits {have} (needs {need} at {report.context} context)"
    )


def refuse_if_too_big(report: FitReport, others: FitReport | None = None) -> None:
    """Raise :class:`WontFit` when the download cannot run here: one model that will not fit,
    or several of which none fits."""
    refused = [f for f in report.fits if f.verdict == "will not fit"]
    if not refused or (len(refused) < len(report.fits) and len(report.fits) > 1):
        for f in refused:
            log.warning("%s will not fit %s", f.model.path, report.budget.describe())
        return
    first = refused[0]
    assert first.estimate is not None  # a verdict other than unknown has one
    alternative = others.pick if others is not None else None
    hint = "pass --ignore-fit to download it anyway, or --memory SIZE for another machine"
    if alternative is not None and alternative.model.path != first.model.path:
        hint = (
            f"{alternative.model.quant or alternative.model.path} would fit "
            f"(needs {human(alternative.need or 0)}); " + hint
        )
    have = report.budget.describe()
    raise WontFit(
        f"{first.model.path} will not fit {have}",
        why=f"it needs about {human(first.estimate.need)} at {report.context} context "
        f"(weights {human(first.estimate.weights)}, KV cache {human(first.estimate.kv_cache)}); "
        f"the budget is {have}",
        hint=hint,
    )


# ---------------------------------------------------------------------- refs and their quants


def _hub_pairs_registry(env: Mapping[str, str]) -> bool:
    """Whether the Hub API (``HF_ENDPOINT``) is the pair of the hf.co registry in use: the
    real pair, or both set. A stand-in registry alone (``PULLMAN_HF_REGISTRY``) has no Hub."""
    from pullman.sources.hf_registry import DEFAULT_REGISTRY, registry_base

    return registry_base(env) == DEFAULT_REGISTRY or bool(env.get("HF_ENDPOINT"))


def listing_ref(ref: Ref, env: Mapping[str, str], *, any_tag: bool = False) -> HfRef | None:
    """The Hub repo whose GGUF files are ``ref``'s quants: for ``hf://org/repo`` picking a
    GGUF without a quant, and ``hf.co/org/repo`` without a tag (``any_tag``: with one too)."""
    from pullman.sources.hf_registry import is_hf_name

    if isinstance(ref, HfRef) and ref.gguf and (any_tag or not ref.quant):
        return replace(ref, gguf=False, quant=None)
    hf_co = isinstance(ref, OllamaRef) and is_hf_name(ref) and _hub_pairs_registry(env)
    if hf_co and isinstance(ref, OllamaRef) and (any_tag or ref.tag.lower() == "latest"):
        return HfRef(f"{ref.namespace}/{ref.model}")
    return None


def with_quant(ref: Ref, quant: str) -> Ref:
    if isinstance(ref, HfRef):
        return replace(ref, quant=quant)
    if isinstance(ref, OllamaRef):
        return replace(ref, tag=quant)
    return ref


# ---------------------------------------------------------------------- get's guard


class FitGuard:
    """``get``'s fit checks for one session: the quant pick and the refusal before weights."""

    def __init__(self, transfer: TransferConfig, token: str | None = None) -> None:
        self.headers: HeaderCache = MemoryCache()
        self.machine: Callable[[], Budget] = this_machine
        self._transfer = transfer
        self._token = token
        self._machine: Budget | None = None

    async def budget(self, options: GetOptions) -> Budget:
        """``--memory``, else this machine's (read once per session)."""
        if options.memory is not None:
            return budget_for(options.memory, Budget(None))
        if self._machine is None:
            self._machine = await anyio.to_thread.run_sync(self.machine)
        return self._machine

    def asking(self) -> Asking:
        cfg = self._transfer
        return Asking(cfg.retry_policy, cfg.metadata_deadline, cfg.proxies)

    def context(self, options: GetOptions) -> SourceContext:
        cfg = self._transfer
        return SourceContext(
            options, cfg.retry_policy, cfg.metadata_deadline, cfg.proxies, self._token
        )

    async def quants(self, listing: Ref, options: GetOptions, budget: Budget) -> FitReport:
        """The GGUF models in the Hub repo ``listing``, enough of them measured against
        ``budget`` to know the largest that fits (a few headers, not every quant's)."""
        release = await source_for(listing).resolve(listing, self.context(options))
        models = models_of(release.files)
        how = self.asking()
        return await measure_largest(models, budget, options.context, self.headers, how)

    async def settle_quant(self, ref: Ref, context: SourceContext) -> tuple[Ref, str | None]:
        """A GGUF ref without a quant: the largest quant that fits, and why (today's default
        when the budget is unknown, with --ignore-fit, or when nothing can be measured)."""
        options = context.options
        listing = listing_ref(ref, os.environ)
        if listing is None or options.ignore_fit:
            return ref, None
        budget = await self.budget(options)
        if not budget.known:
            return ref, None
        try:
            report = await self.quants(listing, options, budget)
        except PullmanError as exc:
            log.warning("%s: could not list its quants (%s); the default pick", ref, exc.what)
            return ref, None
        model, note = choose(report)
        log.warning("%s: %s", ref, note)
        if model is None or model.quant is None:
            return ref, note
        return with_quant(ref, model.quant), note

    async def check(self, ref: str, todo: Sequence[FileSpec], options: GetOptions) -> None:
        """Before any weight byte: refuse a GGUF model that cannot fit (exit 7)."""
        models = models_of_specs(todo)
        if not models or options.ignore_fit:
            return
        budget = await self.budget(options)
        asked = options.memory is not None or options.context is not None
        models = [m for m in models if worth_measuring(m.size, budget, asked=asked)]
        if not models:
            return
        report = await measure(models, budget, options.context, self.headers, self.asking())
        others = None
        if any(f.verdict == "will not fit" for f in report.fits):
            others = await self._others(ref, options, budget)
        refuse_if_too_big(report, others)

    async def _others(self, text: str, options: GetOptions, budget: Budget) -> FitReport | None:
        """The other quants of the ref's repo, to say which would fit (None: not a repo)."""
        from pullman.sources import parse

        try:
            listing = listing_ref(parse(text), os.environ, any_tag=True)
            return None if listing is None else await self.quants(listing, options, budget)
        except PullmanError as exc:
            log.debug("no other quants of %s: %s", text, exc)
            return None


async def models_for(text: str, guard: FitGuard, options: GetOptions) -> tuple[str, list[Model]]:
    """What ``pullman fit TEXT`` measures: a local file, or the GGUF models a ref names (a
    Hub repo's every quant, one file or quant, an hf.co name, an Ollama model's model layer)."""
    from pullman.sources import parse

    local = await anyio.to_thread.run_sync(_local_file, text)
    if local is not None:
        return str(local), [await anyio.to_thread.run_sync(local_model, local)]
    ref = parse(text, insecure=options.insecure)
    if isinstance(ref, UrlRef):
        raise UsageError(
            f"fit reads GGUF headers from Hub repos, hf.co and Ollama names and local files, "
            f"not URLs ({text})",
            hint="download it, then run `pullman fit FILE`",
        )
    target = listing_ref(ref, os.environ) or ref
    release = await source_for(target).resolve(target, guard.context(options))
    models = models_of(release.files)
    if not models:
        raise NotFound(f"{text} has no GGUF model file", hint="fit measures GGUF models only")
    return str(ref), models
