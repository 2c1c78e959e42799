"""The call request: the CRM's side of the contract, enforced.

``load_call_request`` turns a decoded JSON body into a ``CallRequest`` or raises
``ValidationError`` with marshmallow's field-path messages, which become the
``campaign.rejected`` event's ``errors`` as they are.

Two parts are not plain marshmallow, for reasons:

* The schema needs rules the deployment sets (phone limit, default time zone and report
  delay), and marshmallow 4 has no ``Schema.context``: ``CallRequestSchema`` takes them as a
  constructor argument (``RequestRules``), and one schema per rules is built once (building it
  costs more than a load).
  The window's check against the current time runs on the loaded request.
* ``phones`` may hold 50,000 entries, and ``List(Nested(...))`` spends tens of microseconds on
  each. ``ContactsField`` checks every entry in one tight loop instead, with the same messages
  and index-keyed error shape marshmallow would give.

Decisions the contract leaves open: ``null`` is refused wherever a value is optional (an
optional field may be left out, not nulled), so is ``null`` or a non-finite number as an
``add_data`` value; a window that has already ended is reported on
``campaign.schedule.end_time``; at most ``MAX_LISTED_ENTRY_ERRORS`` failing phone entries are
listed, so that the rejection of a huge bad request stays a small event.

What a store cannot hold is refused here, the same for SQLite and PostgreSQL: NUL in any string
of the request and in the AMQP properties callbridge keeps (``correlation_id``, ``reply_to``,
``message_id``: their errors are under ``properties``), ids beyond ``BIGINT`` (2^63 - 1), and
numbers whose times or columns would overflow: an interval or a report delay beyond 2^31 - 1
minutes, a report due too close to the end of the calendar for its retries to be scheduled. A
lone surrogate is refused by the strict decoding every body goes through
(``schemas.json_codec``); the fields of few strings and the properties check it again, the
phones (up to 50,000 of them, in one tight loop) only for NUL.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from schemas.identifiers import NUL_MESSAGE, text_problem
from schemas.phones import normalise_phone
from schemas.platform import (
    MAX_ATTEMPTS,
    AttemptsSchema,
    ClockTime,
    ColumnSchema,
    IsoDate,
    PeriodsSchema,
    create_campaign_body,
)
from schemas.zones import is_time_zone

REQUEST_ID_MAX_LENGTH = 128
EXTERNAL_ID_MAX_LENGTH = 128
NAME_MAX_LENGTH = 255
PURPOSE_MAX_LENGTH = 64
DEFAULT_ATTEMPTS = 1
DEFAULT_INTERVAL_MINUTES = 5
MAX_LISTED_ENTRY_ERRORS = 100
# BIGINT, the store's id columns.
MAX_ID = 2**63 - 1
# INTEGER, the store's column of the report delay; minutes between attempts get the same bound.
MAX_MINUTES = 2**31 - 1
# A report's due time must leave this much of the calendar (which ends with 9999) for its retries.
DUE_TIME_MARGIN = datetime.timedelta(days=366)
# The AMQP properties of a message that callbridge keeps or copies.
KEPT_PROPERTIES = ("correlation_id", "reply_to", "message_id")

REASON_INVALID = "invalid phone number"
REASON_DUPLICATE = "duplicate of an earlier phone"

_DIGITS = re.compile(r"[0-9]+")
NUL = "\x00"
_MINUTES_DIGITS = len(str(MAX_MINUTES))
_CONTACT_KEYS = frozenset({"phone", "external_id", "add_data", "timezone"})
_SCALARS = (str, int, float)  # bool is an int


@dataclasses.dataclass(frozen=True)
class RequestRules:
    """What the deployment decides about requests: ``MAX_PHONES_PER_REQUEST``,
    ``CAMPAIGN_TIMEZONE`` and ``REPORT_DELAY_MINUTES``."""

    max_phones: int
    default_timezone: str
    default_report_delay_minutes: int


@dataclasses.dataclass(frozen=True, slots=True)
class Contact:
    """An accepted phone of a request; ``timezone`` is the zone the CRM gave it, if any."""

    phone: str
    external_id: str | None
    add_data: dict[str, str | int | float | bool]
    timezone: str | None = None


@dataclasses.dataclass(frozen=True)
class CallRequest:
    """A call request that keeps the contract, with every default filled in."""

    request_id: str
    project_id: int
    scenario_id: int
    start_block_id: int
    phone_id: int
    name: str
    description: str | None
    date: datetime.date
    start_time: datetime.time
    end_time: datetime.time
    attempts: int
    interval: int
    timezone: str
    phones: tuple[Contact, ...]
    phones_rejected: tuple[dict, ...]
    report_delay_minutes: int
    report_columns: tuple[dict, ...] | None
    local_to_contact: bool
    purpose: str

    @property
    def window_start(self) -> datetime.datetime:
        """When calling may start, in UTC."""
        return self._utc(self.start_time)

    @property
    def window_end(self) -> datetime.datetime:
        """When calling must stop, in UTC."""
        return self._utc(self.end_time)

    @property
    def report_due_at(self) -> datetime.datetime:
        """When the dialog results are fetched: ``report_delay_minutes`` after the window."""
        return report_due_at(window_end=self.window_end, delay_minutes=self.report_delay_minutes)

    def platform_body(
        self,
        window: tuple[datetime.date, datetime.time, datetime.time] | None = None,
        contacts: Iterable[Contact] | None = None,
    ) -> dict:
        """The ``POST /api/campaigns`` body of a campaign of this request: the ``contacts``
        given called in the ``window`` given (date, start and end as the platform reads them);
        by default every accepted phone in the request's own window, as v1 sent it."""
        date, start_time, end_time = window or (self.date, self.start_time, self.end_time)
        return create_campaign_body(
            project_id=self.project_id,
            name=self.name,
            description=self.description,
            start_block_id=self.start_block_id,
            phone_id=self.phone_id,
            date=date,
            start_time=start_time,
            end_time=end_time,
            attempts=self.attempts,
            interval=self.interval,
            phones=(
                (contact.phone, contact.add_data)
                for contact in (self.phones if contacts is None else contacts)
            ),
        )

    def _utc(self, clock: datetime.time) -> datetime.datetime:
        local = datetime.datetime.combine(self.date, clock, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(datetime.UTC)


OUT_OF_RANGE = {"campaign": {"schedule": {"date": ["Out of range."]}}}


def report_due_at(*, window_end: datetime.datetime, delay_minutes: int) -> datetime.datetime:
    """When to fetch a campaign's report: the calling window's end plus the delay, in UTC."""
    if window_end.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous: give it a time zone")
    return window_end.astimezone(datetime.UTC) + datetime.timedelta(minutes=delay_minutes)


def load_call_request(
    data: object,
    *,
    rules: RequestRules,
    now: datetime.datetime | None = None,
    properties: Mapping[str, object] | None = None,
) -> CallRequest:
    """Validate a decoded JSON body, and the AMQP ``properties`` it came with; raise
    marshmallow.ValidationError with messages in marshmallow's field-path shape, e.g.
    {"campaign": {"schedule": {"attempts": ["..."]}}, "properties": {"reply_to": ["..."]}}."""
    now = datetime.datetime.now(datetime.UTC) if now is None else now
    errors: dict[str, Any] = {}
    try:
        request: CallRequest = _schema_for(rules).load(data)  # type: ignore[arg-type,assignment]
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    if property_errors := _property_errors(properties or {}):
        errors = {**errors, "properties": property_errors}
    if errors:
        raise ValidationError(errors)
    _check_timeline(request, now)
    return request


def _property_errors(properties: Mapping[str, object]) -> dict[str, list[str]]:
    errors = {}
    for name in KEPT_PROPERTIES:
        value = properties.get(name)
        if value is None:
            continue
        problem = text_problem(value) if isinstance(value, str) else "Not a valid string."
        if problem:
            errors[name] = [problem]
    return errors


@functools.lru_cache(maxsize=8)
def _schema_for(rules: RequestRules) -> CallRequestSchema:
    return CallRequestSchema(rules=rules)


def read_request_id(data: object) -> str | None:
    """The request_id of a body that failed validation, when it is a usable one (a string of
    1-128 characters that both stores hold).

    A rejection is published under it, so the CRM can match it to what it sent.
    """
    request_id = data.get("request_id") if isinstance(data, dict) else None
    if (
        isinstance(request_id, str)
        and 1 <= len(request_id) <= REQUEST_ID_MAX_LENGTH
        and text_problem(request_id) is None
    ):
        return request_id
    return None


class Text(fields.String):
    """A string that both stores hold alike: no NUL, no lone surrogate."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if problem := text_problem(text):
            raise ValidationError(problem)
        return text


def _iana_time_zone(name: str) -> None:
    if not is_time_zone(name):
        raise ValidationError("Not a known IANA time zone name.")


class AttemptsField(fields.Field):
    """Dial attempts: ``3``, or the platform's own ``{"id": 3, "title": "3"}``; loads an int."""

    _count = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ATTEMPTS))

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, dict):
            return AttemptsSchema().load(value)["id"]
        return self._count.deserialize(value)


