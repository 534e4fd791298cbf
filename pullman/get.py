"""``pullman get``: refs to plans, plans to verified files, in the foreground.

The CLI is a thin shell over :class:`Session`; this module knows sources, layouts and the
engine. For each plan: refuse paths outside the store, reuse what is already there, download
the rest concurrently within one connection budget, then write the plan's final small files
(a manifest, refs, links) only after every blob verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from pullman.config import Settings
from pullman.digests import Digest
from pullman.errors import DiskFull, UsageError, collapse_groups
from pullman.layouts import hf_cache
from pullman.layouts import ollama as ollama_store
from pullman.layouts.common import apply_finals, check_plan, check_writable
from pullman.limiter import Limiter
from pullman.plan import FileSpec, Plan
from pullman.refs import HfRef, OllamaRef, UrlRef, parse_ref
from pullman.sources import huggingface as hf_source
from pullman.sources import ollama as ollama_source
from pullman.sources.url import plan_url
from pullman.transfer.engine import Outcome, Transfer, TransferStats
from pullman.transfer.slots import Slots
from pullman.transfer.staging import Staging, disk_errors, free_space, human

log = logging.getLogger("pullman.get")


@dataclass(frozen=True)
class GetOptions:
    out: str | None = None
    digest: Digest | None = None
    force: bool = False
    insecure: bool = False
    ollama_dir: str | None = None
    verify_existing: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    local_dir: str | None = None


@dataclass(frozen=True)
class FileReport:
    ref: str
    name: str
    path: Path
    size: int
    status: str
    """``downloaded`` or ``present`` (already there, nothing fetched)."""
    verified: bool
    digest: str | None
    outcome: Outcome | None = None


@dataclass
class PlanReport:
    plan: Plan
    files: list[FileReport] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(f.outcome.fetched for f in self.files if f.outcome is not None)


class Session:
    """The transfers of one ``get`` run, observable while they run.

    ``slots_for`` gives the connection budget a file's connections draw from (the scheduler
    shares one across jobs, per host); ``limiter`` caps the bandwidth of all of them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        slots_for: Callable[[FileSpec], Slots] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.settings = settings
        self.live: list[Transfer] = []
        self.finished: list[TransferStats] = []
        self._limiter = limiter
        shared = anyio.CapacityLimiter(settings.transfer.connections)
        self._slots_for = slots_for or (lambda spec: shared)

    def statistics(self) -> list[TransferStats]:
        return self.finished + [t.statistics() for t in self.live]

    async def get(self, refs: Sequence[str], options: GetOptions) -> list[PlanReport]:
        reports = []
        for text in refs:
            plan = await self.plan(text, options)
            reports.append(await self.fetch(plan, options))
        return reports

    async def plan(self, text: str, options: GetOptions) -> Plan:
        ref = parse_ref(text, insecure=options.insecure)
        if isinstance(ref, UrlRef):
            return plan_url(
                ref,
                out=options.out,
                downloads=self.settings.paths.downloads,
                digest=options.digest,
                insecure=options.insecure,
            )
        if options.out is not None or options.digest is not None:
            raise UsageError(
                "-o and --sha256 apply to URLs only",
                hint="models land in their store (--ollama-dir, --local-dir choose it)",
            )
        if isinstance(ref, HfRef):
            return await self._plan_hf(ref, options)
        if options.include or options.exclude or options.local_dir:
            raise UsageError("--include, --exclude and --local-dir apply to Hugging Face refs")
        return await self._plan_ollama(ref, options)

    async def _plan_hf(self, ref: HfRef, options: GetOptions) -> Plan:
        cfg = self.settings.transfer
        snapshot = await hf_source.resolve(ref, cfg.retry_policy, cfg.metadata_deadline)
        files, note = hf_source.select(snapshot, options.include, options.exclude)
        if note:
            log.warning("%s: %s", ref, note)
        if options.local_dir is not None:
            local = hf_cache.local_dir(options.local_dir)
            await anyio.to_thread.run_sync(check_writable, local, "choose another --local-dir")
            return hf_source.plan_local_dir(snapshot, files, local)
        root = hf_cache.cache_dir()
        await anyio.to_thread.run_sync(
            check_writable, root, "set HF_HUB_CACHE (or HF_HOME) to a directory you can write"
        )
        return hf_source.plan_cache(snapshot, files, root)

    async def _plan_ollama(self, ref: OllamaRef, options: GetOptions) -> Plan:
        root = ollama_store.models_dir(options.ollama_dir)
        await anyio.to_thread.run_sync(ollama_store.check_writable, root)
        cfg = self.settings.transfer
        resolved = await ollama_source.resolve(ref, cfg.retry_policy, cfg.metadata_deadline)
        return ollama_source.plan(resolved, root)

    async def fetch(self, plan: Plan, options: GetOptions) -> PlanReport:
        check_plan(plan)
        report = PlanReport(plan)
        todo: list[FileSpec] = []
        for spec in _unique(plan.files):
            present = await _already_present(spec, options, plan.ref)
            if present is None:
                todo.append(spec)
            else:
                report.files.append(present)
        await anyio.to_thread.run_sync(self._check_space, plan, todo)
        with collapse_groups():
            async with anyio.create_task_group() as tg:
                for spec in todo:
                    tg.start_soon(self._fetch_one, plan, spec, report)
        await anyio.to_thread.run_sync(apply_finals, plan)
        return report

    def _check_space(self, plan: Plan, todo: Sequence[FileSpec]) -> None:
        """Room for every file of the plan at once (each file checks itself again as it starts)."""
        needed = 0
        for spec in todo:
            journal = Staging(plan.staging, spec.key).load_journal()
            done = sum(e - s for s, e in journal.done) if journal is not None else 0
            needed += max(0, (spec.size or 0) - done)
        margin = self.settings.transfer.space_margin
        free = free_space(plan.staging)
        if needed and free < needed + margin:
            raise DiskFull(
                f"not enough free space for {plan.title or plan.ref}",
                needed=needed + margin,
                free=free,
                why=f"{human(needed + margin)} is needed (with a safety margin), "
                f"{human(free)} is free in {plan.staging}",
                hint="free some space, or download somewhere else",
            )

    async def _fetch_one(self, plan: Plan, spec: FileSpec, report: PlanReport) -> None:
        transfer = Transfer(
            spec,
            plan.staging,
            self.settings.transfer,
            slots=self._slots_for(spec),
            limiter=self._limiter,
        )
        self.live.append(transfer)
        try:
            outcome = await transfer.run()
        finally:
            self.live.remove(transfer)
            self.finished.append(transfer.statistics())
        report.files.append(
            FileReport(
                ref=plan.ref,
                name=spec.name,
                path=outcome.dest,
                size=outcome.size,
                status="present" if outcome.reused else "downloaded",
                verified=outcome.verified,
                digest=outcome.digest,
                outcome=None if outcome.reused else outcome,
            )
        )


