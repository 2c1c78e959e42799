"""The platform's payloads: the bodies callbridge sends and the answers it reads back.

The schemas here describe the is74 API as its document defines it (read with its errata: a
request example broken in two, a parameter table naming ``date_start`` and ``date_end``
wrongly), so a built body can be checked against them and the sandbox can hold clients to them.
The builders themselves make plain dicts in one pass: a campaign may carry 50,000 phones, and a
schema dump of that many entries costs more than the whole request validation. Answers are read
tolerantly: the document promises little about them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

PERIOD_ONCE = {"id": 1, "title": "Однократно"}
CAMPAIGN_STATE_NEW = "Создано"
MAX_ATTEMPTS = 5
DATA_TYPES = ("text", "number", "datetime", "dialog", "goal")
FILTER_TYPES = (
    "equal",
    "contains",
    "starts_with",
    "ends_with",
    "is_empty",
    "not_empty",
    "is_true",
    "not_true",
)
SORTINGS = ("asc", "desc")
# Campaign ids are stored as BIGINT on both stores: a positive 64-bit integer.
MAX_CAMPAIGN_ID = 2**63 - 1
# What of an unreadable campaign id is shown to the operator (logs, the failure's message).
SHOWN_ID_CHARACTERS = 40

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CLOCK_TIME = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_UTC_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
)
_DIGITS = re.compile(r"[0-9]+")
_UNSAFE_IN_ID = re.compile(r"[^0-9A-Za-z.+-]")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def format_utc_timestamp(moment: datetime.datetime) -> str:
    """``2026-12-01T04:00:00.000Z``: the platform's timestamps, and the result events' too."""
    if moment.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous: give it a time zone")
    utc = moment.astimezone(datetime.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class IsoDate(fields.Field):
    """A day written exactly ``YYYY-MM-DD`` (``fromisoformat`` also takes ``20261201``)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a valid date: expected YYYY-MM-DD."
    }

    def _serialize(self, value: datetime.date | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime.date:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise self.make_error("invalid")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid") from None


class ClockTime(fields.Field):
    """A time of day written exactly ``HH:MM``, 00:00 to 23:59."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a valid time: expected HH:MM."
    }

    def _serialize(self, value: datetime.time | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime.time:
        if not isinstance(value, str) or not _CLOCK_TIME.fullmatch(value):
            raise self.make_error("invalid")
        return datetime.time(int(value[:2]), int(value[3:]))


class UtcTimestamp(fields.Field):
    """An aware datetime as a UTC ISO-8601 string with ``Z``."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a valid UTC timestamp: expected ISO-8601 with Z."
    }

    def _serialize(
        self, value: datetime.datetime | None, attr: Any, obj: Any, **kwargs: Any
    ) -> Any:
        return None if value is None else format_utc_timestamp(value)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime.datetime:
        if not isinstance(value, str) or not _UTC_TIMESTAMP.fullmatch(value):
            raise self.make_error("invalid")
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            raise self.make_error("invalid") from None


def _positive_integer(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1), **kwargs)


class ColumnSchema(Schema):
    """One analytics column, as sent in a report request (every key optional)."""

    id = fields.Integer(strict=True)
    name = fields.String()
    display_name = fields.String()
    column_type = fields.String()
    data_type = fields.String(validate=validate.OneOf(DATA_TYPES))
    filter_type = fields.String(validate=validate.OneOf(FILTER_TYPES))
    filter_value = fields.String()
    sorting = fields.String(validate=validate.OneOf(SORTINGS))


class PeriodsSchema(Schema):
    """The only period the platform offers: ``{"id": 1, "title": "Однократно"}``."""

    id = fields.Integer(strict=True, required=True, validate=validate.Equal(PERIOD_ONCE["id"]))
    title = fields.String(required=True, validate=validate.Equal(PERIOD_ONCE["title"]))


