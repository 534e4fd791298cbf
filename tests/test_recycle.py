"""The pull → stop → sleep policy, driven by a fake clock: no sockets, no sleeping."""

from __future__ import annotations

import random

import pytest

from pullman.transfer.recycle import (
    BurstLearner,
    Fleet,
    Reason,
    RecycleConfig,
    Watch,
)

MiB = 1 << 20


def feed_steady(watch: Watch, start: float, end: float, rate: float, step: float = 0.05) -> float:
    t = start
    while t < end - 1e-9:
        t += step
        watch.feed(t, int(rate * step))
    return t


def test_zero_bytes_for_the_stall_timeout_recycles() -> None:
    cfg = RecycleConfig(stall_timeout=5.0)
    w = Watch(cfg, now=0.0)
    feed_steady(w, 0.0, 1.0, 10 * MiB)
    assert not w.verdict(5.9, [], box=1 << 40).recycle
    v = w.verdict(6.1, [], box=1 << 40)
    assert v.recycle and v.reason is Reason.STALL


def test_a_drip_above_zero_but_below_min_rate_is_a_stall() -> None:
    cfg = RecycleConfig(stall_timeout=5.0, min_rate=1024, burst_floor=0, sibling_floor=0)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 6.0, rate=8)  # 8 bytes a second, never silent
    v = w.verdict(t, [], box=1 << 40)
    assert v.recycle and v.reason is Reason.STALL


def test_time_box_recycles_a_healthy_connection() -> None:
    cfg = RecycleConfig(request_seconds=10.0)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 10.0, 5 * MiB)
    v = w.verdict(t, [], box=1 << 40)
    assert v.recycle and v.reason is Reason.TIME_BOX


def test_byte_box_counts_earlier_requests_on_the_connection() -> None:
    cfg = RecycleConfig()
    w = Watch(cfg, now=0.0, base=15 * MiB)
    t = feed_steady(w, 0.0, 0.2, 30 * MiB)
    assert w.verdict(t, [], box=20 * MiB).reason is Reason.BYTE_BOX


def test_falling_below_own_burst_for_the_grace_period_recycles() -> None:
    cfg = RecycleConfig(rate_window=0.5, warmup=0.5, burst_floor=0.3, slow_grace=0.5)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 2.0, 50 * MiB)  # burst
    assert not w.verdict(t, [], box=1 << 40).recycle
    t = feed_steady(w, t, t + 0.6, 2 * MiB)  # the CDN throttles: 4 % of the burst
    assert not w.verdict(t, [], box=1 << 40).recycle  # slow spell starts, grace runs
    t = feed_steady(w, t, t + 0.6, 2 * MiB)
    v = w.verdict(t, [], box=1 << 40)
    assert v.recycle and v.reason is Reason.SLOW


def test_a_short_dip_within_the_grace_is_forgiven() -> None:
    cfg = RecycleConfig(rate_window=0.5, warmup=0.5, burst_floor=0.3, slow_grace=1.0)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 2.0, 50 * MiB)
    t = feed_steady(w, t, t + 0.6, 2 * MiB)
    assert not w.verdict(t, [], box=1 << 40).recycle
    t = feed_steady(w, t, t + 1.0, 50 * MiB)  # recovers
    assert not w.verdict(t, [], box=1 << 40).recycle
    t = feed_steady(w, t, t + 0.6, 2 * MiB)
    assert not w.verdict(t, [], box=1 << 40).recycle  # a new spell, grace starts again


def test_slow_relative_to_siblings_recycles_even_if_never_fast() -> None:
    cfg = RecycleConfig(sibling_floor=0.25, slow_grace=0.5, burst_floor=0.0)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 1.0, 100 * 1024)
    assert not w.verdict(t, [20 * MiB, 22 * MiB], box=1 << 40).recycle
    t = feed_steady(w, t, t + 0.6, 100 * 1024)
    v = w.verdict(t, [20 * MiB, 22 * MiB], box=1 << 40)
    assert v.recycle and v.reason is Reason.SLOW


