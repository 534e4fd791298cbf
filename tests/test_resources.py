"""Resources: a full disk (a small tmpfs mounted by the test; skipped where it cannot be) for
the daemon, the Ollama store and the HF cache, and many queued jobs within the connection budget.

On a full disk a job stops with a clear message (how much is needed, how much is free), keeps
its progress, never commits a truncated file, and resumes once space is freed: the daemon waits
by itself, a foreground run exits 5 and is run again. (``tests/test_storage.py`` covers the
engine alone; ``scripts/chaos many`` runs the 1,000-job version and measures memory.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.core.jobs import GetOptions, JobOptions
from pullman.core.refs import parse_ollama
from pullman.daemon import daemon_pid
from pullman.index import Index
from pullman.layouts import ollama as ollama_store
from pullman.scheduler import Scheduler
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry
from pullman.transfer.staging import Staging

from helpers import KiB, MiB, cli_env, fast_config, load_chaoslib, pullman

# ------------------------------------------------------------------------------- helpers


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem says it is full; returns it."""
    filler = directory / "filler"
    block = b"\0" * (64 * KiB)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pullman", "daemon"], env=self.env, stdout=out, stderr=out
            )
        paths = config.Paths.from_env(self.env)
        wait_for("the daemon's lock", lambda: daemon_pid(paths) == self.proc.pid)  # type: ignore[union-attr]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def job(env: dict[str, str], home: Path, job_id: int = 1) -> dict[str, object]:
    r = pullman("status", str(job_id), "--json", home=home, env=env)
    assert r.returncode == 0, r.stderr
    doc: dict[str, object] = json.loads(r.stdout)[0]
    return doc


def staged_bytes(staging: Path) -> int:
    """Bytes the journals in ``staging`` claim as safely on disk."""
    total = 0
    for journal in staging.glob("*.journal"):
        loaded = Staging(staging, journal.name.removesuffix(".journal")).load_journal()
        if loaded is not None:
            total += sum(end - start for start, end in loaded.done)
    return total


# ------------------------------------------------------------------------------- daemon


def test_the_daemon_waits_for_space_says_how_much_and_resumes(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    f = sim.add_file("m.bin", make_data(6 * MiB, 11))
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (4 * MiB))
    home = tmp_path / "home"
    env = cli_env(home, PULLMAN_SCHEDULE_DISK_RETRY="1")
    dest = small_fs / "m.bin"
    with Daemon(env, tmp_path / "daemon.log"):
        r = pullman(
            "get",
            "--detach",
            sim.url("m.bin"),
            "--sha256",
            f.sha256,
            "-o",
            str(dest),
            home=home,
            env=env,
        )
        assert r.returncode == 0, r.stderr
        wait_for("the job to wait for space", lambda: job(env, home)["state"] == "waiting")
        reason = str(job(env, home)["wait_reason"])
        print(f"wait reason: {reason}")
        assert "not enough free space" in reason
        assert "more is needed" in reason and "is free" in reason
        # (the daemon looks again every second: the row may be running a probe just now)
        wait_for(
            "`pullman status` to say why",
            lambda: "is free" in pullman("status", home=home, env=env).stdout,
        )
        assert f.bytes_sent <= 32  # one-byte probes, no data
        assert not dest.exists()
        filler.unlink()
        wait_for("the job to finish once space is freed", lambda: job(env, home)["state"] == "done")
    assert dest.read_bytes() == f.data