class AttemptsSchema(Schema):
    """Dial attempts as the platform writes them: ``{"id": 3, "title": "3"}``."""

    id = fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_ATTEMPTS)
    )
    title = fields.String(required=True)

    @validates_schema
    def _title_repeats_id(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["title"] != str(data["id"]):
            raise ValidationError("Must be the id written as a string.", "title")


class CampaignScheduleBodySchema(Schema):
    date = IsoDate(required=True)
    start_time = ClockTime(required=True)
    end_time = ClockTime(required=True)
    periods = fields.Nested(PeriodsSchema, required=True)
    attempts = fields.Nested(AttemptsSchema, required=True)
    interval = fields.String(required=True, validate=validate.Regexp(_DIGITS))


class CampaignBodySchema(Schema):
    project_id = _positive_integer(required=True)
    name = fields.String()
    description = fields.String()
    start_block_id = _positive_integer(required=True)
    phone_id = _positive_integer(required=True)
    state = fields.String(validate=validate.Equal(CAMPAIGN_STATE_NEW))
    schedule = fields.Nested(CampaignScheduleBodySchema, required=True)


class CampaignPhoneBodySchema(Schema):
    phone = fields.String(required=True, validate=validate.Regexp(_E164))
    add_data = fields.Dict(keys=fields.String())


class CreateCampaignBodySchema(Schema):
    """The body of ``POST /api/campaigns``."""

    campaign = fields.Nested(CampaignBodySchema, required=True)
    phones = fields.List(
        fields.Nested(CampaignPhoneBodySchema), required=True, validate=validate.Length(min=1)
    )


class AnalyticsFilterSchema(Schema):
    scenario_id = _positive_integer(required=True)
    start_block_id = _positive_integer(required=True)
    outgoing_campaign_id = _positive_integer(required=True)
    date_start = UtcTimestamp(required=True)
    date_end = UtcTimestamp(required=True)


class AnalyticsRequestBodySchema(Schema):
    """The body of ``POST /api/analytics/{project_id}/report``."""

    analytics_filter = fields.Nested(AnalyticsFilterSchema, required=True)
    columns = fields.List(fields.Nested(ColumnSchema))


def create_campaign_body(
    *,
    project_id: int,
    name: str,
    description: str | None,
    start_block_id: int,
    phone_id: int,
    date: datetime.date,
    start_time: datetime.time,
    end_time: datetime.time,
    attempts: int,
    interval: int,
    phones: Iterable[tuple[str, Mapping[str, Any]]],
) -> dict:
    """The ``POST /api/campaigns`` body: the campaign, its window, and ``(E.164, add_data)``
    per phone.

    ``state`` is sent although the document's field table leaves it out: other revisions of
    the document tell clients to always send it.
    """
    campaign: dict[str, Any] = {"project_id": project_id, "name": name}
    if description is not None:
        campaign["description"] = description
    campaign["start_block_id"] = start_block_id
    campaign["phone_id"] = phone_id
    campaign["state"] = CAMPAIGN_STATE_NEW
    campaign["schedule"] = {
        "date": date.isoformat(),
        "start_time": start_time.strftime("%H:%M"),
        "end_time": end_time.strftime("%H:%M"),
        "periods": dict(PERIOD_ONCE),
        "attempts": {"id": attempts, "title": str(attempts)},
        "interval": str(interval),
    }
    return {
        "campaign": campaign,
        "phones": [{"phone": phone, "add_data": dict(add_data)} for phone, add_data in phones],
    }


def analytics_request_body(
    *,
    scenario_id: int,
    start_block_id: int,
    campaign_id: int,
    date_start: datetime.datetime,
    date_end: datetime.datetime,
    columns: Sequence[dict] | None,
) -> dict:
    """The ``POST /api/analytics/{project_id}/report`` body for one campaign's window.

    Raises ``ValidationError`` for columns the platform would not understand, and
    ``ValueError`` for naive datetimes.
    """
    body: dict[str, Any] = {
        "analytics_filter": {
            "scenario_id": scenario_id,
            "start_block_id": start_block_id,
            "outgoing_campaign_id": campaign_id,
            "date_start": format_utc_timestamp(date_start),
            "date_end": format_utc_timestamp(date_end),
        }
    }
    if columns:
        body["columns"] = ColumnSchema(many=True).load(list(columns))
    return body


@dataclasses.dataclass(frozen=True)
class AnalyticsReport:
    """What an analytics answer held, each part as given; missing parts empty or None."""

    columns: list
    rows: list
    total_duration: int | float | None
    avg_duration: int | float | None
    count: int | None


def load_analytics_response(data: object) -> AnalyticsReport:
    """Read an analytics answer without assuming more than the document promises.

    Only an answer that is not an object, or whose ``data`` is not a list, is refused
    (``ValueError``): reading anything else as "no rows" would report every phone missing.
    ``"data": null`` counts as absent.
    """
    if not isinstance(data, dict):
        raise ValueError("the analytics answer is not a JSON object")
    rows = data.get("data")
    if rows is None:
        rows = []
    elif not isinstance(rows, list):
        raise ValueError("the analytics answer's data is not a list")
    columns = data.get("columns")
    return AnalyticsReport(
        columns=columns if isinstance(columns, list) else [],
        rows=rows,
        total_duration=_number_or_none(data.get("total_duration")),
        avg_duration=_number_or_none(data.get("avg_duration")),
        count=_integer_or_none(data.get("count")),
    )


def read_campaign_id(data: object) -> int | None:
    """The id in ``{"campaign": {"id": 12345}}`` (an int or a digit string), when it is a
    campaign id (``is_campaign_id``); else None."""
    campaign_id = _raw_campaign_id(data)
    if isinstance(campaign_id, str) and _DIGITS.fullmatch(campaign_id) and len(campaign_id) < 20:
        campaign_id = int(campaign_id)
    return campaign_id if is_campaign_id(campaign_id) else None


def is_campaign_id(value: object) -> bool:
    """A positive integer that fits the stores' BIGINT: 1 to 2^63 - 1."""
    return _integer_or_none(value) is not None and 0 < value <= MAX_CAMPAIGN_ID


def shown_campaign_id(data: object) -> str | None:
    """The id an answer gave, when there is one that ``read_campaign_id`` refused: as text the
    operator can look up on the platform, cut to a few dozen characters, each one safe to log
    (anything but digits, Latin letters and ``.+-`` shows as ``?``)."""
    campaign_id = _raw_campaign_id(data)
    if campaign_id is None:
        return None
    if isinstance(campaign_id, str):
        text = campaign_id
    elif isinstance(campaign_id, int | float):  # a decoded int has at most 4,300 digits
        text = json.dumps(campaign_id)
    else:
        return f"a JSON {type(campaign_id).__name__}"
    shown = _UNSAFE_IN_ID.sub("?", text[:SHOWN_ID_CHARACTERS])
    return shown + "..." if len(text) > SHOWN_ID_CHARACTERS else shown


def _raw_campaign_id(data: object) -> object:
    campaign = data.get("campaign") if isinstance(data, dict) else None
    return campaign.get("id") if isinstance(campaign, dict) else None


def _number_or_none(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
