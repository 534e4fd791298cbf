"""The store index: SQLite (WAL) for models and their files, jobs and their progress, events.

The index is the queue: ``pullman get`` writes a job row, the scheduler (in the daemon or in the
foreground) picks rows with :meth:`Index.next_jobs`, and ``pullman status`` reads progress rows.
Every method is a short synchronous call; async callers run them off the event loop
(``anyio.to_thread.run_sync``). One :class:`Index` may be shared by threads: calls are
serialised by a lock, and processes share the file through SQLite's WAL locking (``busy_timeout``).

The index only *describes* the stores; it never holds downloaded data. So it is disposable:

- A damaged or unreadable file is moved aside as ``index.db.damaged-<UTC timestamp>`` (with its
  ``-wal`` / ``-shm`` files) and a fresh index is created; :attr:`Index.recovered_from` says so,
  and callers then rebuild the model rows from the stores (``pullman doctor``). Opening never
  raises because of damage; it raises :class:`~pullman.errors.StorageError` only when the
  directory cannot be written at all, or the index was written by a newer pullman.
- A deleted index is simply created again.

Schema: ``PRAGMA user_version`` is the number of :data:`MIGRATIONS` applied. Each migration runs
in one ``BEGIN IMMEDIATE`` transaction together with the version bump, so a crash or a second
process never leaves a half-migrated file. Add a migration by appending to the list; never edit
one that shipped. Allowed values (sources, states, event kinds) are checked here, not with SQL
``CHECK`` constraints, which SQLite cannot change without rebuilding the table.

Secrets never go into the index: job ``options`` are stored as plain JSON that ``pullman status``
prints, so they must not hold tokens, passwords or signed URLs (:meth:`Index.add_job` refuses
keys that look like secrets). Credentials come from the environment or the owning tool's own
token file when a job runs. The file is created ``0600`` in a ``0700`` directory anyway.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Self, TypeVar, cast, get_args

from pullman.core.jobs import (
    ACTIVE,
    EVENT_KINDS,
    JOB_STATES,
    EventKind,
    Job,
    JobState,
    event_for,
    moved,
    sources_of,
)
from pullman.core.plan import IndexSource
from pullman.core.units import human
from pullman.errors import DiskFull, JobConflict, NotWritable, PullmanError, StorageError
from pullman.fsio import FS, free_space
from pullman.procs import pid_alive

log = logging.getLogger("pullman.index")
T = TypeVar("T")

Source = IndexSource
ItemState = Literal["partial", "complete", "verified", "missing", "damaged"]
"""States of models and files: ``complete`` is whole but not checked against a digest."""

SOURCES: Final = frozenset(get_args(Source))
ITEM_STATES: Final = frozenset(get_args(ItemState))

_SECRET_WORDS: Final = ("token", "password", "passwd", "secret", "authorization", "cookie")
_SECRET_KEYS: Final = frozenset({"auth", "api_key", "apikey", "credentials"})

BUSY_TIMEOUT_MS: Final = 10_000

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (  # 1: the first schema
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL,
            source TEXT NOT NULL,
            root TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            size INTEGER,
            state TEXT NOT NULL,
            verified_at REAL,
            created_at REAL NOT NULL,
            UNIQUE (ref, root)
        )""",
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER,
            digest TEXT,
            state TEXT NOT NULL,
            UNIQUE (model_id, path)
        )""",
        "CREATE INDEX files_digest ON files(digest)",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ref TEXT NOT NULL,
            options TEXT NOT NULL DEFAULT '{}',
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'queued',
            wait_reason TEXT,
            bytes_done INTEGER NOT NULL DEFAULT 0,
            bytes_total INTEGER,
            rate REAL NOT NULL DEFAULT 0,
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            pid INTEGER
        )""",
        "CREATE INDEX jobs_queue ON jobs(state, priority DESC, id)",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX events_job ON events(job_id, id)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (  # 2: the exit code a failed job's command would have had (pullman.errors)
        "ALTER TABLE jobs ADD COLUMN exit_code INTEGER",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_DAMAGE_CODES: Final = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})