class IntervalField(fields.Field):
    """Minutes between attempts: a non-negative integer or a digit string; loads an int."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a non-negative integer or digit string.",
        "too_large": f"Must be at most {MAX_MINUTES}.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            if len(value.lstrip("0")) > _MINUTES_DIGITS:
                raise self.make_error("too_large")
            value = int(value)
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.make_error("invalid")
        if value > MAX_MINUTES:
            raise self.make_error("too_large")
        return value


class _Phones(NamedTuple):
    accepted: tuple[Contact, ...]
    rejected: tuple[dict, ...]


class ContactsField(fields.Field):
    """``phones``: every entry checked in one pass, then normalised and de-duplicated.

    A structurally wrong entry rejects the request (error keyed by its index, as
    ``List(Nested())`` would key it); an unreadable or repeated phone only leaves that entry
    out, listed in ``rejected``.
    """

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "Not a valid list.",
        "length": "Length must be between 1 and {max}.",
        "none_valid": "no valid phone number: none of the {count} phones could be read.",
    }

    def __init__(self, *, max_length: int = 0, **kwargs: Any) -> None:
        """``max_length`` is the deployment's: ``CallRequestSchema`` sets it when binding."""
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> _Phones:
        if not isinstance(value, list):
            raise self.make_error("invalid")
        if not 1 <= len(value) <= self.max_length:
            raise self.make_error("length", max=self.max_length)
        errors: dict[int, dict] = {}
        for index, entry in enumerate(value):
            entry_errors = _contact_errors(entry)
            if entry_errors:
                errors[index] = entry_errors
                if len(errors) == MAX_LISTED_ENTRY_ERRORS:
                    break
        if errors:
            raise ValidationError(errors)
        phones = _accept_phones(value)
        if not phones.accepted:
            raise self.make_error("none_valid", count=len(value))
        return phones


