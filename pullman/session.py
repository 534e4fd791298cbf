"""One run of ``get``: refs to plans, plans to verified files.

For each ref: its source (:func:`~pullman.sources.source_for`) says what there is to fetch, the
layout of the store it lands in (:func:`~pullman.layouts.layout_for`) says where. For each plan:
refuse paths outside the store, reuse what is already there, download the rest concurrently
within one connection budget, then write the plan's final small files (a manifest, refs, links)
only after every blob verified. The CLI, the scheduler and ``verify --repair`` share it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from pullman.config import Settings
from pullman.copies import Copies, Shared
from pullman.core.hosts import HostMemory
from pullman.core.jobs import GetOptions
from pullman.core.plan import FileSpec, Plan, Store
from pullman.core.units import human
from pullman.errors import (
    DiskFull,
    IntegrityError,
    NetworkError,
    NotFound,
    PullmanError,
    RemoteError,
    StorageError,
    UsageError,
    collapse_groups,
)
from pullman.fitcheck import FitGuard
from pullman.fsio import adopt, free_space, hash_file
from pullman.layouts import layout_for
from pullman.layouts.common import apply_finals, check_plan, made_paths, make_early, undo_early
from pullman.sources import SourceContext, check_options, parse, source_for
from pullman.sources.mirrored import resolve as mirrored_resolve
from pullman.sources.routes import route
from pullman.transfer.engine import Transfer
from pullman.transfer.landing import Landings
from pullman.transfer.limiter import Limiter
from pullman.transfer.slots import Lanes, Slots
from pullman.transfer.staging import Staging
from pullman.transfer.stats import Outcome, TransferStats

log = logging.getLogger("pullman.session")

__all__ = ["FileReport", "GetOptions", "PlanReport", "Session"]


@dataclass(frozen=True)
class FileReport:
    ref: str
    name: str
    path: Path
    size: int
    status: str
    """``downloaded``; ``present`` (already there); or, from a verified copy elsewhere on
    this machine, ``linked``, ``cloned`` or ``copied`` (nothing fetched)."""
    verified: bool
    digest: str | None
    outcome: Outcome | None = None
    shared: Path | None = None
    """The copy elsewhere on this machine it was linked, cloned or copied from."""


@dataclass
class PlanReport:
    plan: Plan
    files: list[FileReport] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(f.outcome.fetched for f in self.files if f.outcome is not None)

    @property
    def where(self) -> Path | None:
        """Where the result is: the store entry (a manifest, a snapshot), else the first file."""
        if self.plan.location is not None and not self.plan.itemized:
            return self.plan.location[1]
        return self.files[0].path if self.files else None


class Session:
    """The transfers of one ``get`` run, observable while they run.

    ``slots_for`` gives the connection budget a file's connections draw from (the scheduler
    shares one across jobs, per host); ``limiter`` caps the bandwidth of all of them.
    ``landings``, when given, hears of each plan before its files are fetched and of every
    byte written (``serve --pull-through`` streams files to its clients as they land).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        slots_for: Callable[[FileSpec], Slots] | None = None,
        limiter: Limiter | None = None,
        token: str | None = None,
        copies: Copies | None = None,
        landings: Landings | None = None,
        memory: HostMemory | None = None,
    ) -> None:
        """``token``: a Hub token given on the command line (never stored anywhere);
        ``copies``: where verified copies of files may already be (the index's, say)."""
        self.settings = settings
        self.copies = copies or Copies()
        self.live: list[Transfer] = []
        self.finished: list[TransferStats] = []
        self._limiter = limiter
        self._token = token
        self.fit = FitGuard(settings.transfer, token)
        """Fit checks; the scheduler gives it the index to keep GGUF headers in."""
        self.landings = landings
        shared = anyio.CapacityLimiter(settings.transfer.connections)
        self._slots_for = slots_for or (lambda spec: shared)
        self._memory = memory
        """What hosts taught earlier downloads (their throttles), if the index is at hand."""
        self._lanes = Lanes()
        """Small files (a template, a license) have a lane of their own: they never wait for a
        big layer's connections."""

    def statistics(self) -> list[TransferStats]:
        return self.finished + [t.statistics() for t in self.live]

    async def get(self, refs: Sequence[str], options: GetOptions) -> list[PlanReport]:
        """Each ref into each of its destinations (``--to``), in order: a file the first one
        fetched is linked into the others, not fetched again."""
        reports = []
        for text in refs:
            for to in options.to or (None,):
                reports.append(await self._one(text, options, to))
        return reports

    async def _one(self, text: str, options: GetOptions, to: str | None) -> PlanReport:
        """One ref into one destination; from upstream if its mirror fails midway (what the
        mirror delivered and verified is kept: staging is keyed by digest)."""
        plan = await self.plan(text, options, to=to)
        try:
            return await self.fetch(self._planned(text, plan), options)
        except (NetworkError, RemoteError, IntegrityError) as exc:
            if plan.mirror is None:
                raise
            log.warning("%s: the mirror %s failed: %s; from upstream", text, plan.mirror, exc.what)
        plan = await self.plan(text, options, to=to, mirrored=False)
        return await self.fetch(self._planned(text, plan), options)

    def _planned(self, text: str, plan: Plan) -> Plan:
        if self.landings is not None:
            self.landings.planned(text, plan)
        return plan

    async def plan(
        self,
        text: str,
        options: GetOptions,
        *,
        dry_run: bool = False,
        to: str | None = None,
        mirrored: bool = True,
    ) -> Plan:
        """What ``text`` needs fetched and where it lands (in ``to``, one of ``--to``); the
        store is checked first (not for a ``dry_run``, which changes nothing on disk)."""
        plain = options.out is not None or options.digest is not None
        routed = route(parse(text, insecure=options.insecure, plain=plain), to, options)
        ref, options = routed.ref, routed.options
        source = source_for(ref)
        check_options(source, options)
        store = routed.store or source.store(ref, options)
        if store is Store.PLAIN and options.local_dir is None and options.out is None:
            folder = options.cwd or str(self.settings.paths.downloads)
            options = replace(options, out=f"{folder.rstrip('/')}/")
        layout = layout_for(store)
        root = layout.root(options)
        if not dry_run:
            await anyio.to_thread.run_sync(layout.check_writable, root)
        cfg = self.settings.transfer
        context = SourceContext(
            options, cfg.retry_policy, cfg.metadata_deadline, cfg.proxies, self._token
        )
        ref, note = await self.fit.settle_quant(ref, context)
        if options.mirrors and mirrored:
            token = await anyio.to_thread.run_sync(self.settings.sources.token)
            context = replace(context, mirror_token=token)
        release, mirror = await mirrored_resolve(source, ref, context, mirrored=mirrored)
        return replace(layout.place(release, root, options), mirror=mirror, note=note)

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
                self.copies.remember(spec.digest, present.path)
        copies = self.copies_for(options)
        shareable = [] if options.force else await anyio.to_thread.run_sync(copies.any_of, todo)
        rest = [s for s in todo if s not in shareable]
        await self.fit.check(plan.ref, rest, options)
        await anyio.to_thread.run_sync(self._check_space, plan, rest)
        failed = True
        failure: PullmanError | None = None
        try:
            await anyio.to_thread.run_sync(make_early, plan)
            for spec in shareable:  # one copy on this machine: linked in, not fetched again
                shared = await anyio.to_thread.run_sync(copies.share, spec, plan.staging)
                if shared is None and not spec.url:  # only here (link): nothing to fetch from
                    raise copies.failure or _nowhere(spec)
                if shared is None:
                    rest.append(spec)
                else:
                    report.files.append(_shared_report(plan.ref, spec, shared))
            todo = rest
            with collapse_groups():
                async with anyio.create_task_group() as tg:
                    for spec in todo:
                        tg.start_soon(self._fetch_one, plan, spec, report)
            await anyio.to_thread.run_sync(_finish_plan, plan)
            failed = False
        except PullmanError as exc:
            failure = exc
            raise
        finally:  # also after a failure: partial files too belong to the store's owner
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._settle, plan, failed)
            if self.landings is not None:
                stopped = NetworkError(f"{plan.title or plan.ref}: the download stopped")
                self.landings.settled(plan, (failure or stopped) if failed else None)
        return report

    def copies_for(self, options: GetOptions) -> Copies:
        """The stores this run's options name, where a verified copy may already be."""
        copies = self.copies
        copies.ollama_roots = (layout_for(Store.OLLAMA).root(options),)
        copies.hf_caches = (layout_for(Store.HF_CACHE).root(options),)
        return copies

    def _settle(self, plan: Plan, failed: bool) -> None:
        """What a plan made belongs to the store's owner; a failed one that got nothing
        leaves no empty directories behind."""
        try:
            adopt(made_paths(plan), plan.staging_root)  # LM Studio's: its home, staging too
        except StorageError as exc:  # never hides the real outcome (NFS root squash, say)
            log.warning("could not give %s to its owner: %s", plan.root, exc)
        if failed:
            undo_early(plan)

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
            slots=self._lanes.slots(spec.size, self._slots_for(spec)),
            limiter=self._limiter,
            landing=self.landings.landing_for(spec) if self.landings is not None else None,
            memory=self._memory,
        )
        self.live.append(transfer)
        try:
            outcome = await transfer.run()
        finally:
            self.live.remove(transfer)
            self.finished.append(transfer.statistics())
        self.copies.remember(spec.digest, spec.final or outcome.dest)
        report.files.append(
            FileReport(
                ref=plan.ref,
                name=spec.name,
                path=spec.final or outcome.dest,
                size=outcome.size,
                status="present" if outcome.reused else "downloaded",
                verified=outcome.verified,
                digest=outcome.digest,
                outcome=None if outcome.reused else outcome,
            )
        )


