"""The CLI's controls and ``status --follow``: through the daemon's API when a daemon runs (its
Unix socket), straight on the index when none does, with the same results."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.index import Index
from pullman.testing import Simulator, Throttle, make_data

from daemon_api import ApiDaemon, wait_for
from helpers import KiB, MiB, cli_env, pullman

VIA_API = "via the daemon's API"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "home", OLLAMA_HOST="http://127.0.0.1:9")


@pytest.fixture
def daemon(env: dict[str, str], tmp_path: Path) -> Iterator[ApiDaemon]:
    d = ApiDaemon(env, tmp_path / "daemon.log", listen=None)
    d.start()
    yield d
    if d.proc is not None:
        d.stop(signal.SIGKILL)


def state(home: Path, env: dict[str, str], job_id: int) -> str:
    r = pullman("status", str(job_id), "--json", home=home, env=env)
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)[0]["state"])


def test_controls_and_follow_go_through_the_api_when_a_daemon_runs(
    sim: Simulator, tmp_path: Path, env: dict[str, str], daemon: ApiDaemon
) -> None:
    home = tmp_path / "home"
    sim.add_file("slow.bin", make_data(3 * MiB, 5), throttle=Throttle(rate=128 * KiB))
    r = pullman("-v", "get", "--detach", "-o", str(tmp_path / "slow.bin"), sim.url("slow.bin"),
                home=home, env=env)  # fmt: skip
    assert r.returncode == 0 and "through the daemon's API" in r.stderr, r.stderr
    wait_for("the job to run", lambda: state(home, env, 1) == "running")
    r = pullman("-v", "pause", "1", home=home, env=env)
    assert r.returncode == 0 and "paused: 1" in r.stdout and VIA_API in r.stderr, r.stderr
    with Index.open(daemon.paths.index) as index:
        job = index.job(1)
        assert job is not None and job.state == "paused"  # the index is the truth
    r = pullman("-v", "pause", "1", home=home, env=env)  # already paused: left as it is
    assert "job 1 is paused: left as it is" in r.stderr
    r = pullman("-v", "priority", "1", "9", "--json", home=home, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["priority"] == 9 and VIA_API in r.stderr
    r = pullman("-v", "limit", "50MB/s", home=home, env=env)
    assert r.returncode == 0 and "global limit: 50 MB/s" in r.stdout and VIA_API in r.stderr
    r = pullman("-v", "resume", "1", home=home, env=env)
    assert r.returncode == 0 and "queued: 1" in r.stdout
    r = pullman("-v", "status", "--follow", "1", home=home, env=env, timeout=90)
    assert r.returncode == 0, r.stderr
    assert "following through the daemon's API" in r.stderr
    assert " done " in r.stdout  # followed to the end over the event stream
    r = pullman("pause", "77", home=home, env=env)
    assert r.returncode == 3 and "no job 77" in r.stderr


def test_get_follows_a_daemon_job_through_the_event_stream(
    sim: Simulator, tmp_path: Path, env: dict[str, str], daemon: ApiDaemon
) -> None:
    home = tmp_path / "home"
    sim.add_file("a.bin", make_data(MiB, 6), throttle=Throttle(rate=1 << 20))
    r = pullman("-v", "get", "--json", "-o", str(tmp_path / "a.bin"), sim.url("a.bin"),
                home=home, env=env, timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "following through the daemon's API" in r.stderr
    [job] = json.loads(r.stdout)
    assert job["state"] == "done" and (tmp_path / "a.bin").stat().st_size == MiB


def test_the_same_controls_work_without_a_daemon(
    sim: Simulator, tmp_path: Path, env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    sim.add_file("b.bin", make_data(64 * KiB, 7))
    r = pullman("get", "--detach", "-o", str(tmp_path / "b.bin"), sim.url("b.bin"),
                home=home, env=env)  # fmt: skip
    assert r.returncode == 0 and "no pullman daemon is running" in r.stdout
    r = pullman("-v", "pause", "1", home=home, env=env)
    assert r.returncode == 0 and "paused: 1" in r.stdout and VIA_API not in r.stderr
    assert state(home, env, 1) == "paused"
    r = pullman("priority", "1", "4", home=home, env=env)
    assert r.returncode == 0 and "job 1: priority 4" in r.stdout
    r = pullman("limit", "off", "--json", home=home, env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {"limit": None, "shown": "unlimited"}
    r = pullman("status", "--follow", "1", home=home, env=env)  # paused: settled at once
    assert r.returncode == 0 and "paused" in r.stdout
    r = pullman("cancel", "--all", "--json", home=home, env=env)
    assert json.loads(r.stdout)["changed"] == [1]
    r = pullman("resume", "1", home=home, env=env)
    assert r.returncode == 0 and "job 1 is cancelled: left as it is" in r.stderr
    r = pullman("priority", "5", "1", home=home, env=env)
    assert r.returncode == 3 and "no job 5" in r.stderr
