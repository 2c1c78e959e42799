"""When a report is due and which period it asks for, across time zones far from the platform's.

The schedule is local time in the request's zone; these tests go through the request schema,
so the window is computed the way the worker computes it, then through the report logic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from adapters.config import load_settings
from handlers.report_building import analytics_window
from schemas.platform import analytics_request_body
from schemas.request import CallRequest, load_call_request, report_due_at

NOW = datetime(2029, 6, 1, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def call_request(zone: str, day: str, start: str, end: str, delay: int) -> CallRequest:
    body = {
        "request_id": "due-times",
        "campaign": {
            "project_id": 1,
            "scenario_id": 951,
            "start_block_id": 10,
            "phone_id": 5,
            "schedule": {"date": day, "start_time": start, "end_time": end, "timezone": zone},
        },
        "phones": [{"phone": "+79123456789"}],
        "report": {"delay_minutes": delay},
    }
    return load_call_request(body, rules=load_settings({}).request_rules, now=NOW)


YEKATERINBURG = "Asia/Yekaterinburg"  # the platform's own zone, UTC+5
KIRITIMATI = "Pacific/Kiritimati"  # UTC+14
ADAK = "America/Adak"  # UTC-10, UTC-9 on daylight time


@pytest.mark.parametrize(
    ("zone", "schedule", "delay", "window_start", "due"),
    [
        (YEKATERINBURG, "2030-12-02 09:00-17:00", 15, "2030-12-02T04:00", "2030-12-02T12:15"),
        # The whole window lies on the previous UTC day.
        (KIRITIMATI, "2030-01-02 09:00-09:30", 15, "2030-01-01T19:00", "2030-01-01T19:45"),
        # The window crosses into its own date in UTC.
        (KIRITIMATI, "2030-01-02 09:00-17:00", 15, "2030-01-01T19:00", "2030-01-02T03:15"),
        # Winter, UTC-10: the window ends on the next UTC day.
        (ADAK, "2030-01-15 09:00-17:00", 30, "2030-01-15T19:00", "2030-01-16T03:30"),
        # Summer, UTC-9.
        (ADAK, "2030-07-15 09:00-17:00", 15, "2030-07-15T18:00", "2030-07-16T02:15"),
        # Late in the day: the delay carries the due time into the next day, month and year.
        ("Europe/London", "2030-12-31 22:00-23:59", 15, "2030-12-31T22:00", "2031-01-01T00:14"),
        (YEKATERINBURG, "2030-12-02 20:00-23:59", 15, "2030-12-02T15:00", "2030-12-02T19:14"),
        # Clocks go forward inside the window (CET to CEST): four local hours are three.
        ("Europe/Berlin", "2030-03-31 01:00-05:00", 0, "2030-03-31T00:00", "2030-03-31T03:00"),
        # Clocks go back inside the window (EDT to EST): 2.5 local hours are 3.5.
        ("America/New_York", "2030-11-03 00:30-03:00", 60, "2030-11-03T04:30", "2030-11-03T09:00"),
        # No delay: due the moment calling stops.
        (YEKATERINBURG, "2030-12-02 09:00-17:00", 0, "2030-12-02T04:00", "2030-12-02T12:00"),
    ],
)
def test_report_is_due_delay_minutes_after_the_local_window_ends(
    zone: str, schedule: str, delay: int, window_start: str, due: str
) -> None:
    day, hours = schedule.split()
    start, end = hours.split("-")
    request = call_request(zone, day, start, end, delay)

    due_at = report_due_at(
        window_end=request.window_end, delay_minutes=request.report_delay_minutes
    )

    assert request.window_start == utc(window_start)
    assert due_at == utc(due)
    assert due_at.utcoffset() == timedelta(0)
    assert due_at == request.report_due_at  # the request's own figure agrees


def test_due_time_is_given_in_utc_whatever_zone_the_window_end_is_in() -> None:
    window_end = datetime(2030, 12, 2, 17, 0, tzinfo=ZoneInfo("Asia/Yekaterinburg"))

    due_at = report_due_at(window_end=window_end, delay_minutes=15)

    assert due_at.tzinfo is UTC
    assert due_at.isoformat() == "2030-12-02T12:15:00+00:00"


WINDOW_START = utc("2030-12-02T04:00")
WINDOW_END = utc("2030-12-02T12:00")


@pytest.mark.parametrize(
    ("fetched_at", "date_end"),
    [
        # Fetched when due: the window and the delay.
        (utc("2030-12-02T12:15"), utc("2030-12-02T12:15")),
        # Fetched hours late (retries): up to the fetch, so late attempts are in.
        (utc("2030-12-02T15:40:07.250"), utc("2030-12-02T15:40:07.250")),
        # Fetched early (an operator's `report` command): still the whole window and delay.
        (utc("2030-12-02T10:00"), utc("2030-12-02T12:15")),
        # A fetch time in another zone is the same instant in UTC.
        (
            datetime(2030, 12, 2, 21, 0, tzinfo=ZoneInfo("Asia/Yekaterinburg")),
            utc("2030-12-02T16:00"),
        ),
    ],
)
def test_analytics_period_runs_from_window_start_to_the_later_of_fetch_and_due(
    fetched_at: datetime, date_end: datetime
) -> None:
    period = analytics_window(
        window_start=WINDOW_START, window_end=WINDOW_END, delay_minutes=15, fetched_at=fetched_at
    )

    assert period == (WINDOW_START, date_end)
    assert all(moment.tzinfo is UTC for moment in period)


def test_analytics_period_goes_to_the_platform_as_utc_with_z() -> None:
    request = call_request("America/Adak", "2030-01-15", "09:00", "17:00", 30)
    date_start, date_end = analytics_window(
        window_start=request.window_start,
        window_end=request.window_end,
        delay_minutes=request.report_delay_minutes,
        fetched_at=datetime(2030, 1, 15, 17, 35, 0, 123999, tzinfo=ZoneInfo("America/Adak")),
    )

    body = analytics_request_body(
        scenario_id=951,
        start_block_id=10,
        campaign_id=12345,
        date_start=date_start,
        date_end=date_end,
        columns=None,
    )

    assert body["analytics_filter"]["date_start"] == "2030-01-15T19:00:00.000Z"
    assert body["analytics_filter"]["date_end"] == "2030-01-16T03:35:00.123Z"


@pytest.mark.parametrize(
    "times",
    [
        {"window_start": datetime(2030, 12, 2, 4, 0)},
        {"window_end": datetime(2030, 12, 2, 12, 0)},
        {"fetched_at": datetime(2030, 12, 2, 12, 15)},
    ],
)
def test_a_naive_time_is_refused_rather_than_read_as_the_host_zone(times: dict) -> None:
    arguments = {
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
        "fetched_at": utc("2030-12-02T12:15"),
        **times,
    }

    with pytest.raises(ValueError, match="naive"):
        analytics_window(delay_minutes=15, **arguments)


def test_due_time_refuses_a_naive_window_end_and_accepts_any_fixed_offset() -> None:
    with pytest.raises(ValueError, match="naive"):
        report_due_at(window_end=datetime(2030, 12, 2, 12, 0), delay_minutes=15)

    plus_five = timezone(timedelta(hours=5))
    due_at = report_due_at(
        window_end=datetime(2030, 12, 2, 17, 0, tzinfo=plus_five), delay_minutes=0
    )

    assert due_at == utc("2030-12-02T12:00")
