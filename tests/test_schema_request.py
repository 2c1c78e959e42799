"""The call request schema against every row of the contract's field table (messages.md)."""

from __future__ import annotations

import copy
import datetime
import time
from typing import Any

import pytest
from marshmallow import ValidationError

from adapters.config import load_settings
from schemas.request import (
    REASON_DUPLICATE,
    REASON_INVALID,
    CallRequest,
    Contact,
    load_call_request,
    read_request_id,
)

SETTINGS = load_settings({})
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
DELETE = object()

VALID_BODY: dict[str, Any] = {
    "request_id": "crm-event-000123",
    "campaign": {
        "project_id": 1,
        "scenario_id": 951,
        "start_block_id": 10,
        "phone_id": 5,
        "name": "Подтверждение записи",
        "description": "Напоминание о визите мастера",
        "schedule": {
            "date": "2026-12-01",
            "start_time": "09:00",
            "end_time": "17:00",
            "attempts": 3,
            "interval": 5,
            "timezone": "Asia/Yekaterinburg",
        },
    },
    "phones": [
        {
            "phone": "+7 912 345-67-89",
            "external_id": "lead-42",
            "add_data": {"name": "Иванов Иван"},
        },
        {"phone": "89991234567"},
    ],
    "report": {"delay_minutes": 15, "columns": []},
}


def body_with(*changes: tuple[str, Any]) -> dict[str, Any]:
    """The valid body with each ``("a.b.0.c", value)`` set (or removed, for DELETE)."""
    body = copy.deepcopy(VALID_BODY)
    for path, value in changes:
        *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
        target = body
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return body


def load(body: object, **settings_changes: Any) -> CallRequest:
    return load_call_request(
        body, rules=SETTINGS.replace(**settings_changes).request_rules, now=NOW
    )


def errors_of(body: object, **settings_changes: Any) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        load(body, **settings_changes)
    return excinfo.value.messages  # type: ignore[return-value]


def test_the_contract_example_loads() -> None:
    request = load(VALID_BODY)
    assert request == CallRequest(
        request_id="crm-event-000123",
        project_id=1,
        scenario_id=951,
        start_block_id=10,
        phone_id=5,
        name="Подтверждение записи",
        description="Напоминание о визите мастера",
        date=datetime.date(2026, 12, 1),
        start_time=datetime.time(9, 0),
        end_time=datetime.time(17, 0),
        attempts=3,
        interval=5,
        timezone="Asia/Yekaterinburg",
        phones=(
            Contact("+79123456789", "lead-42", {"name": "Иванов Иван"}),
            Contact("+79991234567", None, {}),
        ),
        phones_rejected=(),
        report_delay_minutes=15,
        report_columns=None,
        local_to_contact=False,
        purpose="scenario:951",
    )
    assert request.window_start == datetime.datetime(2026, 12, 1, 4, 0, tzinfo=datetime.UTC)
    assert request.window_end == datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
    assert request.report_due_at == datetime.datetime(2026, 12, 1, 12, 15, tzinfo=datetime.UTC)


# (change, attribute of the loaded request, expected value)
VALID_CASES = [
    (("request_id", "r" * 128), "request_id", "r" * 128),
    (("request_id", "x"), "request_id", "x"),
    (("campaign.project_id", 2**40), "project_id", 2**40),
    (("campaign.name", DELETE), "name", "CRM crm-event-000123"),
    (("campaign.name", "n" * 255), "name", "n" * 255),
    (("campaign.description", DELETE), "description", None),
    (("campaign.schedule.start_time", "00:00"), "start_time", datetime.time(0, 0)),
    (("campaign.schedule.end_time", "23:59"), "end_time", datetime.time(23, 59)),
    (("campaign.schedule.attempts", DELETE), "attempts", 1),
    (("campaign.schedule.attempts", 5), "attempts", 5),
    (("campaign.schedule.attempts", {"id": 4, "title": "4"}), "attempts", 4),
    (("campaign.schedule.interval", DELETE), "interval", 5),
    (("campaign.schedule.interval", 0), "interval", 0),
    (("campaign.schedule.interval", "10"), "interval", 10),
    (("campaign.schedule.interval", "007"), "interval", 7),
    (
        ("campaign.schedule.periods", {"id": 1, "title": "Однократно"}),
        "date",
        datetime.date(2026, 12, 1),
    ),
    (("campaign.schedule.timezone", DELETE), "timezone", "Asia/Yekaterinburg"),
    (("campaign.schedule.timezone", "Europe/Moscow"), "timezone", "Europe/Moscow"),
    (("report", DELETE), "report_delay_minutes", 15),
    (("report", DELETE), "report_columns", None),
    (("report.delay_minutes", 0), "report_delay_minutes", 0),
    (("report.delay_minutes", DELETE), "report_delay_minutes", 15),
    (("report.columns", DELETE), "report_columns", None),
    (
        ("report.columns", [{"name": "phone_number", "data_type": "number", "sorting": "asc"}]),
        "report_columns",
        ({"name": "phone_number", "data_type": "number", "sorting": "asc"},),
    ),
]


