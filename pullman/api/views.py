"""The JSON shapes of the API: a job, its detail, its progress. Pure: values in, dicts out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pullman.core.jobs import Job
from pullman.index import Event
from pullman.transfer.stats import TransferStats

RECENT_EVENTS: Final = 50
MARKS: Final = frozenset({"recycled", "retried", "started", "resumed", "paused", "waiting"})


def eta(job: Job) -> float | None:
    total = job.bytes_total or 0
    left = total - job.bytes_done
    return left / job.rate if job.state == "running" and left > 0 and job.rate > 0 else None


def job_json(job: Job) -> dict[str, Any]:
    """A job row as ``pullman status --json`` prints it, plus ``progress`` (0..1) and ``eta``."""
    doc = job.to_json()
    total = job.bytes_total or 0
    doc["progress"] = job.bytes_done / total if total else None
    doc["eta"] = eta(job)
    return doc


def _counted(events: Sequence[Event], kind: str) -> int:
    """Recycles or retries from the events' details ("3 connections", "2 requests")."""
    count = 0
    for event in events:
        if event.kind == kind:
            head = event.detail.split(" ", 1)[0]
            count += int(head) if head.isdigit() else 1
    return count


def progress_json(job: Job, files: Sequence[TransferStats]) -> dict[str, Any]:
    """A ``progress`` event: the job's totals, and each file with every TransferStats field."""
    return {
        "job_id": job.id,
        "ref": job.ref,
        "state": job.state,
        "done": job.bytes_done,
        "size": job.bytes_total,
        "rate": job.rate,
        "eta": eta(job),
        "connections": sum(f.connections for f in files),
        "recycles": sum(f.recycles for f in files),
        "retries": sum(f.retries for f in files),
        "files": [f.to_json() for f in files],
        "at": job.updated_at,
    }


def detail_json(
    job: Job, files: Sequence[TransferStats], events: Sequence[Event]
) -> dict[str, Any]:
    """``GET /api/jobs/{id}``: the job, its files (while it runs here), why it waits, and what
    happened to it (recycles and retries counted over its whole life)."""
    doc = job_json(job)
    live = bool(files)
    doc.update(
        files=[f.to_json() for f in files],
        connections=sum(f.connections for f in files),
        recycles=sum(f.recycles for f in files) if live else _counted(events, "recycled"),
        retries=sum(f.retries for f in files) if live else _counted(events, "retried"),
        waiting_because=job.wait_reason if job.state in ("waiting", "paused") else None,
        events=[e.to_json() for e in events[-RECENT_EVENTS:]],
    )
    return doc


def marks_json(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The chart's markers: recycles, retries, starts, pauses and waits, with their times."""
    return [e.to_json() for e in events if e.kind in MARKS][-500:]
