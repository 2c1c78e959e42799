"""JSON as callbridge writes it: compact, UTF-8, Cyrillic left readable.

One encoder for every body the worker produces (platform bodies, result events, report rows,
stored columns), built once: ``json.dumps`` with options builds a new encoder at every call,
and the report step encodes rows one at a time.
"""

from __future__ import annotations

import json

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_text(value: object) -> str:
    return _COMPACT.encode(value)


def compact(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return _COMPACT.encode(value).encode()