@pytest.mark.parametrize(("change", "attribute", "expected"), VALID_CASES)
def test_valid_values(change: tuple[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(load(body_with(change)), attribute) == expected


def schedule_error(field: str, *messages: Any) -> dict:
    return {"campaign": {"schedule": {field: list(messages)}}}


REQUIRED = "Missing data for required field."
NULL = "Field may not be null."
NOT_STRING = "Not a valid string."
NOT_INTEGER = "Not a valid integer."
POSITIVE = "Must be greater than or equal to 1."
UNKNOWN = "Unknown field."
BAD_DATE = "Not a valid date: expected YYYY-MM-DD."
BAD_TIME = "Not a valid time: expected HH:MM."
ATTEMPTS_RANGE = "Must be greater than or equal to 1 and less than or equal to 5."
BAD_INTERVAL = "Not a non-negative integer or digit string."
BAD_ZONE = "Not a known IANA time zone name."

# (change, expected messages)
INVALID_CASES = [
    # request_id: required string, 1-128
    (("request_id", DELETE), {"request_id": [REQUIRED]}),
    (("request_id", ""), {"request_id": ["Length must be between 1 and 128."]}),
    (("request_id", "r" * 129), {"request_id": ["Length must be between 1 and 128."]}),
    (("request_id", 123), {"request_id": [NOT_STRING]}),
    (("request_id", None), {"request_id": [NULL]}),
    # project_id, start_block_id, phone_id, scenario_id: required positive integers
    *[
        case
        for field in ("project_id", "start_block_id", "phone_id", "scenario_id")
        for case in [
            ((f"campaign.{field}", DELETE), {"campaign": {field: [REQUIRED]}}),
            ((f"campaign.{field}", 0), {"campaign": {field: [POSITIVE]}}),
            ((f"campaign.{field}", -1), {"campaign": {field: [POSITIVE]}}),
            ((f"campaign.{field}", True), {"campaign": {field: [NOT_INTEGER]}}),
            ((f"campaign.{field}", 1.0), {"campaign": {field: [NOT_INTEGER]}}),
            ((f"campaign.{field}", 1.5), {"campaign": {field: [NOT_INTEGER]}}),
            ((f"campaign.{field}", "1"), {"campaign": {field: [NOT_INTEGER]}}),
        ]
    ],
    (("campaign", DELETE), {"campaign": [REQUIRED]}),
    (("campaign", "x"), {"campaign": {"_schema": ["Invalid input type."]}}),
    # name: optional string <= 255
    (("campaign.name", "n" * 256), {"campaign": {"name": ["Longer than maximum length 255."]}}),
    (("campaign.name", 5), {"campaign": {"name": [NOT_STRING]}}),
    (("campaign.name", None), {"campaign": {"name": [NULL]}}),
    # description: optional string
    (("campaign.description", ["a"]), {"campaign": {"description": [NOT_STRING]}}),
    (("campaign.schedule", DELETE), {"campaign": {"schedule": [REQUIRED]}}),
    # schedule.date: required YYYY-MM-DD
    (("campaign.schedule.date", DELETE), schedule_error("date", REQUIRED)),
    (("campaign.schedule.date", "2026-12-1"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", "20261201"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", "2026-02-30"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", "2026-12-01T09:00"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", "01.12.2026"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", "２０２６-12-01"), schedule_error("date", BAD_DATE)),
    (("campaign.schedule.date", 20261201), schedule_error("date", BAD_DATE)),
    # schedule.start_time, end_time: required HH:MM, end later than start, end in the future
    (("campaign.schedule.start_time", DELETE), schedule_error("start_time", REQUIRED)),
    (("campaign.schedule.end_time", DELETE), schedule_error("end_time", REQUIRED)),
    (("campaign.schedule.start_time", "9:00"), schedule_error("start_time", BAD_TIME)),
    (("campaign.schedule.start_time", "09:00:00"), schedule_error("start_time", BAD_TIME)),
    (("campaign.schedule.start_time", "24:00"), schedule_error("start_time", BAD_TIME)),
    (("campaign.schedule.end_time", "17:60"), schedule_error("end_time", BAD_TIME)),
    (("campaign.schedule.end_time", 1700), schedule_error("end_time", BAD_TIME)),
    (
        ("campaign.schedule.end_time", "09:00"),
        schedule_error("end_time", "Must be later than start_time."),
    ),
    (
        ("campaign.schedule.end_time", "08:59"),
        schedule_error("end_time", "Must be later than start_time."),
    ),
    (
        ("campaign.schedule.date", "2026-11-29"),
        schedule_error("end_time", "The calling window has already ended."),
    ),
    # schedule.attempts: 1-5 or {"id": n, "title": "n"}
    (("campaign.schedule.attempts", 0), schedule_error("attempts", ATTEMPTS_RANGE)),
    (("campaign.schedule.attempts", 6), schedule_error("attempts", ATTEMPTS_RANGE)),
    (("campaign.schedule.attempts", True), schedule_error("attempts", NOT_INTEGER)),
    (("campaign.schedule.attempts", 3.0), schedule_error("attempts", NOT_INTEGER)),
    (("campaign.schedule.attempts", "3"), schedule_error("attempts", NOT_INTEGER)),
    (("campaign.schedule.attempts", None), schedule_error("attempts", NULL)),
    (
        ("campaign.schedule.attempts", {"id": 3, "title": "4"}),
        {
            "campaign": {
                "schedule": {"attempts": {"title": ["Must be the id written as a string."]}}
            }
        },
    ),
    (
        ("campaign.schedule.attempts", {"id": 3}),
        {"campaign": {"schedule": {"attempts": {"title": [REQUIRED]}}}},
    ),
    (
        ("campaign.schedule.attempts", {"id": 6, "title": "6"}),
        {"campaign": {"schedule": {"attempts": {"id": [ATTEMPTS_RANGE]}}}},
    ),
    (
        ("campaign.schedule.attempts", {"id": True, "title": "True"}),
        {"campaign": {"schedule": {"attempts": {"id": [NOT_INTEGER]}}}},
    ),
    (
        ("campaign.schedule.attempts", {"id": 3, "title": "3", "x": 1}),
        {"campaign": {"schedule": {"attempts": {"x": [UNKNOWN]}}}},
    ),
    # schedule.interval: non-negative integer or digit string
    (("campaign.schedule.interval", -1), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", "-1"), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", "5m"), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", ""), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", "٥"), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", 1.5), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", True), schedule_error("interval", BAD_INTERVAL)),
    (("campaign.schedule.interval", None), schedule_error("interval", NULL)),
    # schedule.periods: only {"id": 1, "title": "Однократно"}
    (
        ("campaign.schedule.periods", {"id": 2, "title": "Однократно"}),
        {"campaign": {"schedule": {"periods": {"id": ["Must be equal to 1."]}}}},
    ),
    (
        ("campaign.schedule.periods", {"id": True, "title": "Однократно"}),
        {"campaign": {"schedule": {"periods": {"id": [NOT_INTEGER]}}}},
    ),
    (
        ("campaign.schedule.periods", {"id": 1, "title": "Ежедневно"}),
        {"campaign": {"schedule": {"periods": {"title": ["Must be equal to Однократно."]}}}},
    ),
    (
        ("campaign.schedule.periods", {"id": 1}),
        {"campaign": {"schedule": {"periods": {"title": [REQUIRED]}}}},
    ),
    (
        ("campaign.schedule.periods", "Однократно"),
        {"campaign": {"schedule": {"periods": {"_schema": ["Invalid input type."]}}}},
    ),
    # schedule.timezone: optional IANA name
    (("campaign.schedule.timezone", "Mars/Olympus"), schedule_error("timezone", BAD_ZONE)),
    (("campaign.schedule.timezone", "America"), schedule_error("timezone", BAD_ZONE)),
    (("campaign.schedule.timezone", "../etc/passwd"), schedule_error("timezone", BAD_ZONE)),
    (("campaign.schedule.timezone", ""), schedule_error("timezone", BAD_ZONE)),
    (("campaign.schedule.timezone", 5), schedule_error("timezone", NOT_STRING)),
    # phones: required list of 1..MAX_PHONES_PER_REQUEST
    (("phones", DELETE), {"phones": [REQUIRED]}),
    (("phones", []), {"phones": ["Length must be between 1 and 50000."]}),
    (("phones", {"phone": "89123456789"}), {"phones": ["Not a valid list."]}),
    (("phones", None), {"phones": [NULL]}),
    # phones[].phone: required string
    (("phones.1.phone", DELETE), {"phones": {1: {"phone": [REQUIRED]}}}),
    (("phones.1.phone", 79123456789), {"phones": {1: {"phone": [NOT_STRING]}}}),
    (("phones.1.phone", None), {"phones": {1: {"phone": [NULL]}}}),
    (("phones.1", "89123456789"), {"phones": {1: {"_schema": ["Invalid input type."]}}}),
    # phones[].external_id: optional string <= 128
    (
        ("phones.0.external_id", "e" * 129),
        {"phones": {0: {"external_id": ["Longer than maximum length 128."]}}},
    ),
    (("phones.0.external_id", 42), {"phones": {0: {"external_id": [NOT_STRING]}}}),
    (("phones.0.external_id", None), {"phones": {0: {"external_id": [NULL]}}}),
    # phones[].add_data: object of string keys to scalars
    (("phones.0.add_data", "name"), {"phones": {0: {"add_data": ["Not a valid mapping type."]}}}),
    (("phones.0.add_data", None), {"phones": {0: {"add_data": [NULL]}}}),
    *[
        (
            ("phones.0.add_data", {"ok": "x", "bad": value}),
            {
                "phones": {
                    0: {
                        "add_data": {
                            "bad": {"value": ["Not a string, a finite number or a boolean."]}
                        }
                    }
                }
            },
        )
        for value in (None, [1], {"a": 1}, float("nan"), float("inf"))
    ],
    # report.delay_minutes: integer >= 0; report.columns: platform columns
    (
        ("report.delay_minutes", -1),
        {"report": {"delay_minutes": ["Must be greater than or equal to 0."]}},
    ),
    (("report.delay_minutes", 1.5), {"report": {"delay_minutes": [NOT_INTEGER]}}),
    (("report.delay_minutes", True), {"report": {"delay_minutes": [NOT_INTEGER]}}),
    (("report.columns", "phone"), {"report": {"columns": ["Not a valid list."]}}),
    (
        ("report.columns", [{"name": "a"}, {"data_type": "float"}]),
        {
            "report": {
                "columns": {
                    1: {"data_type": ["Must be one of: text, number, datetime, dialog, goal."]}
                }
            }
        },
    ),
    (
        ("report.columns", [{"filter_type": "like", "sorting": "up", "id": "1"}]),
        {
            "report": {
                "columns": {
                    0: {
                        "filter_type": [
                            "Must be one of: equal, contains, starts_with, ends_with, is_empty, "
                            "not_empty, is_true, not_true."
                        ],
                        "sorting": ["Must be one of: asc, desc."],
                        "id": [NOT_INTEGER],
                    }
                }
            }
        },
    ),
    # unknown fields are refused at every level
    (("priority", 1), {"priority": [UNKNOWN]}),
    (("campaign.scenario", 1), {"campaign": {"scenario": [UNKNOWN]}}),
    (("campaign.schedule.attempt", 3), schedule_error("attempt", UNKNOWN)),
    (("phones.1.externalId", "x"), {"phones": {1: {"externalId": [UNKNOWN]}}}),
    (("report.delay", 5), {"report": {"delay": [UNKNOWN]}}),
    (("report.columns", [{"field": "x"}]), {"report": {"columns": {0: {"field": [UNKNOWN]}}}}),
    (
        ("campaign.schedule.periods", {"id": 1, "title": "Однократно", "x": 0}),
        {"campaign": {"schedule": {"periods": {"x": [UNKNOWN]}}}},
    ),
]


@pytest.mark.parametrize(("change", "expected"), INVALID_CASES)
def test_invalid_values(change: tuple[str, Any], expected: dict) -> None:
    assert errors_of(body_with(change)) == expected


@pytest.mark.parametrize("body", [[], "text", None, 5])
def test_a_body_that_is_not_an_object(body: object) -> None:
    assert errors_of(body) == {"_schema": ["Invalid input type."]}


def test_errors_of_several_fields_are_reported_together() -> None:
    body = body_with(("request_id", ""), ("campaign.phone_id", 0), ("phones.0.phone", None))
    assert errors_of(body) == {
        "request_id": ["Length must be between 1 and 128."],
        "campaign": {"phone_id": [POSITIVE]},
        "phones": {0: {"phone": [NULL]}},
    }


def test_settings_reach_the_schema() -> None:
    body = body_with(("campaign.schedule.timezone", DELETE), ("report.delay_minutes", DELETE))
    request = load(body, campaign_timezone="Europe/Moscow", report_delay_minutes=40)
    assert request.timezone == "Europe/Moscow"
    assert request.window_start == datetime.datetime(2026, 12, 1, 6, 0, tzinfo=datetime.UTC)
    assert request.report_delay_minutes == 40
    phones = [{"phone": f"8912000000{i}"} for i in range(4)]
    assert errors_of(body_with(("phones", phones)), max_phones_per_request=3) == {
        "phones": ["Length must be between 1 and 3."]
    }
    assert len(load(body_with(("phones", phones[:3])), max_phones_per_request=3).phones) == 3


@pytest.mark.parametrize(
    ("changes", "expected_window_end"),
    [
        # the window is read in the request's own time zone: 17:00 Moscow is 14:00 UTC
        ((("campaign.schedule.timezone", "Europe/Moscow"),), datetime.datetime(2026, 12, 1, 14, 0)),
        # a window ending one minute after now is still ahead
        (
            (("campaign.schedule.date", "2026-11-30"), ("campaign.schedule.end_time", "17:01")),
            datetime.datetime(2026, 11, 30, 12, 1),
        ),
    ],
)
def test_window_end_in_the_requests_time_zone(
    changes: tuple, expected_window_end: datetime.datetime
) -> None:
    assert load(body_with(*changes)).window_end == expected_window_end.replace(tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # ends exactly now: already over
        (
            (("campaign.schedule.date", "2026-11-30"), ("campaign.schedule.end_time", "17:00")),
            schedule_error("end_time", "The calling window has already ended."),
        ),
        # west of UTC, the last minute of 9999 is in year 10000 UTC
        (
            (
                ("campaign.schedule.date", "9999-12-31"),
                ("campaign.schedule.timezone", "America/New_York"),
                ("campaign.schedule.end_time", "23:59"),
            ),
            schedule_error("date", "Out of range."),
        ),
        # due in year 10009
        (
            (("campaign.schedule.date", "9990-06-01"), ("report.delay_minutes", 10**7)),
            {"report": {"delay_minutes": ["Too large."]}},
        ),
        # due in the last year of the calendar: no room for the report's retries
        (
            (("campaign.schedule.date", "9999-06-01"), ("report.delay_minutes", 0)),
            schedule_error("date", "Too far ahead."),
        ),
    ],
)
def test_window_must_lie_ahead_and_exist(changes: tuple, expected: dict) -> None:
    assert errors_of(body_with(*changes)) == expected


