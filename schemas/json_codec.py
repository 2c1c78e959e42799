"""JSON as callbridge writes it, and JSON from outside as callbridge takes it.

Writing: compact, UTF-8, Cyrillic left readable. One encoder for every body the worker produces
(platform bodies, result events, report rows, stored columns), built once: ``json.dumps`` with
options builds a new encoder at every call, and the report step encodes rows one at a time.

Reading: Python's decoder recurses once per nesting level, so a document a few thousand levels
deep raises ``RecursionError`` — not a ``ValueError`` — from wherever it is decoded, and
whatever walks the result afterwards (the encoder, a scrubber) recurses as deep. Every reader
here measures the nesting first, on the raw text (``check_depth``), and refuses a document
deeper than its bound with ``TooDeep``, a ``ValueError`` like any other JSON that cannot be read.

``decode`` reads the platform's answers with that bound alone (``ANSWER_MAX_DEPTH``).
``strict_loads`` reads a CRM's message, and takes only JSON that every part of callbridge, and
both stores, can hold the same way. Python's own ``json`` is lenient where a hostile sender can
hurt: it takes ``NaN`` and ``Infinity``, keeps the last of two equal keys, raises ``ValueError``
on an integer of over 4,300 digits, and decodes ``"\\udc00"`` to a lone surrogate that no UTF-8
encoder can write back. Each of these is refused instead, with a reason a sender can act on:

* arrays and objects nest at most ``MAX_DEPTH`` levels (the top-level object is level 1);
* a number is written in at most ``MAX_NUMBER_CHARS`` characters, and is finite;
* no key appears twice in one object;
* no string (keys included) holds a lone surrogate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

# A CRM's message: deeper than any request needs (a request is four levels deep).
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
# A platform's answer: deeper than any it gives (a report is four levels deep), shallow enough
# that decoding, encoding and scrubbing never come near the interpreter's recursion limit.
ANSWER_MAX_DEPTH = 64

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A lone surrogate can only come from a \uD800-\uDFFF escape: raw UTF-8 text cannot hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_CHARS = 40

# The nesting is measured on the brackets outside strings, all found at C speed: escapes are
# dropped first (so an escaped quote is not a string's end), then every byte but brackets and
# quotes, then the strings (which now hold only brackets), leaving the brackets alone. Most
# strings hold no bracket and are then two quotes side by side, which a plain replace drops
# (two quotes closing one string and opening the next only join them: nothing is between).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_STRINGS = re.compile(rb'(?:"[^"]*")+')
_INNERMOST_PAIRS = re.compile(rb"\[\]|\{\}")


class JsonRefused(ValueError):
    """The text is not JSON that callbridge takes; ``str()`` says why."""


class TooDeep(JsonRefused):
    """The JSON nests deeper than the bound."""


def compact_text(value: object) -> str:
    return _COMPACT.encode(value)


def compact(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return _COMPACT.encode(value).encode()


def decode(
    data: bytes | bytearray | str, *, max_depth: int = ANSWER_MAX_DEPTH, **options: Any
) -> Any:
    """``json.loads(data, **options)`` for a document nested at most ``max_depth`` levels.

    Raises ``TooDeep`` for a deeper one, and ``ValueError`` (as ``json.loads`` does) for one
    that is not JSON — never ``RecursionError``.
    """
    check_depth(data, max_depth)
    return json.loads(data, **options)


def check_depth(data: bytes | bytearray | str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``TooDeep`` unless ``data`` nests at most ``max_depth`` levels deep.

    Each pass removes the innermost ``[]`` and ``{}`` pairs, so valid JSON is gone after as many
    passes as it is deep, and what is left after ``max_depth`` passes is nested deeper. What
    stops shrinking earlier is not JSON: when it is short enough that decoding it cannot recurse
    past the bound, ``json.loads`` is left to say where it breaks.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    brackets = _ESCAPE.sub(b"", raw).translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in brackets:
        brackets = _STRINGS.sub(b"", brackets)
    for passes in range(max_depth):
        if not brackets:
            return
        inner = _INNERMOST_PAIRS.sub(b"", brackets)
        if len(inner) == len(brackets):
            if passes + len(brackets) <= max_depth:
                return
            raise TooDeep(f"not JSON: {len(brackets)} brackets or quotes that do not pair up")
        brackets = inner
    if brackets:
        raise TooDeep(f"arrays and objects nest deeper than {max_depth} levels")


def strict_loads(text: str) -> object:
    """The value of a JSON text within the bounds above; ``JsonRefused`` otherwise."""
    check_depth(text, MAX_DEPTH)
    try:
        value = _STRICT.decode(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise JsonRefused(f"not JSON: {exc.msg} at {where}") from None
    if _SURROGATE_ESCAPE.search(text) and any(map(_SURROGATE.search, _strings(value))):
        raise JsonRefused("a string holds a lone surrogate (a \\uD800-\\uDFFF escape, unpaired)")
    return value


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonRefused(f"the key {_shown(key)} appears twice in one object")
            seen.add(key)
    return value


def _integer(literal: str) -> int:
    _check_length(literal)
    return int(literal)


def _float(literal: str) -> float:
    _check_length(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {_shown(literal)} is too large for a float")
    return value


def _constant(name: str) -> object:
    raise JsonRefused(f"{name} is not a JSON number")


def _check_length(literal: str) -> None:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonRefused(
            f"a number is written in {len(literal)} characters, over the limit of "
            f"{MAX_NUMBER_CHARS}"
        )


def _strings(value: object) -> Iterator[str]:
    """Every string of a decoded value, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            yield item
        elif type(item) is dict:
            yield from item.keys()
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


_STRICT = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_int=_integer,
    parse_float=_float,
    parse_constant=_constant,
)
