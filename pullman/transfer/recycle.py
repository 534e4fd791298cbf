"""pull → stop → sleep, as a sans-IO policy.

CDNs shape each connection: a burst at full speed, then a crawl. A fresh connection bursts again.
So every connection is watched, and stopped ("recycled") and reopened after a short pause when:

- **stall**: fewer than ``min_rate`` bytes/s arrived over the last ``stall_timeout`` seconds
  (zero bytes, or a drip of a few bytes a second that never trips a socket timeout);
- **time box**: it has been open ``request_seconds``;
- **byte box**: it has moved as many bytes as the CDN's burst allows. The box is *learned*: when
  connections slow down after about the same number of bytes, later ones are recycled just before
  that point, so they never enter the crawl (see :class:`BurstLearner`);
- **slow**: its rate over ``rate_window`` stayed below ``burst_floor`` x its own peak, or below
  ``sibling_floor`` x the median of its siblings, for ``slow_grace`` seconds;
- **cliff** (slow, at once): several connections fell off a cliff together (their rate over the
  last ``cliff_window`` below ``cliff_floor`` x their peak) after the same number of bytes.
  That is a throttle's burst running out, not congestion (which strikes at random byte counts),
  so they are recycled without the grace, and the burst is learned from them: the first wave of
  a download from a host nobody has taught us about crawls for a tick, not for the grace.

A recycle is not a failure: it does not spend the retry budget. Nothing here sleeps or reads a
clock: callers feed ``(now, bytes)`` samples and ask for verdicts. The engine owns the timing.
"""

from __future__ import annotations

import bisect
import statistics as stats
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from pullman.core.hosts import HostLessons

MiB = 1 << 20


