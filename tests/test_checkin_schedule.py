"""The night schedule as pure functions: windows across midnight, DST nights in Stockholm, skipped nights."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.checkin.schedule import NightPlan, local_to_utc, parse_hhmm

STHLM = ZoneInfo("Europe/Stockholm")


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def plan(times: list[str], start: str = "22:00", end: str = "06:30") -> NightPlan:
    return NightPlan.parse(start, end, times, "Europe/Stockholm")


def test_ordinary_winter_night_crosses_midnight() -> None:
    p = plan(["23:00", "02:00", "05:00"])
    assert p.slots(date(2026, 1, 10)) == [utc(2026, 1, 10, 22), utc(2026, 1, 11, 1), utc(2026, 1, 11, 4)]
    assert p.window(date(2026, 1, 10)) == (utc(2026, 1, 10, 21), utc(2026, 1, 11, 5, 30))
    assert p.night_at(utc(2026, 1, 11, 3)) == date(2026, 1, 10)  # 04:00 local belongs to the night before
    assert p.night_at(utc(2026, 1, 10, 21)) == date(2026, 1, 10)  # start inclusive
    assert p.night_at(utc(2026, 1, 11, 5, 30)) is None  # end exclusive
    assert p.night_at(utc(2026, 1, 11, 12)) is None


def test_spring_forward_moves_a_missing_time_to_the_end_of_the_gap() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist -> 03:00 CEST = 01:00 UTC.
    assert local_to_utc(date(2026, 3, 29), time(2, 30), STHLM) == utc(2026, 3, 29, 1)
    p = plan(["23:00", "02:30", "05:00"])
    assert p.slots(date(2026, 3, 28)) == [utc(2026, 3, 28, 22), utc(2026, 3, 29, 1), utc(2026, 3, 29, 3)]
    start, end = p.window(date(2026, 3, 28))
    assert end - start == timedelta(hours=7, minutes=30)  # one hour shorter than 8.5 h


def test_spring_forward_two_times_in_the_gap_make_one_checkin() -> None:
    p = plan(["02:15", "02:45", "03:00"])
    assert p.slots(date(2026, 3, 28)) == [utc(2026, 3, 29, 1)]


def test_fall_back_takes_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens at 00:30 UTC and at 01:30 UTC.
    assert local_to_utc(date(2026, 10, 25), time(2, 30), STHLM) == utc(2026, 10, 25, 0, 30)
    p = plan(["23:00", "02:30", "05:00"])
    slots = p.slots(date(2026, 10, 24))
    assert slots == [utc(2026, 10, 24, 21), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4)]
    start, end = p.window(date(2026, 10, 24))
    assert end - start == timedelta(hours=9, minutes=30)  # one hour longer
    # Both 02:30s are inside the night; only the first is a slot.
    assert p.night_at(utc(2026, 10, 25, 1, 30)) == date(2026, 10, 24)


def test_slots_between_leaves_out_skipped_nights_and_spans_days() -> None:
    p = plan(["23:00", "05:00"])
    all_slots = p.slots_between(utc(2026, 1, 10, 12), utc(2026, 1, 12, 12))
    assert [n for n, _ in all_slots] == [date(2026, 1, 10)] * 2 + [date(2026, 1, 11)] * 2
    kept = p.slots_between(utc(2026, 1, 10, 12), utc(2026, 1, 12, 12), skipped=[date(2026, 1, 10)])
    assert kept == [(date(2026, 1, 11), utc(2026, 1, 11, 22)), (date(2026, 1, 11), utc(2026, 1, 12, 4))]
    # Bounds are inclusive: a slot exactly at `end` is due.
    assert p.slots_between(utc(2026, 1, 10, 22), utc(2026, 1, 10, 22)) == [(date(2026, 1, 10), utc(2026, 1, 10, 22))]


def test_window_inside_one_day() -> None:
    p = plan(["01:00"], start="00:30", end="05:00")
    assert not p.crosses_midnight
    assert p.slots(date(2026, 1, 11)) == [utc(2026, 1, 11, 0)]
    assert p.night_at(utc(2026, 1, 11, 0)) == date(2026, 1, 11)


@pytest.mark.parametrize("bad", ["7:00", "24:00", "22:60", "", "noon"])
def test_bad_times_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(bad)


def test_times_outside_the_window_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the window"):
        plan(["12:00"])
    with pytest.raises(ValueError, match="empty"):
        plan(["23:00"], start="22:00", end="22:00")
