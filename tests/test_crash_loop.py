"""Crash loops: SIGKILL the foreground CLI and the daemon at random points of a multi-layer
Ollama pull (``scripts/chaos crashloop`` runs the long version), and two processes finishing the
same model at once.

After every kill each journal must claim only bytes that are on disk and right, and the store
must hold only verified blobs (the manifest only once all of them are in place); at the end the
model is complete and the bytes fetched twice are bounded by what was in flight.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from pullman.fsio import symlink_atomic, write_atomic
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, load_chaoslib, pullman, spawn

CONNECTIONS = 4
PIECE = 512 * KiB


def test_sigkill_cli_and_daemon_at_random_points_then_finish(tmp_path: Path) -> None:
    chaos = load_chaoslib()
    result = chaos.run_crashloop(
        kills_cli=4,
        kills_daemon=3,
        seed=20261122,
        layers=3,
        layer_size=2 * MiB,
        rate=384 * KiB,
        work=tmp_path / "work",
    )
    print(json.dumps(result, indent=1))
    assert result["ok"], result["problems"]
    # kills are spread over the download; one may find the run already finished
    assert result["kills"] >= 5 and result["kills_cli"] >= 1 and result["kills_daemon"] >= 1
    # At most what each connection had in flight (one piece) plus the unflushed journal window
    # (2 MiB per connection) may be fetched twice per kill.
    bound = result["kills"] * CONNECTIONS * (PIECE + 2 * MiB)
    assert result["refetched"] <= bound
    assert result["staging_leftovers"] == []


# Regression test for FINDING 8: a killed foreground job stayed 'running' (fixed in 2aba698).
def test_a_killed_foreground_job_is_taken_over_by_the_rerun(sim: Simulator, tmp_path: Path) -> None:
    registry = OllamaRegistry(sim)
    data = make_data(3 * MiB, 5)
    registry.add_model("library/k", layers=[("model", data)], throttle=Throttle(rate=256 * KiB))
    args = (
        "get",
        "--insecure",
        "--ollama-dir",
        str(tmp_path / "models"),
        registry.name("library/k"),
        "--progress",
        "none",
    )
    env = cli_env(tmp_path / "home")
    proc = spawn(*args, home=tmp_path, env=env)
    blob = registry.blob(data)
    deadline = time.monotonic() + 30
    while blob.bytes_sent < MiB and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    r = pullman(*args, home=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    jobs = json.loads(pullman("status", "--all", "--json", home=tmp_path, env=env).stdout)
    assert [j["state"] for j in jobs] == ["done"], jobs


# Regression test for FINDING 12: fixed temp names raced (fixed in 2aba698); found by the soak
# (seeds 65, 119, 261, 293 and 1024, two sessions at once).
def test_two_writers_of_the_same_final_files_both_succeed(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def finish(n: int) -> None:
        for _ in range(200):
            try:
                write_atomic(tmp_path / "refs" / "main", b"c" * 40)
                symlink_atomic(tmp_path / "snapshots" / "c" / "a.bin", "../../blobs/x")
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], f"{len(errors)} failures, e.g. {errors[0]!r}: {errors[0].__cause__!r}"
    assert (tmp_path / "refs" / "main").read_bytes() == b"c" * 40
