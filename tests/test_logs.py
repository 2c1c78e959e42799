"""Log lines: redaction of phones, add_data and secrets; the text and JSON formats; configure."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from adapters.config import load_settings
from adapters.logs import (
    CALLBRIDGE_LOGGER,
    NOISY_LOGGERS,
    configure_logging,
    mask_document,
    redact,
    redact_value,
    secrets_from,
    state_change,
)
from schemas.phones import normalise_phone

TOKEN = "s3cr3t-T0ken-4a7b9c"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+79123456789", "+7912***6789"),
        ("79123456789", "+7912***6789"),
        ("89123456789", "+7912***6789"),
        ("9123456789", "+7912***6789"),
        ("8 (912) 345-67-89", "+7912***6789"),
        ("+7 912 345-67-89", "+7912***6789"),
        ("+7 (912) 345 - 67 - 89", "+7912***6789"),
        ("8.912.345.67.89", "+7912***6789"),
        ("912.345.67.89", "+7912***6789"),
        ("8 912 345.67 89", "+7912***6789"),
        ("+44 20 7946 0958", "+44***0958"),
        ("+1 (415) 555-2671", "+14***2671"),
        ("phone=+79123456789,", "phone=+7912***6789,"),
        ("['+79123456789', 89123456780]", "['+7912***6789', +7912***6780]"),
        ("x_79123456789", "x_+7912***6789"),
        ("calls 89123456789 and 8-912-345-67-80", "calls +7912***6789 and +7912***6780"),
        ("(912) 345-67-89", "+7912***6789"),
        # several phones in one run of digits and separators: each is found
        ("to 89123456789 89123456780.", "to +7912***6789 +7912***6780."),
        ("ts 1732672800 9123456789", "ts 1732672800 +7912***6789"),
        ("lead-89120000990", "lead-+7912***0990"),
        ("7 912 345 67 89 7 912 345 67 90", "+7912***6789 +7912***6790"),
    ],
)
def test_what_parses_as_a_phone_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T04:00:00.123Z",
        "2026-11-27T04:00:00.123456+00:00",
        "2026-11-27 04:00:00,123",
        "due 2026-12-01 17:15",
        "27.11.2026 04:00",
        "request_id=crm-event-000123",
        "campaign_id=12345 campaign_id=12345678",
        "took 0.30000000000000004s",
        "seconds=12.3456789012",
        "broker 10.100.200.150:5672",
        "550e8400-e29b-41d4-a716-446655440000",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "phones_accepted=10 phones_rejected=2 attempt=3",
        "+7912***6789",
        # runs of digits that are no phone number stay, so that they can be grepped for
        "request_id=demo-20261202-194102",
        "ts=1732672800",
        "id=12345678901234567890",
        "order 1234567890",
        "platform_campaign_id=9223372036854775808",  # longer than any phone number
    ],
)
def test_what_is_not_a_phone_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"add_data": {"name": "Иванов Иван", "n": 2}}', '{"add_data": ***}'),
        ("{'add_data': {'name': 'Иванов {Иван}'}, 'x': 1}", "{'add_data': ***, 'x': 1}"),
        ("Phone(add_data={'name': 'Иван'})", "Phone(add_data=***)"),
        ('b\'{"add_data": {"name": "\\xd0\\x98"}}\'', "b'{\"add_data\": ***}'"),
        ('"add_data": {}', '"add_data": ***'),
    ],
)
def test_add_data_objects_are_removed_in_any_notation(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_secrets_become_stars_longest_first() -> None:
    text = f"Authorization: Bearer {TOKEN}; short {TOKEN[:6]}"
    assert redact(text, [TOKEN[:6], TOKEN, ""]) == "Authorization: Bearer ***; short ***"


def test_redact_value_drops_sensitive_keys_and_keeps_types() -> None:
    value = {
        "request_id": "crm-1",
        "campaign_id": 12345,
        "phones_accepted": 10,
        "took": 0.25,
        "ok": True,
        "phones": ["+79123456789"],
        "Authorization": f"Bearer {TOKEN}",
        "rows": ({"phone_number": "89123456789", "note": "call 89123456789"},),
        "raw": b"to +79123456789",
        "+79123456780": "lead-1",
        "big": 79123456789,
    }
    assert redact_value(value, [TOKEN]) == {
        "request_id": "crm-1",
        "campaign_id": 12345,
        "phones_accepted": 10,
        "took": 0.25,
        "ok": True,
        "phones": "[Filtered]",
        "Authorization": "[Filtered]",
        "rows": [{"phone_number": "[Filtered]", "note": "call +7912***6789"}],
        "raw": "to +7912***6789",
        "+7912***6780": "lead-1",
        "big": "+7912***6789",
    }


@st.composite
def written_phones(draw: st.DrawFn) -> tuple[str, str]:
    """A Russian mobile number as people write it, and its 10 national digits."""
    national = "9" + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))
    prefix = draw(st.sampled_from(["+7", "7", "8", "", "+7 ", "8 "]))
    code, rest = national[:3], national[3:]
    body = draw(
        st.sampled_from(
            [
                f"{code}{rest}",
                f"({code}) {rest[:3]}-{rest[3:5]}-{rest[5:]}",
                f"{code} {rest[:3]} {rest[3:5]} {rest[5:]}",
                f"{code}-{rest[:3]}-{rest[3:5]}-{rest[5:]}",
                f"{code}.{rest[:3]}.{rest[3:5]}.{rest[5:]}",
            ]
        )
    )
    return f"{prefix}{body}", national


@given(phone=written_phones(), before=st.sampled_from(["", "to ", "phone=", '"', "(", "call:"]))
def test_no_written_phone_survives(phone: tuple[str, str], before: str) -> None:
    written, national = phone
    # A number phonenumbers holds invalid is no phone the contract takes (intake leaves it out).
    assume(normalise_phone(f"+7{national}") is not None)
    digits_left = re.sub(r"\D", "", redact(f"{before}{written} now"))
    assert national not in digits_left
    assert len(digits_left) <= 8


def test_secrets_from_settings_are_the_token_and_the_dsn_keys() -> None:
    settings = load_settings(
        {"IS74_API_TOKEN": TOKEN, "SENTRY_DSN": "https://pub123:priv456@sentry.example/42"}
    )
    assert secrets_from(settings) == (TOKEN, "pub123", "priv456")
    assert secrets_from(load_settings({})) == ()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Capture what the configured root handler writes; restore handlers and levels after."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    loggers = [root, *(logging.getLogger(name) for name in (CALLBRIDGE_LOGGER, *NOISY_LOGGERS))]
    levels = [logger.level for logger in loggers]
    yield io.StringIO()
    for handler in _our_handlers():
        if handler not in handlers:
            root.removeHandler(handler)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_text_format_has_one_line_per_state_change(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="text", stream=log_output)
    state_change(
        logging.getLogger("callbridge.create"),
        "created",
        request_id="crm-1",
        campaign_id=12345,
        phones_accepted=10,
        note="two words",
    )
    timestamp, rest = log_output.getvalue().rstrip("\n").split(" ", 1)
    assert TIMESTAMP.match(timestamp)
    assert rest == (
        "INFO callbridge.create created"
        ' request_id=crm-1 campaign_id=12345 phones_accepted=10 note="two words"'
    )


def test_a_document_shows_phones_masked_where_they_stand() -> None:
    request = {
        "request_id": "demo-20261202-194102",
        "phones": [
            {"phone": "8 (912) 345-67-89", "external_id": "lead-1", "add_data": {"name": "Иван"}},
            {"phone": "12-34", "external_id": "lead-2"},
        ],
        "rows": [{"phone_number": 79123456780, "dialog": "звоните 89123456781", "n": 7}],
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "note": f"token {TOKEN}",
    }
    assert mask_document(request, [TOKEN]) == {
        "request_id": "demo-20261202-194102",
        "phones": [
            {"phone": "+7912***6789", "external_id": "lead-1", "add_data": {"name": "***"}},
            {"phone": "***", "external_id": "lead-2"},
        ],
        "rows": [{"phone_number": "+7912***6780", "dialog": "звоните +7912***6781", "n": 7}],
        "headers": {"Authorization": "[Filtered]"},
        "note": "token ***",
    }


def test_json_format_is_one_object_per_line(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="json", stream=log_output)
    log = logging.getLogger("callbridge.report")
    state_change(log, "reported", request_id="crm-1", campaign_id=12345, rows=3)
    state_change(log, "orphan", request_id=None, level=logging.WARNING)
    log.info("plain %s", "message", extra={"request_id": "crm-2"})
    first, second, third = (json.loads(line) for line in log_output.getvalue().splitlines())
    assert TIMESTAMP.match(first.pop("ts"))
    assert first == {
        "level": "INFO",
        "logger": "callbridge.report",
        "message": "reported",
        "request_id": "crm-1",
        "campaign_id": 12345,
        "rows": 3,
    }
    assert {k: v for k, v in second.items() if k != "ts"} == {
        "level": "WARNING",
        "logger": "callbridge.report",
        "message": "orphan",
    }
    assert third["message"] == "plain message"
    assert third["request_id"] == "crm-2"
    assert all("event" not in line for line in (first, second, third)), "one key, not two"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_part_of_every_record_is_redacted(log_output: io.StringIO, fmt: str) -> None:
    configure_logging(level="INFO", fmt=fmt, secrets=[TOKEN], stream=log_output)
    log = logging.getLogger("kombu.connection")  # not ours: the filter sits on the root handler
    try:
        raise ValueError(f"platform refused 8 (912) 345-67-89 with {TOKEN}")
    except ValueError:
        log.error(
            "sending %s failed",
            {"phone": "+79123456789", "add_data": {"name": "Иванов Иван"}},
            exc_info=True,
            extra={"note": "to 89123456789", "headers": {"Authorization": TOKEN}},
        )
    output = log_output.getvalue()
    assert "+7912***6789" in output
    for leaked in ("9123456789", "345-67-89", TOKEN, "Иванов"):
        assert leaked not in output
    assert "ValueError: platform refused" in output


def test_text_format_indents_the_traceback_under_its_line(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="text", stream=log_output)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("callbridge.x").exception("step failed")
    first, *rest = log_output.getvalue().rstrip("\n").split("\n")
    assert first.endswith("ERROR callbridge.x step failed")
    assert rest[0] == "    Traceback (most recent call last):"
    assert rest[-1] == "    RuntimeError: boom"
    assert all(line.startswith("    ") for line in rest)


def test_json_format_puts_the_traceback_in_one_field(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="json", stream=log_output)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("callbridge.x").exception("step failed")
    (line,) = log_output.getvalue().splitlines()
    assert json.loads(line)["exc_info"].endswith("RuntimeError: boom")


def test_a_bad_log_call_still_logs_a_line(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="text", stream=log_output)
    # Straight to our handler: pytest's own capture handler would raise on this record first.
    record = logging.LogRecord(
        "callbridge.x", logging.INFO, __file__, 1, "count %d for %s", ("x",), None
    )
    _our_handler().handle(record)
    assert "count %d for %s (the log arguments did not fit the format)" in log_output.getvalue()


def test_configure_twice_keeps_one_handler_and_applies_levels(log_output: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="text", stream=io.StringIO())
    configure_logging(level="DEBUG", fmt="text", stream=log_output)
    assert len(_our_handlers()) == 1
    assert logging.getLogger(CALLBRIDGE_LOGGER).level == logging.DEBUG
    assert {logging.getLogger(name).level for name in NOISY_LOGGERS} == {logging.WARNING}
    logging.getLogger("callbridge.x").debug("seen")
    logging.getLogger("kombu.connection").info("not seen")
    assert "seen" in log_output.getvalue()
    assert "not seen" not in log_output.getvalue()


def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if type(h).__name__ == "_CallbridgeHandler"]


def _our_handler() -> logging.Handler:
    (handler,) = _our_handlers()
    return handler
