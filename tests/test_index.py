"""The SQLite index: schema and migrations, the job queue and its states, damage recovery."""

from __future__ import annotations

import itertools
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import pullman.index as index_module
from pullman.core.jobs import JOB_STATES, TRANSITIONS, JobState
from pullman.errors import NotWritable, PullmanError, StorageError
from pullman.index import SCHEMA_VERSION, FileRecord, Index


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "index.db"


@pytest.fixture
def idx(db_path: Path) -> Iterator[Index]:
    with Index.open(db_path, clock=Clock()) as index:
        yield index


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# ---------------------------------------------------------------------------- the file


def test_open_creates_a_private_wal_database(db_path: Path) -> None:
    with Index.open(db_path) as idx:
        assert idx.schema_version == SCHEMA_VERSION
        assert idx.recovered_from is None
        conn = idx._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        idx.add_job("llama3.2")
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
        wal = db_path.with_name("index.db-wal")
        assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_reopen_keeps_rows_and_does_not_migrate_again(db_path: Path) -> None:
    with Index.open(db_path) as idx:
        job_id = idx.add_job("qwen2.5:7b", {"connections": 4}, priority=2)
    with Index.open(db_path) as idx:
        job = idx.job(job_id)
        assert job is not None and job.options == {"connections": 4} and job.priority == 2
        assert idx.schema_version == SCHEMA_VERSION


