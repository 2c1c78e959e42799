"""Analytics rows tied back to the request's contacts, and reports split into events that fit."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from handlers.report_building import AcceptedPhone, ReportPart, ReportTooLarge, report_events
from schemas.platform import AnalyticsReport

OCCURRED_AT = datetime(2030, 12, 2, 12, 15, 0, 250000, tzinfo=UTC)
PHONE_FIELDS = ("phone_number", "phone")
COLUMNS = [{"field": "phone_number", "display_name": "Телефон", "type": "text"}]
IVANOV = ("+79123456789", "lead-42")
PETROV = ("+79120000001", "lead-43")
NAMELESS = ("+79120000002", None)
TIED_TO_IVANOV = {"phone": "+79123456789", "external_id": "lead-42"}
TWO_PHONES = {"phone_number": "89123456789", "phone": "89120000001"}


def analytics(rows: list) -> AnalyticsReport:
    return AnalyticsReport(
        columns=COLUMNS, rows=rows, total_duration=3600, avg_duration=120.5, count=len(rows)
    )


def events(
    rows: list,
    contacts: Sequence[AcceptedPhone] = (IVANOV, PETROV, NAMELESS),
    *,
    phone_fields: Sequence[str] = PHONE_FIELDS,
    max_bytes: int = 4 * 1024 * 1024,
    request_id: str = "crm-event-000123",
) -> list[ReportPart]:
    return list(
        report_events(
            request_id=request_id,
            campaign_id=12345,
            report=analytics(rows),
            contacts=contacts,
            phone_fields=phone_fields,
            max_bytes=max_bytes,
            occurred_at=OCCURRED_AT,
        )
    )


def decoded(parts: list[ReportPart]) -> list[dict]:
    return [json.loads(body) for _, body, _ in parts]


def all_rows(parts: list[ReportPart]) -> list:
    return [row for part in decoded(parts) for row in part["rows"]]


def all_missing(parts: list[ReportPart]) -> list:
    """The missing entries of every part; each part's own count must say as many."""
    bodies = decoded(parts)
    assert [part.missing for part in parts] == [len(body["missing"]) for body in bodies]
    return [entry for body in bodies for entry in body["missing"]]


# --- mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "79123456789",
        "+79123456789",
        "89123456789",
        "9123456789",
        "+7 912 345-67-89",
        "8 (912) 345-67-89",
        "+7 (912) 345 67 89",
        "8-912-345-67-89",
        79123456789,
        89123456789,
    ],
)
def test_a_row_is_tied_to_its_contact_whatever_form_the_phone_is_written_in(
    written: str | int,
) -> None:
    row = {"phone_number": written, "goal": "Подтвердил", "duration": 42}

    parts = events([row])

    assert all_rows(parts) == [{**row, **TIED_TO_IVANOV}]


@pytest.mark.parametrize(
    ("phone_fields", "row", "tied_to"),
    [
        # The first configured field the row holds decides.
        (("phone_number", "phone"), TWO_PHONES, IVANOV),
        (("phone", "phone_number"), TWO_PHONES, PETROV),
        # A field the row lacks, or holds as null or "", is passed over.
        (("phone_number", "phone"), {"phone": "+7 912 000-00-01"}, PETROV),
        (("phone_number", "phone"), {"phone_number": None, "phone": "89120000001"}, PETROV),
        (("phone_number", "phone"), {"phone_number": "", "phone": "89120000001"}, PETROV),
        # Any field name can be configured.
        (("abonent",), {"abonent": "8 912 345 67 89", "phone_number": "89120000001"}, IVANOV),
    ],
)
def test_the_phone_is_read_from_the_first_configured_field_that_holds_one(
    phone_fields: tuple[str, ...], row: dict, tied_to: AcceptedPhone
) -> None:
    parts = events([row], phone_fields=phone_fields)

    phone, external_id = tied_to
    assert all_rows(parts) == [{**row, "phone": phone, "external_id": external_id}]


@pytest.mark.parametrize(
    "row",
    [
        {"phone_number": "+79990000000", "goal": "Не дозвонились"},  # not a phone of the request
        {"phone_number": "not a phone"},
        {"phone_number": "+1 202 555 0100", "phone": "+79123456789"},  # first field decides
        {"phone_number": 79123456789.0},  # neither a string nor an integer
        {"phone_number": True},
        {"phone_number": None, "phone": ""},
        {"duration": 30},
        # The platform's own phone is left as it wrote it when the row ties to no contact.
        {"phone_number": "+79990000000", "phone": "8 999 000-00-00", "external_id": "theirs"},
    ],
)
def test_a_row_matching_no_contact_is_kept_exactly_as_the_platform_gave_it(row: dict) -> None:
    parts = events([row])

    assert all_rows(parts) == [row]
    assert all_missing(parts) == [
        {"phone": phone, "external_id": external_id}
        for phone, external_id in (IVANOV, PETROV, NAMELESS)
    ]


