"""``CALLING_HOURS``: when a contact may be called, in the contact's own local time.

The law ties calling hours to the person's local day (for debts: 08:00-22:00 on weekdays,
09:00-20:00 at weekends), so the deployment writes them once, in a small syntax an operator can
read back:

    mon-fri 08:00-22:00; sat-sun 09:00-20:00

Segments are separated by ``;``. Each names its days — a day (``mon`` … ``sun``), a range
(``mon-fri``; ``fri-mon`` runs over the weekend), or a comma list of either (``sat,sun``,
``mon,wed-fri``) — then one range of hours ``HH:MM-HH:MM``, where ``24:00`` may end a range.
A day named in several segments may be called in each of their ranges (a lunch break:
``mon-fri 09:00-13:00; mon-fri 14:00-20:00``); a day named in none is not called at all.
``off`` lifts the rule: any hour of any day.
"""

from __future__ import annotations

import dataclasses
import re

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_CALLING_HOURS = "mon-fri 08:00-22:00; sat-sun 09:00-20:00"
OFF = "off"
MINUTES_PER_DAY = 24 * 60

_SEGMENT = re.compile(r"(?P<days>[a-z,\- ]+?)\s+(?P<start>\d\d:\d\d)\s*-\s*(?P<end>\d\d:\d\d)")

# Minutes of the day, [start, end): a range of calling hours.
Span = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class CallingHours:
    """Per weekday (Monday first, as ``date.weekday()``), the ranges a contact may be called,
    sorted and merged; ``text`` is the setting as written."""

    days: tuple[tuple[Span, ...], ...]
    text: str

    def on(self, weekday: int) -> tuple[Span, ...]:
        return self.days[weekday]


def parse_calling_hours(text: str) -> CallingHours | None:
    """The calling hours ``text`` writes, None for ``off``; ValueError saying what is wrong."""
    written = text.strip()
    if written.lower() == OFF:
        return None
    if not written:
        raise ValueError(f"must be {OFF!r} or segments such as {DEFAULT_CALLING_HOURS!r}")
    spans: list[list[Span]] = [[] for _ in DAYS]
    for segment in (part.strip() for part in written.lower().split(";")):
        if not segment:
            continue
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(f"{segment!r} is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 08:00-22:00')")
        span = (_minute(match["start"], segment), _minute(match["end"], segment))
        if span[0] >= span[1]:
            raise ValueError(f"in {segment!r} the hours must end after they start")
        for weekday in _weekdays(match["days"], segment):
            spans[weekday].append(span)
    if not any(spans):
        raise ValueError(f"names no day: write {OFF!r} to call at any hour")
    return CallingHours(tuple(_merged(day) for day in spans), written)


def _weekdays(days: str, segment: str) -> list[int]:
    found: list[int] = []
    for item in (part.strip() for part in days.split(",")):
        first, _, last = (name.strip() for name in item.partition("-"))
        start = _day(first, segment)
        stop = _day(last, segment) if last else start
        found.extend((start + step) % len(DAYS) for step in range((stop - start) % len(DAYS) + 1))
    return found


def _day(name: str, segment: str) -> int:
    if name not in DAYS:
        raise ValueError(f"in {segment!r}, {name!r} is not a day ({', '.join(DAYS)})")
    return DAYS.index(name)


def _minute(clock: str, segment: str) -> int:
    hours, minutes = int(clock[:2]), int(clock[3:])
    minute = hours * 60 + minutes
    if minutes > 59 or minute > MINUTES_PER_DAY:
        raise ValueError(f"in {segment!r}, {clock} is not a time of day (00:00 to 24:00)")
    return minute


def _merged(spans: list[Span]) -> tuple[Span, ...]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
