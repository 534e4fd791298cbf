"""The controls on queued and running jobs: pause, resume, cancel, priority, the global limit.

One implementation of the rules, used by both views of the index: the CLI when no daemon runs
(it writes the index, then wakes the daemon, if any) and the daemon's HTTP API (``pullman.api``,
which the CLI talks to when a daemon runs). Each move is a compare-and-set on the job's state in
the index (:meth:`pullman.index.Index.set_state`), so a race with the scheduler or another
command gives :class:`~pullman.errors.JobConflict`, never a lost update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, NamedTuple

from pullman.core.jobs import Job, JobState
from pullman.core.units import format_rate, parse_rate
from pullman.errors import NotFound, UsageError
from pullman.index import Index

Action = Literal["pause", "resume", "cancel"]


class Move(NamedTuple):
    to: JobState
    allowed: frozenset[JobState]
    reason: str | None


MOVES: Final[Mapping[Action, Move]] = {
    "pause": Move("paused", frozenset({"queued", "waiting", "running"}), "paused by the user"),
    "resume": Move("queued", frozenset({"paused", "failed"}), None),
    "cancel": Move(
        "cancelled", frozenset({"queued", "waiting", "running", "paused", "failed"}), None
    ),
}
ACTIONS: Final = tuple(MOVES)


def no_job(job_id: int) -> NotFound:
    return NotFound(f"no job {job_id}", hint="`pullman status --all` lists them")


def get_job(index: Index, job_id: int) -> Job:
    job = index.job(job_id)
    if job is None:
        raise no_job(job_id)
    return job


def apply(index: Index, job_id: int, action: Action) -> Job:
    """Pause, resume or cancel one job; the job after the move.

    :class:`~pullman.errors.NotFound` for an unknown job, :class:`~pullman.errors.JobConflict`
    when it is in a state that move does not apply to (a done job cannot be paused).
    """
    move = MOVES[action]
    try:
        return index.set_state(job_id, move.to, only_from=move.allowed, wait_reason=move.reason)
    except LookupError:
        raise no_job(job_id) from None


def set_priority(index: Index, job_id: int, priority: int) -> Job:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise UsageError(f"priority: expected a whole number, got {priority!r}")
    try:
        return index.set_priority(job_id, priority)
    except LookupError:
        raise no_job(job_id) from None


class Limit(NamedTuple):
    rate: float | None
    """Bytes per second, or None for no cap."""
    shown: str

    def to_json(self) -> dict[str, object]:
        return {"limit": self.rate, "shown": self.shown}


def set_limit(index: Index, text: str | float) -> Limit:
    """The global bandwidth cap, e.g. ``"20MB/s"`` or ``"off"``; the daemon applies it at once."""
    value = parse_rate(text, what="limit")
    index.set_setting("limit", str(text) if value is not None else "off")
    return Limit(value, format_rate(value))


def current_limit(index: Index, default: str) -> Limit:
    """The cap in force: ``pullman limit``'s, else ``[schedule] limit``."""
    text = index.get_setting("limit") or default
    try:
        value = parse_rate(text, what="limit")
    except UsageError:
        value = None
    return Limit(value, format_rate(value))
