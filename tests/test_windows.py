"""Time windows and --until deadlines on fixed datetimes: every minute of a day, and DST nights."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullman.core.windows import Window, local_now, local_zone, seconds_until, until_deadline
from pullman.errors import UsageError

DAY = datetime(2024, 5, 14)  # a Tuesday, no DST change anywhere near
WINDOWS = ["01:00-07:00", "22:00-06:00", "00:00-00:30", "23:59-00:01", "12:00-00:00", "05:17-05:18"]


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover - a machine without tzdata
        pytest.skip(f"no tz database entry for {name} (install tzdata)")


def at(hhmm: str, day: datetime = DAY, tz: tzinfo | None = None) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return day.replace(hour=h, minute=m, tzinfo=tz)


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("01:00-07:00", time(1), time(7)),
        ("1:00-7:00", time(1), time(7)),
        (" 22:30 - 06:15 ", time(22, 30), time(6, 15)),
        ("12:00-24:00", time(12), time(0)),
        ("00:00-23:59", time(0), time(23, 59)),
    ],
)
def test_parse(text: str, start: time, end: time) -> None:
    w = Window.parse(text)
    assert (w.start, w.end) == (start, end)
    assert not w.always
    assert Window.parse(str(w)) == w


@pytest.mark.parametrize("text", ["always", "ALWAYS", " Always ", "00:00-24:00"])
def test_parse_always(text: str) -> None:
    w = Window.parse(text)
    assert w.always and w == Window.ALWAYS and str(w) == "always"


@pytest.mark.parametrize(
    "text",
    ["", "never", "01:00", "01:00-", "-07:00", "1-7", "01:00-07:00-09:00", "25:00-01:00",
     "01:60-02:00", "24:30-01:00", "01:00-24:01", "07:00-07:00", "1:2-3:4", "01.00-07.00"],
)  # fmt: skip
def test_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError) as info:
        Window.parse(text)
    assert info.value.hint


def test_window_values_are_checked() -> None:
    with pytest.raises(ValueError, match="both"):
        Window(time(1), None)
    with pytest.raises(ValueError, match="same time"):
        Window(time(1), time(1))


# ---------------------------------------------------------------------------- naive wall clock


def test_contains_start_inclusive_end_exclusive() -> None:
    w = Window.parse("01:00-07:00")
    assert not w.contains(at("00:59"))
    assert w.contains(at("01:00"))
    assert w.contains(at("06:59").replace(second=59, microsecond=999_999))
    assert not w.contains(at("07:00"))


def test_contains_across_midnight() -> None:
    w = Window.parse("22:00-06:00")
    assert [w.contains(at(t)) for t in ("21:59", "22:00", "23:59", "00:00", "05:59", "06:00")] == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]


def test_next_open_and_close_same_day_and_next_day() -> None:
    w = Window.parse("01:00-07:00")
    assert w.next_open(at("00:30")) == at("01:00")
    assert w.next_open(at("03:00")) == at("03:00")  # already open
    assert w.next_open(at("07:00")) == at("01:00", DAY + timedelta(days=1))
    assert w.next_close(at("03:00")) == at("07:00")
    assert w.next_close(at("08:00")) == at("08:00")  # already closed


def test_across_midnight_next_edges() -> None:
    w = Window.parse("22:00-06:00")
    assert w.next_open(at("12:00")) == at("22:00")
    assert w.next_close(at("23:00")) == at("06:00", DAY + timedelta(days=1))
    assert w.next_close(at("01:00")) == at("06:00")


def test_always_never_closes() -> None:
    assert Window.ALWAYS.contains(at("13:37"))
    assert Window.ALWAYS.next_open(at("13:37")) == at("13:37")
    assert Window.ALWAYS.next_close(at("13:37")) is None


@pytest.mark.parametrize("text", WINDOWS)
def test_every_minute_of_a_day_against_brute_force(text: str) -> None:
    """next_open / next_close agree with stepping the clock minute by minute."""
    w = Window.parse(text)
    minutes = [DAY + timedelta(minutes=i) for i in range(3 * 24 * 60)]
    inside = [w.contains(m) for m in minutes]
    next_in: list[int | None] = [None] * len(minutes)
    next_out: list[int | None] = [None] * len(minutes)
    seen_in = seen_out = None
    for i in range(len(minutes) - 1, -1, -1):
        if inside[i]:
            seen_in = i
        else:
            seen_out = i
        next_in[i], next_out[i] = seen_in, seen_out
    for i in range(24 * 60):
        opens, closes = next_in[i], next_out[i]
        assert opens is not None and closes is not None
        assert w.next_open(minutes[i]) == minutes[opens]
        assert w.next_close(minutes[i]) == minutes[closes]


@settings(max_examples=300, deadline=None)
@given(
    dt=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    start=st.times(),
    length=st.integers(1, 24 * 60 - 1),
)
def test_edges_are_first_moments(dt: datetime, start: time, length: int) -> None:
    start = start.replace(second=0, microsecond=0)
    end = (datetime.combine(DAY, start) + timedelta(minutes=length)).time()
    w = Window(start, end)
    tick = timedelta(microseconds=1)
    opens = w.next_open(dt)
    assert opens >= dt and w.contains(opens)
    assert opens == dt or not w.contains(opens - tick)
    assert opens - dt < timedelta(days=1)
    closes = w.next_close(dt)
    assert closes is not None and closes >= dt and not w.contains(closes)
    assert closes == dt or w.contains(closes - tick)


# ---------------------------------------------------------------------------- DST, aware


def test_spring_forward_window_opening_at_a_skipped_time_opens_at_the_jump() -> None:
    ny = zone("America/New_York")  # 2024-03-10 02:00 EST -> 03:00 EDT
    w = Window.parse("02:30-04:00")
    opens = w.next_open(at("00:00", datetime(2024, 3, 10), ny))
    assert opens.astimezone(UTC) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert w.contains(opens)
    assert w.next_close(opens) == datetime(2024, 3, 10, 4, 0, tzinfo=ny)
    assert seconds_until(w.next_close(opens) or opens, opens) == 3600


def test_spring_forward_night_is_an_hour_shorter() -> None:
    ny = zone("America/New_York")
    w = Window.parse("01:00-07:00")
    opens = w.next_open(at("00:00", datetime(2024, 3, 10), ny))
    closes = w.next_close(opens)
    assert opens == datetime(2024, 3, 10, 1, 0, tzinfo=ny)
    assert closes == datetime(2024, 3, 10, 7, 0, tzinfo=ny)
    assert seconds_until(closes, opens) == 5 * 3600


def test_a_window_inside_the_skipped_hour_waits_a_day() -> None:
    ny = zone("America/New_York")
    w = Window.parse("02:10-02:20")
    opens = w.next_open(at("00:00", datetime(2024, 3, 10), ny))
    assert opens == datetime(2024, 3, 11, 2, 10, tzinfo=ny)


def test_fall_back_repeated_hour_is_inside_on_both_passes() -> None:
    ny = zone("America/New_York")  # 2024-11-03 02:00 EDT -> 01:00 EST
    w = Window.parse("01:00-01:30")
    first = w.next_open(at("00:00", datetime(2024, 11, 3), ny))
    first_close = w.next_close(first)
    assert first_close is not None
    second = w.next_open(first_close)
    second_close = w.next_close(second)
    assert second_close is not None
    utc = [x.astimezone(UTC).strftime("%H:%M") for x in (first, first_close, second, second_close)]
    assert utc == ["05:00", "05:30", "06:00", "06:30"]
    assert (first.fold, second.fold) == (0, 1)
    assert seconds_until(second_close, first) == 90 * 60


def test_fall_back_night_is_an_hour_longer() -> None:
    berlin = zone("Europe/Berlin")  # 2024-10-27 03:00 CEST -> 02:00 CET
    w = Window.parse("22:00-06:00")
    opens = w.next_open(at("21:00", datetime(2024, 10, 26), berlin))
    closes = w.next_close(opens)
    assert closes == datetime(2024, 10, 27, 6, 0, tzinfo=berlin)
    assert seconds_until(closes, opens) == 9 * 3600


def test_half_hour_dst_zone() -> None:
    lord_howe = zone("Australia/Lord_Howe")  # 2024-10-06 02:00 -> 02:30 (+10:30 -> +11)
    w = Window.parse("02:00-02:15")
    opens = w.next_open(at("01:00", datetime(2024, 10, 6), lord_howe))
    assert opens == datetime(2024, 10, 7, 2, 0, tzinfo=lord_howe)
    w = Window.parse("02:10-03:00")
    opens = w.next_open(at("01:00", datetime(2024, 10, 6), lord_howe))
    assert opens.astimezone(UTC) == datetime(2024, 10, 5, 15, 30, tzinfo=UTC)  # the jump
    assert opens.strftime("%H:%M") == "02:30"


def test_nonexistent_input_time_is_read_past_the_jump() -> None:
    ny = zone("America/New_York")
    skipped = datetime(2024, 3, 10, 2, 30, tzinfo=ny)  # no such wall time
    w = Window.parse("03:15-04:00")
    assert w.contains(skipped)  # the clocks jumped: it is 03:30 EDT
    assert w.next_open(skipped) == datetime(2024, 3, 10, 3, 30, tzinfo=ny)
    assert w.next_close(skipped) == datetime(2024, 3, 10, 4, 0, tzinfo=ny)


@settings(max_examples=150, deadline=None)
@given(
    offset=st.integers(0, 10 * 24 * 60),
    start=st.times(),
    length=st.integers(1, 24 * 60 - 1),
    name=st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]),
    base=st.sampled_from([datetime(2024, 3, 5), datetime(2024, 10, 1), datetime(2024, 10, 29)]),
)
def test_aware_edges_match_minute_stepping(
    offset: int, start: time, length: int, name: str, base: datetime
) -> None:
    """Across DST nights, stepping real minutes from ``dt`` meets no open minute before
    next_open, and no closed minute before next_close."""
    tz = zone(name)
    start = start.replace(second=0, microsecond=0)
    end = (datetime.combine(DAY, start) + timedelta(minutes=length)).time()
    w = Window(start, end)
    dt = (base.replace(tzinfo=UTC) + timedelta(minutes=offset)).astimezone(tz)
    for edge, want in ((w.next_open(dt), True), (w.next_close(dt), False)):
        assert edge is not None and w.contains(edge) is want
        step = dt.astimezone(UTC)
        while step < edge.astimezone(UTC):
            assert w.contains(step.astimezone(tz)) is not want
            step += timedelta(minutes=1)


# ---------------------------------------------------------------------------- --until


def test_until_today_when_ahead_else_tomorrow() -> None:
    assert until_deadline("07:00", at("01:00")) == at("07:00")
    assert until_deadline("7:00", at("06:59")) == at("07:00")
    assert until_deadline("07:00", at("07:00")) == at("07:00", DAY + timedelta(days=1))
    assert until_deadline("07:00", at("08:00")) == at("07:00", DAY + timedelta(days=1))
    assert until_deadline("24:00", at("23:00")) == at("00:00", DAY + timedelta(days=1))
    assert until_deadline("00:00", at("00:00")) == at("00:00", DAY + timedelta(days=1))


def test_until_across_dst() -> None:
    ny = zone("America/New_York")
    start = datetime(2024, 3, 9, 23, 0, tzinfo=ny)
    deadline = until_deadline("07:00", start)
    assert deadline == datetime(2024, 3, 10, 7, 0, tzinfo=ny)
    assert seconds_until(deadline, start) == 7 * 3600
    skipped = until_deadline("02:30", datetime(2024, 3, 10, 1, 0, tzinfo=ny))
    assert skipped.astimezone(UTC) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # the jump


@pytest.mark.parametrize(
    "text", ["", "7", "07:60", "25:00", "24:01", "7am", "07:00:00", "tomorrow"]
)
def test_until_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--until") as info:
        until_deadline(text, at("01:00"))
    assert info.value.hint and "07:00" in info.value.hint


def test_seconds_until_naive() -> None:
    assert seconds_until(at("07:00"), at("01:00")) == 6 * 3600
    assert seconds_until(at("01:00"), at("07:00")) == -6 * 3600


def test_local_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    zone("Europe/Berlin")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert local_zone() == ZoneInfo("Europe/Berlin")
    monkeypatch.setenv("TZ", ":America/New_York")
    assert local_zone() == ZoneInfo("America/New_York")
    monkeypatch.setenv("TZ", "Not/AZone")
    assert local_zone() is not None
    now = local_now()
    assert now.tzinfo is not None and now.utcoffset() is not None
