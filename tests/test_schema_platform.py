"""The platform's payloads: built bodies checked against the schemas of the API document,
and answers read tolerantly."""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any

import pytest
from marshmallow import ValidationError

from schemas.platform import (
    AnalyticsReport,
    AnalyticsRequestBodySchema,
    CreateCampaignBodySchema,
    analytics_request_body,
    format_utc_timestamp,
    load_analytics_response,
    read_campaign_id,
)
from schemas.request import CallRequest, Contact

REQUEST = CallRequest(
    request_id="crm-1",
    project_id=1,
    scenario_id=951,
    start_block_id=10,
    phone_id=5,
    name="Обзвон клиентов",
    description="Опрос",
    date=datetime.date(2026, 12, 1),
    start_time=datetime.time(9, 0),
    end_time=datetime.time(17, 5),
    attempts=3,
    interval=5,
    timezone="Asia/Yekaterinburg",
    phones=(
        Contact("+79123456789", "lead-42", {"name": "Иванов Иван", "n": 2, "vip": True}),
        Contact("+79991234567", None, {}),
    ),
    phones_rejected=(),
    report_delay_minutes=15,
    report_columns=None,
    local_to_contact=False,
    purpose="scenario:951",
)


def test_campaign_body_is_the_documented_body() -> None:
    assert REQUEST.platform_body() == {
        "campaign": {
            "project_id": 1,
            "name": "Обзвон клиентов",
            "description": "Опрос",
            "start_block_id": 10,
            "phone_id": 5,
            "state": "Создано",
            "schedule": {
                "date": "2026-12-01",
                "start_time": "09:00",
                "end_time": "17:05",
                "periods": {"id": 1, "title": "Однократно"},
                "attempts": {"id": 3, "title": "3"},
                "interval": "5",
            },
        },
        "phones": [
            {"phone": "+79123456789", "add_data": {"name": "Иванов Иван", "n": 2, "vip": True}},
            {"phone": "+79991234567", "add_data": {}},
        ],
    }


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"description": None, "attempts": 1, "interval": 0},
        {"attempts": 5, "interval": 120, "start_time": datetime.time(0, 0)},
    ],
)
def test_campaign_body_passes_the_platform_schema(changes: dict[str, Any]) -> None:
    request = dataclasses.replace(REQUEST, **changes)
    body = request.platform_body()
    CreateCampaignBodySchema().load(body)
    campaign = body["campaign"]
    assert "scenario_id" not in campaign
    assert ("description" in campaign) == (request.description is not None)
    assert campaign["schedule"]["attempts"] == {
        "id": request.attempts,
        "title": str(request.attempts),
    }
    assert campaign["schedule"]["interval"] == str(request.interval)


def set_at(body: dict, path: tuple[str | int, ...], value: Any) -> dict:
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


SCHEDULE = ("campaign", "schedule")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            (*SCHEDULE, "interval"),
            5,
            {"campaign": {"schedule": {"interval": ["Not a valid string."]}}},
        ),
        (
            (*SCHEDULE, "attempts"),
            3,
            {"campaign": {"schedule": {"attempts": {"_schema": ["Invalid input type."]}}}},
        ),
        (
            (*SCHEDULE, "attempts"),
            {"id": 3, "title": "three"},
            {
                "campaign": {
                    "schedule": {"attempts": {"title": ["Must be the id written as a string."]}}
                }
            },
        ),
        (
            (*SCHEDULE, "periods"),
            {"id": 1, "title": "Once"},
            {"campaign": {"schedule": {"periods": {"title": ["Must be equal to Однократно."]}}}},
        ),
        (
            (*SCHEDULE, "date"),
            "01.12.2026",
            {"campaign": {"schedule": {"date": ["Not a valid date: expected YYYY-MM-DD."]}}},
        ),
        (("campaign", "scenario_id"), 951, {"campaign": {"scenario_id": ["Unknown field."]}}),
        (("campaign", "state"), "Запущено", {"campaign": {"state": ["Must be equal to Создано."]}}),
        (
            ("phones", 1, "phone"),
            "89991234567",
            {"phones": {1: {"phone": ["String does not match expected pattern."]}}},
        ),
        (("phones",), [], {"phones": ["Shorter than minimum length 1."]}),
    ],
)
def test_platform_schema_catches_a_wrong_body(
    path: tuple[str | int, ...], value: Any, expected: dict
) -> None:
    body = set_at(REQUEST.platform_body(), path, value)
    with pytest.raises(ValidationError) as excinfo:
        CreateCampaignBodySchema().load(body)
    assert excinfo.value.messages == expected


def test_campaign_body_for_fifty_thousand_phones_is_quick() -> None:
    contacts = tuple(Contact(f"+7912{i:07d}", f"lead-{i}", {"name": "Иван"}) for i in range(50_000))
    request = dataclasses.replace(REQUEST, phones=contacts)
    started = time.process_time()
    body = request.platform_body()
    assert time.process_time() - started < 0.5
    assert len(body["phones"]) == 50_000
    assert body["phones"][-1] == {"phone": "+79120049999", "add_data": {"name": "Иван"}}


