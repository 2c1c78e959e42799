"""Plausible dialog results for a stored campaign, as the analytics endpoint answers them.

The rows are deterministic (a phone always gets the same status, duration and goal), so a test
can predict them, and they carry what a client must cope with on the real platform: the phone
written differently from how it was sent, rows missing for some phones, several rows for one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DIGITS = "digits"
E164 = "e164"
NATIONAL = "national"
PHONE_FORMATS = (DIGITS, E164, NATIONAL)

# The platform runs in Chelyabinsk; a campaign's date and times are read in its zone.
PLATFORM_ZONE = ZoneInfo("Asia/Yekaterinburg")
CALL_STATUSES = ("answered", "no_answer", "busy")
ANSWERED_DIALOG = "Бот: Здравствуйте! Напоминаем о визите мастера. Клиент: Да, жду."
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ReportOptions:
    """How the report deviates from the simple case: one row per phone, phones as digits."""

    missing_every: int = 0
    rows_per_phone: int = 1
    phone_format: str = DIGITS
    phone_field: str = "phone_number"


def report_body(campaign: Mapping, options: ReportOptions) -> bytes:
    """The JSON answer for one campaign's report, built in one pass for large campaigns."""
    rows = list(_rows(campaign, options))
    total = sum(row["duration"] for row in rows)
    answer = {
        "columns": _columns(options.phone_field),
        "data": rows,
        "total_duration": total,
        "avg_duration": round(total / len(rows)) if rows else 0,
        "count": len(rows),
    }
    return _ENCODER.encode(answer).encode()


def format_phone(e164: str, phone_format: str) -> str:
    """``+79123456789`` as the platform may write it back: digits, E.164 or national."""
    digits = e164.removeprefix("+")
    if phone_format == E164:
        return e164
    if phone_format == NATIONAL:
        return f"8 ({digits[1:4]}) {digits[4:7]}-{digits[7:9]}-{digits[9:11]}"
    return digits


def _rows(campaign: Mapping, options: ReportOptions) -> Iterator[dict]:
    schedule = campaign["campaign"]["schedule"]
    window_start = (
        datetime.combine(
            date.fromisoformat(schedule["date"]),
            time.fromisoformat(schedule["start_time"]),
            PLATFORM_ZONE,
        )
        .astimezone(UTC)
        .replace(tzinfo=None)
    )  # naive UTC: isoformat() is the fast formatter
    attempt_gap = timedelta(minutes=int(schedule["interval"]) + 1)
    for index, entry in enumerate(campaign["phones"]):
        if options.missing_every and (index + 1) % options.missing_every == 0:
            continue
        number = int(entry["phone"][1:])
        status = CALL_STATUSES[number % len(CALL_STATUSES)]
        answered = status == "answered"
        shown = format_phone(entry["phone"], options.phone_format)
        first_call = window_start + timedelta(seconds=index % 3600)
        for attempt in range(options.rows_per_phone):
            yield {
                options.phone_field: shown,
                "call_status": status,
                "duration": 15 + number % 170 if answered else 0,
                "goal": answered and number % 2 == 0,
                "dialog": ANSWERED_DIALOG if answered else "",
                "started_at": (first_call + attempt * attempt_gap).isoformat() + "Z",
            }


def _columns(phone_field: str) -> list[dict]:
    return [
        {"field": phone_field, "display_name": "Phone Number", "type": "text"},
        {"field": "call_status", "display_name": "Call Status", "type": "text"},
        {"field": "duration", "display_name": "Duration", "type": "number"},
        {"field": "goal", "display_name": "Goal", "type": "goal"},
        {"field": "dialog", "display_name": "Dialog", "type": "dialog"},
        {"field": "started_at", "display_name": "Started At", "type": "datetime"},
    ]