def test_young_connections_are_not_judged_slow() -> None:
    cfg = RecycleConfig(warmup=1.0, sibling_floor=0.25, slow_grace=0.1)
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 0.9, 1024)
    assert not w.verdict(t, [50 * MiB], box=1 << 40).recycle


def test_learner_sets_box_below_observed_slowdowns_and_probes_upward() -> None:
    cfg = RecycleConfig(request_bytes=512 * MiB, min_request_bytes=MiB)
    learner = BurstLearner(cfg, safety=0.85, probe_after=3, growth=1.25)
    assert learner.box == 512 * MiB
    learner.slowed_at(24 * MiB)
    learner.slowed_at(24 * MiB)
    assert learner.box == 512 * MiB  # two connections are not a pattern yet
    learner.slowed_at(24 * MiB + 100_000)
    assert learner.box == int(0.85 * 24 * MiB)  # the median of the three
    box = learner.box
    for _ in range(3):
        learner.box_reached()
    # One connection tries the larger box; the others keep the box until it ran clean.
    assert learner.box_for("prober") == int(box * 1.25)
    assert learner.box_for("other") == box
    assert learner.current_box("prober") == int(box * 1.25)
    learner.box_reached("other")
    assert learner.box == box
    learner.box_reached("prober")
    assert learner.box == int(box * 1.25)
    assert learner.box_for("other") == learner.box


def test_a_trial_that_slows_down_keeps_the_box_and_a_gone_prober_hands_it_on() -> None:
    cfg = RecycleConfig(request_bytes=512 * MiB, min_request_bytes=MiB)
    learner = BurstLearner(cfg, probe_after=2, growth=1.5)
    for _ in range(3):
        learner.slowed_at(8 * MiB)
    box = learner.box
    learner.box_reached()
    learner.box_reached()
    assert learner.box_for("a") == int(box * 1.5)
    learner.slowed_at(8 * MiB, "a")  # past the box, before the trial's end: too large
    assert learner.box == box and learner.box_for("a") == box
    learner.box_reached()
    learner.box_reached()
    assert learner.box_for("b") == int(box * 1.5)
    learner.left("b")
    assert learner.box_for("c") == int(box * 1.5)  # "b" went away: "c" tries instead


def test_a_prober_that_falls_off_the_cliff_just_past_the_box_is_recycled_at_once() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
    fleet = Fleet(cfg)
    fleet.learner.box = 4 * MiB
    fleet.learner.trial = 5 * MiB
    assert fleet.learner.box_for("p") == 5 * MiB
    w = fleet.open("p", 0.0)
    t, moved, recycled = 0.0, 0, []
    while not recycled and t < 3.0:
        t = round(t + 0.05, 2)
        n = int(40 * MiB * 0.05) if moved < 4 * MiB else 0  # the burst ends at 4 MiB
        w.feed(t, n)
        moved += n
        recycled = fleet.tick(t)
    assert recycled == [("p", Reason.SLOW)]
    assert t <= 0.35  # a tick or two after the cliff, not the 0.6 s of window and grace
    assert fleet.learner.box == 4 * MiB and fleet.learner.trial is None


def test_connections_falling_off_a_cliff_together_are_recycled_without_the_grace() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
    fleet = Fleet(cfg)
    watches = {k: fleet.open(k, 0.0) for k in range(4)}
    t, moved = 0.0, dict.fromkeys(watches, 0)
    recycled: list[tuple[object, Reason]] = []
    while len(recycled) < 4 and t < 3.0:
        t = round(t + 0.05, 2)
        for k, w in watches.items():
            n = int(40 * MiB * 0.05) if moved[k] < 4 * MiB else 0
            w.feed(t, n)
            moved[k] += n
        recycled += fleet.tick(t)
    assert sorted(k for k, _ in recycled) == [0, 1, 2, 3] and t <= 0.35
    assert 3 * MiB <= fleet.learner.box < 4 * MiB