def _nowhere(spec: FileSpec) -> NotFound:
    return NotFound(
        f"{spec.name}: no usable copy of it is left on this machine",
        why="the copy that was found could not be linked, cloned or read",
        hint="download it with `pullman get`",
    )


def _shared_report(ref: str, spec: FileSpec, shared: Shared) -> FileReport:
    size = spec.size or 0
    digest = str(spec.digest) if spec.digest else None
    path = spec.final or spec.dest
    return FileReport(ref, spec.name, path, size, shared.how, True, digest, shared=shared.source)


def _finish_plan(plan: Plan) -> None:
    """Check the plan's paths again (a directory swapped for a symlink during a long download
    is refused here too), then write its small files and links."""
    check_plan(plan)
    apply_finals(plan)


def _unique(specs: Sequence[FileSpec]) -> list[FileSpec]:
    seen: dict[Path, FileSpec] = {}
    for spec in specs:
        seen.setdefault(spec.dest, spec)
    return list(seen.values())


async def _already_present(spec: FileSpec, options: GetOptions, ref: str) -> FileReport | None:
    """A report if the file is already there (at ``spec.dest``, or where the plan's finals put
    it); an error if ``dest`` holds something else."""
    where = next((p for p in spec.places if p.exists()), None)
    if options.force or where is None:
        return None

    def present(verified: bool) -> FileReport:
        digest = str(spec.digest) if verified and spec.digest else None
        landed = spec.final or where  # a held blob's staging copy moves there afterwards
        return FileReport(ref, spec.name, landed, size, "present", verified, digest)

    if where.is_dir():
        raise UsageError(
            f"{where} is a directory",
            hint="give -o a file path, or a directory ending in / to download into",
        )
    size = where.stat().st_size
    if spec.digest is None:
        return present(False)
    if spec.content_addressed:
        # Named by its digest: the right size means the right file, unless asked to check.
        if size != spec.size:
            log.warning("%s: %s has the wrong size; fetching it again", spec.name, where)
            return None
        if not options.verify_existing:
            return present(True)
    actual = await anyio.to_thread.run_sync(hash_file, where, spec.digest.hasher(size))
    if actual == spec.digest.hex:
        return present(True)
    if spec.content_addressed:
        log.warning("%s: %s is corrupt; fetching it again", spec.name, where)
        return None
    raise UsageError(
        f"{spec.dest} already exists with different content",
        why=f"its {spec.digest.algorithm} is {actual}, expected {spec.digest.hex}",
        hint="pass --force to replace it, or choose another path with -o",
    )
