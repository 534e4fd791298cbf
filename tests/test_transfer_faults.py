"""Every fault the simulator can script, against the real engine over loopback.

Each test asserts that the committed file is byte-for-byte the served one (or, for faults that
cannot heal, that nothing was committed and the error says why).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pullman.errors import AccessDenied, IntegrityError, NetworkError, NotFound, TLSFailure
from pullman.testing import (
    Drip,
    FlipByte,
    IgnoreRange,
    Reset,
    Short,
    Simulator,
    Stall,
    Status,
    Throttle,
    WrongContentRange,
    make_data,
)

from helpers import KiB, MiB, Recorder, fast_config, run_transfer, spec_for, staging_is_clean

SIZE = 3 * MiB + 12345  # not a multiple of any piece size


def fetch_ok(sim: Simulator, tmp_path: Path, name: str, **kw: object):  # type: ignore[no-untyped-def]
    f = sim.files[name]
    spec = spec_for(sim.url(name), tmp_path, f.data)
    outcome, transfer = run_transfer(spec, tmp_path, **kw)  # type: ignore[arg-type]
    assert spec.dest.read_bytes() == f.data
    assert outcome.verified and outcome.sha256 == f.sha256
    assert staging_is_clean(tmp_path)
    return outcome, transfer


def test_clean_download_is_exact_and_segmented(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 1))
    outcome, _transfer = fetch_ok(sim, tmp_path, "f")
    assert outcome.retries == 0
    f = sim.files["f"]
    assert len(f.ranges) > 8  # many pieces over several connections ...
    assert 4 <= sim.origin.connections <= 5  # ... kept alive: one each, plus the probe
    assert f.bytes_sent <= SIZE + 4 * 64 * KiB + 1  # only steal overlap and the probe byte


def test_connection_reset_mid_body(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 2), faults=[Reset(after=100 * KiB, times=5)])
    _outcome, _ = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 5


def test_body_shorter_than_content_length(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 3), faults=[Short(after=50 * KiB, times=4)])
    outcome, _ = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 4  # every short body was served ...
    assert outcome.retries >= 1  # ... noticed as a broken body and retried ...
    assert outcome.fetched <= SIZE + 4 * 64 * KiB  # ... what it brought kept (bar steal overlap)


def test_stall_is_recycled_not_waited_out(sim: Simulator, tmp_path: Path) -> None:
    # The stalled request would hang for 60 s; the 1 s stall timeout recycles it.
    sim.add_file("f", make_data(SIZE, 4), faults=[Stall(after=10 * KiB, seconds=60, on=(3,))])
    outcome, transfer = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 1
    assert transfer.statistics().recycles >= 1
    assert outcome.elapsed < 30


def test_drip_is_recycled(sim: Simulator, tmp_path: Path) -> None:
    # A few bytes a second forever: never silent, so a socket timeout would never fire.
    sim.add_file("f", make_data(SIZE, 5), faults=[Drip(after=1 * KiB, rate=5, on=(2,))])
    outcome, transfer = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 1
    assert transfer.statistics().recycles >= 1
    assert outcome.elapsed < 30


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_are_retried_with_backoff(sim: Simulator, tmp_path: Path, code: int) -> None:
    sim.add_file("f", make_data(SIZE, 6), faults=[Status(code=code, on=(2, 3, 4))])
    sleep = Recorder()
    outcome, _ = fetch_ok(sim, tmp_path, "f", sleep=sleep)
    assert sim.files["f"].faults[0].used == 3
    assert code in sim.files["f"].statuses
    assert outcome.retries >= 3
    assert any(w > 0 for w in sleep.waits)


def test_429_retry_after_is_honoured(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 7), faults=[Status(code=429, retry_after=7, on=(2,))])
    sleep = Recorder()
    outcome, _ = fetch_ok(sim, tmp_path, "f", sleep=sleep)
    assert sim.files["f"].faults[0].used == 1 and 429 in sim.files["f"].statuses
    assert 7.0 in sleep.waits
    assert outcome.retries >= 1


def test_ignored_range_starts_over_on_one_stream(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 8), faults=[IgnoreRange(times=-1)])
    fetch_ok(sim, tmp_path, "f")
    f = sim.files["f"]
    assert 200 in f.statuses and 206 not in f.statuses


def test_ignored_range_after_some_progress_never_appends(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 9), faults=[IgnoreRange(on=(4,))])
    fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 1 and 200 in sim.files["f"].statuses


def test_wrong_content_range_is_refused(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 10), faults=[WrongContentRange(shift=4096, on=(2, 3))])
    outcome, _ = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 2
    assert outcome.retries >= 2


def test_flipped_byte_is_caught_and_refetched_once(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", make_data(SIZE, 11), faults=[FlipByte(offset=SIZE // 2, times=1)])
    outcome, _ = fetch_ok(sim, tmp_path, "f")
    assert sim.files["f"].faults[0].used == 1
    assert outcome.discarded == SIZE
    assert sim.files["f"].bytes_sent >= 2 * SIZE  # thrown away and fetched again


def test_persistent_corruption_fails_cleanly(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 12), faults=[FlipByte(offset=100, times=-1)])
    spec = spec_for(sim.url("f"), tmp_path, f.data)
    with pytest.raises(IntegrityError) as info:
        run_transfer(spec, tmp_path)
    assert "does not match its digest" in info.value.what
    assert not spec.dest.exists()
    assert staging_is_clean(tmp_path)


def test_expiring_cdn_url_is_resolved_again(sim: Simulator, tmp_path: Path) -> None:
    # 4 connections at 512 KiB/s each need at least 1.5 s for 3 MiB; links live 0.5 s.
    sim.add_file(
        "f",
        make_data(SIZE, 13),
        via_cdn=True,
        cdn_expires=0.5,
        throttle=Throttle(burst=0, rate=512 * KiB),
    )
    _outcome, transfer = fetch_ok(sim, tmp_path, "f")
    assert transfer.statistics().refreshes >= 1
    assert 403 not in sim.files["f"].statuses  # 403s come from the CDN route, not the file
    assert sim.origin.seen[0].path == "/files/f"


def test_throttled_connections_are_recycled_and_burst_is_learned(
    sim: Simulator, tmp_path: Path
) -> None:
    # The CDN gives every connection 256 KiB at full speed, then 64 KiB/s.
    sim.add_file("f", make_data(8 * MiB, 14), throttle=Throttle(burst=256 * KiB, rate=64 * KiB))
    cfg = fast_config(piece_size=MiB)
    outcome, transfer = fetch_ok(sim, tmp_path, "f", config=cfg)
    stats = transfer.statistics()
    assert stats.recycles >= 8
    # Without recycling, 4 connections at 64 KiB/s would need about 30 s for 8 MiB.
    assert outcome.elapsed < 20
    assert transfer.shared.fleet.statistics().box < 512 * KiB


def test_404_fails_fast_without_retries(sim: Simulator, tmp_path: Path) -> None:
    spec = spec_for(sim.url("missing"), tmp_path)
    with pytest.raises(NotFound):
        run_transfer(spec, tmp_path)
    assert len(sim.origin.seen) == 1
    assert not spec.dest.exists()


def test_410_on_a_file_fails_fast(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 15), faults=[Status(code=410, times=-1)])
    with pytest.raises(NotFound):
        run_transfer(spec_for(sim.url("f"), tmp_path, f.data), tmp_path)
    assert f.requests == 1


def test_403_from_origin_is_access_denied(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 16), faults=[Status(code=403, times=-1)])
    with pytest.raises(AccessDenied):
        run_transfer(spec_for(sim.url("f"), tmp_path, f.data), tmp_path)


def test_refused_connection_is_retried_then_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = spec_for(f"http://127.0.0.1:{port}/x", tmp_path)
    sleep = Recorder()
    with pytest.raises(NetworkError) as info:
        run_transfer(spec, tmp_path, fast_config(retry_attempts=3), sleep=sleep)
    assert "refused" in info.value.what
    assert len(sleep.waits) == 2


def test_unresolvable_host(tmp_path: Path) -> None:
    spec = spec_for("http://no-such-host.invalid/x", tmp_path)
    with pytest.raises(NetworkError) as info:
        run_transfer(spec, tmp_path, fast_config(retry_attempts=1))
    assert "could not resolve host" in info.value.what


def test_tls_failure_is_not_retried(sim: Simulator, tmp_path: Path) -> None:
    # Speaking TLS to a plain-HTTP port is a real handshake failure on the wire.
    url = sim.url("f").replace("http://", "https://")
    with pytest.raises(TLSFailure):
        run_transfer(spec_for(url, tmp_path), tmp_path, fast_config(retry_attempts=5))
    assert sim.origin.connections == 1


def test_size_mismatch_with_plan_is_refused(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 17))
    spec = spec_for(sim.url("f"), tmp_path, f.data, size=SIZE + 1)
    with pytest.raises(IntegrityError):
        run_transfer(spec, tmp_path)
    assert not spec.dest.exists()


def test_empty_file(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", b"")
    fetch_ok(sim, tmp_path, "f")


def test_file_smaller_than_a_piece(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("f", b"hello world")
    fetch_ok(sim, tmp_path, "f")


def test_no_digest_reports_unverified_with_sha256(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 18))
    spec = spec_for(sim.url("f"), tmp_path)
    outcome, _ = run_transfer(spec, tmp_path)
    assert not outcome.verified
    assert outcome.sha256 == f.sha256
    assert spec.dest.read_bytes() == f.data


def test_a_corrupt_cdn_copy_is_fetched_again_from_a_fresh_link(
    sim: Simulator, tmp_path: Path
) -> None:
    # The first CDN link serves a bad copy (a corrupt edge object): fetching it again from the
    # same link would fail again; a fresh redirect from the origin gets a good copy.
    f = sim.add_file("f", make_data(SIZE, 40), via_cdn=True, cdn_expires=3600, bad_links=1)
    outcome, transfer = fetch_ok(sim, tmp_path, "f")
    assert len(f.links) == 2  # a second, different CDN link was asked for ...
    assert outcome.discarded == SIZE  # ... after the first copy was thrown away
    assert transfer.statistics().refreshes == 0  # not an expiry: a fresh resolve


def test_two_corrupt_cdn_copies_fail_cleanly(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("f", make_data(SIZE, 41), via_cdn=True, cdn_expires=3600, bad_links=2)
    spec = spec_for(sim.url("f"), tmp_path, f.data)
    with pytest.raises(IntegrityError) as info:
        run_transfer(spec, tmp_path)
    assert "does not match its digest" in info.value.what and "2 times" in (info.value.why or "")
    assert len(f.links) == 2
    assert not spec.dest.exists()


@pytest.mark.parametrize("trusted", [False, True])
def test_credentials_follow_a_redirect_only_to_origins_the_source_trusts(
    sim: Simulator, tmp_path: Path, trusted: bool
) -> None:
    # A Hub token goes to every Hub origin huggingface_hub trusts, never to a CDN: the source
    # lists the trusted origins (auth_to); here the "CDN" is trusted in one run, not the other.
    f = sim.add_file("f", make_data(256 * KiB, 42), via_cdn=True, cdn_expires=3600)
    auth = {"Authorization": "Bearer hf_secret"}
    auth_to = (sim.cdn.url,) if trusted else ()
    spec = spec_for(sim.url("f"), tmp_path, f.data, auth=auth, auth_to=auth_to)
    run_transfer(spec, tmp_path)
    assert spec.dest.read_bytes() == f.data
    assert sim.origin.saw_header("authorization")
    assert sim.cdn.saw_header("authorization") is trusted


def test_hub_files_trust_the_hub_origins_and_no_cdn() -> None:
    from pullman.sources.hf import HUB_ORIGINS

    assert "https://huggingface.co" in HUB_ORIGINS and "https://hf.co" in HUB_ORIGINS
    assert not any("cdn" in o or "xethub" in o for o in HUB_ORIGINS)