def test_the_daemon_survives_a_disk_that_fills_mid_download(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    size = 6 * MiB
    f = sim.add_file("m.bin", make_data(size, 12), throttle=Throttle(rate=512 * KiB))
    home = tmp_path / "home"
    env = cli_env(home, PULLMAN_SCHEDULE_DISK_RETRY="0.3")
    dest = small_fs / "m.bin"
    staging = small_fs / ".pullman-partial"
    with Daemon(env, tmp_path / "daemon.log"):
        r = pullman(
            "get",
            "--detach",
            sim.url("m.bin"),
            "--sha256",
            f.sha256,
            "-o",
            str(dest),
            home=home,
            env=env,
        )
        assert r.returncode == 0, r.stderr
        wait_for("some progress", lambda: f.bytes_sent > 2 * MiB)
        filler = fill(small_fs)  # another program takes every free byte
        # One read of the row: with a 0.3 s retry the job may be trying again (running, no
        # reason) by the time of a second read.
        seen: list[dict[str, object]] = []

        def waiting() -> bool:
            seen.append(job(env, home))
            return seen[-1]["state"] == "waiting"

        wait_for("the job to wait for space", waiting)
        reason = str(seen[-1]["wait_reason"])
        assert "free space" in reason and "is free" in reason, reason
        kept = staged_bytes(staging)
        print(f"wait reason: {reason}; journal claims {kept} bytes")
        assert kept > MiB  # the progress is on disk, in the journal
        assert not dest.exists()  # nothing truncated was committed
        filler.unlink()
        wait_for("the job to finish", lambda: job(env, home)["state"] == "done", timeout=60)
    assert dest.read_bytes() == f.data
    assert f.bytes_sent < size + 4 * MiB  # resumed, not started over


# ------------------------------------------------------------------------------- stores


def test_an_ollama_model_larger_than_the_free_space(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    chaos = load_chaoslib()
    registry = OllamaRegistry(sim)
    layers = [
        ("model", make_data(3 * MiB + 5, 13)),
        ("projector", make_data(3 * MiB + 7, 14)),
        ("license", b"MIT"),
    ]
    raw = registry.add_model("library/big", layers=layers)
    (small_fs / "filler").write_bytes(b"\0" * (3 * MiB))
    models = small_fs / "models"
    name = registry.name("library/big")
    manifest = ollama_store.manifest_path(models, parse_ollama(name, insecure=True))
    config_blob = b'{"model_format":"gguf","model_family":"llama"}'
    blobs = {hashlib.sha256(d).hexdigest(): d for d in [config_blob, *(d for _, d in layers)]}
    args = ("get", "--insecure", "--ollama-dir", str(models), name, "--progress", "none")
    r = pullman(*args, home=tmp_path)
    print(r.stderr)
    assert r.returncode == 5, r.stderr
    assert "free" in r.stderr and "Traceback" not in r.stderr
    assert "needed" in r.stderr or "more is needed" in r.stderr
    assert chaos.check_ollama(models, manifest, raw, blobs) == []  # only whole, right blobs
    assert not manifest.exists()
    (small_fs / "filler").unlink()
    r = pullman(*args, home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert manifest.read_bytes() == raw
    assert chaos.check_ollama(models, manifest, raw, blobs) == []


# Regression test for FINDING 13: the disk was filled to the last byte first (fixed in 2aba698).
def test_a_model_that_cannot_fit_is_refused_before_filling_the_disk(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    registry = OllamaRegistry(sim)
    layers = [("model", make_data(3 * MiB + 5, 15)), ("projector", make_data(3 * MiB + 7, 16))]
    registry.add_model("library/big", layers=layers)
    (small_fs / "filler").write_bytes(b"\0" * (3 * MiB))
    env = cli_env(tmp_path / "home", PULLMAN_TRANSFER_SPACE_MARGIN="256KiB")
    r = pullman(
        "get",
        "--insecure",
        "--ollama-dir",
        str(small_fs / "models"),
        registry.name("library/big"),
        home=tmp_path,
        env=env,
    )
    assert r.returncode == 5, r.stderr
    served = sum(registry.blob(d).bytes_sent for _, d in layers)
    assert served < MiB, f"{served} bytes fetched into a disk that could never hold the model"


def test_an_hf_repo_on_a_full_disk_writes_no_links_and_resumes(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    chaos = load_chaoslib()
    hub = HubSimulator(sim)
    files = {
        "config.json": b"{}",
        "a.safetensors": make_data(3 * MiB, 17),
        "b.safetensors": make_data(3 * MiB + 1, 18),
    }
    commit = hub.add_repo("org/big", files)
    (small_fs / "filler").write_bytes(b"\0" * (3 * MiB))
    cache = small_fs / "cache"
    env = cli_env(
        tmp_path / "home",
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(tmp_path / "hfh"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    env.pop("HF_TOKEN", None)
    r = pullman("get", "hf://org/big", "--progress", "none", home=tmp_path, env=env)
    assert r.returncode == 5, r.stderr
    assert "free" in r.stderr and "Traceback" not in r.stderr
    repo = cache / "models--org--big"
    assert chaos.check_hf_cache(repo, commit, files, set(files)) == []
    assert not (repo / "snapshots").exists() and not (repo / "refs").exists()
    kept = staged_bytes(repo / ".pullman-partial")
    (small_fs / "filler").unlink()
    before = sum(hub.file("org/big", p).sim_file.bytes_sent for p in files)
    r = pullman("get", "hf://org/big", "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    after = sum(hub.file("org/big", p).sim_file.bytes_sent for p in files)
    assert after - before <= sum(len(d) for d in files.values()) - kept + 1024
    assert chaos.check_hf_cache(repo, commit, files, set(files)) == []
    assert (repo / "refs" / "main").read_text() == commit


# ------------------------------------------------------------------------------- many jobs


def test_a_hundred_queued_files_within_the_connection_budget(
    sim: Simulator, tmp_path: Path
) -> None:
    """The scheduler in-process: every job done, the budgets never exceeded (as pullman counts
    them and as the server sees them)."""
    datas = {}
    for i in range(100):
        datas[f"f{i:03d}.bin"] = make_data(24 * KiB + i, i)
        sim.add_file(f"f{i:03d}.bin", datas[f"f{i:03d}.bin"])
    paths = config.Paths(data=tmp_path / "home", config_file=tmp_path / "none.toml")
    index = Index.open(paths.index)
    out = tmp_path / "out"
    for name in datas:
        options = JobOptions(GetOptions(out=str(out / name)))
        index.add_job(sim.url(name), options.to_json())
    settings = config.Settings(
        paths=paths,
        transfer=fast_config(connections=4),
        schedule=config.ScheduleConfig(connections=6, per_host=3, jobs=4),
    )
    scheduler = Scheduler(settings, index, wait_for_disk=False)
    seen = {"budget": 0, "server": 0}

    async def main() -> None:
        async def sample() -> None:
            while True:
                seen["budget"] = max(seen["budget"], scheduler.budget.in_use())
                seen["server"] = max(seen["server"], sim.origin.active)
                await anyio.sleep(0.002)

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                await scheduler.run()
                tg.cancel_scope.cancel()

    started = time.monotonic()
    anyio.run(main)
    elapsed = time.monotonic() - started
    states = [j.state for j in index.jobs()]
    assert states == ["done"] * 100
    for name, data in datas.items():
        assert (out / name).read_bytes() == data
    assert 0 < seen["budget"] <= 3  # per_host caps the one host
    assert seen["server"] <= 3 + 1  # + a closing connection the server has not yet reaped
    print(
        f"100 jobs in {elapsed:.1f} s, budget peak {seen['budget']}, server peak {seen['server']}"
    )
    index.close()


# Regression test for FINDING 14: an 8 MiB hash buffer per transfer (fixed in 2aba698).
def test_memory_stays_bounded_over_many_small_files(sim: Simulator, tmp_path: Path) -> None:
    import tracemalloc

    for i in range(100):
        sim.add_file(f"f{i:03d}.bin", make_data(16 * KiB + i, i))
    paths = config.Paths(data=tmp_path / "home", config_file=tmp_path / "none.toml")
    index = Index.open(paths.index)
    for i in range(100):
        options = JobOptions(GetOptions(out=str(tmp_path / "out" / f"f{i:03d}.bin")))
        index.add_job(sim.url(f"f{i:03d}.bin"), options.to_json())
    settings = config.Settings(
        paths=paths, transfer=fast_config(), schedule=config.ScheduleConfig()
    )
    scheduler = Scheduler(settings, index, wait_for_disk=False)
    tracemalloc.start()
    try:
        anyio.run(scheduler.run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        index.close()
    assert [r.state for r in scheduler.results.values()] == ["done"] * 100
    # 4 jobs at once, 1.6 MB of data in all: tens of MiB is plenty.
    assert peak < 64 * MiB, f"peak {peak / MiB:.0f} MiB allocated for 100 files of 16 KiB"


# ------------------------------------------------------------------------------- the index's disk


def test_a_full_disk_under_the_index_is_a_disk_full_error(small_fs: Path) -> None:
    from pullman.errors import DiskFull
    from pullman.index import Index

    with Index.open(small_fs / "home" / "index.db") as index:
        job = index.add_job("https://h/x")
        filler = fill(small_fs)  # another program takes every free byte
        with pytest.raises(DiskFull) as info:
            index.set_options(job, {"include": ["a" * 100_000] * 40})  # must grow the WAL
        error = info.value
        assert error.exit_code == 5
        assert "disk holding pullman's index is full" in error.what
        assert str(small_fs) in error.what and "is free" in (error.why or "")
        filler.unlink()
        index.set_options(job, {"include": ["a" * 1000]})  # room again: it works
        assert index.job(job) is not None


def test_get_on_a_full_disk_says_so_and_exits_5(
    sim: Simulator, tmp_path: Path, small_fs: Path
) -> None:
    f = sim.add_file("m.bin", make_data(256 * KiB, 30))
    home = small_fs / "home"
    filler = fill(small_fs)
    env = cli_env(home)
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=home, env=env)
    assert r.returncode == 5, r.stderr
    assert "is full" in r.stderr and "is free" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    filler.unlink()
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=home, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.bin").read_bytes() == f.data