def _unique(specs: Sequence[FileSpec]) -> list[FileSpec]:
    seen: dict[Path, FileSpec] = {}
    for spec in specs:
        seen.setdefault(spec.dest, spec)
    return list(seen.values())


async def _already_present(spec: FileSpec, options: GetOptions, ref: str) -> FileReport | None:
    """A report if ``spec.dest`` already holds the file; an error if it holds something else."""

    def present(verified: bool) -> FileReport:
        digest = str(spec.digest) if verified and spec.digest else None
        return FileReport(ref, spec.name, spec.dest, size, "present", verified, digest)

    if options.force or not spec.dest.exists():
        return None
    if spec.dest.is_dir():
        raise UsageError(
            f"{spec.dest} is a directory",
            hint="give -o a file path, or a directory ending in / to download into",
        )
    size = spec.dest.stat().st_size
    if spec.digest is None:
        return present(False)
    if spec.content_addressed:
        # Named by its digest: the right size means the right file, unless asked to check.
        if size != spec.size:
            log.warning("%s: %s has the wrong size; fetching it again", spec.name, spec.dest)
            return None
        if not options.verify_existing:
            return present(True)
    actual = await anyio.to_thread.run_sync(_hash_file, spec.dest, spec.digest, size)
    if actual == spec.digest.hex:
        return present(True)
    if spec.content_addressed:
        log.warning("%s: %s is corrupt; fetching it again", spec.name, spec.dest)
        return None
    raise UsageError(
        f"{spec.dest} already exists with different content",
        why=f"its {spec.digest.algorithm} is {actual}, expected {spec.digest.hex}",
        hint="pass --force to replace it, or choose another path with -o",
    )


def _hash_file(path: Path, digest: Digest, size: int) -> str:
    hasher = digest.hasher(size)
    with disk_errors(path), path.open("rb") as f:
        while block := f.read(8 << 20):
            hasher.update(block)
    return hasher.hexdigest()