WINDOW_START = datetime.datetime(
    2026, 12, 1, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
)
WINDOW_END = datetime.datetime(2026, 12, 1, 12, 15, 0, 250_999, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("columns", "expected_columns"),
    [
        (None, None),
        ([], None),
        (
            [
                {
                    "id": 1,
                    "name": "phone_number",
                    "data_type": "number",
                    "filter_type": "contains",
                    "filter_value": "7999",
                    "sorting": "asc",
                }
            ],
            [
                {
                    "id": 1,
                    "name": "phone_number",
                    "data_type": "number",
                    "filter_type": "contains",
                    "filter_value": "7999",
                    "sorting": "asc",
                }
            ],
        ),
        ((({"name": "duration"}),), [{"name": "duration"}]),
    ],
)
def test_analytics_body(columns: Any, expected_columns: list | None) -> None:
    body = analytics_request_body(
        scenario_id=951,
        start_block_id=10,
        campaign_id=12345,
        date_start=WINDOW_START,
        date_end=WINDOW_END,
        columns=columns,
    )
    expected: dict[str, Any] = {
        "analytics_filter": {
            "scenario_id": 951,
            "start_block_id": 10,
            "outgoing_campaign_id": 12345,
            "date_start": "2026-12-01T04:00:00.000Z",
            "date_end": "2026-12-01T12:15:00.250Z",
        }
    }
    if expected_columns is not None:
        expected["columns"] = expected_columns
    assert body == expected
    AnalyticsRequestBodySchema().load(body)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            [{"data_type": "float"}],
            {0: {"data_type": ["Must be one of: text, number, datetime, dialog, goal."]}},
        ),
        ([{}, {"sorting": "ASC"}], {1: {"sorting": ["Must be one of: asc, desc."]}}),
        ([{"field": "phone_number"}], {0: {"field": ["Unknown field."]}}),
    ],
)
def test_analytics_body_refuses_columns_the_platform_does_not_know(
    columns: list, expected: dict
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        analytics_request_body(
            scenario_id=951,
            start_block_id=10,
            campaign_id=12345,
            date_start=WINDOW_START,
            date_end=WINDOW_END,
            columns=columns,
        )
    assert excinfo.value.messages == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime.datetime(2026, 12, 1, 4, 0, tzinfo=datetime.UTC), "2026-12-01T04:00:00.000Z"),
        (
            datetime.datetime(
                2026,
                12,
                1,
                0,
                30,
                5,
                999_999,
                tzinfo=datetime.timezone(datetime.timedelta(hours=5)),
            ),
            "2026-11-30T19:30:05.999Z",
        ),
    ],
)
def test_format_utc_timestamp(moment: datetime.datetime, expected: str) -> None:
    assert format_utc_timestamp(moment) == expected


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_utc_timestamp(datetime.datetime(2026, 12, 1, 4, 0))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "columns": [
                    {"field": "phone_number", "display_name": "Phone Number", "type": "text"}
                ],
                "data": [{"phone_number": "79123456789"}, ["odd", "row"]],
                "total_duration": 3600,
                "avg_duration": 120.5,
                "count": 30,
            },
            AnalyticsReport(
                columns=[{"field": "phone_number", "display_name": "Phone Number", "type": "text"}],
                rows=[{"phone_number": "79123456789"}, ["odd", "row"]],
                total_duration=3600,
                avg_duration=120.5,
                count=30,
            ),
        ),
        (
            {},
            AnalyticsReport(
                columns=[], rows=[], total_duration=None, avg_duration=None, count=None
            ),
        ),
        (
            {
                "data": None,
                "columns": "x",
                "total_duration": "3600",
                "avg_duration": True,
                "count": 3.0,
                "extra": 1,
            },
            AnalyticsReport(
                columns=[], rows=[], total_duration=None, avg_duration=None, count=None
            ),
        ),
    ],
)
def test_load_analytics_response(answer: object, expected: AnalyticsReport) -> None:
    assert load_analytics_response(answer) == expected


@pytest.mark.parametrize("answer", [[], "ok", None, {"data": {"rows": []}}, {"data": "none"}])
def test_load_analytics_response_refuses_what_it_cannot_read(answer: object) -> None:
    with pytest.raises(ValueError):
        load_analytics_response(answer)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"campaign": {"id": 12345}}, 12345),
        ({"campaign": {"id": "12345"}}, 12345),
        ({"campaign": {"id": 0}}, None),
        ({"campaign": {"id": -5}}, None),
        ({"campaign": {"id": "-5"}}, None),
        ({"campaign": {"id": "12a"}}, None),
        ({"campaign": {"id": ""}}, None),
        ({"campaign": {"id": 1.0}}, None),
        ({"campaign": {"id": True}}, None),
        ({"campaign": {"id": None}}, None),
        ({"campaign": {"id": 2**63 - 1}}, 2**63 - 1),
        ({"campaign": {"id": str(2**63 - 1)}}, 2**63 - 1),
        ({"campaign": {"id": 2**63}}, None),
        ({"campaign": {"id": str(2**63)}}, None),
        ({"campaign": {"id": "7" * 5000}}, None),
        ({"campaign": {}}, None),
        ({"campaign": 12345}, None),
        ({"id": 12345}, None),
        ([], None),
        ("12345", None),
        (None, None),
    ],
)
def test_read_campaign_id(answer: object, expected: int | None) -> None:
    assert read_campaign_id(answer) == expected
