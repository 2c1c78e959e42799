"""The result events published back to the CRM (``messages.md``, "Outbound: result events").

One schema per event type documents its shape; the builders dump plain dicts through them, so
every event of a type has the same keys and the same timestamp format. Report rows are passed
through untouched (``fields.Raw``): a report may hold 100,000 of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from marshmallow import Schema, fields, validate

from schemas.json_codec import compact
from schemas.platform import UtcTimestamp

CAMPAIGN_CREATED = "campaign.created"
CAMPAIGN_REJECTED = "campaign.rejected"
CAMPAIGN_FAILED = "campaign.failed"
CAMPAIGN_REPORT = "campaign.report"
CAMPAIGN_REPORT_FAILED = "campaign.report_failed"
EVENT_TYPES = (
    CAMPAIGN_CREATED,
    CAMPAIGN_REJECTED,
    CAMPAIGN_FAILED,
    CAMPAIGN_REPORT,
    CAMPAIGN_REPORT_FAILED,
)
OUTCOMES = ("not_created", "unknown")


def event_id(
    request_id: str | None,
    event_type: str,
    *,
    part: int | None = None,
    raw_body: bytes | None = None,
    within: int | None = None,
) -> str:
    """The event's stable id, so a consumer can drop the copies at-least-once delivery makes.

    A message whose request_id could not be read is named by a hash of its body instead:
    redelivering the same bytes gives the same id. ``within`` names the campaign an event of a
    request of several campaigns is about (its campaign id, or the planned campaign's group
    number for a late ``campaign.created``): ``<request_id>:<type>:<within>[:<part>]``.
    """
    if request_id is None:
        if raw_body is None:
            raise ValueError("an event without a request_id needs the raw body it answers")
        request_id = f"unreadable-{hashlib.sha256(raw_body).hexdigest()[:32]}"
    base = f"{request_id}:{event_type}"
    if within is not None:
        base = f"{base}:{within}"
    return base if part is None else f"{base}:{part}"


class FieldErrors(fields.Field):
    """marshmallow's error messages with every key a string: list indexes are ints, JSON
    object keys cannot be."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return _string_keys(value)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return value


def _string_keys(errors: Any) -> Any:
    if isinstance(errors, Mapping):
        return {str(key): _string_keys(value) for key, value in errors.items()}
    if isinstance(errors, list | tuple):
        return [_string_keys(item) for item in errors]
    return errors


class ErrorSchema(Schema):
    status = fields.Integer(allow_none=True)
    message = fields.String()


class RejectedPhoneSchema(Schema):
    phone = fields.String()
    external_id = fields.String(allow_none=True)
    reason = fields.String()


class MissingPhoneSchema(Schema):
    phone = fields.String()
    external_id = fields.String(allow_none=True)


class UnknownPhoneSchema(MissingPhoneSchema):
    """A contact of a campaign whose creation outcome is unknown: it may be called."""

    group = fields.Integer()


class CampaignSummarySchema(Schema):
    """One created campaign of a request of several, its window as sent to the platform."""

    campaign_id = fields.Integer()
    date = fields.String()
    start_time = fields.String()
    end_time = fields.String()
    timezone = fields.String()
    phones_accepted = fields.Integer()
    report_due_at = UtcTimestamp()


class EventSchema(Schema):
    """What every event carries."""

    type = fields.String(validate=validate.OneOf(EVENT_TYPES))
    event_id = fields.String()
    request_id = fields.String()
    occurred_at = UtcTimestamp()


class CampaignCreatedSchema(EventSchema):
    """``campaigns`` and ``phones_unknown`` only in a request of several campaigns."""

    campaign_id = fields.Integer()
    project_id = fields.Integer()
    phones_accepted = fields.Integer()
    phones_rejected = fields.List(fields.Nested(RejectedPhoneSchema))
    report_due_at = UtcTimestamp()
    campaigns = fields.List(fields.Nested(CampaignSummarySchema))
    phones_unknown = fields.List(fields.Nested(UnknownPhoneSchema))


class CampaignRejectedSchema(EventSchema):
    request_id = fields.String(allow_none=True)
    errors = FieldErrors()


class CampaignFailedSchema(EventSchema):
    error = fields.Nested(ErrorSchema)
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))


class CampaignReportSchema(EventSchema):
    campaign_id = fields.Integer()
    columns = fields.Raw()
    rows = fields.Raw()
    missing = fields.List(fields.Nested(MissingPhoneSchema))
    total_duration = fields.Raw(allow_none=True)
    avg_duration = fields.Raw(allow_none=True)
    count = fields.Integer(allow_none=True)
    part = fields.Integer()
    parts = fields.Integer()
    campaigns = fields.Integer()  # only in a request of several campaigns: how many