@dataclass(frozen=True)
class Event:
    id: int
    job_id: int
    at: float
    kind: EventKind
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "at": self.at,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class FileRecord:
    """One file of a model, relative to the model's store root."""

    path: str
    size: int | None = None
    digest: str | None = None
    state: ItemState = "complete"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest, "state": self.state}


@dataclass(frozen=True)
class Model:
    id: int
    ref: str
    source: Source
    root: str
    """The store root the model lives in (the Ollama models dir, an HF cache, a directory)."""
    title: str
    size: int | None
    state: ItemState
    verified_at: float | None
    created_at: float
    files: tuple[FileRecord, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "source": self.source,
            "root": self.root,
            "title": self.title,
            "size": self.size,
            "state": self.state,
            "verified_at": self.verified_at,
            "created_at": self.created_at,
            "files": [f.to_json() for f in self.files],
        }


class _Database:
    """The SQLite file: opening (created, migrated, replaced if damaged), transactions, and
    SQLite errors translated into :mod:`pullman.errors`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        recovered_from: Path | None = None,
    ) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._clock = clock
        self.path = path
        self.recovered_from = recovered_from
        """Where a damaged index was moved to when this one was opened (else ``None``)."""
        self._listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Self:
        """Open the index at ``path``: created, migrated, or replaced if damaged, as needed."""
        _prepare(path)
        try:
            return cls(_connect(path), path, clock=clock)
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise _storage_error(path, exc) from exc
            damage = exc
        aside = _move_aside(path, clock())
        log.warning("the index %s was damaged (%s); moved it to %s", path, damage, aside)
        _prepare(path)
        try:
            return cls(_connect(path), path, clock=clock, recovered_from=aside)
        except sqlite3.DatabaseError as exc:
            raise _storage_error(path, exc) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every write this handle commits (from the writing thread);
        returns a function that stops it. The daemon's API pushes its events from here."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._translated():
            yield self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._lock, self._translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()
        for listener in list(self._listeners):
            listener()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise LookupError("no such job") from exc
            raise _storage_error(self.path, exc) from exc
        except sqlite3.Error as exc:
            raise _storage_error(self.path, exc) from exc


class Index(_Database):
    """A handle on the index. Make one with :meth:`open`; close it with :meth:`close`."""

    # ------------------------------------------------------------------ jobs

    def add_job(self, ref: str, options: Mapping[str, Any] | None = None, priority: int = 0) -> int:
        """Queue a job for ``ref``; returns its id. ``options`` must be JSON and hold no secrets."""
        options = dict(options or {})
        _refuse_secrets(options)
        text = json.dumps(options, sort_keys=True)
        now = self._clock()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO jobs (ref, options, priority, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (ref, text, int(priority), now, now),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def set_options(
        self,
        job_id: int,
        options: Mapping[str, Any],
        *,
        only_if: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace a job's options (a rerun of the same command takes its old job over).

        With ``only_if``, a compare-and-set: the job must still have exactly those options,
        else :class:`~pullman.errors.JobConflict` (another process took it over first).
        """
        options = dict(options)
        _refuse_secrets(options)
        text = json.dumps(options, sort_keys=True)
        with self._write() as db:
            row = db.execute("SELECT state, options FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise LookupError(f"no job {job_id}")
            if only_if is not None and _options(row["options"]) != dict(only_if):
                raise JobConflict(job_id, row["state"], "taken over")
            db.execute(
                "UPDATE jobs SET options = ?, updated_at = ? WHERE id = ?",
                (text, self._clock(), job_id),
            )

    def job(self, job_id: int) -> Job | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        """Jobs in the given states (all when ``None``), oldest first."""
        wanted = set(JOB_STATES if states is None else _checked_states(states))
        with self._read() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY id")
            return [job for job in map(_job, rows) if job.state in wanted]

    def next_jobs(self, limit: int) -> list[Job]:
        """Up to ``limit`` queued or waiting jobs: highest priority first, FIFO within one."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY priority DESC, id LIMIT ?",
                (*ACTIVE, max(0, limit)),
            )
            return [_job(row) for row in rows]

    def set_state(
        self,
        job_id: int,
        state: JobState,
        *,
        only_from: Iterable[JobState] | None = None,
        error: str | None = None,
        wait_reason: str | None = None,
        pid: int | None = None,
        exit_code: int | None = None,
    ) -> Job:
        """Move a job to ``state`` and log the event; a compare-and-set on the job's state.

        The move happens only if the job is, at that moment, in one of ``only_from`` (default:
        every state the job model lets move to ``state``, :func:`pullman.core.jobs.sources_of`);
        else :class:`~pullman.errors.JobConflict` says what state it is in. ``LookupError`` for
        an unknown job. Entering ``running`` records ``pid`` (default: this process); see
        :func:`pullman.core.jobs.moved` for the rest. Setting the current state again logs
        nothing.
        """
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        allowed = sources_of(state) & frozenset(only_from if only_from is not None else JOB_STATES)
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise LookupError(f"no job {job_id}")
            old = _job(row)
            if old.state not in allowed:
                raise JobConflict(job_id, old.state, state)
            new = moved(
                old,
                state,
                now,
                os.getpid(),
                pid=pid,
                error=error,
                wait_reason=wait_reason,
                exit_code=exit_code,
            )
            _store_move(db, new, allowed)
            event = event_for(old, new)
            if event is not None:
                _insert_event(db, job_id, now, *event)
            return new

    def set_priority(self, job_id: int, priority: int) -> Job:
        """A job's priority (higher runs first); ``LookupError`` for an unknown job."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET priority = ?, updated_at = ? WHERE id = ?",
                (int(priority), self._clock(), job_id),
            )
            if cur.rowcount == 0:
                raise LookupError(f"no job {job_id}")
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return _job(row)

    def update_progress(
        self, job_id: int, bytes_done: int, bytes_total: int | None, rate: float
    ) -> None:
        """Record progress (called every few seconds by the runner; no event is logged)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE jobs SET bytes_done = ?, bytes_total = ?, rate = ?, updated_at = ?"
                " WHERE id = ?",
                (int(bytes_done), bytes_total, float(rate), self._clock(), job_id),
            )
            if cur.rowcount == 0:
                raise LookupError(f"no job {job_id}")

    def recover_orphans(self, alive: Callable[[int], bool] | None = None) -> list[int]:
        """Put ``running`` jobs whose runner process is gone back in the queue; their ids.

        Run by the daemon at start: after a ``kill -9`` or a crash the rows still say
        ``running``. ``alive(pid)`` defaults to a signal-0 probe of this machine's processes.
        """
        alive = alive or pid_alive
        back = []
        for job in self.jobs(["running"]):
            if job.pid is None or job.pid == os.getpid() or not alive(job.pid):
                back.append(job.id)
        for job_id in back:
            with contextlib.suppress(JobConflict, LookupError):  # raced by another process
                self.set_state(job_id, "queued", only_from=["running"])
                self.log_event(job_id, "retried", "its runner stopped; queued again")
        return back

    # ------------------------------------------------------------------ events

    def log_event(self, job_id: int, kind: EventKind, detail: str = "") -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        with self._write() as db:
            _insert_event(db, job_id, self._clock(), kind, detail)

    def events(self, job_id: int) -> list[Event]:
        """A job's events, oldest first."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,))
            return [
                Event(r["id"], r["job_id"], r["at"], cast(EventKind, r["kind"]), r["detail"])
                for r in rows
            ]

    # ------------------------------------------------------------------ models

    def upsert_model(
        self,
        ref: str,
        source: Source,
        root: str | Path,
        *,
        title: str = "",
        size: int | None = None,
        state: ItemState = "complete",
        verified_at: float | None = None,
        files: Sequence[FileRecord] | None = None,
    ) -> int:
        """Insert or update the model ``ref`` in the store ``root``; returns its id.

        ``files``, when given, replaces the model's file list; ``None`` leaves it alone.
        """
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {sorted(SOURCES)}")
        for s in (state, *(f.state for f in files or ())):
            if s not in ITEM_STATES:
                raise ValueError(f"unknown state {s!r}; one of {sorted(ITEM_STATES)}")
        with self._write() as db:
            db.execute(
                "INSERT INTO models (ref, source, root, title, size, state, verified_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (ref, root) DO UPDATE SET source = excluded.source,"
                " title = excluded.title, size = excluded.size, state = excluded.state,"
                " verified_at = excluded.verified_at",
                (ref, source, str(root), title, size, state, verified_at, self._clock()),
            )
            model_id = int(
                db.execute(
                    "SELECT id FROM models WHERE ref = ? AND root = ?", (ref, str(root))
                ).fetchone()[0]
            )
            if files is not None:
                db.execute("DELETE FROM files WHERE model_id = ?", (model_id,))
                db.executemany(
                    "INSERT INTO files (model_id, path, size, digest, state)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(model_id, f.path, f.size, f.digest, f.state) for f in files],
                )
            return model_id

    def models(self, root: str | Path | None = None) -> list[Model]:
        """Every model (in one store ``root``, if given), by ref, with its files."""
        with self._read() as db:
            if root is None:
                rows = db.execute("SELECT * FROM models ORDER BY ref, root").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM models WHERE root = ? ORDER BY ref", (str(root),)
                ).fetchall()
            files: dict[int, list[FileRecord]] = {}
            for f in db.execute("SELECT * FROM files ORDER BY model_id, path"):
                record = FileRecord(f["path"], f["size"], f["digest"], f["state"])
                files.setdefault(f["model_id"], []).append(record)
        return [_model(row, files.get(row["id"], [])) for row in rows]

    def verified_copies(self, digest: str) -> list[Path]:
        """Where files with ``digest`` (``sha256:<hex>``) were verified, in any store."""
        with self._read() as db:
            rows = db.execute(
                "SELECT models.root, files.path FROM files JOIN models"
                " ON files.model_id = models.id"
                " WHERE files.digest = ? AND files.state = 'verified' ORDER BY files.id",
                (digest,),
            ).fetchall()
        return [Path(root) / path for root, path in rows]

    def remove_model(self, ref: str, root: str | Path) -> bool:
        """Forget a model and its files (the data itself is the layout's business)."""
        with self._write() as db:
            cur = db.execute("DELETE FROM models WHERE ref = ? AND root = ?", (ref, str(root)))
            return cur.rowcount > 0

    # ------------------------------------------------------------------ settings

    def set_setting(self, key: str, value: str | None) -> None:
        """Store a runtime setting (``pullman limit`` stores ``limit``); ``None`` deletes it."""
        with self._write() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, str(value)),
                )

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else default


