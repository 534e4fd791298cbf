"""Whether a kept-alive connection gets a fresh burst with each request (nginx's
``limit_rate_after`` counts per request) is learned, not assumed: where it does, a connection
that spent its byte box carries the next request instead of being closed and replaced; where
the throttle counts per connection, reuse stops after the first try."""

from __future__ import annotations

from pathlib import Path

from pullman.testing import Simulator, Throttle, make_data

from helpers import KiB, MiB, fast_config, run_transfer, spec_for, staging_is_clean

SIZE = 12 * MiB


def _fetch(sim: Simulator, tmp_path: Path, per: str):  # type: ignore[no-untyped-def]
    data = make_data(SIZE, 21)
    sim.add_file("f", data, throttle=Throttle(burst=1 * MiB, rate=64 * KiB, per=per))
    spec = spec_for(sim.url("f"), tmp_path, data)
    config = fast_config(piece_size=4 * MiB, min_piece=64 * KiB, stall_timeout=10.0)
    outcome, transfer = run_transfer(spec, tmp_path, config)
    assert spec.dest.read_bytes() == data and outcome.verified
    assert staging_is_clean(tmp_path)
    return sim.files["f"], transfer


def test_a_fresh_burst_per_request_keeps_connections_alive(sim: Simulator, tmp_path: Path) -> None:
    f, transfer = _fetch(sim, tmp_path, "request")
    fleet = transfer.shared.fleet
    assert fleet.keepalive_resets is True
    # The first wave crawls once (that teaches the burst size) and is replaced; after that
    # the connections carry request after request.
    # (A busy machine may make a connection or two look slow and get it replaced.)
    assert len(f.ranges) >= SIZE // MiB
    assert sim.origin.connections <= 1 + 4 + 4 + 4
    assert sim.origin.connections < len(f.ranges) - 2


def test_a_burst_per_connection_stops_reuse(sim: Simulator, tmp_path: Path) -> None:
    f, transfer = _fetch(sim, tmp_path, "connection")
    fleet = transfer.shared.fleet
    assert fleet.keepalive_resets is False
    assert not fleet.reuse_at_box(0)
    # The crawling kept-alive requests were stopped early: little was fetched twice.
    assert f.bytes_sent <= SIZE + 4 * MiB