def test_one_connection_falling_silent_is_not_a_cliff_quorum() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
    fleet = Fleet(cfg)
    watches = {k: fleet.open(k, 0.0) for k in range(4)}
    for step in range(1, 7):  # 0.3 s
        t = step * 0.05
        for k, w in watches.items():
            w.feed(t, 0 if (k == 0 and t > 0.15) else int(40 * MiB * 0.05))
        assert fleet.tick(t) == []


def test_learner_never_goes_below_the_minimum() -> None:
    cfg = RecycleConfig(min_request_bytes=4 * MiB)
    learner = BurstLearner(cfg)
    for _ in range(3):
        learner.slowed_at(10)
    assert learner.box == 4 * MiB


def test_slowdowns_at_random_points_are_congestion_not_a_throttle() -> None:
    cfg = RecycleConfig(request_bytes=512 * MiB)
    learner = BurstLearner(cfg)
    for nbytes in (3 * MiB, 40 * MiB, 700 * 1024, 90 * MiB, 12 * MiB):
        learner.slowed_at(nbytes)
    assert learner.box == 512 * MiB


def test_learning_can_be_switched_off() -> None:
    cfg = RecycleConfig(learn=False)
    learner = BurstLearner(cfg)
    for _ in range(3):
        learner.slowed_at(MiB)
    assert learner.box == cfg.request_bytes
    w = Watch(cfg, now=0.0)
    t = feed_steady(w, 0.0, 0.2, 100 * MiB)
    assert not w.verdict(t, [], box=MiB).recycle


def run_fleet(
    fleet: Fleet, start: float, count: int
) -> tuple[list[tuple[int, Reason]], dict[int, int], float]:
    """Connections opened 0.1 s apart burst 24 MiB at 40 MiB/s, then crawl at 1 MiB/s."""
    watches = {k: fleet.open(k, now=start + k * 0.1) for k in range(count)}
    moved = dict.fromkeys(watches, 0)
    recycled: list[tuple[int, Reason]] = []
    at_recycle: dict[int, int] = {}
    t = start
    while t < start + 5.0 and watches:
        t = round(t + 0.05, 2)
        for k, w in watches.items():
            if t < start + k * 0.1:
                continue
            rate = 40 * MiB if moved[k] < 24 * MiB else 1 * MiB
            n = int(rate * 0.05)
            w.feed(t, n)
            moved[k] += n
        for key, reason in fleet.tick(t):
            k = int(str(key))
            recycled.append((k, reason))
            at_recycle[k] = moved[k]
            watches.pop(k)
    return recycled, at_recycle, t


def test_fleet_recycles_throttled_connections_and_learns_the_burst() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3)
    fleet = Fleet(cfg)
    recycled, _, t = run_fleet(fleet, 0.0, 4)
    assert {k for k, _ in recycled} == {0, 1, 2, 3}
    # The first connections show the slow-down, and the policy learns the burst size from them.
    assert recycled[:3] == [(0, Reason.SLOW), (1, Reason.SLOW), (2, Reason.SLOW)]
    box = fleet.statistics().box
    assert 18 * MiB <= box < 24 * MiB
    # Fresh connections are stopped by the learned byte box before they ever crawl.
    recycled, at_recycle, _ = run_fleet(fleet, t, 4)
    assert [r for _, r in recycled] == [Reason.BYTE_BOX] * 4
    assert all(box <= n <= 24 * MiB for n in at_recycle.values())
    assert fleet.statistics().recycles == 8