# ---------------------------------------------------------------------- pure helpers


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        ref=row["ref"],
        options=_options(row["options"]),
        priority=row["priority"],
        state=cast(JobState, row["state"]),
        wait_reason=row["wait_reason"],
        bytes_done=row["bytes_done"],
        bytes_total=row["bytes_total"],
        rate=row["rate"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        pid=row["pid"],
        exit_code=row["exit_code"],
    )


def _options(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _model(row: sqlite3.Row, files: list[FileRecord]) -> Model:
    return Model(
        id=row["id"],
        ref=row["ref"],
        source=cast(Source, row["source"]),
        root=row["root"],
        title=row["title"],
        size=row["size"],
        state=cast(ItemState, row["state"]),
        verified_at=row["verified_at"],
        created_at=row["created_at"],
        files=tuple(files),
    )


def _insert_event(
    db: sqlite3.Connection, job_id: int, at: float, kind: EventKind, detail: str
) -> None:
    db.execute(
        "INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        (job_id, at, kind, detail),
    )


def _store_move(db: sqlite3.Connection, new: Job, allowed: frozenset[JobState]) -> None:
    """Write a move, only if the row is still in a state it may come from (compare-and-set)."""
    cur = db.execute(
        "UPDATE jobs SET state = ?, wait_reason = ?, error = ?, pid = ?, rate = ?,"
        " updated_at = ?, started_at = ?, finished_at = ?, exit_code = ?"
        " WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
        (
            new.state,
            new.wait_reason,
            new.error,
            new.pid,
            new.rate,
            new.updated_at,
            new.started_at,
            new.finished_at,
            new.exit_code,
            new.id,
            json.dumps(sorted(allowed)),
        ),
    )
    if cur.rowcount != 1:
        raise JobConflict(new.id, "changed", new.state)


def _checked_states(states: Iterable[str]) -> Iterator[str]:
    for state in states:
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        yield state


def _refuse_secrets(value: object, where: str = "options") -> None:
    """Refuse keys that look like credentials anywhere in a job's options."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key).lower()
            if name in _SECRET_KEYS or any(word in name for word in _SECRET_WORDS):
                raise ValueError(
                    f"{where}.{key}: job options must not hold secrets; "
                    "credentials are read from the environment when the job runs"
                )
            _refuse_secrets(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{i}]")


# ---------------------------------------------------------------------- opening


def _prepare(path: Path) -> None:
    """The directory (``0700`` when we create it) and an empty ``0600`` file if none exists."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.chmod(0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        with contextlib.suppress(PermissionError):
            path.chmod(0o600)
    except OSError as exc:
        raise NotWritable(
            f"cannot create the index at {path}",
            why=exc.strerror or str(exc),
            hint="check the permissions of the directory, or set PULLMAN_HOME to a writable one",
        ) from exc


def _connect(path: Path) -> sqlite3.Connection:
    """Connect, check the file, and migrate it. Raises ``sqlite3.DatabaseError`` on damage."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.debug("index %s: journal_mode is %s, not wal", path, mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        for pragma in FS.sqlite_pragmas():
            conn.execute(pragma)
        _quick_check(conn)
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _known_version(conn, path)
            if version == SCHEMA_VERSION:
                conn.commit()
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.commit()
            log.debug("index %s: migrated to schema %d", path, version + 1)
        except BaseException:
            conn.rollback()
            raise


def _quick_check(conn: sqlite3.Connection) -> None:
    check = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if check != ["ok"]:
        raise sqlite3.DatabaseError("quick_check: " + "; ".join(map(str, check[:3])))


def _known_version(conn: sqlite3.Connection, path: Path) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise PullmanError(
            f"the index at {path} was written by a newer pullman (schema {version})",
            why=f"this pullman knows schema versions up to {SCHEMA_VERSION}",
            hint="upgrade pullman, or move the index aside (downloads are not lost)",
        )
    return version


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name in _DAMAGE_CODES or name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    # Raised by us (quick_check), or an error without a code: anything but a busy or I/O error.
    return not isinstance(exc, sqlite3.OperationalError)


def _move_aside(path: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                extra.rename(aside.with_name(aside.name + suffix))
    except OSError as exc:
        raise NotWritable(
            f"the index at {path} is damaged and cannot be moved aside",
            why=exc.strerror or str(exc),
            hint=f"move or delete {path} by hand; downloaded data is not stored in it",
        ) from exc
    return aside


INDEX_ROOM = 1 << 20
"""Free bytes the index wants for a progress write (SQLite's WAL grows a page at a time)."""


def _is_full(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_FULL") or "database or disk is full" in str(exc)


def _storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    if _is_full(exc):  # the same condition as the engine's full disk: say so, exit 5
        free = free_space(path.parent)
        return DiskFull(
            f"the disk holding pullman's index is full ({path.parent})",
            needed=INDEX_ROOM,
            free=free,
            why=f"the index needs room to record progress; {human(free)} is free there",
            hint="free some space and run the same command again (the downloaded data and "
            "its progress are kept), or set PULLMAN_HOME to a disk with room",
        )
    return StorageError(
        f"the index at {path} failed",
        why=str(exc),
        hint="if another pullman is busy, try again; otherwise run `pullman doctor`",
    )
