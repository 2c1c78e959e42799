"""Strict decoding of messages, and identifiers fitted to AMQP: pure functions, no I/O."""

from __future__ import annotations

import json
import time

import pytest

from schemas.identifiers import fit_short_string, text_problem
from schemas.json_codec import MAX_DEPTH, JsonRefused, compact, strict_loads
from tests.builders import call_request


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested(100_000), "nest deeper than 32 levels"),
        (nested(MAX_DEPTH + 1), "nest deeper than 32 levels"),
        ('{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "nest deeper than 32"),
        ('{"n": ' + "9" * 5000 + "}", "written in 5000 characters, over the limit of 40"),
        ('{"n": 0.' + "1" * 40 + "}", "written in 42 characters"),
        ('{"n": 1e999}', "'1e999' is too large for a float"),
        ('{"n": NaN}', "NaN is not a JSON number"),
        ('{"n": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1, "b": {"c": 1, "c": 2}}', "the key 'c' appears twice in one object"),
        ('{"a": "\\udc00"}', "lone surrogate"),
        ('{"\\ud83d": 1}', "lone surrogate"),
        ('{"a": ["ok", "\\ude00\\ud83d"]}', "lone surrogate"),
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1"),
    ],
)
def test_what_strict_decoding_refuses(text: str, reason: str) -> None:
    with pytest.raises(JsonRefused, match=reason.replace("(", r"\(")) as excinfo:
        strict_loads(text)
    assert reason in str(excinfo.value)


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_DEPTH),
        '{"n": ' + "9" * 40 + "}",
        '{"emoji": "\\ud83d\\ude00", "escaped": "\\\\udc00", "nul": "\\u0000"}',
        '{"a": 1, "b": {"a": 1}}',
        '"just a string"',
        "-0.5e-10",
    ],
)
def test_what_strict_decoding_takes_as_json_does(text: str) -> None:
    assert strict_loads(text) == json.loads(text)


def test_a_fifty_thousand_phone_request_decodes_strictly_at_nearly_the_plain_pace() -> None:
    text = compact(call_request("big", phones=50_000)).decode()
    started = time.process_time()
    json.loads(text)
    plain = time.process_time() - started
    started = time.process_time()
    strict_loads(text)
    strict = time.process_time() - started
    assert strict < plain * 1.5 + 0.05, f"plain {plain:.3f} s, strict {strict:.3f} s"


@pytest.mark.parametrize(
    "value",
    ["😀" * 128, "Я" * 200, "a" * 256, "😀" * 63 + "ab" + "😀" * 100, "\udc00" * 100],
)
def test_a_long_identifier_is_cut_between_characters_and_keeps_a_digest(value: str) -> None:
    fitted = fit_short_string(value)
    encoded = fitted.encode("utf-8", "surrogatepass")
    assert len(encoded) <= 255
    head, digest = fitted.rsplit("~", 1)
    assert value.startswith(head) and len(encoded) > 255 - 4 - 1 - len(digest)
    assert fit_short_string(value) == fitted, "deterministic"
    assert fit_short_string(value + "x") != fitted, "distinct values stay distinct"


@pytest.mark.parametrize("value", ["", "crm-event-000123:campaign.created", "a" * 255, "Я" * 127])
def test_an_identifier_that_fits_is_left_alone(value: str) -> None:
    assert fit_short_string(value) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("fine, Иван 😀", None),
        ("a\x00b", "Contains a NUL character."),
        ("a\udc00", "Contains a lone surrogate."),
    ],
)
def test_text_problem(value: str, problem: str | None) -> None:
    assert text_problem(value) == problem
