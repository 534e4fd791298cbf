"""A throttle nobody can beat is not made worse (issue 17, goal 3): the simulator's aggregate
per-client cap (every connection together), and pullman under it: the file arrives whole, and
pullman does not answer the cap with a storm of fresh connections."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pullman.testing import ClientCap, Simulator, Throttle, make_data

from helpers import KiB, MiB, cli_env, pullman


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_cap_is_shared_by_every_connection_in_order() -> None:
    clock = FakeClock()
    cap = ClientCap(rate=1 * MiB, clock=clock)
    # Two connections asking at the same moment: the second waits for the first's slot too.
    assert cap.reserve(512 * KiB) == 0.5
    assert cap.reserve(512 * KiB) == 1.0
    clock.now += 1.0  # the link is free again
    assert cap.reserve(256 * KiB) == 0.25
    clock.now += 10.0  # idle time is not saved up for a later burst
    assert cap.reserve(1 * MiB) == 1.0
    assert cap.sent == 2 * MiB + 256 * KiB
    assert cap.chunk == MiB // 50


def test_more_connections_cannot_beat_the_cap(sim: Simulator, tmp_path: Path) -> None:
    """8 connections against 1 MiB/s for all of them: as long as it takes at the cap, and the
    simulator sees a bounded number of connections (no recycle storm)."""
    data = make_data(3 * MiB, 11)
    cap = ClientCap(rate=1 * MiB)
    sim.add_file("capped.bin", data, throttle=Throttle(cap=cap))
    home = tmp_path / "home"
    out = tmp_path / "out"
    r = pullman(
        "get",
        sim.url("capped.bin"),
        "--sha256",
        hashlib.sha256(data).hexdigest(),
        "-o",
        f"{out}/",
        "-c",
        "8",
        "--json",
        home=home,
        env=cli_env(home, PULLMAN_TRANSFER_MIN_PIECE="64KiB"),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "capped.bin").read_bytes() == data
    doc = json.loads(r.stdout[r.stdout.find("[") :])
    # Every byte went through the cap (plus what recycled requests threw away).
    assert cap.sent >= len(data)
    # The probe, the 8 connections, and at most a few recycles before they stop paying off.
    assert sim.origin.connections <= 1 + 8 + 8
    assert doc[0]["recycles"] <= 8