def test_unreadable_and_repeated_phones_are_left_out_not_fatal() -> None:
    phones = [
        {"phone": "8 (912) 345-67-89", "external_id": "a"},
        {"phone": "not a phone", "external_id": "b"},
        {"phone": "+79123456789", "external_id": "c"},
        {"phone": "79991234567"},
        {"phone": "12"},
    ]
    request = load(body_with(("phones", phones)))
    assert request.phones == (
        Contact("+79123456789", "a", {}),
        Contact("+79991234567", None, {}),
    )
    assert request.phones_rejected == (
        {"phone": "not a phone", "external_id": "b", "reason": REASON_INVALID},
        {"phone": "+79123456789", "external_id": "c", "reason": REASON_DUPLICATE},
        {"phone": "12", "external_id": None, "reason": REASON_INVALID},
    )


def test_no_valid_phone_left_rejects_the_request() -> None:
    phones = [{"phone": "123"}, {"phone": "not a phone"}]
    assert errors_of(body_with(("phones", phones))) == {
        "phones": ["no valid phone number: none of the 2 phones could be read."]
    }


def test_errors_name_no_phone_or_add_data_value() -> None:
    phones = [{"phone": "+79123456789", "add_data": {"secret": None}, "x": "+79991234567"}]
    assert "+79" not in repr(errors_of(body_with(("phones", phones))))