@dataclass(frozen=True)
class RecycleConfig:
    stall_timeout: float = 15.0
    """Seconds over which a connection must move at least ``min_rate`` bytes/s."""
    min_rate: float = 1024.0
    """Absolute floor in bytes/s, judged over ``stall_timeout`` (catches drips)."""
    request_seconds: float = 60.0
    """The time box: no connection stays open longer than this."""
    request_bytes: int = 512 * MiB
    """The byte box to start from, and the largest it can grow to."""
    min_request_bytes: int = 1 * MiB
    """The learned byte box never shrinks below this."""
    rate_window: float = 0.3
    """Seconds over which a connection's current rate is measured."""
    warmup: float = 0.3
    """A connection younger than this is never judged slow (TCP slow start)."""
    burst_floor: float = 0.3
    """Slow if below this share of the connection's own peak rate..."""
    sibling_floor: float = 0.25
    """...or below this share of the median rate of its siblings..."""
    slow_grace: float = 0.3
    """...for this many seconds."""
    cliff_window: float = 0.1
    """Seconds over which a fall off a cliff is measured..."""
    cliff_floor: float = 0.25
    """...to below this share of the connection's peak rate."""
    pause: float = 0.05
    """Seconds to sleep between stopping a connection and opening the next one."""
    learn: bool = True
    """Learn the CDN's burst size and recycle connections just before it."""

    def __post_init__(self) -> None:
        for name in (
            "stall_timeout",
            "request_seconds",
            "rate_window",
            "slow_grace",
            "cliff_window",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("min_rate", "warmup", "burst_floor", "sibling_floor", "pause", "cliff_floor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 1 <= self.min_request_bytes <= self.request_bytes:
            raise ValueError("need 1 <= min_request_bytes <= request_bytes")


class Reason(Enum):
    STALL = "stall"
    TIME_BOX = "time box"
    BYTE_BOX = "byte box"
    SLOW = "slow"


class Verdict(NamedTuple):
    recycle: bool
    reason: Reason | None = None


CONTINUE = Verdict(False)


class BurstLearner:
    """Learns how many bytes a connection gets before the CDN slows it down.

    Each slow-down observed at ``b`` bytes sets the box to a safety share of their median, once
    the last ``quorum`` observations agree within ``spread`` of it: a throttle slows every
    connection at the same byte count, while congestion (a busy link, a busy CPU) slows them at
    random points, which must not shrink the box. After ``probe_after`` connections in a row
    reached the box without slowing down, *one* connection (the prober) tries a box ``growth``
    times larger: if it reaches it at full speed, that is the box; if it slows down, the box
    stays. So a CDN that relaxes is noticed, and a box that already sits just under the burst
    costs one connection's crawl to re-check, not every connection's.
    """

    def __init__(
        self,
        config: RecycleConfig,
        *,
        safety: float = 0.85,
        probe_after: int = 16,
        growth: float = 1.15,
        memory: int = 5,
        quorum: int = 3,
        spread: float = 0.2,
    ) -> None:
        self._config = config
        self._safety = safety
        self._probe_after = probe_after
        self._growth = growth
        self._observed: deque[int] = deque(maxlen=memory)
        self._quorum = quorum
        self._spread = spread
        self._clean_streak = 0
        self.box = config.request_bytes
        """The box every connection uses (the prober excepted)."""
        self.trial: int | None = None
        """A larger box to try, once a prober takes it."""
        self.prober: Hashable | None = None

    def forget(self) -> None:
        """Back to no box at all (recycling does not pay off: there is no burst to learn)."""
        self.box = self._config.request_bytes
        self.trial = self.prober = None
        self._observed.clear()

    def box_for(self, key: Hashable) -> int:
        """The box for ``key``'s next request: the trial box if ``key`` is (or becomes) the
        prober, else :attr:`box`."""
        if self.trial is not None and self.prober in (None, key):
            self.prober = key
            return self.trial
        return self.box

    def current_box(self, key: Hashable) -> int:
        """The box ``key`` is held to now (no side effect)."""
        return self.trial if self.trial is not None and self.prober == key else self.box

    def left(self, key: Hashable) -> None:
        """``key``'s connection closed before its trial said anything: another may try."""
        if self.prober == key:
            self.prober = None

    def slowed_at(self, nbytes: int, key: Hashable | None = None) -> None:
        if not self._config.learn:
            return
        if key is not None and key == self.prober:
            self.trial = self.prober = None  # the larger box is too large: keep the box
        self._observed.append(nbytes)
        self._clean_streak = 0
        recent = list(self._observed)[-self._quorum :]
        if len(recent) < self._quorum:
            return
        middle = stats.median(recent)
        if middle > 0 and all(abs(b - middle) <= self._spread * middle for b in recent):
            self.box = self.clamp(int(self._safety * middle))

    def agreeing(self, points: dict[Hashable, int]) -> dict[Hashable, int]:
        """The largest set of ``points`` within ``spread`` of their median, if it makes a quorum
        (several connections slowing at one byte count), else nothing."""
        if len(points) < self._quorum:
            return {}
        middle = stats.median(points.values())
        near = {k: b for k, b in points.items() if abs(b - middle) <= self._spread * middle}
        return near if middle > 0 and len(near) >= self._quorum else {}

    def box_reached(self, key: Hashable | None = None) -> None:
        if not self._config.learn:
            return
        if key is not None and key == self.prober and self.trial is not None:
            self.box, self.trial, self.prober = self.trial, None, None  # the trial ran clean
            self._clean_streak = 0
            return
        self._clean_streak += 1
        if self._clean_streak >= self._probe_after and self.trial is None:
            self._clean_streak = 0
            grown = self.clamp(int(self.box * self._growth))
            self.trial = grown if grown > self.box else None

    def clamp(self, value: int) -> int:
        return max(self._config.min_request_bytes, min(self._config.request_bytes, value))


class Watch:
    """The state of one connection, from open to recycle."""

    def __init__(self, config: RecycleConfig, now: float, base: int = 0) -> None:
        self._config = config
        self.opened = now
        self.base = base
        """Bytes the connection moved in earlier requests (counted against the byte box)."""
        self.bytes = 0
        self.peak = 0.0
        self._times: list[float] = [now]
        self._totals: list[int] = [0]
        self._slow_since: float | None = None
        self._bytes_at_slow: int = 0
        self._last_rate = 0.0
        self.replaces: float | None = None
        """The rate of the slow connection this one replaced (a recycle to be judged)."""
        self.reused = False
        """This request is not the first on its TCP connection (a keep-alive request)."""
        self.inherited = 0.0
        """For a later request on a connection: the peak rate of its earlier requests."""
        self._holds: list[tuple[float, float]] = []
        """Spans when pullman itself did not read (its disk or its journal kept it waiting)."""
        self._held_from: float | None = None

    def hold(self, now: float) -> None:
        """pullman stops reading this connection for a while (see :meth:`busy`)."""
        if self._held_from is None:
            self._held_from = now

    def release(self, now: float) -> None:
        if self._held_from is not None:
            self._holds.append((self._held_from, now))
            self._held_from = None
            if len(self._holds) > 256:
                del self._holds[:128]

    def held(self, now: float, since: float) -> float:
        """Seconds between ``since`` and ``now`` that pullman held this connection."""
        total = now - max(since, self._held_from) if self._held_from is not None else 0.0
        for start, end in reversed(self._holds):
            if end <= since:
                break
            total += min(end, now) - max(start, since)
        return max(0.0, total)

    def busy(self, now: float) -> bool:
        """Whether pullman itself held this connection back for a good share of the last rate
        window (a slow disk, an fsync the writers wait for): its rate then says nothing about
        the server, and it is not judged for speed. A throttle slows a connection that is
        being read; a slow disk stalls every connection at once, and recycling them only costs
        handshakes and, misread as a throttle, teaches the wrong lesson."""
        window = self._config.rate_window
        return self.held(now, now - window) >= HELD_SHARE * window

    def feed(self, now: float, nbytes: int) -> None:
        """Record ``nbytes`` that arrived at ``now``."""
        self.bytes += nbytes
        if len(self._times) > 1 and now - self._times[-1] < 0.01:
            self._totals[-1] = self.bytes  # coalesce bursts of small reads into one sample
            return
        self._times.append(now)
        self._totals.append(self.bytes)
        if len(self._times) > 4096:
            horizon = now - max(self._config.stall_timeout, self._config.rate_window) - 1.0
            cut = max(0, bisect.bisect_left(self._times, horizon) - 1)
            del self._times[:cut], self._totals[:cut]

    def rate(self, now: float, window: float | None = None) -> float:
        """Bytes per second over the last ``window`` seconds (or the connection's age)."""
        window = self._config.rate_window if window is None else window
        span = min(window, now - self.opened)
        if span <= 0:
            return 0.0
        return (self.bytes - self._bytes_at(now - span)) / span

    def age(self, now: float) -> float:
        return now - self.opened

    def verdict(
        self, now: float, siblings: Iterable[float], box: int, *, judge_speed: bool = True
    ) -> Verdict:
        cfg = self._config
        age = now - self.opened
        if age >= cfg.stall_timeout:
            moved = self.bytes - self._bytes_at(now - cfg.stall_timeout)
            if moved < max(1.0, cfg.min_rate * cfg.stall_timeout):
                return Verdict(True, Reason.STALL)
        if age >= cfg.request_seconds:
            return Verdict(True, Reason.TIME_BOX)
        if cfg.learn and self.base + self.bytes > box:  # a request sized to the box ends there
            return Verdict(True, Reason.BYTE_BOX)
        if judge_speed and self._is_slow(now, age, list(siblings)):
            if self._slow_since is None:
                self._slow_since = now
                self._bytes_at_slow = self._last_fast_point(now)
            elif now - self._slow_since >= cfg.slow_grace:
                return Verdict(True, Reason.SLOW)
        else:
            self._slow_since = None
        return CONTINUE

    def cliff_point(self, now: float) -> int | None:
        """If the connection just fell off a cliff (see the module's docstring), the bytes it
        had moved when it last ran at burst speed; else None."""
        cfg = self._config
        window = cfg.cliff_window
        if self.peak <= 0 or now - self.opened < 2 * window:
            return None
        if self.rate(now, window) >= cfg.cliff_floor * self.peak:
            return None
        point = self._last_fast_point(now)
        return self.base + point if self.base + point >= cfg.min_request_bytes else None

    def no_burst(self, now: float) -> bool:
        """A later request on its connection that has run far below the connection's earlier
        peak since its first byte (``cliff_floor`` of it, over at least two cliff windows):
        the server gives this request no burst. Timed from the first byte, not from the
        request, so a long round trip is not taken for slowness."""
        if self.inherited <= 0 or len(self._times) < 2:
            return False
        first = self._times[1]
        span = now - first
        if span < 2 * self._config.cliff_window or self.held(now, first) >= HELD_SHARE * span:
            return False
        return (self.bytes - self._totals[1]) / span < self._config.cliff_floor * self.inherited

    def fell(self, now: float, point: int) -> None:
        """Take the cliff at ``point`` bytes as the start of this connection's slow spell."""
        self._slow_since = now
        self._bytes_at_slow = point - self.base

    @property
    def slowing(self) -> bool:
        """Whether a slow spell has begun (the grace period may not be over)."""
        return self._slow_since is not None

    @property
    def current_rate(self) -> float:
        """The rate over the last window, as of the last verdict."""
        return self._last_rate

    @property
    def bytes_when_slowed(self) -> int:
        """Bytes the connection had moved when its current slow spell began."""
        return self.base + self._bytes_at_slow

    def _is_slow(self, now: float, age: float, siblings: list[float]) -> bool:
        cfg = self._config
        current = self.rate(now)
        self._last_rate = current
        self.peak = max(self.peak, current)
        if age < cfg.warmup:
            return False
        if current < cfg.burst_floor * self.peak:
            return True
        return bool(siblings) and current < cfg.sibling_floor * stats.median(siblings)

    def _last_fast_point(self, now: float) -> int:
        """Bytes moved when the connection last ran at burst speed (where the crawl began)."""
        floor = self._config.burst_floor * self.peak
        horizon = now - 2 * self._config.rate_window
        for i in range(len(self._times) - 1, 0, -1):
            t0, t1 = self._times[i - 1], self._times[i]
            if t1 < horizon:
                break
            if t1 > t0 and (self._totals[i] - self._totals[i - 1]) / (t1 - t0) >= floor:
                return self._totals[i]
        return self._bytes_at(now - self._config.rate_window)

    def _bytes_at(self, t: float) -> int:
        """Cumulative bytes at time ``t`` (the latest sample at or before it)."""
        i = bisect.bisect_right(self._times, t) - 1
        return self._totals[i] if i >= 0 else 0


class FleetStats(NamedTuple):
    connections: int
    recycles: int
    by_reason: dict[str, int]
    box: int
    futile: bool = False
    """Recycling slow connections stopped paying off: they are no longer recycled for speed."""


CLIFF_NEAR_BOX = 0.9
"""A prober's lone cliff counts (no quorum needed) if it came past this share of the box."""

FRUITFUL = 2.0
"""A recycle paid off if the fresh connection's mean rate since it opened, once warmed up, was
at least this many times its predecessor's last rate (a CDN's fresh burst is tens of times the
crawl; under an aggregate cap a fresh connection only gets its share)."""
HELD_SHARE = 0.2
"""A connection that pullman held (did not read) for this share of a window is not judged for
speed over it (see :meth:`Watch.busy`)."""
FUTILE_IN_A_ROW = 3
"""Recycles in a row that did not pay off before speed recycling stops for the download (an
aggregate cap: every connection gets its share, old or new; a fresh one only costs a handshake,
and a recycle storm costs the user's router)."""


class Fleet:
    """The watches of every connection of one download, judged together on each tick."""

    def __init__(self, config: RecycleConfig) -> None:
        self.config = config
        self.learner = BurstLearner(config)
        self._watches: dict[Hashable, Watch] = {}
        self._recycles: dict[str, int] = {}
        self._replaced: dict[Hashable, float] = {}
        """Key -> the rate its connection crawled at when it was recycled for being slow."""
        self._futile = 0
        self._last_peak: dict[Hashable, float] = {}
        """Key -> the peak rate its connection's requests reached (for kept-alive requests)."""
        self.speed_recycling = True
        """Whether slow connections are still recycled (False once it stopped paying off)."""
        self._probing: Hashable | None = None
        """The connection trying a kept-alive request while ``keepalive_resets`` is unknown."""
        self.fresh_each_request = False
        """Whether only a connection's first request gets a burst (nginx's
        ``limit_rate_after`` keyed on ``$connection_requests``): then no connection carries a
        second request."""
        self.keepalive_resets: bool | None = None
        """Whether a new request on a kept-alive connection gets a fresh burst (nginx's
        ``limit_rate_after`` counts per request): then a connection that spent its byte box
        carries the next request instead of being replaced. None: not known yet (tried)."""

    def open(self, key: Hashable, now: float, base: int = 0, *, reused: bool = False) -> Watch:
        watch = Watch(self.config, now, base)
        watch.reused = reused
        if reused or base > 0:  # judged against the burst its connection had: a later
            watch.peak = watch.inherited = self._last_peak.get(key, 0.0)  # request that runs
            # far slower got no new burst
        if base == 0 and not reused:  # a fresh connection: if it replaced a slow one, judge that
            watch.replaces = self._replaced.pop(key, None)
        self._watches[key] = watch
        return watch

    def reuse_at_box(self, key: Hashable) -> bool:
        """Whether ``key``'s connection, having spent its byte box, should carry the next
        request. While that is not known, one connection at a time tries (finding out costs
        one crawling request, not one per connection); the others are replaced as before."""
        if not self.config.learn or self.keepalive_resets is False:
            return False
        if self.keepalive_resets or self._probing in (None, key):
            self._probing = None if self.keepalive_resets else key
            return True
        return False

    def close(self, key: Hashable) -> None:
        """A request ended on its own."""
        watch = self._watches.pop(key, None)
        if watch is None:
            return
        later = watch.reused or watch.base > 0
        self._last_peak[key] = max(watch.peak, self._last_peak.get(key, 0.0) if later else 0)
        if watch.reused and not watch.slowing and watch.bytes:
            self.keepalive_resets = True  # a keep-alive request ran at full speed to its end
        if watch.reused and self._probing == key:
            self._probing = None  # its try is over, whatever it showed: another may try

    def at_box(self, key: Hashable, *, clean: bool) -> bool:
        """``key``'s connection spent its byte box on whole requests: whether it carries the
        next request (see :meth:`reuse_at_box`); if not, it is recycled (and counted so). A
        clean run lets the learner try a larger box."""
        if clean:
            self.learner.box_reached(key)
        else:
            self.learner.left(key)
        if clean and self.reuse_at_box(key):
            return True
        reason = Reason.BYTE_BOX.value
        self._recycles[reason] = self._recycles.get(reason, 0) + 1
        return False

    def tick(self, now: float, *, judge_speed: bool = True) -> list[tuple[Hashable, Reason]]:
        """Judge every connection; return those to recycle now, with why.

        ``judge_speed=False`` (a bandwidth cap is in force) judges stalls and time boxes only.
        """
        rates = {
            key: w.rate(now) for key, w in self._watches.items() if w.age(now) >= self.config.warmup
        }
        self._judge_recycles(now)
        judge_speed = judge_speed and self.speed_recycling
        busy = {key for key, w in self._watches.items() if w.busy(now)}
        doomed: list[tuple[Hashable, Reason]] = []
        # Cliffs first: the burst they teach holds the others to the new box in this tick.
        for key, point in (self._cliffs(now, busy) if judge_speed else {}).items():
            self._watches[key].fell(now, point)
            self._doom(key, Reason.SLOW, doomed)
        for key, watch in list(self._watches.items()):
            if judge_speed and key not in busy and watch.no_burst(now):
                watch.fell(now, watch.base)
                self._doom(key, Reason.SLOW, doomed)
        for key, watch in list(self._watches.items()):
            siblings = [r for k, r in rates.items() if k != key]
            box = self.learner.current_box(key)
            verdict = watch.verdict(now, siblings, box, judge_speed=judge_speed and key not in busy)
            if verdict.recycle and verdict.reason is not None:
                self._doom(key, verdict.reason, doomed)
        return doomed

    def _doom(self, key: Hashable, reason: Reason, doomed: list[tuple[Hashable, Reason]]) -> None:
        if self._probing == key:
            self._probing = None
        self._note(key, self._watches.pop(key), reason)
        doomed.append((key, reason))

    def count(self, reason: Reason) -> None:
        """A recycle the engine did between requests (at a box, or one request per connection)."""
        self._recycles[reason.value] = self._recycles.get(reason.value, 0) + 1

    def _cliffs(self, now: float, busy: set[Hashable]) -> dict[Hashable, int]:
        """Connections that fell off a cliff together, at one byte count: key -> that count."""
        # The quorum counts first requests on fresh connections only: a burst is counted from a
        # connection's first byte, and later requests (small pieces, kept-alive connections)
        # start part-way into whatever their connection was allowed.
        found = {
            k: w.cliff_point(now)
            for k, w in self._watches.items()
            if ((w.base == 0 and not w.reused) or k == self.learner.prober) and k not in busy
        }
        points = {k: p for k, p in found.items() if p is not None}
        prober = self.learner.prober
        cliffs = dict(self.learner.agreeing({k: p for k, p in points.items() if k != prober}))
        if prober in points and points[prober] >= CLIFF_NEAR_BOX * self.learner.box:
            cliffs[prober] = points[prober]  # trying a larger box, it fell just past the box
        return cliffs

    def teach(self, lessons: HostLessons) -> None:
        """Start from what an earlier download from this host learned."""
        if lessons.box is not None and self.config.learn:
            self.learner.box = self.learner.clamp(lessons.box)
        self.keepalive_resets = lessons.keepalive_resets
        self.speed_recycling = not lessons.futile
        self.fresh_each_request = lessons.first_only

    def lessons(self) -> HostLessons:
        """What this download learned (or was taught) about the host."""
        box = self.learner.box
        return HostLessons(
            box=box if box < self.config.request_bytes else None,
            keepalive_resets=self.keepalive_resets,
            futile=not self.speed_recycling,
            first_only=self.fresh_each_request,
        )

    def statistics(self) -> FleetStats:
        return FleetStats(
            connections=len(self._watches),
            recycles=sum(self._recycles.values()),
            by_reason=dict(self._recycles),
            box=self.learner.box,
            futile=not self.speed_recycling,
        )

    def _judge_recycles(self, now: float) -> None:
        """Did the fresh connections that replaced slow ones run faster than those did?"""
        settled = self.config.warmup + self.config.rate_window
        for watch in self._watches.values():
            if watch.replaces is None or watch.age(now) < settled:
                continue
            if watch.bytes / watch.age(now) >= FRUITFUL * watch.replaces:  # mean since open
                self._futile = 0
            else:
                self._futile += 1
                if self._futile >= FUTILE_IN_A_ROW:
                    self.speed_recycling = False
                    self.learner.forget()  # what looked like a burst was a share of a cap
            watch.replaces = None

    def _no_burst_after_first(self, watch: Watch) -> bool:
        early = watch.bytes_when_slowed - watch.base < self.config.min_request_bytes
        return early and watch.base > 0 and not watch.reused and watch.base < self.learner.box

    def _note(self, key: Hashable, watch: Watch, reason: Reason) -> None:
        self._recycles[reason.value] = self._recycles.get(reason.value, 0) + 1
        if reason is Reason.SLOW:
            self._replaced[key] = watch.current_rate
        if reason is Reason.SLOW and self._no_burst_after_first(watch):
            # A later request on a connection that had not spent its box crawled from its first
            # bytes: only a connection's first request gets a burst here. Every request then
            # goes on a fresh connection (and this teaches nothing about the burst's size).
            self.fresh_each_request = True
            self.keepalive_resets = False
        elif reason is Reason.SLOW and watch.reused:
            # Slow on a kept-alive connection: the throttle counts per connection, not per
            # request. That says nothing about the burst size; stop reusing at the box.
            if watch.bytes_when_slowed - watch.base < self.learner.box // 2:
                self.keepalive_resets = False
        elif reason is Reason.SLOW:
            # Where the slow-down began. Crawling or silent for the moment alike: nginx sends
            # a throttled response in one-second ticks, so a 0.3 s window after the burst often
            # holds nothing. Several connections slowing at the same byte count is the
            # throttle; a stall or congestion strikes at random points, which the learner's
            # quorum does not take for a burst size.
            self.learner.slowed_at(watch.bytes_when_slowed, key)
        elif reason is Reason.BYTE_BOX and not watch.slowing:
            # A box reached at full speed is a clean run (one reached during a slow spell that
            # was not yet confirmed teaches nothing either way).
            self.learner.box_reached(key)
        self.learner.left(key)  # a trial ends with its connection, whatever it showed
