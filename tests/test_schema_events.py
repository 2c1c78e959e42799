"""Result events: ids, the shape of each type, timestamps and the encoded body."""

from __future__ import annotations

import datetime
import hashlib
import json
import time

import pytest

from schemas.events import (
    CampaignCreatedSchema,
    CampaignFailedSchema,
    CampaignRejectedSchema,
    CampaignReportFailedSchema,
    CampaignReportSchema,
    campaign_created,
    campaign_failed,
    campaign_rejected,
    campaign_report,
    campaign_report_failed,
    encode_event,
    event_id,
)

YEKATERINBURG = datetime.timezone(datetime.timedelta(hours=5))
OCCURRED = datetime.datetime(2026, 12, 1, 17, 20, 0, 123_456, tzinfo=YEKATERINBURG)
OCCURRED_TEXT = "2026-12-01T12:20:00.123Z"
BODY_HASH = hashlib.sha256(b"{not json").hexdigest()[:32]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("crm-1", "campaign.created"), {}, "crm-1:campaign.created"),
        (("crm-1", "campaign.failed"), {"raw_body": b"x"}, "crm-1:campaign.failed"),
        (("crm-1", "campaign.report"), {"part": 1}, "crm-1:campaign.report:1"),
        (("crm-1", "campaign.report"), {"part": 12}, "crm-1:campaign.report:12"),
        (
            (None, "campaign.rejected"),
            {"raw_body": b"{not json"},
            f"unreadable-{BODY_HASH}:campaign.rejected",
        ),
    ],
)
def test_event_id(args: tuple, kwargs: dict, expected: str) -> None:
    assert event_id(*args, **kwargs) == expected


def test_an_unreadable_message_gets_the_same_id_every_time_and_a_different_one_per_body() -> None:
    first = event_id(None, "campaign.rejected", raw_body=b"\xff\xfe")
    assert first == event_id(None, "campaign.rejected", raw_body=b"\xff\xfe")
    assert first != event_id(None, "campaign.rejected", raw_body=b"\xff\xfd")
    assert len(first) == len("unreadable-:campaign.rejected") + 32


def test_an_event_needs_a_request_id_or_a_body() -> None:
    with pytest.raises(ValueError):
        event_id(None, "campaign.rejected")


def test_campaign_created() -> None:
    rejected = [{"phone": "12", "external_id": None, "reason": "invalid phone number"}]
    event = campaign_created(
        request_id="crm-1",
        campaign_id=12345,
        project_id=1,
        phones_accepted=2,
        phones_rejected=rejected,
        report_due_at=datetime.datetime(2026, 12, 1, 12, 15, tzinfo=datetime.UTC),
        occurred_at=OCCURRED,
    )
    assert event == {
        "type": "campaign.created",
        "event_id": "crm-1:campaign.created",
        "request_id": "crm-1",
        "occurred_at": OCCURRED_TEXT,
        "campaign_id": 12345,
        "project_id": 1,
        "phones_accepted": 2,
        "phones_rejected": rejected,
        "report_due_at": "2026-12-01T12:15:00.000Z",
    }
    assert CampaignCreatedSchema().validate(event) == {}


@pytest.mark.parametrize(
    ("request_id", "raw_body", "expected_id"),
    [
        ("crm-1", None, "crm-1:campaign.rejected"),
        ("crm-1", b"{}", "crm-1:campaign.rejected"),
        (None, b"{not json", f"unreadable-{BODY_HASH}:campaign.rejected"),
    ],
)
def test_campaign_rejected(
    request_id: str | None, raw_body: bytes | None, expected_id: str
) -> None:
    errors = {
        "phones": {3: {"external_id": ["Not a valid string."]}, 10: {"_schema": ["x"]}},
        "report": {"columns": {0: {"sorting": ["Must be one of: asc, desc."]}}},
        "_schema": ["Invalid input type."],
    }
    event = campaign_rejected(
        request_id=request_id, errors=errors, occurred_at=OCCURRED, raw_body=raw_body
    )
    assert event == {
        "type": "campaign.rejected",
        "event_id": expected_id,
        "request_id": request_id,
        "occurred_at": OCCURRED_TEXT,
        "errors": {
            "phones": {"3": {"external_id": ["Not a valid string."]}, "10": {"_schema": ["x"]}},
            "report": {"columns": {"0": {"sorting": ["Must be one of: asc, desc."]}}},
            "_schema": ["Invalid input type."],
        },
    }
    assert CampaignRejectedSchema().validate(event) == {}
    assert json.loads(encode_event(event)) == event


@pytest.mark.parametrize(
    ("status", "outcome"), [(None, "not_created"), (422, "not_created"), (502, "unknown")]
)
def test_campaign_failed(status: int | None, outcome: str) -> None:
    event = campaign_failed(
        request_id="crm-1",
        status=status,
        message="Неверный start_block_id",
        outcome=outcome,  # type: ignore[arg-type]
        occurred_at=OCCURRED,
    )
    assert event == {
        "type": "campaign.failed",
        "event_id": "crm-1:campaign.failed",
        "request_id": "crm-1",
        "occurred_at": OCCURRED_TEXT,
        "error": {"status": status, "message": "Неверный start_block_id"},
        "outcome": outcome,
    }
    assert CampaignFailedSchema().validate(event) == {}


def test_campaign_failed_knows_only_the_contracts_outcomes() -> None:
    with pytest.raises(ValueError):
        campaign_failed(
            request_id="crm-1",
            status=None,
            message="x",
            outcome="created",  # type: ignore[arg-type]
            occurred_at=OCCURRED,
        )


@pytest.mark.parametrize(("part", "parts"), [(1, 1), (2, 3), (3, 3)])
def test_campaign_report(part: int, parts: int) -> None:
    rows = [
        {"phone_number": "79123456789", "goal": True, "phone": "+79123456789", "external_id": "a"},
        {"unexpected": ["shape"]},
    ]
    event = campaign_report(
        request_id="crm-1",
        campaign_id=12345,
        columns=[{"field": "phone_number", "type": "text"}],
        rows=rows,
        missing=[{"phone": "+79991234567", "external_id": None}],
        total_duration=3600,
        avg_duration=120.5,
        count=30,
        part=part,
        parts=parts,
        occurred_at=OCCURRED,
    )
    assert event == {
        "type": "campaign.report",
        "event_id": f"crm-1:campaign.report:{part}",
        "request_id": "crm-1",
        "occurred_at": OCCURRED_TEXT,
        "campaign_id": 12345,
        "columns": [{"field": "phone_number", "type": "text"}],
        "rows": rows,
        "missing": [{"phone": "+79991234567", "external_id": None}],
        "total_duration": 3600,
        "avg_duration": 120.5,
        "count": 30,
        "part": part,
        "parts": parts,
    }
    assert CampaignReportSchema().validate(event) == {}


@pytest.mark.parametrize(("part", "parts"), [(0, 1), (2, 1), (-1, 3)])
def test_campaign_report_part_must_lie_within_parts(part: int, parts: int) -> None:
    with pytest.raises(ValueError):
        campaign_report(
            request_id="crm-1",
            campaign_id=1,
            columns=[],
            rows=[],
            missing=[],
            total_duration=None,
            avg_duration=None,
            count=None,
            part=part,
            parts=parts,
            occurred_at=OCCURRED,
        )


def test_a_report_of_a_hundred_thousand_rows_is_quick() -> None:
    rows = [{"phone_number": f"7912{i:07d}", "duration": i} for i in range(100_000)]
    missing = [{"phone": f"+7999{i:07d}", "external_id": f"lead-{i}"} for i in range(10_000)]
    started = time.process_time()
    event = campaign_report(
        request_id="crm-1",
        campaign_id=1,
        columns=[],
        rows=rows,
        missing=missing,
        total_duration=None,
        avg_duration=None,
        count=None,
        part=1,
        parts=1,
        occurred_at=OCCURRED,
    )
    assert time.process_time() - started < 0.5
    assert event["rows"] is rows


def test_campaign_report_failed() -> None:
    event = campaign_report_failed(
        request_id="crm-1",
        campaign_id=12345,
        status=503,
        message="unavailable",
        occurred_at=OCCURRED,
    )
    assert event == {
        "type": "campaign.report_failed",
        "event_id": "crm-1:campaign.report_failed",
        "request_id": "crm-1",
        "occurred_at": OCCURRED_TEXT,
        "campaign_id": 12345,
        "error": {"status": 503, "message": "unavailable"},
    }
    assert CampaignReportFailedSchema().validate(event) == {}


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        campaign_report_failed(
            request_id="crm-1",
            campaign_id=1,
            status=None,
            message="x",
            occurred_at=datetime.datetime(2026, 12, 1, 12, 0),
        )


def test_encode_event_is_compact_utf8_json() -> None:
    event = {"type": "campaign.failed", "error": {"status": None, "message": "Ошибка"}}
    encoded = encode_event(event)
    assert (
        encoded == '{"type":"campaign.failed","error":{"status":null,"message":"Ошибка"}}'.encode()
    )
    assert json.loads(encoded.decode("utf-8")) == event