def _contact_errors(entry: Any) -> dict:
    """marshmallow-shaped errors of one ``phones[]`` entry, empty when it keeps the contract."""
    if not isinstance(entry, dict):
        return {"_schema": ["Invalid input type."]}
    errors: dict[str, Any] = {key: ["Unknown field."] for key in entry.keys() - _CONTACT_KEYS}
    if "phone" not in entry:
        errors["phone"] = ["Missing data for required field."]
    elif not isinstance(entry["phone"], str):
        errors["phone"] = [_not_a_string(entry["phone"])]
    elif NUL in entry["phone"]:
        errors["phone"] = [NUL_MESSAGE]
    external_id = entry.get("external_id", "")
    if not isinstance(external_id, str):
        errors["external_id"] = [_not_a_string(external_id)]
    elif len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        errors["external_id"] = [f"Longer than maximum length {EXTERNAL_ID_MAX_LENGTH}."]
    elif NUL in external_id:
        errors["external_id"] = [NUL_MESSAGE]
    if add_data_errors := _add_data_errors(entry.get("add_data", {})):
        errors["add_data"] = add_data_errors
    zone = entry.get("timezone", "UTC")
    if not isinstance(zone, str):
        errors["timezone"] = [_not_a_string(zone)]
    elif not is_time_zone(zone):
        errors["timezone"] = ["Not a known IANA time zone name."]
    return errors


def _add_data_errors(add_data: Any) -> Any:
    """Errors of ``add_data`` in ``fields.Dict``'s shape, None when it keeps the contract."""
    if add_data is None:
        return ["Field may not be null."]
    if not isinstance(add_data, dict):
        return ["Not a valid mapping type."]
    errors = {}
    for key, value in add_data.items():
        if not isinstance(key, str):
            errors[key] = {"key": ["Not a valid string."]}
        elif NUL in key:
            errors[key] = {"key": [NUL_MESSAGE]}
        elif not _is_scalar(value):
            errors[key] = {"value": ["Not a string, a finite number or a boolean."]}
        elif isinstance(value, str) and NUL in value:
            errors[key] = {"value": [NUL_MESSAGE]}
    return errors or None


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, _SCALARS)


def _not_a_string(value: Any) -> str:
    return "Field may not be null." if value is None else "Not a valid string."


def _accept_phones(entries: list[dict]) -> _Phones:
    """Entries (already checked) split into accepted contacts and rejected phones."""
    accepted: list[Contact] = []
    rejected: list[dict] = []
    seen: set[str] = set()
    for entry in entries:
        phone = normalise_phone(entry["phone"])
        external_id = entry.get("external_id")
        if phone is not None and phone not in seen:
            seen.add(phone)
            accepted.append(
                Contact(phone, external_id, entry.get("add_data", {}), entry.get("timezone"))
            )
            continue
        reason = REASON_INVALID if phone is None else REASON_DUPLICATE
        rejected.append({"phone": entry["phone"], "external_id": external_id, "reason": reason})
    return _Phones(tuple(accepted), tuple(rejected))