def test_a_stalled_connection_teaches_the_learner_nothing() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, stall_timeout=30)
    fleet = Fleet(cfg)
    stalled, healthy = fleet.open("stalled", 0.0), fleet.open("healthy", 0.0)
    t = 0.0
    for _ in range(40):
        t = round(t + 0.05, 2)
        healthy.feed(t, MiB)
        if t < 0.5:
            stalled.feed(t, 64 * 1024)
        recycled = fleet.tick(t)
        if recycled:
            break
    assert recycled == [("stalled", Reason.SLOW)]
    fleet.open("other", t)  # keep a sibling
    assert fleet.learner.box == cfg.request_bytes


@pytest.mark.parametrize(
    "kwargs",
    [{"stall_timeout": 0}, {"burst_floor": -1}, {"min_request_bytes": 0}, {"request_seconds": 0}],
)
def test_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RecycleConfig(**kwargs)  # type: ignore[arg-type]


def test_under_a_bandwidth_cap_speed_is_not_judged_but_stalls_are() -> None:
    cfg = RecycleConfig(
        rate_window=0.5, warmup=0.5, burst_floor=0.3, slow_grace=0.5, stall_timeout=3
    )
    fleet = Fleet(cfg)
    w = fleet.open("capped", 0.0)
    t = feed_steady(w, 0.0, 1.0, 50 * MiB)
    t = feed_steady(w, t, t + 2.0, 1 * MiB)  # throttled by our own cap, not the CDN
    assert fleet.tick(t, judge_speed=False) == []
    t += 3.5  # then nothing at all: that is still a stall
    assert fleet.tick(t, judge_speed=False) == [("capped", Reason.STALL)]


def run_capped(fleet: Fleet, seconds: float, count: int = 8, fresh_burst: bool = False) -> int:
    """``count`` connections opened 0.1 s apart share one 64 MiB/s aggregate cap; a recycled
    one reopens at once. Their shares are uneven and change every second (seeded: congestion
    on the capped link), so some look slow now and then, fresh or old. With ``fresh_burst`` a
    fresh connection instead bursts 8 MiB at 64 MiB/s of its own, then crawls at 256 KiB/s (a
    per-connection throttle). Returns how many connections were opened."""
    rng = random.Random(17)
    cap, step = 64 * MiB, 0.05
    watches: dict[int, Watch] = {}
    moved: dict[int, int] = {}
    weight: dict[int, float] = {}
    opened = 0
    t = 0.0
    while t < seconds:
        t = round(t + step, 2)
        if abs(t - round(t)) < 1e-9:
            weight = {k: rng.uniform(0.1, 1.0) for k in range(count)}
        for k in range(count):
            if k not in watches and t >= k * 0.1:
                watches[k], moved[k] = fleet.open(k, now=t), 0
                opened += 1
        total = sum(weight.get(k, 1.0) for k in watches)
        for k, w in watches.items():
            if fresh_burst:
                rate = 64 * MiB if moved[k] < 8 * MiB else 256 * 1024
            else:
                rate = cap * weight.get(k, 1.0) / total
            n = int(rate * step)
            w.feed(t, n)
            moved[k] += n
        for key, _reason in fleet.tick(t):
            watches.pop(int(str(key)))
    return opened


def test_under_an_aggregate_cap_recycling_stops_once_it_does_not_pay_off() -> None:
    """Every connection gets a share of the cap, fresh or old: some look slow now and then,
    but their replacements are no faster, so after a few recycles the fleet stops recycling
    for speed (no storm) and the connections it has keep going."""
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3)
    fleet = Fleet(cfg)
    opened = run_capped(fleet, 60.0)
    assert not fleet.speed_recycling and fleet.statistics().futile
    assert opened <= 8 + 8  # over a minute of download

    unguarded = Fleet(cfg)
    unguarded.speed_recycling = True
    with pytest.MonkeyPatch.context() as mp:  # what the same minute costs without the guard
        mp.setattr("pullman.transfer.recycle.FUTILE_IN_A_ROW", 10**9)
        storm = run_capped(unguarded, 60.0)
    assert storm > 2 * opened


