"""JSON as callbridge writes it, and JSON from outside read with a bound on its nesting.

One encoder for every body the worker produces (platform bodies, result events, report rows,
stored columns), built once: ``json.dumps`` with options builds a new encoder at every call,
and the report step encodes rows one at a time.

``decode`` is for JSON that others wrote. Python's decoder recurses once per nesting level, so
a document a few thousand levels deep raises ``RecursionError`` — not a ``ValueError`` — from
wherever it is decoded, and whatever walks the result afterwards (the encoder, a scrubber)
recurses as deep. ``decode`` measures the nesting before decoding and refuses a document
deeper than its bound with ``TooDeep``, a ``ValueError``, like any other JSON that cannot be
read.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deeper than any answer or message callbridge reads (a report is four levels deep), shallow
# enough that decoding, encoding and scrubbing never come near the interpreter's recursion limit.
MAX_DEPTH = 64

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The nesting is measured on the brackets outside strings, all found at C speed: escapes are
# dropped first (so an escaped quote is not a string's end), then every byte but brackets and
# quotes, then the strings (which now hold only brackets), leaving the brackets alone. Most
# strings hold no bracket and are then two quotes side by side, which a plain replace drops
# (two quotes closing one string and opening the next only join them: nothing is between).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_STRINGS = re.compile(rb'(?:"[^"]*")+')
_INNERMOST_PAIRS = re.compile(rb"\[\]|\{\}")


class TooDeep(ValueError):
    """The JSON nests deeper than the bound."""


def compact_text(value: object) -> str:
    return _COMPACT.encode(value)


def compact(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return _COMPACT.encode(value).encode()


def decode(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
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
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