def test_a_new_migration_is_applied_once_in_order(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Index.open(db_path).close()
    extra = (*index_module.MIGRATIONS, ("ALTER TABLE jobs ADD COLUMN note TEXT",))
    monkeypatch.setattr(index_module, "MIGRATIONS", extra)
    monkeypatch.setattr(index_module, "SCHEMA_VERSION", len(extra))
    with Index.open(db_path) as idx:
        assert idx.schema_version == len(extra)
        columns = [r[1] for r in idx._conn.execute("PRAGMA table_info(jobs)")]
        assert "note" in columns
    with Index.open(db_path) as idx:  # applying it again would fail: duplicate column
        assert idx.schema_version == len(extra)


def test_a_failing_migration_leaves_the_previous_version_intact(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index.open(db_path) as idx:
        idx.add_job("kept")
    bad = (
        *index_module.MIGRATIONS,
        ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"),
    )
    monkeypatch.setattr(index_module, "MIGRATIONS", bad)
    monkeypatch.setattr(index_module, "SCHEMA_VERSION", len(bad))
    with pytest.raises(StorageError):
        Index.open(db_path)
    conn = raw(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(bad) - 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half" not in tables
    assert conn.execute("SELECT ref FROM jobs").fetchall() == [("kept",)]
    conn.close()


def test_an_index_from_a_newer_pullman_is_refused_not_replaced(db_path: Path) -> None:
    Index.open(db_path).close()
    conn = raw(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PullmanError, match="newer pullman") as info:
        Index.open(db_path)
    assert info.value.hint
    assert sorted(p.name for p in db_path.parent.iterdir() if "damaged" in p.name) == []


def test_garbage_file_is_moved_aside_and_replaced(db_path: Path) -> None:
    db_path.parent.mkdir(mode=0o700)
    db_path.write_bytes(b"this is not a database at all" * 100)
    sibling = db_path.parent / "downloads" / "model.gguf"
    sibling.parent.mkdir()
    sibling.write_bytes(b"weights")
    with Index.open(db_path, clock=Clock()) as idx:
        assert idx.recovered_from is not None
        assert idx.recovered_from.name.startswith("index.db.damaged-")
        assert idx.recovered_from.read_bytes().startswith(b"this is not a database")
        assert idx.jobs() == []
        idx.add_job("works")
    assert sibling.read_bytes() == b"weights"  # the index never holds downloaded data


def test_corrupt_pages_are_detected_and_moved_aside_with_the_wal(db_path: Path) -> None:
    with Index.open(db_path) as idx:
        for i in range(300):
            idx.add_job(f"model-{i}", {"pad": "x" * 200})
    conn = raw(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db_path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page : 6 * page] = os.urandom(3 * page)
    db_path.write_bytes(bytes(data))
    db_path.with_name("index.db-wal").write_bytes(b"")
    with Index.open(db_path) as idx:
        assert idx.recovered_from is not None and idx.recovered_from.exists()
        assert idx.jobs() == []
        assert idx.schema_version == SCHEMA_VERSION


def test_moving_aside_takes_the_wal_and_shm_along(tmp_path: Path) -> None:
    for name, data in (("index.db", b"db"), ("index.db-wal", b"wal"), ("index.db-shm", b"shm")):
        (tmp_path / name).write_bytes(data)
    aside = index_module._move_aside(tmp_path / "index.db", 0.0)
    assert aside.name == "index.db.damaged-19700101T000000Z"
    found = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert found == {aside.name: b"db", aside.name + "-wal": b"wal", aside.name + "-shm": b"shm"}


def test_two_damaged_files_in_one_second_get_distinct_names(db_path: Path) -> None:
    class Frozen:
        def __call__(self) -> float:
            return 1_700_000_000.0

    asides = []
    for _ in range(2):
        db_path.parent.mkdir(exist_ok=True)
        db_path.write_bytes(b"garbage" * 1000)
        for suffix in ("-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        with Index.open(db_path, clock=Frozen()) as idx:
            asides.append(idx.recovered_from)
    assert len(set(asides)) == 2


def test_deleted_index_is_created_again(db_path: Path) -> None:
    with Index.open(db_path) as idx:
        idx.add_job("x")
    for p in db_path.parent.iterdir():
        p.unlink()
    with Index.open(db_path) as idx:
        assert idx.jobs() == [] and idx.recovered_from is None


def test_a_busy_index_is_not_mistaken_for_damage(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Index.open(db_path).close()
    monkeypatch.setattr(index_module, "BUSY_TIMEOUT_MS", 50)
    holder = raw(db_path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError) as info:
            Index.open(db_path)
        assert "try again" in (info.value.hint or "")
    finally:
        holder.rollback()
        holder.close()
    assert not [p for p in db_path.parent.iterdir() if "damaged" in p.name]


def test_a_file_where_the_directory_should_be_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    with pytest.raises(NotWritable, match="cannot create the index"):
        Index.open(tmp_path / "state" / "index.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_a_storage_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(NotWritable) as info:
            Index.open(locked / "sub" / "index.db")
        assert "PULLMAN_HOME" in (info.value.hint or "")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------- the queue


def test_next_jobs_priority_then_fifo_only_queued_or_waiting(idx: Index) -> None:
    a = idx.add_job("a")
    b = idx.add_job("b", priority=5)
    c = idx.add_job("c")
    d = idx.add_job("d", priority=5)
    e = idx.add_job("e", priority=-1)
    f = idx.add_job("f")
    idx.set_state(c, "waiting", wait_reason="window 01:00-07:00")
    idx.set_state(f, "running")
    idx.set_state(a, "paused")
    assert [j.id for j in idx.next_jobs(10)] == [b, d, c, e]
    assert [j.id for j in idx.next_jobs(2)] == [b, d]
    assert idx.next_jobs(0) == []


def test_job_defaults_and_json(idx: Index) -> None:
    job_id = idx.add_job("https://host/f.gguf", {"sha256": "ab" * 32, "output": "/tmp/x"})
    job = idx.job(job_id)
    assert job is not None
    assert (job.state, job.bytes_done, job.bytes_total, job.rate, job.error) == (
        "queued",
        0,
        None,
        0.0,
        None,
    )
    data = job.to_json()
    for key in ("id", "ref", "state", "bytes_done", "bytes_total", "rate", "error"):
        assert key in data
    assert data["options"]["output"] == "/tmp/x"
    assert idx.job(9999) is None


def test_progress_updates(idx: Index) -> None:
    job_id = idx.add_job("m")
    idx.set_state(job_id, "running")
    idx.update_progress(job_id, 512, 2048, 1.5e6)
    job = idx.job(job_id)
    assert job is not None and (job.bytes_done, job.bytes_total, job.rate) == (512, 2048, 1.5e6)
    idx.set_state(job_id, "paused")
    paused = idx.job(job_id)
    assert paused is not None and paused.bytes_done == 512 and paused.rate == 0
    with pytest.raises(LookupError):
        idx.update_progress(12345, 1, 2, 3.0)


def _job_in(idx: Index, state: JobState) -> int:
    job_id = idx.add_job(f"job-{state}")
    if state == "done":
        idx.set_state(job_id, "running")
    if state != "queued":
        idx.set_state(job_id, state)
    return job_id


@pytest.mark.parametrize(("old", "new"), list(itertools.product(sorted(JOB_STATES), repeat=2)))
def test_every_transition_is_allowed_or_refused(idx: Index, old: JobState, new: JobState) -> None:
    job_id = _job_in(idx, old)
    if new == old or new in TRANSITIONS[old]:
        assert idx.set_state(job_id, new).state == new
        stored = idx.job(job_id)
        assert stored is not None and stored.state == new
    else:
        with pytest.raises(ValueError, match=f"from {old} to {new}"):
            idx.set_state(job_id, new)
        stored = idx.job(job_id)
        assert stored is not None and stored.state == old


def test_state_side_effects_and_events(idx: Index) -> None:
    job_id = idx.add_job("deepseek-coder-v2:16b")
    first = idx.set_state(job_id, "running", pid=4242)
    assert first.pid == 4242 and first.started_at is not None
    idx.set_state(job_id, "waiting", wait_reason="outside window 01:00-07:00")
    waiting = idx.job(job_id)
    assert waiting is not None and waiting.pid is None
    assert waiting.wait_reason == "outside window 01:00-07:00"
    idx.set_state(job_id, "waiting")  # again: keeps the reason, logs nothing
    again = idx.set_state(job_id, "running")
    assert again.started_at == first.started_at and again.pid == os.getpid()
    assert again.wait_reason is None
    idx.log_event(job_id, "recycled", "conn 3: byte box")
    failed = idx.set_state(job_id, "failed", error="503 from the CDN, 8 times")
    assert failed.error == "503 from the CDN, 8 times" and failed.finished_at is not None
    retry = idx.set_state(job_id, "queued")
    assert retry.error is None and retry.finished_at is None
    idx.set_state(job_id, "running")
    done = idx.set_state(job_id, "done")
    assert done.finished_at is not None and done.pid is None
    kinds = [(e.kind, e.detail) for e in idx.events(job_id)]
    assert kinds == [
        ("started", "pid 4242"),
        ("waiting", "outside window 01:00-07:00"),
        ("resumed", f"pid {os.getpid()}"),
        ("recycled", "conn 3: byte box"),
        ("failed", "503 from the CDN, 8 times"),
        ("resumed", f"pid {os.getpid()}"),
        ("done", ""),
    ]
    events = idx.events(job_id)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert events[0].to_json()["kind"] == "started"


def test_unknown_job_state_event(idx: Index) -> None:
    with pytest.raises(LookupError):
        idx.set_state(77, "running")
    with pytest.raises(LookupError):
        idx.log_event(77, "started")
    job_id = idx.add_job("m")
    with pytest.raises(ValueError, match="state"):
        idx.set_state(job_id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        idx.log_event(job_id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state"):
        idx.jobs(["exploded"])  # type: ignore[list-item]


def test_jobs_filter(idx: Index) -> None:
    a = idx.add_job("a")
    b = idx.add_job("b")
    idx.set_state(b, "cancelled")
    assert [j.id for j in idx.jobs()] == [a, b]
    assert [j.id for j in idx.jobs(["cancelled"])] == [b]
    assert [j.id for j in idx.jobs(["queued", "waiting"])] == [a]
    assert idx.jobs([]) == []


@pytest.mark.parametrize(
    "options",
    [
        {"token": "hf_x"},
        {"HF_TOKEN": "x"},
        {"headers": {"Authorization": "Bearer x"}},
        {"auth": ["user", "pw"]},
        {"mirrors": [{"password": "x"}]},
        {"cookie": "a=b"},
    ],
)
def test_options_with_secrets_are_refused(idx: Index, options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="secrets"):
        idx.add_job("m", options)
    assert idx.jobs() == []


def test_recover_orphans(idx: Index) -> None:
    dead = idx.add_job("dead")
    live = idx.add_job("live")
    queued = idx.add_job("queued")
    idx.set_state(dead, "running", pid=111)
    idx.set_state(live, "running", pid=222)
    assert idx.recover_orphans(alive=lambda pid: pid == 222) == [dead]
    states = {j.id: j.state for j in idx.jobs()}
    assert states == {dead: "queued", live: "running", queued: "queued"}
    assert [e.kind for e in idx.events(dead)] == ["started", "retried"]


def test_threads_and_a_second_connection_share_the_index(db_path: Path, idx: Index) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(40):
            job_id = idx.add_job(f"t{i}")
            idx.update_progress(job_id, i, 40, 1.0)
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 320
    with Index.open(db_path) as other:  # as another process would
        assert len(other.jobs()) == 320
        other.set_setting("limit", "20MB/s")
    assert idx.get_setting("limit") == "20MB/s"


# ---------------------------------------------------------------------------- models, settings


def test_models_upsert_and_files(idx: Index, tmp_path: Path) -> None:
    store = tmp_path / "ollama" / "models"
    files = [
        FileRecord("blobs/sha256-aa", 100, "sha256:aa", "verified"),
        FileRecord("manifests/registry.ollama.ai/library/llama3.2/latest", 10, None, "complete"),
    ]
    model_id = idx.upsert_model(
        "llama3.2:latest", "ollama", store, title="llama3.2", size=110, files=files
    )
    again = idx.upsert_model(
        "llama3.2:latest", "ollama", store, size=110, state="verified", verified_at=5.0
    )
    assert again == model_id
    [model] = idx.models()
    assert model.state == "verified" and model.verified_at == 5.0 and model.root == str(store)
    assert [f.path for f in model.files] == sorted(f.path for f in files)  # kept: files=None
    idx.upsert_model("llama3.2:latest", "ollama", store, files=[files[0]])
    [model] = idx.models(store)
    assert model.files == (files[0],)
    assert model.to_json()["files"][0]["digest"] == "sha256:aa"
    idx.upsert_model("llama3.2:latest", "ollama", tmp_path / "other")  # same ref, other store
    assert len(idx.models()) == 2 and len(idx.models(store)) == 1
    assert idx.remove_model("llama3.2:latest", store)
    assert not idx.remove_model("llama3.2:latest", store)
    assert idx._conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 0


def test_model_values_are_checked(idx: Index, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        idx.upsert_model("x", "ftp", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state"):
        idx.upsert_model("x", "url", tmp_path, state="shiny")  # type: ignore[arg-type]


def test_settings(idx: Index) -> None:
    assert idx.get_setting("limit") is None
    assert idx.get_setting("limit", "off") == "off"
    idx.set_setting("limit", "20MB/s")
    idx.set_setting("limit", "5MB/s")
    assert idx.get_setting("limit") == "5MB/s"
    idx.set_setting("limit", None)
    assert idx.get_setting("limit") is None
