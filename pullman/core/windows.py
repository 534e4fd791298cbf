"""Time windows (``--window 01:00-07:00``) and deadlines (``--until 07:00``), in wall-clock time.

Pure: nothing here reads the clock (except :func:`local_now`, for callers); every function is
handed ``now``. A window is a daily span of wall-clock time, ``[start, end)``, that may cross
midnight (``22:00-06:00``), or ``always``. Outside it the scheduler pauses jobs, keeping their
progress, and resumes them at :meth:`Window.next_open`.

Time zones: **wall clock, in the caller's zone.** Functions take and return datetimes in the
zone of the ``now`` they are given:

- **Aware datetimes in a** :class:`zoneinfo.ZoneInfo` **zone** (what :func:`local_now` returns)
  are DST-safe. On the night clocks go forward, a window or deadline at a skipped time (02:30)
  begins the moment the clocks jump; on the night they go back, the repeated hour is inside a
  window on both passes, as a wall clock shows it. Results are real instants (normalised, with
  the right ``fold``). Measure waits with :func:`seconds_until`: Python's ``b - a`` on two
  datetimes of the same zone ignores DST.
- **Naive datetimes** are wall-clock times in a zone without DST changes: plain arithmetic. The
  tests use them for most cases, and aware ones for the DST nights.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pullman.errors import UsageError

_CLOCK = re.compile(r"\s*([01]?\d|2[0-4]):([0-5]\d)\s*")
_WINDOW_HINT = (
    'write HH:MM-HH:MM in local time, e.g. "01:00-07:00" (may cross midnight), or "always"'
)
_SCAN_STEP = timedelta(hours=6)
"""Zone offsets are sampled this often to find DST transitions (they are months apart)."""


@dataclass(frozen=True)
class Window:
    """A daily span of wall-clock time ``[start, end)``; both ``None`` means always open."""

    start: time | None = None
    end: time | None = None

    ALWAYS: ClassVar[Window]

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a window needs both start and end, or neither (always)")
        if self.start is not None and self.start == self.end:
            raise ValueError("a window cannot start and end at the same time")

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"01:00-07:00"``, ``"22:00-06:00"`` (past midnight), ``"00:00-24:00"``, ``"always"``."""
        if text.strip().lower() == "always":
            return cls.ALWAYS
        parts = text.split("-")
        if len(parts) != 2:
            raise UsageError(f"window: {text!r} is not a time window", hint=_WINDOW_HINT)
        start = _clock_time(parts[0], what=f"window {text!r}", hint=_WINDOW_HINT)
        end = _clock_time(parts[1], what=f"window {text!r}", hint=_WINDOW_HINT)
        if start == end:
            if _is_midnight_24(parts[1]) and start == time(0):
                return cls.ALWAYS
            raise UsageError(
                f"window {text!r} starts and ends at the same time",
                hint='for a window that is always open write "always"',
            )
        return cls(start, end)

    @property
    def always(self) -> bool:
        return self.start is None

    def __str__(self) -> str:
        if self.start is None or self.end is None:
            return "always"
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, dt: datetime) -> bool:
        """Whether the wall-clock time of ``dt`` is inside the window."""
        if self.start is None or self.end is None:
            return True
        t = _normal(dt).time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_open(self, dt: datetime) -> datetime:
        """The first moment at or after ``dt`` inside the window (``dt`` itself when open)."""
        dt = _normal(dt)
        if self.start is None or self.contains(dt):
            return dt
        return _first(c for c in _candidates(dt, [self.start]) if self.contains(c))

    def next_close(self, dt: datetime) -> datetime | None:
        """The first moment at or after ``dt`` outside the window; ``None`` if it never closes."""
        dt = _normal(dt)
        if self.end is None:
            return None
        if not self.contains(dt):
            return dt
        return _first(c for c in _candidates(dt, [self.end]) if not self.contains(c))


Window.ALWAYS = Window()


def until_deadline(text: str, now: datetime) -> datetime:
    """When ``--until HH:MM`` stops a run: that time today if still ahead, else tomorrow.

    "Ahead" is strict: ``--until 07:00`` given at 07:00 means 07:00 tomorrow. A time skipped by
    a DST change is reached the moment the clocks jump past it.
    """
    t = _clock_time(
        text,
        what=f"--until {text!r}",
        hint='write a local time as HH:MM, e.g. "07:00"; runs stop there today, or tomorrow',
    )
    now = _normal(now)
    return _first(c for c in _candidates(now, [t]) if _reaches(c, t))


