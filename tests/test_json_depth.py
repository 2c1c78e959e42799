"""JSON read with a bound on its nesting: refused before Python's decoder can recurse."""

from __future__ import annotations

import json

import pytest

from schemas.json_codec import ANSWER_MAX_DEPTH, TooDeep, check_depth, decode


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [1, 2, ANSWER_MAX_DEPTH])
def test_json_as_deep_as_the_bound_decodes(depth: int) -> None:
    assert decode(nested(depth)) == json.loads(nested(depth))


@pytest.mark.parametrize("depth", [ANSWER_MAX_DEPTH + 1, 5_000, 1_000_000])
def test_deeper_json_is_refused_with_a_value_error(depth: int) -> None:
    with pytest.raises(TooDeep, match=f"nest deeper than {ANSWER_MAX_DEPTH} levels"):
        decode(nested(depth))
    assert issubclass(TooDeep, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "[[[[[[[[[[", "b": "}}}}"}',
        '["\\"[[[[[[", "\\\\", "]]]]"]',
        '{"dialog": "Бот: [пауза] {имя}"}',
        '["[", "", "]", "", "{"]',
        "12345",
        '"just a string"',
        "[]",
    ],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    check_depth(text.encode(), max_depth=1)
    assert decode(text.encode()) == json.loads(text)


def test_strings_cannot_hide_real_nesting() -> None:
    """Closing brackets in one string and opening ones in another cancel out for a naive count
    of every bracket: the strings are taken out first."""
    for hidden in (b'[["]]", [["x"]], "[["]]', b'[["]]", "", [[""]], "", "[["]]'):
        json.loads(hidden)  # 4 levels; counting every bracket says 2
        check_depth(hidden, max_depth=4)
        with pytest.raises(TooDeep):
            check_depth(hidden, max_depth=3)


@pytest.mark.parametrize("text", [b"[1, 2", b'{"a": [}]', b'"unterminated', b"[[[[]]"])
def test_short_json_that_is_broken_is_left_to_json_to_describe(text: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        decode(text)


def test_long_broken_json_that_could_recurse_is_refused_first() -> None:
    with pytest.raises(TooDeep, match="do not pair up"):
        decode(b"[" * 100_000 + b"}")


def test_str_and_options_are_passed_to_json() -> None:
    assert decode('{"x": NaN}', parse_constant=lambda _: None) == {"x": None}