def test_a_huge_bad_request_lists_only_the_first_hundred_bad_entries() -> None:
    phones = [{"phone": 79123456789} for _ in range(1000)]
    errors = errors_of(body_with(("phones", phones)))
    assert list(errors["phones"]) == list(range(100))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"request_id": "crm-1", "campaign": None}, "crm-1"),
        ({"request_id": "r" * 128}, "r" * 128),
        ({"request_id": "r" * 129}, None),
        ({"request_id": ""}, None),
        ({"request_id": 123}, None),
        ({"request_id": "crm\x00-1"}, None),
        ({"request_id": "crm-\udc00"}, None),
        ({}, None),
        (["crm-1"], None),
        ("crm-1", None),
        (None, None),
    ],
)
def test_read_request_id(body: object, expected: str | None) -> None:
    assert read_request_id(body) == expected


NUL = "Contains a NUL character."


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("request_id", "crm\x00"), {"request_id": [NUL]}),
        (("campaign.name", "a\x00b"), {"campaign": {"name": [NUL]}}),
        (("campaign.description", "\x00"), {"campaign": {"description": [NUL]}}),
        (
            ("campaign.schedule.timezone", "Asia/\x00"),
            {"campaign": {"schedule": {"timezone": [NUL]}}},
        ),
        (("phones.0.phone", "+7 912 345-67-89\x00"), {"phones": {0: {"phone": [NUL]}}}),
        (("phones.0.external_id", "lead\x00"), {"phones": {0: {"external_id": [NUL]}}}),
        (
            ("phones.0.add_data", {"na\x00me": "x"}),
            {"phones": {0: {"add_data": {"na\x00me": {"key": [NUL]}}}}},
        ),
        (
            ("phones.0.add_data", {"name": "Иван\x00"}),
            {"phones": {0: {"add_data": {"name": {"value": [NUL]}}}}},
        ),
        (("campaign.name", "\udc00"), {"campaign": {"name": ["Contains a lone surrogate."]}}),
        (("report.columns", [{"name": "a\x00"}]), {"report": {"columns": [NUL]}}),
    ],
)
def test_no_string_of_a_request_may_hold_what_a_store_cannot(
    change: tuple[str, Any], expected: dict
) -> None:
    assert errors_of(body_with(change)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        *[
            (
                (f"campaign.{name}", 2**63),
                {"campaign": {name: ["Must be at most 9223372036854775807."]}},
            )
            for name in ("project_id", "scenario_id", "start_block_id", "phone_id")
        ],
        (
            ("report.delay_minutes", 3_000_000_000),
            {"report": {"delay_minutes": ["Must be at most 2147483647."]}},
        ),
        (
            ("campaign.schedule.interval", 2**31),
            {"campaign": {"schedule": {"interval": ["Must be at most 2147483647."]}}},
        ),
        (
            ("campaign.schedule.interval", "9" * 5000),
            {"campaign": {"schedule": {"interval": ["Must be at most 2147483647."]}}},
        ),
    ],
)
def test_numbers_stay_within_their_columns(change: tuple[str, Any], expected: dict) -> None:
    assert errors_of(body_with(change)) == expected


