"""The daemon as a real subprocess: jobs queued through the CLI, SIGTERM mid-download, restart.

Everything is waited for by watching the state the processes write (the index, the lock), each
wait with a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pullman import config
from pullman.daemon import daemon_pid
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, pullman

SIZE = 3 * MiB


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Daemon:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pullman", "daemon"], env=self.env, stdout=out, stderr=out
            )
        paths = config.Paths.from_env(self.env)
        wait_for("the daemon to take its lock", lambda: daemon_pid(paths) == self.proc.pid)  # type: ignore[union-attr]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code


@pytest.fixture
def daemon_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "home", OLLAMA_HOST="http://127.0.0.1:9")


@pytest.fixture
def daemon(daemon_env: dict[str, str], tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(daemon_env, tmp_path / "daemon.log")
    yield d
    if d.proc is not None:
        d.stop(signal.SIGKILL)


def status(env: dict[str, str], home: Path) -> dict[int, dict[str, object]]:
    r = pullman("status", "--all", "--json", home=home, env=env)
    assert r.returncode == 0, r.stderr
    return {j["id"]: j for j in json.loads(r.stdout)}


def test_queue_two_models_sigterm_mid_download_restart_and_finish(
    sim: Simulator, tmp_path: Path, daemon_env: dict[str, str], daemon: Daemon
) -> None:
    registry = OllamaRegistry(sim)
    blobs = {}
    for i, name in enumerate(("library/alpha", "library/beta")):
        blobs[name] = make_data(SIZE, 40 + i)
        registry.add_model(name, layers=[("model", blobs[name])], throttle=Throttle(rate=256 * KiB))
    home = tmp_path / "home"
    models = tmp_path / "models"
    daemon.start()
    r = pullman(
        "get", "--detach", "--insecure", "--ollama-dir", str(models),
        registry.name("library/alpha"), registry.name("library/beta"), home=home, env=daemon_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "queued job 1" in r.stdout and "queued job 2" in r.stdout

    def both_moving() -> bool:
        jobs = status(daemon_env, home)
        return all(
            j["state"] == "running" and int(j["bytes_done"]) > 256 * KiB for j in jobs.values()
        )

    wait_for("both jobs to download", both_moving)
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    jobs = status(daemon_env, home)
    assert {j["state"] for j in jobs.values()} == {"queued"}  # back in the queue, not lost
    kept = {i: int(j["bytes_done"]) for i, j in jobs.items()}
    assert all(0 < done < SIZE for done in kept.values())

    daemon.start()
    wait_for(
        "both jobs to finish",
        lambda: all(j["state"] == "done" for j in status(daemon_env, home).values()),
        timeout=60,
    )
    for name, data in blobs.items():
        blob = registry.blob(data)
        # Resumed, not restarted: refetched at most what was in flight when it stopped.
        assert blob.bytes_sent < SIZE + 4 * 512 * KiB + 64 * KiB
        manifest = models / "manifests" / registry.host / name / "latest"
        assert manifest.is_file()
    events = json.loads(pullman("status", "1", "--json", home=home, env=daemon_env).stdout)
    assert events[0]["state"] == "done"
    r = pullman("ls", "--ollama-dir", str(models), home=home, env=daemon_env)
    assert r.stdout.count("complete") == 2


def test_a_second_daemon_is_refused(
    tmp_path: Path, daemon_env: dict[str, str], daemon: Daemon
) -> None:
    daemon.start()
    r = pullman("daemon", home=tmp_path / "home", env=daemon_env)
    assert r.returncode == 2
    assert "already running" in r.stderr and str(daemon.proc.pid) in r.stderr  # type: ignore[union-attr]


def test_get_follows_the_daemon_and_pause_resume_cancel(
    sim: Simulator, tmp_path: Path, daemon_env: dict[str, str], daemon: Daemon
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/quick", layers=[("model", make_data(MiB, 7))])
    registry.add_model(
        # Slow enough that it cannot end between the steps below, even on all its connections
        # at once after a resume (3 MiB at 128 KiB/s a connection once did, on a busy machine).
        "library/slow",
        layers=[("model", make_data(16 * MiB, 8))],
        throttle=Throttle(rate=32 * KiB),
    )
    home = tmp_path / "home"
    models = tmp_path / "models"
    daemon.start()
    r = pullman(
        "get", "--insecure", "--ollama-dir", str(models), registry.name("library/quick"),
        "--json", home=home, env=daemon_env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    [job] = json.loads(r.stdout)
    assert job["state"] == "done" and job["ref"].endswith("library/quick:latest")

    r = pullman(
        "get", "--detach", "--insecure", "--ollama-dir", str(models),
        registry.name("library/slow"), home=home, env=daemon_env,
    )  # fmt: skip
    slow = 2
    wait_for("the slow job to run", lambda: status(daemon_env, home)[slow]["state"] == "running")
    assert pullman("pause", str(slow), home=home, env=daemon_env).returncode == 0
    wait_for("the pause to take", lambda: status(daemon_env, home)[slow]["state"] == "paused")
    assert pullman("resume", str(slow), home=home, env=daemon_env).returncode == 0
    wait_for("the job to run again", lambda: status(daemon_env, home)[slow]["state"] == "running")
    assert pullman("cancel", str(slow), home=home, env=daemon_env).returncode == 0
    wait_for("the cancel", lambda: status(daemon_env, home)[slow]["state"] == "cancelled")
    r = pullman("limit", "2MB/s", home=home, env=daemon_env)
    assert (r.returncode == 0 and "2.0 MB/s" in r.stdout) or "2 MB/s" in r.stdout
    r = pullman("status", home=home, env=daemon_env)
    assert "global limit: 2 MB/s" in r.stdout and "cancelled" in r.stdout


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_an_idle_daemon_sleeps_and_wakes_on_a_new_job(
    sim: Simulator, tmp_path: Path, daemon_env: dict[str, str], daemon: Daemon
) -> None:
    daemon.start()
    pid = daemon.proc.pid  # type: ignore[union-attr]
    before = _cpu_seconds(pid)
    time.sleep(2.0)  # deliberately idle: measuring that nothing polls
    assert _cpu_seconds(pid) - before < 0.1
    registry = OllamaRegistry(sim)
    registry.add_model("library/quick", layers=[("model", make_data(MiB, 9))])
    home = tmp_path / "home"
    r = pullman("get", "--detach", "--insecure", "--ollama-dir", str(tmp_path / "models"),
                registry.name("library/quick"), home=home, env=daemon_env)  # fmt: skip
    assert r.returncode == 0
    wait_for("the job to be picked up at once",
             lambda: status(daemon_env, home)[1]["state"] == "done", timeout=15)  # fmt: skip
