"""``pullman get``: refs to plans, plans to verified files, in the foreground.

The CLI is a thin shell over :func:`get`; this module knows sources, layouts and the engine, and
reports what happened to each file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from pullman.config import Settings
from pullman.digests import Digest
from pullman.errors import UsageError
from pullman.layouts import plain
from pullman.plan import FileSpec, Plan
from pullman.refs import UrlRef, parse_ref
from pullman.sources.url import plan_url
from pullman.transfer.engine import Outcome, Transfer, TransferStats
from pullman.transfer.staging import disk_errors


@dataclass(frozen=True)
class GetOptions:
    out: str | None = None
    digest: Digest | None = None
    force: bool = False
    insecure: bool = False


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


class Session:
    """The transfers of one ``get`` run, observable while they run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.live: list[Transfer] = []
        self.finished: list[TransferStats] = []

    def statistics(self) -> list[TransferStats]:
        return self.finished + [t.statistics() for t in self.live]

    async def get(self, refs: Sequence[str], options: GetOptions) -> list[FileReport]:
        plans = [self.plan(text, options) for text in refs]
        reports: list[FileReport] = []
        for plan in plans:
            reports.extend(await self.fetch(plan, options))
        return reports

    def plan(self, text: str, options: GetOptions) -> Plan:
        ref = parse_ref(text)
        if isinstance(ref, UrlRef):
            return plan_url(
                ref,
                out=options.out,
                downloads=self.settings.paths.downloads,
                digest=options.digest,
                insecure=options.insecure,
            )
        raise UsageError(f"cannot fetch {text!r}")  # pragma: no cover - parse_ref is exhaustive

    async def fetch(self, plan: Plan, options: GetOptions) -> list[FileReport]:
        reports = []
        for spec in plan.files:
            present = await _already_present(spec, options.force)
            if present is not None:
                reports.append(present)
                continue
            transfer = Transfer(spec, plain.staging_dir(spec.dest), self.settings.transfer)
            self.live.append(transfer)
            try:
                outcome = await transfer.run()
            finally:
                self.live.remove(transfer)
                self.finished.append(transfer.statistics())
            reports.append(
                FileReport(
                    ref=plan.ref,
                    name=spec.name,
                    path=outcome.dest,
                    size=outcome.size,
                    status="downloaded",
                    verified=outcome.verified,
                    digest=outcome.digest,
                    outcome=outcome,
                )
            )
        return reports


async def _already_present(spec: FileSpec, force: bool) -> FileReport | None:
    """A report if ``spec.dest`` already holds the file; an error if it holds something else."""
    if force or not spec.dest.exists():
        return None
    if spec.dest.is_dir():
        raise UsageError(
            f"{spec.dest} is a directory",
            hint="give -o a file path, or a directory ending in / to download into",
        )
    size = spec.dest.stat().st_size
    if spec.digest is None:
        return FileReport(spec.url, spec.name, spec.dest, size, "present", False, None)
    actual = await anyio.to_thread.run_sync(_hash_file, spec.dest, spec.digest, size)
    if actual == spec.digest.hex:
        return FileReport(spec.url, spec.name, spec.dest, size, "present", True, str(spec.digest))
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
