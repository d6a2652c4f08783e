"""Night windows and check-in times: pure functions, UTC inside, local wall-clock time at the edges.

A consent names a night window (e.g. 22:00-06:30) and check-in times (e.g. 23:00, 02:00, 05:00) in local
time (``Europe/Stockholm`` by default). A *night* is named by the local date on which its window starts: the
night of 2026-03-28 runs from 22:00 on the 28th to 06:30 on the 29th. A window whose end is not after its
start crosses midnight; a time earlier than the window's start belongs to the next calendar day.

Daylight saving time (the rules, tested in tests/test_checkin_schedule.py):

- A local time that does not exist (spring forward: 02:00-03:00 on the last Sunday of March in Stockholm)
  is moved to the first moment after the gap: an agreed 02:30 becomes 03:00 (CEST) that night. Two agreed
  times that land on the same instant make one check-in.
- A local time that happens twice (fall back: 02:00-03:00 on the last Sunday of October) is taken once, at its
  first occurrence (still summer time): an agreed 02:30 is 00:30 UTC, not 01:30 UTC.
- Window edges follow the same two rules, so a window is as long in wall-clock terms as agreed, and one hour
  shorter (spring) or longer (autumn) in real time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_hhmm(value: str) -> time:
    """``"22:00"`` -> ``time(22, 0)``; anything else (``"7:00"``, ``"24:00"``) is refused."""
    m = _HHMM.match(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a local time HH:MM (00:00-23:59)")
    return time(int(m.group(1)), int(m.group(2)))


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time, with the DST rules of this module's docstring."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=tz, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) == naive:
        return as_utc  # exists (once, or twice: fold=0 is the first occurrence)
    # Does not exist (a spring-forward gap): the first moment after the gap. The gap starts where the
    # wall clock jumps; find the UTC instant at which the offset changes, between the two readings.
    offset_before = first.utcoffset()
    offset_after = naive.replace(tzinfo=tz, fold=1).utcoffset()
    assert offset_before is not None and offset_after is not None
    lo = (naive - offset_before).replace(tzinfo=UTC) - timedelta(hours=3)
    hi = (naive - offset_after).replace(tzinfo=UTC) + timedelta(hours=3)
    start_offset = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):  # binary search for the transition instant
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == start_offset:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class NightPlan:
    """What the schedule needs from a consent."""

    window_start: time
    window_end: time
    times: tuple[time, ...]
    tz: ZoneInfo

    @classmethod
    def parse(cls, window_start: str, window_end: str, times: Sequence[str], tz: str) -> NightPlan:
        plan = cls(parse_hhmm(window_start), parse_hhmm(window_end), tuple(parse_hhmm(t) for t in times), ZoneInfo(tz))
        plan.check()
        return plan

    @property
    def crosses_midnight(self) -> bool:
        return self.window_end <= self.window_start

    def check(self) -> None:
        if self.window_start == self.window_end:
            raise ValueError("the night window must not be empty (start equals end)")
        if not self.times:
            raise ValueError("at least one check-in time is needed")
        for t in self.times:
            if not self.contains_local(t):
                raise ValueError(
                    f"check-in time {t:%H:%M} is outside the window {self.window_start:%H:%M}-{self.window_end:%H:%M}"
                )

    def contains_local(self, t: time) -> bool:
        """Is a wall-clock time inside the window (start inclusive, end exclusive)?"""
        if self.crosses_midnight:
            return t >= self.window_start or t < self.window_end
        return self.window_start <= t < self.window_end

    def day_of(self, night: date, t: time) -> date:
        """The calendar date on which local time ``t`` of ``night`` falls."""
        return night + timedelta(days=1) if self.crosses_midnight and t < self.window_start else night

    def window(self, night: date) -> tuple[datetime, datetime]:
        """The window of ``night`` as UTC instants ``[start, end)``."""
        return (
            local_to_utc(night, self.window_start, self.tz),
            local_to_utc(self.day_of(night, self.window_end), self.window_end, self.tz),
        )

    def slots(self, night: date) -> list[datetime]:
        """The night's check-in times as UTC instants, sorted, each once."""
        return sorted({local_to_utc(self.day_of(night, t), t, self.tz) for t in self.times})

    def night_at(self, instant: datetime) -> date | None:
        """The night whose window holds ``instant`` (UTC-aware), or None outside every window."""
        local_day = instant.astimezone(self.tz).date()
        for night in (local_day - timedelta(days=1), local_day):
            start, end = self.window(night)
            if start <= instant < end:
                return night
        return None

    def slots_between(
        self, start: datetime, end: datetime, skipped: Iterable[date] = ()
    ) -> list[tuple[date, datetime]]:
        """``(night, due_at)`` for every slot with ``start <= due_at <= end``, skipped nights left out."""
        skip = set(skipped)
        first = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date()
        out: list[tuple[date, datetime]] = []
        night = first
        while night <= last:
            if night not in skip:
                out.extend((night, due) for due in self.slots(night) if start <= due <= end)
            night += timedelta(days=1)
        return out


def local_label(instant: datetime, tz: ZoneInfo) -> str:
    """``"2026-03-29 03:00 CEST"``: how a UTC instant is shown to people."""
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
