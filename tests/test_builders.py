"""The test builders themselves: a request they build is valid whatever the hour."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.builders import window_ending_in


@pytest.mark.parametrize("minutes", [-1, 0, 1, 2, 30])
def test_a_window_ending_in_minutes_is_valid_at_every_minute_of_the_day(minutes: int) -> None:
    day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for minute in range(24 * 60):
        now = day + dt.timedelta(minutes=minute, seconds=17)
        window = window_ending_in(minutes, now=now)
        zone = ZoneInfo(window["timezone"])
        date = dt.date.fromisoformat(window["date"])
        start = dt.datetime.combine(date, dt.time.fromisoformat(window["start_time"]), zone)
        end = dt.datetime.combine(date, dt.time.fromisoformat(window["end_time"]), zone)
        turn = now.replace(second=0)
        assert start < end, window
        assert end == turn + dt.timedelta(minutes=minutes), window
        assert start == min(turn, end) - dt.timedelta(minutes=1), window
