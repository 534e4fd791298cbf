"""The job model: what a job asks for, the states it goes through, and which moves are allowed.
Pure: the index stores jobs (:mod:`pullman.index`), the scheduler runs them; neither decides
these rules.

::

    queued ──▶ running ──▶ done
      ▲ │        │ │ ▲
      │ ▼        ▼ │ │
    waiting ◀────┘ ▼ │          any active state ──▶ paused, cancelled, failed
      (window,   failed ──▶ queued (a retry)
       disk)

``running -> queued`` puts back a job whose runner died; ``paused -> queued`` is a resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from pullman.core.digests import Digest, parse_sha256_option

JobState = Literal["queued", "waiting", "running", "paused", "done", "failed", "cancelled"]
EventKind = Literal[
    "started",
    "resumed",
    "waiting",
    "paused",
    "recycled",
    "retried",
    "verified",
    "done",
    "failed",
    "cancelled",
]

JOB_STATES: Final = frozenset(get_args(JobState))
EVENT_KINDS: Final = frozenset(get_args(EventKind))
ACTIVE: Final[tuple[JobState, ...]] = ("queued", "waiting")
"""States a scheduler picks jobs from."""
FINISHED: Final[frozenset[JobState]] = frozenset({"done", "failed", "cancelled"})

TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    "queued": frozenset({"waiting", "running", "paused", "failed", "cancelled"}),
    "waiting": frozenset({"queued", "running", "paused", "failed", "cancelled"}),
    "running": frozenset({"queued", "waiting", "paused", "done", "failed", "cancelled"}),
    "paused": frozenset({"queued", "waiting", "running", "cancelled"}),
    "failed": frozenset({"queued", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}
"""Allowed moves between different states; any state may also be set again (a no-op that can
update ``wait_reason`` or ``error``)."""


def may_move(old: JobState, new: JobState) -> bool:
    return old == new or new in TRANSITIONS[old]


def sources_of(new: JobState) -> frozenset[JobState]:
    """Every state a job may be in to move to ``new``."""
    return frozenset(old for old in TRANSITIONS if may_move(old, new))


# ---------------------------------------------------------------------- what a job asks for


@dataclass(frozen=True)
class GetOptions:
    """What one ``pullman get`` asks for, beyond its refs (JSON in a job row: no secrets)."""

    out: str | None = None
    digest: Digest | None = field(default=None, metadata={"json": "sha256"})
    force: bool = False
    insecure: bool = False
    ollama_dir: str | None = None
    verify_existing: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    local_dir: str | None = None
    hf_cache: str | None = None
    """The Hugging Face cache (else ``HF_HUB_CACHE`` / ``HF_HOME`` of the process that runs)."""
    hf_endpoint: str | None = None
    """The Hub (else ``HF_ENDPOINT``); recorded so the daemon uses the submitter's."""
    revision: str | None = None
    """``--revision``: the Hub revision, over the ref's ``@rev``."""
    cwd: str | None = None
    """The directory the command ran in: a URL without ``-o`` lands there (as with curl)."""
    lmstudio_dir: str | None = None
    """LM Studio's models directory (``--lmstudio-dir``, ``[stores] lmstudio``)."""
    to: tuple[str, ...] = ()
    """``--to``: where the download lands (``hf``, ``ollama``, ``lmstudio`` or a directory),
    each once; empty: the ref's own store."""
    mirrors: tuple[str, ...] = ()
    """``--mirror`` (else ``[sources] mirrors``): asked first, upstream on a miss or failure."""
    ignore_fit: bool = False
    """``--ignore-fit``: fetch a GGUF model even when it would not fit the memory budget."""
    memory: int | None = None
    """``--memory``: the budget (bytes) of the machine the model is for; else this one's."""
    context: int | None = None
    """``--context``: the context length the fit check counts the KV cache for."""


def _to_json(value: Any) -> Any:
    if isinstance(value, Digest):
        return value.hex
    if isinstance(value, tuple):
        return list(value)
    return value


