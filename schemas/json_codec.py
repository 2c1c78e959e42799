"""JSON as callbridge writes it, and JSON as it takes it.

Writing: compact, UTF-8, Cyrillic left readable. One encoder for every body the worker produces
(platform bodies, result events, report rows, stored columns), built once: ``json.dumps`` with
options builds a new encoder at every call, and the report step encodes rows one at a time.

Reading a message: ``strict_loads`` takes only JSON that every part of callbridge, and both
stores, can hold the same way. Python's own ``json`` is lenient where a hostile sender can hurt:
it takes ``NaN`` and ``Infinity``, keeps the last of two equal keys, raises ``RecursionError`` on
deep nesting and ``ValueError`` on an integer of over 4,300 digits, and decodes ``"\\udc00"`` to
a lone surrogate that no UTF-8 encoder can write back. Each of these is refused here instead,
with a reason a sender can act on, and the same bounds for every caller:

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

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A lone surrogate can only come from a \uD800-\uDFFF escape: raw UTF-8 text cannot hold one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_CHARS = 40


class JsonRefused(ValueError):
    """The text is not JSON that callbridge takes; ``str()`` says why."""


def compact_text(value: object) -> str:
    return _COMPACT.encode(value)


def compact(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return _COMPACT.encode(value).encode()


def strict_loads(text: str) -> object:
    """The value of a JSON text within the bounds above; ``JsonRefused`` otherwise."""
    try:
        value = _STRICT.decode(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise JsonRefused(f"not JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise JsonRefused(_too_deep()) from None
    _check_depth(value)
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


def _check_depth(value: object) -> None:
    """Level by level, so that the check itself never recurses."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise JsonRefused(_too_deep())
        below: list[object] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            below.extend([item for item in items if type(item) is dict or type(item) is list])
        level = below


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


def _too_deep() -> str:
    return f"arrays and objects nest deeper than {MAX_DEPTH} levels"


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


_STRICT = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_int=_integer,
    parse_float=_float,
    parse_constant=_constant,
)
