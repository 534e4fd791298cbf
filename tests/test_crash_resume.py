"""SIGKILL a running ``pullman get`` at random points, then let it finish.

The journal never claims bytes that are not on disk (the final file verifies with nothing
discarded), and the server's own byte count bounds what was fetched twice.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from pullman.testing import Simulator, Throttle, make_data

from helpers import KiB, MiB, cli_env, pullman, spawn

CONNECTIONS = 4
SIZE = 20 * MiB


def test_sigkill_at_random_points_then_finish(sim: Simulator, tmp_path: Path) -> None:
    rng = random.Random(20261122)
    f = sim.add_file("m.bin", make_data(SIZE, 99), throttle=Throttle(burst=0, rate=768 * KiB))
    out = tmp_path / "m.bin"
    args = ("get", sim.url("m.bin"), "--sha256", f.sha256, "-o", str(out), "--json")
    env = cli_env(tmp_path, PULLMAN_TRANSFER_CONNECTIONS=str(CONNECTIONS))
    kills = 0
    for _ in range(4):
        before = f.bytes_sent
        wanted = before + rng.randint(MiB // 2, 3 * MiB)
        proc = spawn(*args, home=tmp_path, env=env)
        deadline = time.monotonic() + 30
        while f.bytes_sent < wanted and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the download should still be running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        assert not out.exists()
    r = pullman(*args, home=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert out.read_bytes() == f.data
    assert doc["verified"] and doc["discarded"] == 0
    assert doc["resumed"] > 0
    refetched = f.bytes_sent - SIZE
    bound = kills * CONNECTIONS * 4 * MiB
    print(f"kills={kills} refetched={refetched} bytes, bound={bound} bytes")
    assert refetched <= bound


def test_a_small_file_keeps_no_journal_and_is_fetched_whole_after_a_kill(
    sim: Simulator, tmp_path: Path
) -> None:
    """Below ``journal_from`` a file keeps no journal (three fsyncs a file saved): a kill
    costs its bytes so far, never a wrong byte."""
    size = 2 * MiB
    f = sim.add_file("s.bin", make_data(size, 7), throttle=Throttle(burst=0, rate=1 * MiB))
    out = tmp_path / "s.bin"
    args = ("get", sim.url("s.bin"), "--sha256", f.sha256, "-o", str(out), "--json")
    env = cli_env(tmp_path, PULLMAN_TRANSFER_JOURNAL_FROM="4MiB")
    proc = spawn(*args, home=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while f.bytes_sent < size // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the download should still be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    staging = tmp_path / ".pullman-partial"
    assert list(staging.glob("*.part")) and not list(staging.glob("*.journal"))
    before = f.bytes_sent
    r = pullman(*args, home=tmp_path, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert out.read_bytes() == f.data and doc["verified"]
    assert doc["resumed"] == 0 and f.bytes_sent - before >= size  # fetched whole, once more
    assert not staging.exists() or not list(staging.iterdir())
