"""The job queue, as ``pullman get`` uses it: submitting jobs, and taking over one's own.

A foreground ``get`` owns its jobs (their options name its pid): the daemon leaves them be while
that process lives. Running the same command again takes the earlier, unfinished job over, so it
resumes where it stopped instead of queueing a second copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pullman.core.jobs import JobOptions, JobState
from pullman.errors import JobConflict
from pullman.index import Index
from pullman.procs import pid_alive

RESUMABLE: tuple[JobState, ...] = ("queued", "waiting", "paused", "failed", "running")


def submit(index: Index, refs: Sequence[str], job: JobOptions, priority: int) -> list[int]:
    """Queue one job per ref (for the daemon); their ids."""
    return [index.add_job(ref, job.to_json(), priority) for ref in refs]


def take(index: Index, refs: Sequence[str], job: JobOptions, priority: int) -> list[int]:
    """The jobs this process runs for ``refs``: its earlier ones where they exist, else new."""
    return [take_job(index, ref, job, priority) for ref in refs]


def take_job(index: Index, ref: str, job: JobOptions, priority: int) -> int:
    """A rerun of the same command takes its earlier, unfinished job over; else a new job."""
    for old in index.jobs(RESUMABLE):
        theirs = old.request
        if old.ref != ref or not theirs.same_request(job) or _busy(old.state, old.pid, theirs):
            continue
        try:  # claim it (one rerun wins), then queue it for this process
            index.set_options(old.id, job.to_json(), only_if=old.options)
            if old.state != "queued":
                index.set_state(old.id, "queued", only_from=[old.state])
        except JobConflict:
            continue  # taken or moved meanwhile: look further, or queue a new one
        return old.id
    return index.add_job(ref, job.to_json(), priority)


def _busy(state: str, pid: int | None, theirs: JobOptions) -> bool:
    """Whether another process runs that job right now."""
    owner = theirs.foreground
    if owner is not None and owner != os.getpid() and pid_alive(owner):
        return True  # another terminal runs it
    # The daemon runs it (a running job whose runner lives, or that no terminal owns).
    return state == "running" and (owner is None or pid is None or pid_alive(pid))