def _from_json(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if "Digest" in kind:
        return parse_sha256_option(str(value))
    if kind.startswith("tuple"):
        return tuple(str(v) for v in value)
    if kind == "bool":
        return bool(value)
    return value


def _json_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json", f.name))


@dataclass(frozen=True)
class JobOptions:
    """What a job row's ``options`` hold: a ``get``'s options, and how the job is run."""

    get: GetOptions = field(default_factory=GetOptions)
    connections: int | None = None
    limit: str | None = None
    window: str | None = None
    foreground: int | None = None
    """The pid of the foreground ``pullman get`` that owns the job (the daemon leaves it be)."""
    on_done: str | None = None
    """``--on-done``: a command run when the job is done (over ``[hooks] on_done``)."""
    on_failed: str | None = None
    """``--on-failed``: a command run when the job failed (over ``[hooks] on_failed``)."""
    notify: bool = False
    """``--notify``: a desktop notification when the job ends (besides ``[hooks] notify``)."""

    def to_json(self) -> dict[str, Any]:
        """Set values only (``None``, ``False`` and empty lists are left out)."""
        doc = {
            _json_name(f): _to_json(getattr(self.get, f.name)) for f in dataclasses.fields(self.get)
        }
        doc.update(
            (f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "get"
        )
        return {k: v for k, v in doc.items() if v not in (None, False, [])}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JobOptions:
        get = GetOptions(
            **{
                f.name: _from_json(str(f.type), doc.get(_json_name(f)))
                for f in dataclasses.fields(GetOptions)
                if doc.get(_json_name(f)) is not None
            }
        )
        own: dict[str, Any] = {
            f.name: doc.get(f.name) for f in dataclasses.fields(cls) if f.name != "get"
        }
        own["notify"] = bool(own["notify"])
        return cls(get=get, **own)

    def same_request(self, other: JobOptions) -> bool:
        """Whether two jobs ask for the same thing (a rerun resumes the old job, taking on the
        rerun's hooks)."""
        return self._what() == other._what()

    def _what(self) -> JobOptions:
        return dataclasses.replace(
            self, foreground=None, on_done=None, on_failed=None, notify=False
        )


# ---------------------------------------------------------------------- a job


@dataclass(frozen=True)
class Job:
    id: int
    ref: str
    options: Mapping[str, Any] = field(hash=False, compare=False)
    priority: int
    state: JobState
    wait_reason: str | None
    bytes_done: int
    bytes_total: int | None
    rate: float
    error: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    pid: int | None
    exit_code: int | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def request(self) -> JobOptions:
        return JobOptions.from_json(self.options)

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["options"] = dict(self.options)
        return doc


_STATE_EVENTS: Final[Mapping[JobState, EventKind]] = {
    "waiting": "waiting",
    "paused": "paused",
    "done": "done",
    "failed": "failed",
    "cancelled": "cancelled",
}


def moved(
    old: Job,
    state: JobState,
    now: float,
    me: int,
    *,
    pid: int | None = None,
    error: str | None = None,
    wait_reason: str | None = None,
    exit_code: int | None = None,
) -> Job:
    """The job after a move to ``state`` (the move is checked by the caller).

    Entering ``running`` records ``pid`` (default ``me``, the calling process) and, the first
    time, ``started_at``; a finished state
    records ``finished_at``. A reason or error is kept while the state stays the same.
    """
    same = state == old.state
    running = state == "running"
    new = dataclasses.replace(
        old,
        state=state,
        wait_reason=(
            _kept(wait_reason, old.wait_reason, same) if state in ("waiting", "paused") else None
        ),
        error=_kept(error, old.error, same),
        rate=old.rate if running else 0.0,
        updated_at=now,
        started_at=now if running and old.started_at is None else old.started_at,
        finished_at=(_kept(None, old.finished_at, same) or now) if state in FINISHED else None,
        pid=(_kept(pid, old.pid, same) or me) if running else None,
    )
    if exit_code is not None or not same:
        new = dataclasses.replace(new, exit_code=exit_code)
    return new


def _kept(new: Any, current: Any, same: bool) -> Any:
    """A new value if given, else the current one while the state stays the same."""
    if new is not None:
        return new
    return current if same else None


def event_for(old: Job, new: Job) -> tuple[EventKind, str] | None:
    """The event a move logs (kind, detail), or None for a move that changes no state."""
    if old.state == new.state:
        return None
    if new.state == "running":
        return ("started" if old.started_at is None else "resumed"), f"pid {new.pid}"
    kind = _STATE_EVENTS.get(new.state)
    if kind is None:
        return None
    return kind, new.error or new.wait_reason or ""