class CampaignReportFailedSchema(EventSchema):
    campaign_id = fields.Integer()
    error = fields.Nested(ErrorSchema)


# Each built once and shared by every thread: making a schema copies each of its fields, which
# cost more than the dump itself, and a dump leaves the schema as it was.
_CREATED = CampaignCreatedSchema()
_REJECTED = CampaignRejectedSchema()
_FAILED = CampaignFailedSchema()
_REPORT = CampaignReportSchema()
_REPORT_FAILED = CampaignReportFailedSchema()


def campaign_created(
    *,
    request_id: str,
    campaign_id: int,
    project_id: int,
    phones_accepted: int,
    phones_rejected: Sequence[dict],
    report_due_at: datetime,
    occurred_at: datetime,
    several: Several | None = None,
) -> dict:
    """v1's event, or with ``several`` the event of a request planned as several campaigns."""
    event = {
        **_envelope(
            CAMPAIGN_CREATED,
            request_id,
            occurred_at,
            within=None if several is None else several.late_group,
        ),
        "campaign_id": campaign_id,
        "project_id": project_id,
        "phones_accepted": phones_accepted,
        "phones_rejected": phones_rejected,
        "report_due_at": report_due_at,
    }
    if several is not None:
        event.update(campaigns=several.campaigns, phones_unknown=several.phones_unknown)
    return _CREATED.dump(event)


@dataclasses.dataclass(frozen=True)
class Several:
    """What ``campaign.created`` adds for a request planned as several campaigns.

    ``late_group`` is set for a campaign settled (by an operator) after the request's outcome
    event was published: the event is about that campaign alone, under its own id.
    """

    campaigns: Sequence[dict]
    phones_unknown: Sequence[dict] = ()
    late_group: int | None = None


def campaign_rejected(
    *,
    request_id: str | None,
    errors: dict,
    occurred_at: datetime,
    raw_body: bytes | None = None,
) -> dict:
    """``raw_body`` names the event when ``request_id`` is None (see ``event_id``)."""
    return _REJECTED.dump(
        {
            **_envelope(CAMPAIGN_REJECTED, request_id, occurred_at, raw_body=raw_body),
            "errors": errors,
        }
    )


def campaign_failed(
    *,
    request_id: str,
    status: int | None,
    message: str,
    outcome: Literal["not_created", "unknown"],
    occurred_at: datetime,
) -> dict:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    return _FAILED.dump(
        {
            **_envelope(CAMPAIGN_FAILED, request_id, occurred_at),
            "error": {"status": status, "message": message},
            "outcome": outcome,
        }
    )


def campaign_report(
    *,
    request_id: str,
    campaign_id: int,
    columns: list,
    rows: list,
    missing: Sequence[dict],
    total_duration: int | float | None,
    avg_duration: int | float | None,
    count: int | None,
    part: int,
    parts: int,
    occurred_at: datetime,
    campaigns: int = 1,
) -> dict:
    """One part of a report; a small report is part 1 of 1. ``campaigns``: how many the
    request has; with more than one the event is named and marked as one campaign's."""
    if not 1 <= part <= parts:
        raise ValueError("part must be between 1 and parts")
    within = campaign_id if campaigns > 1 else None
    event = {
        **_envelope(CAMPAIGN_REPORT, request_id, occurred_at, part=part, within=within),
        "campaign_id": campaign_id,
        "columns": columns,
        "rows": rows,
        "missing": missing,
        "total_duration": total_duration,
        "avg_duration": avg_duration,
        "count": count,
        "part": part,
        "parts": parts,
    }
    if within is not None:
        event["campaigns"] = campaigns
    return _REPORT.dump(event)


def campaign_report_failed(
    *,
    request_id: str,
    campaign_id: int,
    status: int | None,
    message: str,
    occurred_at: datetime,
    campaigns: int = 1,
) -> dict:
    within = campaign_id if campaigns > 1 else None
    return _REPORT_FAILED.dump(
        {
            **_envelope(CAMPAIGN_REPORT_FAILED, request_id, occurred_at, within=within),
            "campaign_id": campaign_id,
            "error": {"status": status, "message": message},
        }
    )


def encode_event(event: Mapping) -> bytes:
    """The message body: compact UTF-8 JSON, Cyrillic left readable."""
    return compact(event)


def _envelope(
    event_type: str,
    request_id: str | None,
    occurred_at: datetime,
    *,
    part: int | None = None,
    raw_body: bytes | None = None,
    within: int | None = None,
) -> dict[str, Any]:
    return {
        "type": event_type,
        "event_id": event_id(request_id, event_type, part=part, raw_body=raw_body, within=within),
        "request_id": request_id,
        "occurred_at": occurred_at,
    }