def test_a_matched_row_has_the_platforms_phone_and_external_id_replaced_by_the_crms() -> None:
    row = {"phone_number": "89123456789", "phone": "8 (912) 345-67-89", "external_id": 7}

    parts = events([row])

    assert all_rows(parts) == [
        {"phone_number": "89123456789", "phone": "+79123456789", "external_id": "lead-42"}
    ]


def test_rows_that_are_not_objects_are_kept_in_place() -> None:
    rows = [5, "строка", None, [1, 2], {"phone_number": "89123456789"}, True]

    parts = events(rows)

    assert all_rows(parts) == [
        5,
        "строка",
        None,
        [1, 2],
        {"phone_number": "89123456789", "phone": "+79123456789", "external_id": "lead-42"},
        True,
    ]


def test_every_row_of_a_phone_is_tied_and_the_phones_without_rows_are_missing() -> None:
    rows = [
        {"phone_number": "89123456789", "attempt": 1},
        {"phone_number": "+79990000000", "attempt": 1},
        {"phone_number": "+7 912 345-67-89", "attempt": 2},
        {"phone": 79123456789, "attempt": 3},
    ]

    parts = events(rows)

    assert all_rows(parts) == [
        {"phone_number": "89123456789", "attempt": 1, **TIED_TO_IVANOV},
        {"phone_number": "+79990000000", "attempt": 1},
        {"phone_number": "+7 912 345-67-89", "attempt": 2, **TIED_TO_IVANOV},
        {"phone": "+79123456789", "attempt": 3, "external_id": "lead-42"},
    ]
    assert all_missing(parts) == [
        {"phone": "+79120000001", "external_id": "lead-43"},
        {"phone": "+79120000002", "external_id": None},
    ]


def test_no_phone_is_missing_when_every_contact_has_a_row() -> None:
    rows = [{"phone_number": phone} for phone, _ in (NAMELESS, IVANOV, PETROV)]

    parts = events(rows)

    assert [row["external_id"] for row in all_rows(parts)] == [None, "lead-42", "lead-43"]
    assert all_missing(parts) == []


# --- events and parts ------------------------------------------------------------------------


def test_a_small_report_is_one_event_part_1_of_1_with_the_whole_envelope() -> None:
    parts = events([{"phone_number": "89123456789", "goal": "Да"}])

    [(event_id, body, _)] = parts
    event = json.loads(body)
    assert event_id == "crm-event-000123:campaign.report:1"
    assert body == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    assert {key: value for key, value in event.items() if key not in ("rows", "missing")} == {
        "type": "campaign.report",
        "event_id": "crm-event-000123:campaign.report:1",
        "request_id": "crm-event-000123",
        "occurred_at": "2030-12-02T12:15:00.250Z",
        "campaign_id": 12345,
        "columns": COLUMNS,
        "total_duration": 3600,
        "avg_duration": 120.5,
        "count": 1,
        "part": 1,
        "parts": 1,
    }


@pytest.mark.parametrize("contacts", [(), (IVANOV,)])
def test_a_report_without_rows_is_one_event(contacts: tuple) -> None:
    parts = events([], contacts)

    [event] = decoded(parts)
    assert (event["part"], event["parts"], event["rows"]) == (1, 1, [])
    assert event["missing"] == [{"phone": phone, "external_id": ext} for phone, ext in contacts]


def test_a_request_id_that_looks_like_the_lists_does_not_confuse_the_parts() -> None:
    request_id = '"rows":[],"missing":[]'

    parts = events([{"phone_number": "89123456789"}], (IVANOV,), request_id=request_id)

    [event] = decoded(parts)
    assert event["request_id"] == request_id
    assert len(event["rows"]) == 1
    assert event["missing"] == []


def test_missing_entries_alone_are_split_over_parts_too() -> None:
    contacts = [(f"+7912{number:07d}", f"lead-{number}") for number in range(2000)]

    parts = events([], contacts, max_bytes=4096)

    assert len(parts) > 1
    assert all(len(body) <= 4096 for _, body, _ in parts)
    assert all_missing(parts) == [{"phone": p, "external_id": e} for p, e in contacts]


def test_parts_are_filled_to_the_byte_and_no_further() -> None:
    row = {"phone_number": "89123456789", "dialog": "Алло? " * 500}
    [(_, one_row, _)] = events([row], ())
    [(_, two_rows, _)] = events([row, row], ())

    assert [len(body) for _, body, _ in events([row, row], (), max_bytes=len(two_rows))] == [
        len(two_rows)
    ]
    assert [len(body) for _, body, _ in events([row, row], (), max_bytes=len(two_rows) - 1)] == [
        len(one_row),
        len(one_row),
    ]
    with pytest.raises(ReportTooLarge):
        events([row], (), max_bytes=len(one_row) - 1)


