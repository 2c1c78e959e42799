"""When a contact may be called, and how the platform must be told it: planning's clock work.

Pure. Moments are aware UTC datetimes; an interval is half open, ``[start, end)``.

A zone's clock is read here without zoneinfo's ``fold`` rules for the hours in between: an
interval is cut where the zone's UTC offset changes, and inside each piece the zone's clock is
UTC plus that one offset. So on the day the clocks change, 08:00 is where the contact's clock
shows 08:00 — not an hour off, as reading the day's midnight offset would make it.

The platform is told a campaign's window as a day and two clock times in its own zone, which
it reads back itself (zoneinfo's reading: in the hour the clocks go back, the first of the two
moments a clock time names). ``platform_windows`` says only what reads back inside the interval
it was given: a window that would end at the platform's midnight ends at 23:59 (it cannot be
told 24:00), and one starting in a repeated hour starts when the clock is unambiguous again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from schemas.calling_hours import CallingHours

Interval = tuple[dt.datetime, dt.datetime]

_SECOND = dt.timedelta(seconds=1)
_MINUTE = dt.timedelta(minutes=1)
_DAY = dt.timedelta(days=1)
_LAST_CLOCK_TIME = dt.time(23, 59)
# A clock time in a repeated hour is moved on until it names one moment: twice is enough for
# any zone's change of clocks.
_UNAMBIGUOUS_TRIES = 3


@dataclasses.dataclass(frozen=True, order=True)
class PlatformWindow:
    """A campaign's window as the platform is told it, and the moments it reads it as.

    Ordered by when it starts, then ends: the order in which a request's campaigns are numbered.
    """

    starts_at: dt.datetime
    ends_at: dt.datetime
    date: dt.date
    start_time: dt.time
    end_time: dt.time


def zone_window(date: dt.date, start_time: dt.time, end_time: dt.time, zone: ZoneInfo) -> Interval:
    """A window written as a day and two clock times of ``zone``, in UTC (read as the request's
    window always was: zoneinfo's reading of each clock time)."""
    return (
        dt.datetime.combine(date, start_time, tzinfo=zone).astimezone(dt.UTC),
        dt.datetime.combine(date, end_time, tzinfo=zone).astimezone(dt.UTC),
    )


def callable_parts(window: Interval, zone: ZoneInfo, hours: CallingHours | None) -> list[Interval]:
    """The parts of ``window`` in which ``zone``'s clock is inside the calling hours of its
    day (all of it when ``hours`` is None), in order, touching parts joined."""
    if window[0] >= window[1]:
        return []
    if hours is None:
        return [window]
    parts: list[Interval] = []
    for start, end, offset in offset_spans(window, zone):
        day, last_day = (start + offset).date(), (end - _SECOND + offset).date()
        while day <= last_day:
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - offset
            for first, stop in hours.on(day.weekday()):
                part = (
                    max(start, midnight + dt.timedelta(minutes=first)),
                    min(end, midnight + dt.timedelta(minutes=stop)),
                )
                if part[0] < part[1]:
                    parts.append(part)
            day += _DAY
    return _joined(parts)


def platform_windows(interval: Interval, zone: ZoneInfo) -> list[PlatformWindow]:
    """``interval`` cut at ``zone``'s midnights, each part as the platform must be told it;
    a part that cannot be told inside the interval (shorter than a minute) is left out."""
    windows: list[PlatformWindow] = []
    for start, end, offset in offset_spans(interval, zone):
        day = (start + offset).date()
        while True:
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - offset
            part = (max(start, midnight), min(end, midnight + _DAY))
            if part[0] < part[1] and (told := _told(day, part, offset, zone)) is not None:
                windows.append(told)
            if midnight + _DAY >= end:
                break
            day += _DAY
    return windows


def offset_spans(
    window: Interval, zone: ZoneInfo
) -> list[tuple[dt.datetime, dt.datetime, dt.timedelta]]:
    """``window`` cut where ``zone``'s UTC offset changes: ``(start, end, offset)`` each.

    A window spans at most a few days and no zone changes its clocks twice in that time, so
    one change between two moments with different offsets is looked for, by halving.
    """
    start, end = window
    spans = []
    while start < end:
        offset = _offset(start, zone)
        change = end
        last = end - _SECOND
        if _offset(last, zone) != offset:
            low, high = start, last
            while high - low > _SECOND:
                middle = low + _SECOND * (((high - low) // _SECOND) // 2)
                if _offset(middle, zone) == offset:
                    low = middle
                else:
                    high = middle
            change = high
        spans.append((start, change, offset))
        start = change
    return spans


def time_left(window: PlatformWindow, now: dt.datetime) -> dt.timedelta:
    """How much of the window is still ahead at ``now``."""
    return window.ends_at - max(window.starts_at, now)


def _told(
    day: dt.date, part: Interval, offset: dt.timedelta, zone: ZoneInfo
) -> PlatformWindow | None:
    """``part`` (inside ``day`` of the zone's clock, at one offset) as a day and two clock
    times that the platform reads back inside it, or None when none does."""
    start_clock = _ceil_minute((part[0] + offset).replace(tzinfo=None))
    end_clock = _floor_minute((part[1] + offset).replace(tzinfo=None))
    if end_clock.date() != day:  # the part ends at midnight, which cannot be told
        end_clock = dt.datetime.combine(day, _LAST_CLOCK_TIME)
    starts_at = _read(start_clock, zone)
    for _ in range(_UNAMBIGUOUS_TRIES):
        if starts_at >= part[0]:
            break
        start_clock = _ceil_minute(start_clock + (part[0] - starts_at))
        starts_at = _read(start_clock, zone)
    ends_at = _read(end_clock, zone)
    if start_clock.date() != day or not part[0] <= starts_at < ends_at <= part[1]:
        return None
    return PlatformWindow(starts_at, ends_at, day, start_clock.time(), end_clock.time())


def _read(clock: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The moment the platform takes a clock time of its zone for."""
    return clock.replace(tzinfo=zone).astimezone(dt.UTC)


def _offset(moment: dt.datetime, zone: ZoneInfo) -> dt.timedelta:
    return moment.astimezone(zone).utcoffset()  # type: ignore[return-value]


def _ceil_minute(clock: dt.datetime) -> dt.datetime:
    floor = _floor_minute(clock)
    return floor if floor == clock else floor + _MINUTE


def _floor_minute(clock: dt.datetime) -> dt.datetime:
    return clock.replace(second=0, microsecond=0)


def _joined(parts: list[Interval]) -> list[Interval]:
    joined: list[Interval] = []
    for start, end in sorted(parts):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined
