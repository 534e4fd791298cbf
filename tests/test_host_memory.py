"""What a host taught is remembered in the index, so the next download from it starts tuned
(issue 17): the byte box, whether keep-alive requests get a fresh burst, whether recycling pays
off there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pullman import config
from pullman.core.hosts import HostLessons, host_key
from pullman.hostmemory import IndexHostMemory
from pullman.index import Index
from pullman.testing import Simulator, Throttle, make_data
from pullman.transfer.recycle import Fleet, RecycleConfig

from helpers import KiB, MiB, cli_env, pullman


def test_lessons_round_trip_and_junk_is_ignored() -> None:
    lessons = HostLessons(box=3 * MiB, keepalive_resets=True, futile=False)
    assert HostLessons.from_json(lessons.to_json()) == lessons
    assert HostLessons().empty and not lessons.empty
    first_only = HostLessons(keepalive_resets=False, first_only=True)
    assert HostLessons.from_json(first_only.to_json()) == first_only and not first_only.empty
    assert HostLessons.from_json('{"box": null}') == HostLessons()  # an older index's row
    for junk in ("", "[]", '{"box": "big"}', '{"box": 1}', '{"box": true}',
                 '{"keepalive_resets": "yes"}', '{"futile": 1}', '{"first_only": 0}'):  # fmt: skip
        assert HostLessons.from_json(junk) is None


def test_the_key_is_the_origin_only_never_a_signed_query() -> None:
    key = host_key("https://CDN.example/blob/x?X-Amz-Signature=secret&X-Amz-Expires=9")
    assert key == "host:https://cdn.example:443"
    assert host_key("http://127.0.0.1:8080/a") == "host:http://127.0.0.1:8080"


def test_a_fleet_starts_from_the_lessons_and_reports_them() -> None:
    cfg = RecycleConfig()
    fleet = Fleet(cfg)
    assert fleet.lessons() == HostLessons()  # nothing learned: nothing to remember
    fleet.teach(HostLessons(box=5 * MiB, keepalive_resets=False, futile=True))
    assert fleet.learner.box == 5 * MiB
    assert not fleet.reuse_at_box(0) and not fleet.speed_recycling
    assert fleet.lessons() == HostLessons(box=5 * MiB, keepalive_resets=False, futile=True)
    fleet.teach(HostLessons(first_only=True))
    assert fleet.fresh_each_request and fleet.lessons().first_only
    fleet.teach(HostLessons(box=1))  # out of range (a hand-edited index): clamped
    assert fleet.learner.box == cfg.min_request_bytes


def test_the_index_keeps_lessons_per_origin(tmp_path: Path) -> None:
    with Index.open(tmp_path / "index.db") as index:
        memory = IndexHostMemory(index)
        assert memory.recall("http://a.example/x") is None
        memory.learn("http://a.example/x", HostLessons(box=2 * MiB))
        assert memory.recall("http://a.example/other?q=1") == HostLessons(box=2 * MiB)
        assert memory.recall("http://b.example/x") is None
        index.set_setting(host_key("http://c.example/"), "{not json")
        assert memory.recall("http://c.example/") is None
        memory.learn("http://a.example/x", HostLessons())  # nothing left to know: forgotten
        assert index.get_setting(host_key("http://a.example/")) is None


@pytest.mark.timeout(120)
def test_the_second_download_from_a_host_starts_tuned(sim: Simulator, tmp_path: Path) -> None:
    """A 1 MiB burst per request, then a crawl: the first download crawls once (its first
    wave teaches the burst) and learns that keep-alive requests burst again; the second starts
    with that box and never crawls."""
    home = tmp_path / "home"
    env = cli_env(home, PULLMAN_TRANSFER_PIECE_SIZE="4MiB", PULLMAN_RECYCLE_STALL_TIMEOUT="10")
    results = []
    for n in (1, 2):
        data = make_data(16 * MiB, 30 + n)
        sim.add_file(f"f{n}", data, throttle=Throttle(burst=1 * MiB, rate=64 * KiB, per="request"))
        r = pullman(
            "get",
            sim.url(f"f{n}"),
            "--sha256",
            hashlib.sha256(data).hexdigest(),
            "-o",
            f"{tmp_path / 'out'}/",
            "--json",
            home=home,
            env=env,
            timeout=100,
        )
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out" / f"f{n}").read_bytes() == data
        results.append(json.loads(r.stdout[r.stdout.find("[") :])[0])
        with Index.open(config.load(env=env).paths.index) as index:
            lessons = IndexHostMemory(index).recall(sim.url(f"f{n}"))
        assert lessons is not None and lessons.box is not None
        assert 64 * KiB <= lessons.box <= 1 * MiB + 64 * KiB and lessons.keepalive_resets
    # The first crawled (every connection of its first wave recycled); the second did not (a
    # busy machine may still make one connection look slow now and then).
    first, second = results[0]["recycles"], results[1]["recycles"]
    assert first >= 4 and second < first / 2, (first, second)