def test_a_row_too_large_for_any_event_fails_the_report_before_any_part_is_given() -> None:
    rows = [{"phone_number": "89123456789"}] * 10 + [
        {"phone_number": "89123456789", "x": "Я" * 5000}
    ]
    parts = report_events(
        request_id="big",
        campaign_id=1,
        report=analytics(rows),
        contacts=[IVANOV],
        phone_fields=PHONE_FIELDS,
        max_bytes=4096,
        occurred_at=OCCURRED_AT,
    )

    with pytest.raises(ReportTooLarge) as raised:
        next(parts)
    assert "row" in str(raised.value)
    assert "9123456789" not in str(raised.value)


def test_columns_too_large_for_any_event_fail_the_report_even_without_rows() -> None:
    report = AnalyticsReport(
        columns=[{"field": "x" * 5000}], rows=[], total_duration=0, avg_duration=0, count=0
    )

    with pytest.raises(ReportTooLarge, match="columns"):
        next(
            report_events(
                request_id="wide",
                campaign_id=1,
                report=report,
                contacts=[IVANOV],
                phone_fields=PHONE_FIELDS,
                max_bytes=4096,
                occurred_at=OCCURRED_AT,
            )
        )


def big_report(rows: int, contacts: int) -> tuple[list[dict], list[AcceptedPhone]]:
    """``rows`` dialogs spread over the first 80% of ``contacts`` phones, in every form."""
    phones = [(f"+7912{number:07d}", f"lead-{number}") for number in range(contacts)]
    called = phones[: contacts * 4 // 5]
    forms = (
        lambda e164: e164,
        lambda e164: "8" + e164[2:],
        lambda e164: f"8 ({e164[2:5]}) {e164[5:8]}-{e164[8:10]}-{e164[10:]}",
        lambda e164: int(e164[1:]),
    )
    dialogs = [
        {
            "seq": number,
            "phone_number": forms[number % 4](called[number % len(called)][0]),
            "goal": "Подтвердил запись",
            "duration": 120,
            "dialog": "Здравствуйте! Это сервисный центр, напоминаем о визите мастера.",
        }
        for number in range(rows)
    ]
    return dialogs, phones


def test_100000_rows_split_into_parts_that_add_up_and_each_fit() -> None:
    max_bytes = 1024 * 1024
    rows, contacts = big_report(100_000, 50_000)

    started = time.process_time()
    parts = events(rows, contacts, max_bytes=max_bytes, request_id="big-report")
    cpu_seconds = time.process_time() - started

    assert cpu_seconds < 3.0
    assert len(parts) > 10
    assert all(len(body) <= max_bytes for _, body, _ in parts)
    assert [part.event_id for part in parts] == [
        f"big-report:campaign.report:{part}" for part in range(1, len(parts) + 1)
    ]
    events_ = decoded(parts)
    assert [(event["part"], event["parts"]) for event in events_] == [
        (part, len(parts)) for part in range(1, len(parts) + 1)
    ]
    assert all(
        (event["columns"], event["count"], event["total_duration"], event["avg_duration"])
        == (COLUMNS, 100_000, 3600, 120.5)
        for event in events_
    )
    tied = all_rows(parts)
    assert [row["seq"] for row in tied] == list(range(100_000))
    assert all(row["external_id"] == f"lead-{int(row['phone'][5:])}" for row in tied)
    assert all_missing(parts) == [
        {"phone": phone, "external_id": external_id} for phone, external_id in contacts[40_000:]
    ]


def test_each_part_but_the_last_is_full() -> None:
    max_bytes = 16 * 1024
    rows, contacts = big_report(2000, 1000)

    parts = events(rows, contacts, max_bytes=max_bytes)

    encoded_events = decoded(parts)
    for (_, body, _), following in zip(parts, encoded_events[1:], strict=False):
        first_item = (following["rows"] or following["missing"])[0]
        first_size = len(json.dumps(first_item, ensure_ascii=False, separators=(",", ":")).encode())
        assert len(body) + 1 + first_size > max_bytes


def test_parts_are_built_one_at_a_time() -> None:
    rows = [{"phone_number": "89123456789", "dialog": f"{n} " + "Ш" * 1000} for n in range(4000)]
    parts = report_events(
        request_id="stream",
        campaign_id=1,
        report=analytics(rows),
        contacts=[IVANOV],
        phone_fields=PHONE_FIELDS,
        max_bytes=64 * 1024,
        occurred_at=OCCURRED_AT,
    )

    tracemalloc.start()
    try:
        sizes = [len(body) for _, body, _ in parts]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(sizes) > 100
    assert peak < sum(sizes) / 10