def test_a_fresh_burst_keeps_recycling_worthwhile() -> None:
    """A per-connection throttle: every replacement bursts again, so recycling goes on."""
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, learn=False)
    fleet = Fleet(cfg)
    opened = run_capped(fleet, 10.0, fresh_burst=True)
    assert fleet.speed_recycling and not fleet.statistics().futile
    assert fleet.statistics().by_reason.get("slow", 0) >= 20
    assert opened >= 28


def _request(
    fleet: Fleet, key: str, t: float, rate: float, seconds: float, *, reused: bool
) -> float:
    """One request on ``key`` at ``rate`` for ``seconds``, ticking the fleet; ends it (closed)
    unless the fleet recycled it. Returns the time it ended."""
    w = fleet.open(key, t, 0, reused=reused)
    end = t + seconds
    while t < end - 1e-9:
        t = round(t + 0.05, 2)
        w.feed(t, int(rate * 0.05))
        if any(k == key for k, _r in fleet.tick(t)):
            return t
    fleet.close(key)
    return t


def test_a_kept_alive_request_with_a_fresh_burst_teaches_that_keepalive_resets_it() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3)
    fleet = Fleet(cfg)
    assert fleet.keepalive_resets is None and fleet.reuse_at_box("a")  # not known: try it
    t = _request(fleet, "a", 0.0, 40 * MiB, 0.5, reused=False)
    t = _request(fleet, "a", t, 40 * MiB, 0.5, reused=True)  # as fast as the first
    assert fleet.keepalive_resets is True and fleet.reuse_at_box("a") and fleet.reuse_at_box("b")
    assert fleet.statistics().recycles == 0


def test_a_kept_alive_request_without_a_new_burst_stops_reuse_and_teaches_no_burst_size() -> None:
    """The throttle counts per connection: the connection's second request crawls from its
    first byte. That is recycled, reuse stops, and the byte box is not shrunk by it."""
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3)
    fleet = Fleet(cfg)
    t = _request(fleet, "a", 0.0, 40 * MiB, 0.5, reused=False)
    for key in ("a", "a", "a"):  # even three in a row teach the learner nothing
        t = _request(fleet, key, t, 1 * MiB, 2.0, reused=True)
        if fleet.keepalive_resets is False:
            break
    assert fleet.keepalive_resets is False and not fleet.reuse_at_box("a")
    assert fleet.statistics().by_reason == {"slow": 1}
    assert fleet.learner.box == cfg.request_bytes


def test_while_unknown_one_connection_at_a_time_tries_keepalive() -> None:
    fleet = Fleet(RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3))
    assert fleet.reuse_at_box("a")
    assert not fleet.reuse_at_box("b")  # "a" is trying: "b" is replaced as before
    assert fleet.reuse_at_box("a")
    w = fleet.open("a", 0.0, 0, reused=True)
    w.feed(0.05, 0)  # nothing came: the try taught nothing, but it is over
    fleet.close("a")
    assert fleet.keepalive_resets is None
    assert fleet.reuse_at_box("b")  # now "b" may try
    assert not fleet.reuse_at_box("a")


def test_a_throttle_that_sends_in_ticks_still_teaches_the_burst() -> None:
    """nginx sends a throttled response once a second: right after the burst a connection's
    last window can hold nothing at all. Slowing down at the same byte count on several
    connections is still the throttle, and the box is learned from it."""
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3)
    fleet = Fleet(cfg)
    watches = {k: fleet.open(k, now=0.0) for k in range(4)}
    moved = dict.fromkeys(watches, 0)
    t = 0.0
    while watches and t < 5.0:
        t = round(t + 0.05, 2)
        for k, w in watches.items():
            if moved[k] < 4 * MiB:
                n = int(40 * MiB * 0.05)
            else:  # 512 KiB once a second, nothing in between
                n = 512 * 1024 if abs(t - round(t)) < 1e-9 else 0
            w.feed(t, n)
            moved[k] += n
        for key, _reason in fleet.tick(t):
            watches.pop(int(str(key)))
    assert fleet.statistics().by_reason.get("slow", 0) >= 3
    assert 3 * MiB <= fleet.learner.box < 4 * MiB + 512 * 1024