class ScheduleSchema(Schema):
    date = IsoDate(required=True)
    start_time = ClockTime(required=True)
    end_time = ClockTime(required=True)
    attempts = AttemptsField(load_default=DEFAULT_ATTEMPTS)
    interval = IntervalField(load_default=DEFAULT_INTERVAL_MINUTES)
    periods = fields.Nested(PeriodsSchema)
    timezone = Text(validate=_iana_time_zone)
    local_to_contact = fields.Boolean(truthy={True}, falsy={False})

    @validates_schema
    def _end_after_start(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end_time"] <= data["start_time"]:
            raise ValidationError("Must be later than start_time.", "end_time")


def _positive_integer() -> fields.Integer:
    return fields.Integer(
        strict=True, required=True, validate=[validate.Range(min=1), _at_most(MAX_ID)]
    )


def _at_most(maximum: int) -> validate.Range:
    """A separate bound, so that the message for a number too small stays as it was."""
    return validate.Range(max=maximum, error="Must be at most {max}.")


class CampaignSchema(Schema):
    project_id = _positive_integer()
    scenario_id = _positive_integer()
    start_block_id = _positive_integer()
    phone_id = _positive_integer()
    name = Text(validate=validate.Length(max=NAME_MAX_LENGTH))
    description = Text()
    purpose = Text(validate=validate.Length(min=1, max=PURPOSE_MAX_LENGTH))
    schedule = fields.Nested(ScheduleSchema, required=True)


def _storable_columns(columns: list[dict]) -> None:
    """The columns' strings (``ColumnSchema`` takes strings and integers only) must be storable."""
    for column in columns:
        for value in column.values():
            if isinstance(value, str) and (problem := text_problem(value)):
                raise ValidationError(problem)


class ReportSchema(Schema):
    delay_minutes = fields.Integer(
        strict=True, validate=[validate.Range(min=0), _at_most(MAX_MINUTES)]
    )
    columns = fields.List(fields.Nested(ColumnSchema), validate=_storable_columns)


class CallRequestSchema(Schema):
    """The whole request; see the module docstring for why it takes rules."""

    request_id = Text(required=True, validate=validate.Length(min=1, max=REQUEST_ID_MAX_LENGTH))
    campaign = fields.Nested(CampaignSchema, required=True)
    phones = ContactsField(required=True)
    report = fields.Nested(ReportSchema)

    def __init__(self, *, rules: RequestRules, **kwargs: Any) -> None:
        self.rules = rules
        super().__init__(**kwargs)

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        if isinstance(field_obj, ContactsField):
            field_obj.max_length = self.rules.max_phones

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> CallRequest:
        """The request with defaults filled in."""
        return _call_request(data, self.rules)


def _check_timeline(request: CallRequest, now: datetime.datetime) -> None:
    """The window must end after ``now``; its times and the report's must exist at all
    (``9999-12-31`` west of UTC does not), with room after the report's for its retries, or the
    handlers would fail on them later.

    A window in each contact's own time ends at a different moment for each zone: the planner
    tells, contact by contact, whose window is over.
    """
    try:
        window_end = request.window_end
    except OverflowError:
        raise ValidationError(OUT_OF_RANGE) from None
    if window_end <= now and not request.local_to_contact:
        raise ValidationError(
            {"campaign": {"schedule": {"end_time": ["The calling window has already ended."]}}}
        )
    try:
        request.report_due_at + DUE_TIME_MARGIN
    except OverflowError:
        if request.report_delay_minutes:
            raise ValidationError({"report": {"delay_minutes": ["Too large."]}}) from None
        raise ValidationError({"campaign": {"schedule": {"date": ["Too far ahead."]}}}) from None


def _call_request(data: dict[str, Any], rules: RequestRules) -> CallRequest:
    campaign = data["campaign"]
    schedule = campaign["schedule"]
    report = data.get("report", {})
    phones: _Phones = data["phones"]
    return CallRequest(
        request_id=data["request_id"],
        project_id=campaign["project_id"],
        scenario_id=campaign["scenario_id"],
        start_block_id=campaign["start_block_id"],
        phone_id=campaign["phone_id"],
        name=campaign.get("name", f"CRM {data['request_id']}"),
        description=campaign.get("description"),
        date=schedule["date"],
        start_time=schedule["start_time"],
        end_time=schedule["end_time"],
        attempts=schedule["attempts"],
        interval=schedule["interval"],
        timezone=schedule.get("timezone", rules.default_timezone),
        phones=phones.accepted,
        phones_rejected=phones.rejected,
        report_delay_minutes=report.get("delay_minutes", rules.default_report_delay_minutes),
        report_columns=tuple(report["columns"]) if report.get("columns") else None,
        local_to_contact=schedule.get("local_to_contact", False),
        purpose=campaign.get("purpose", f"scenario:{campaign['scenario_id']}"),
    )