def test_the_largest_numbers_that_fit_are_taken() -> None:
    request = load(
        body_with(
            ("campaign.project_id", 2**63 - 1),
            ("campaign.schedule.interval", "0002147483647"),
            ("report.delay_minutes", 2**31 - 1),
        )
    )
    assert (request.project_id, request.interval) == (2**63 - 1, 2**31 - 1)


@pytest.mark.parametrize("name", ["correlation_id", "reply_to", "message_id"])
def test_the_kept_amqp_properties_are_checked_with_the_body(name: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        load_call_request(
            body_with(("campaign.project_id", 0)),
            rules=SETTINGS.request_rules,
            now=NOW,
            properties={name: "x\x00y", "app_id": "\x00 is not kept"},
        )
    assert excinfo.value.messages == {
        "campaign": {"project_id": ["Must be greater than or equal to 1."]},
        "properties": {name: [NUL]},
    }
    assert load_call_request(
        VALID_BODY, rules=SETTINGS.request_rules, now=NOW, properties={name: "crm.replies"}
    )


def test_fifty_thousand_phones_validate_in_well_under_a_second() -> None:
    phones = [
        {
            "phone": f"+7 912 {i // 10000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
            "external_id": f"lead-{i}",
            "add_data": {"name": "Иванов Иван", "visit": "10:00", "n": i},
        }
        for i in range(50_000)
    ]
    body = body_with(("phones", phones))
    started = time.process_time()
    request = load(body)
    elapsed = time.process_time() - started
    assert len(request.phones) == 50_000
    assert elapsed < 1.0, f"{elapsed:.2f} s of CPU"
