"""The platform's request bodies, checked field by field as its documentation describes them.

An independent reading of api-doc.ru.txt and its errata (NOTES.md), deliberately not shared with
the worker's schemas: when the two disagree, the sandbox's 422 shows where. Every reason is
reported at once, keyed by the field's dotted path (``campaign.schedule.interval``,
``phones.3.phone``), as a Laravel-style platform does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time

Errors = dict[str, list[str]]
# A rule checks one value found at ``path`` and adds what is wrong with it to the errors.
Rule = Callable[[object, str, Errors], None]
# A scalar check returns what is wrong with a value, or None when it is right.
Check = Callable[[object], str | None]

ROOT = "_schema"
PERIODS_TITLE = "Однократно"
CAMPAIGN_STATE = "Создано"
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

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")
_E164_RU = re.compile(r"\+7[0-9]{10}")
_UTC_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z"
)


def campaign_errors(body: object) -> Errors:
    """Everything wrong with a ``POST /api/campaigns`` body; empty when it is acceptable."""
    return _errors(_CAMPAIGN_BODY, body)


def report_errors(body: object) -> Errors:
    """Everything wrong with a ``POST /api/analytics/{project_id}/report`` body."""
    return _errors(_REPORT_BODY, body)


def parse_utc_timestamp(value: str) -> datetime:
    """A timestamp that passed ``report_errors``, as an aware datetime."""
    return datetime.fromisoformat(value)


def _errors(rule: Rule, body: object) -> Errors:
    errors: Errors = {}
    rule(body, "", errors)
    return errors


def _add(errors: Errors, path: str, message: str) -> None:
    errors.setdefault(path or ROOT, []).append(message)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# --- rule builders ----------------------------------------------------------------------------


def _scalar(check: Check) -> Rule:
    def rule(value: object, path: str, errors: Errors) -> None:
        if (message := check(value)) is not None:
            _add(errors, path, message)

    return rule


def _object(
    fields: Mapping[str, tuple[bool, Rule]],
    *,
    whole: Callable[[dict], tuple[str, str] | None] | None = None,
) -> Rule:
    """An object with exactly these fields (``name: (required, rule)``); others are refused.

    ``whole`` checks relations between fields once each field is fine on its own; it returns
    ``(field, message)`` for the first relation broken.
    """

    def rule(value: object, path: str, errors: Errors) -> None:
        if not isinstance(value, dict):
            _add(errors, path, "must be an object")
            return
        before = len(errors)
        for key in sorted(value.keys() - fields.keys()):
            _add(errors, _join(path, key), "unknown field")
        for key, (required, field_rule) in fields.items():
            if key in value:
                field_rule(value[key], _join(path, key), errors)
            elif required:
                _add(errors, _join(path, key), "required")
        if whole is not None and len(errors) == before and (broken := whole(value)):
            _add(errors, _join(path, broken[0]), broken[1])

    return rule


def _list_of(item: Rule, *, non_empty: bool = False) -> Rule:
    def rule(value: object, path: str, errors: Errors) -> None:
        if not isinstance(value, list):
            _add(errors, path, "must be a list")
        elif non_empty and not value:
            _add(errors, path, "must not be empty")
        else:
            for index, element in enumerate(value):
                item(element, _join(path, index), errors)

    return rule


def _map_of(check: Check) -> Rule:
    def rule(value: object, path: str, errors: Errors) -> None:
        if not isinstance(value, dict):
            _add(errors, path, "must be an object")
            return
        for key, element in value.items():
            if (message := check(element)) is not None:
                _add(errors, _join(path, key), message)

    return rule


# --- scalar checks ----------------------------------------------------------------------------


def _integer(value: object) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _exactly(expected: object) -> Check:
    def check(value: object) -> str | None:
        same = type(value) is type(expected) and value == expected
        return None if same else f"must be {expected!r}"

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: object) -> str | None:
        return None if value in choices else f"must be one of: {', '.join(choices)}"

    return check


def _matching(
    pattern: re.Pattern[str], message: str, *, parse: Callable[[str], object] = str
) -> Check:
    """A string of ``pattern`` that ``parse`` also accepts (a real date, not 2026-02-31)."""

    def check(value: object) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if not pattern.fullmatch(value):
            return message
        try:
            parse(value)
        except ValueError:
            return message
        return None

    return check


def _add_data_value(value: object) -> str | None:
    scalar = isinstance(value, str | int | float)  # bool is an int
    return None if scalar else "must be a string, number or boolean"


def _attempts_title(attempts: dict) -> tuple[str, str] | None:
    if attempts["title"] != str(attempts["id"]):
        return "title", f"must be {str(attempts['id'])!r}, the same number as id"
    return None


def _date_order(analytics_filter: dict) -> tuple[str, str] | None:
    start = parse_utc_timestamp(analytics_filter["date_start"])
    if parse_utc_timestamp(analytics_filter["date_end"]) < start:
        return "date_end", "must not be before date_start"
    return None


def _attempts_id(value: object) -> str | None:
    valid = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
    return None if valid else "must be an integer from 1 to 5"


_INTEGER = _scalar(_integer)
_STRING = _scalar(_string)
_TIME_OF_DAY = _scalar(_matching(_TIME, "must be a time HH:MM", parse=time.fromisoformat))
_UTC = _scalar(
    _matching(
        _UTC_TIMESTAMP,
        "must be an ISO-8601 UTC timestamp ending in Z",
        parse=datetime.fromisoformat,
    )
)

_PERIODS = _object(
    {"id": (True, _scalar(_exactly(1))), "title": (True, _scalar(_exactly(PERIODS_TITLE)))}
)
_ATTEMPTS = _object(
    {"id": (True, _scalar(_attempts_id)), "title": (True, _STRING)}, whole=_attempts_title
)
_SCHEDULE = _object(
    {
        "date": (
            True,
            _scalar(_matching(_DATE, "must be a date YYYY-MM-DD", parse=date.fromisoformat)),
        ),
        "start_time": (True, _TIME_OF_DAY),
        "end_time": (True, _TIME_OF_DAY),
        "periods": (True, _PERIODS),
        "attempts": (True, _ATTEMPTS),
        "interval": (True, _scalar(_matching(_DIGITS, "must be a string of digits"))),
    }
)
_CAMPAIGN = _object(
    {
        "project_id": (True, _INTEGER),
        "name": (False, _STRING),
        "description": (False, _STRING),
        "state": (True, _scalar(_exactly(CAMPAIGN_STATE))),
        "start_block_id": (True, _INTEGER),
        "schedule": (True, _SCHEDULE),
        "phone_id": (True, _INTEGER),
    }
)
_PHONE = _object(
    {
        "phone": (True, _scalar(_matching(_E164_RU, "must be an E.164 number +7XXXXXXXXXX"))),
        "add_data": (False, _map_of(_add_data_value)),
    }
)
_CAMPAIGN_BODY = _object(
    {"campaign": (True, _CAMPAIGN), "phones": (True, _list_of(_PHONE, non_empty=True))}
)

_ANALYTICS_FILTER = _object(
    {
        "scenario_id": (True, _INTEGER),
        "start_block_id": (True, _INTEGER),
        "outgoing_campaign_id": (True, _INTEGER),
        "date_start": (True, _UTC),
        "date_end": (True, _UTC),
    },
    whole=_date_order,
)
_COLUMN = _object(
    {
        "id": (False, _INTEGER),
        "name": (False, _STRING),
        "display_name": (False, _STRING),
        "column_type": (False, _STRING),
        "data_type": (False, _scalar(_one_of(DATA_TYPES))),
        "filter_type": (False, _scalar(_one_of(FILTER_TYPES))),
        "filter_value": (False, _STRING),
        "sorting": (False, _scalar(_one_of(SORTINGS))),
    }
)
_REPORT_BODY = _object(
    {"analytics_filter": (True, _ANALYTICS_FILTER), "columns": (False, _list_of(_COLUMN))}
)