def test_a_later_request_without_a_burst_means_a_fresh_connection_for_every_request() -> None:
    """nginx's decaying profile: only a connection's first request gets a burst. A later
    request crawling from its first byte is recycled within a few ticks, and from then on no
    connection carries a second request."""
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
    fleet = Fleet(cfg)
    first = fleet.open("a", 0.0)
    for step in range(1, 5):
        first.feed(step * 0.05, int(40 * MiB * 0.05))
        assert fleet.tick(step * 0.05) == []
    fleet.close("a")  # 8 MiB at 40 MiB/s: its claim was done
    later = fleet.open("a", 0.2, base=8 * MiB)
    t, recycled = 0.2, []
    while not recycled and t < 2.0:
        t = round(t + 0.05, 2)
        later.feed(t, int(2 * MiB * 0.05))  # 2 MiB/s from its first byte
        recycled = fleet.tick(t)
    assert recycled == [("a", Reason.SLOW)] and t <= 0.5
    assert fleet.fresh_each_request and fleet.keepalive_resets is False
    assert fleet.learner.box == cfg.request_bytes  # no burst size was learned from it


def test_a_later_request_with_its_own_burst_is_left_alone() -> None:
    cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
    fleet = Fleet(cfg)
    first = fleet.open("a", 0.0)
    first.feed(0.1, 4 * MiB)
    fleet.tick(0.1)
    fleet.close("a")
    later = fleet.open("a", 0.1, base=4 * MiB)
    for step in range(3, 12):
        later.feed(step * 0.05, 2 * MiB)
        assert fleet.tick(step * 0.05) == []
    assert not fleet.fresh_each_request


def test_connections_held_back_by_our_own_disk_are_not_judged_for_speed() -> None:
    """A slow disk (an fsync the writers wait for) stalls every connection at once: pullman
    did not read, so the server's rate is unknown. No cliff, no slow verdict, no lesson; the
    same stall with the connections being read is a cliff."""

    def run(held: bool) -> tuple[list[tuple[object, Reason]], Fleet]:
        cfg = RecycleConfig(warmup=0.3, rate_window=0.3, slow_grace=0.3, cliff_window=0.1)
        fleet = Fleet(cfg)
        watches = {k: fleet.open(k, 0.0) for k in range(4)}
        recycled: list[tuple[object, Reason]] = []
        t = 0.0
        for _ in range(40):  # 1 s at 40 MiB/s each, then 1 s of nothing
            t = round(t + 0.05, 2)
            for w in watches.values():
                if t <= 1.0:
                    w.feed(t, int(40 * MiB * 0.05))
                elif held:
                    w.hold(1.0)  # from its last byte: it stopped reading
            recycled += fleet.tick(t)
        return recycled, fleet

    recycled, fleet = run(held=True)
    assert recycled == [] and fleet.learner.box == fleet.config.request_bytes
    assert fleet.statistics().recycles == 0
    recycled, _ = run(held=False)
    assert sorted(k for k, _ in recycled) == [0, 1, 2, 3]


def test_a_hold_counts_only_within_the_window() -> None:
    w = Watch(RecycleConfig(rate_window=0.3), now=0.0)
    w.hold(1.0)
    w.release(1.2)
    assert w.held(1.3, 1.0) == pytest.approx(0.2) and w.busy(1.3)
    assert w.held(2.0, 1.7) == 0.0 and not w.busy(2.0)
    w.hold(2.0)
    assert w.held(2.1, 1.8) == pytest.approx(0.1)  # an ongoing hold counts up to now