def seconds_until(target: datetime, now: datetime) -> float:
    """Real seconds from ``now`` to ``target`` (across DST changes, for aware datetimes)."""
    return (_key(target) - _key(now)).total_seconds()


def local_zone() -> tzinfo:
    """The local zone with its DST rules: ``$TZ``, else ``/etc/localtime``, else a fixed offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and not name.startswith("/"):
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(name)
    path = Path(name) if name.startswith("/") else Path("/etc/localtime")
    try:
        with path.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        fixed = datetime.now().astimezone().tzinfo
        assert fixed is not None
        return fixed


def local_now() -> datetime:
    """Now, as an aware datetime in :func:`local_zone` (what the scheduler passes here)."""
    return datetime.now(local_zone())


# ---------------------------------------------------------------------------- internals


def _clock_time(text: str, *, what: str, hint: str) -> time:
    m = _CLOCK.fullmatch(text)
    if m is None or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise UsageError(f"{what}: {text.strip()!r} is not a time of day (HH:MM)", hint=hint)
    return time(int(m.group(1)) % 24, int(m.group(2)))


def _is_midnight_24(text: str) -> bool:
    return text.strip().startswith("24")


def _key(dt: datetime) -> datetime:
    """A value that orders datetimes as instants (same-zone aware comparisons ignore DST)."""
    return dt if dt.tzinfo is None else dt.astimezone(UTC)


def _normal(dt: datetime) -> datetime:
    """A real instant: a wall time skipped by DST moves past the jump, ``fold`` is made right."""
    if dt.tzinfo is None:
        return dt
    return dt.astimezone(UTC).astimezone(dt.tzinfo)


def _first(instants: Iterable[datetime]) -> datetime:
    found = list(instants)
    if not found:  # pragma: no cover - the horizon always holds the next day's edge
        raise AssertionError("no window edge within four days")
    return min(found, key=_key)


def _candidates(dt: datetime, times: list[time]) -> Iterator[datetime]:
    """Instants after ``dt`` where being inside a window may change: the wall clock showing one
    of ``times`` (once, or twice in a repeated hour), and every DST jump of the wall clock."""
    after = _key(dt)
    for days in range(-1, 4):
        day = dt.date() + timedelta(days=days)
        for t in times:
            yield from (x for x in _instants(day, t, dt.tzinfo) if _key(x) > after)
    yield from (x for x in _transitions(dt) if _key(x) > after)


def _instants(day: date, t: time, tz: tzinfo | None) -> list[datetime]:
    """The real instants at which the wall clock shows ``t`` on ``day``: 0, 1 or 2 of them."""
    wall = datetime.combine(day, t)
    if tz is None:
        return [wall]
    found: dict[datetime, datetime] = {}
    for fold in (0, 1):
        x = _normal(wall.replace(tzinfo=tz, fold=fold))
        if x.replace(tzinfo=None, fold=0) == wall:  # not a time skipped by a jump
            found[_key(x)] = x
    return list(found.values())


def _transitions(dt: datetime) -> list[datetime]:
    """DST changes (offset jumps) from a day before ``dt`` to four days after it."""
    tz = dt.tzinfo
    if tz is None:
        return []
    out = []
    lo = _key(dt) - timedelta(days=1)
    while lo < _key(dt) + timedelta(days=4):
        hi = lo + _SCAN_STEP
        if _offset(lo.timestamp(), tz) != _offset(hi.timestamp(), tz):
            out.append(_jump_between(lo, hi, tz))
        lo = hi
    return out


def _jump_between(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """The transition: the first whole second in ``(lo, hi]`` whose offset is ``hi``'s."""
    a, b = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    before = _offset(a, tz)
    while b - a > 1:
        mid = (a + b) // 2
        if _offset(mid, tz) == before:
            a = mid
        else:
            b = mid
    return datetime.fromtimestamp(b, tz)


def _offset(timestamp: float, tz: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, tz).utcoffset()


def _reaches(instant: datetime, t: time) -> bool:
    """Whether the wall clock reaches ``t`` at ``instant``: it shows ``t``, or jumps over it."""
    wall = instant.replace(tzinfo=None, fold=0)
    if wall.time() == t:
        return True
    if instant.tzinfo is None:
        return False
    just_before = (_key(instant) - timedelta(seconds=1)).astimezone(instant.tzinfo)
    prev = just_before.replace(tzinfo=None, fold=0)
    return prev.date() == wall.date() and prev.time() < t <= wall.time()
