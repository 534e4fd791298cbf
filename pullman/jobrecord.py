"""What running jobs write to the index: progress rows, recycle and retry events, how each job
ended, and the models a finished job put in its store. The scheduler decides; this records.

Every method is synchronous (the scheduler runs them in a worker thread). A job another process
moved meanwhile (a ``cancel`` that landed as it finished) keeps that state: its move stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

from pullman.core.jobs import Job, JobState
from pullman.core.urls import shown_ref
from pullman.errors import JobConflict, PullmanError
from pullman.index import FileRecord, Index
from pullman.session import PlanReport
from pullman.transfer.stats import TransferStats

log = logging.getLogger("pullman.scheduler")


class Counts(NamedTuple):
    """Recycles and retries of a job's transfers so far (events are logged for the growth)."""

    recycles: int = 0
    retries: int = 0


class JobRecorder:
    def __init__(self, index: Index) -> None:
        self.index = index

    def progress(self, job_id: int, stats: Sequence[TransferStats]) -> None:
        done = sum(s.done for s in stats)
        total = sum(s.size for s in stats) or None
        self.index.update_progress(job_id, done, total, sum(s.rate for s in stats))

    def counts(self, job_id: int, stats: Sequence[TransferStats], seen: Counts) -> Counts:
        """Log ``recycled`` / ``retried`` events for what happened since ``seen``."""
        now = Counts(sum(s.recycles for s in stats), sum(s.retries for s in stats))
        if now.recycles > seen.recycles:
            detail = f"{now.recycles - seen.recycles} connections"
            self.index.log_event(job_id, "recycled", detail)
        if now.retries > seen.retries:
            self.index.log_event(job_id, "retried", f"{now.retries - seen.retries} requests")
        return now

    def ended(
        self,
        job: Job,
        state: str,
        reason: str | None,
        error: PullmanError | None,
        reports: Sequence[PlanReport],
    ) -> None:
        """How a job ended: ``failed`` with its error, ``waiting``, stopped, or ``done``."""
        index = self.index
        # A user's pause or cancel meanwhile stands; only ``done`` (files in place) overrides it.
        ran: tuple[JobState, ...] = ("running",)
        try:
            if error is not None:
                failed = error.explain()
                index.set_state(
                    job.id, "failed", only_from=ran, error=failed, exit_code=error.exit_code
                )
            elif state == "waiting":
                index.set_state(job.id, "waiting", only_from=ran, wait_reason=reason)
            elif state in ("paused", "cancelled", "queued"):
                current = index.job(job.id)
                if current is not None and current.state != state:
                    index.set_state(job.id, state, only_from=ran, wait_reason=reason)  # type: ignore[arg-type]
            else:
                for report in reports:  # the files are in place, whatever the row says
                    record_model(index, report)
                index.set_state(job.id, "done")
        except JobConflict as exc:  # another process moved it meanwhile: its move stands
            log.info("job %s %s: %s; left as it is", job.id, shown_ref(job.ref), exc.what)


def record_model(index: Index, report: PlanReport) -> None:
    """What a finished job put in a store, for ``status``, ``verify`` and ``doctor``."""
    plan = report.plan
    files = [
        FileRecord(
            path=str(f.path.relative_to(plan.root))
            if f.path.is_relative_to(plan.root)
            else str(f.path),
            size=f.size,
            digest=f.digest,
            state="verified" if f.verified else "complete",
        )
        for f in report.files
    ]
    verified = all(f.verified for f in report.files)
    index.upsert_model(
        plan.display or plan.ref,
        plan.store.index_source,
        plan.root,
        title=plan.title,
        size=sum(f.size for f in report.files),
        state="verified" if verified else "complete",
        verified_at=time.time() if verified else None,
        files=files,
    )
