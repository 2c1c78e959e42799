"""Text that identifies things: what the stores and AMQP can hold of it.

Two limits meet here. PostgreSQL ``text`` cannot hold NUL (SQLite can), and no UTF-8 encoder
can write a lone surrogate: the contract refuses both in every string a message brings, so that
the two stores give one verdict. And AMQP's short strings (``message_id``, ``correlation_id``,
``type``, ``reply_to``, header names) hold at most 255 bytes, while an identifier callbridge
builds from a request (``<request_id>:campaign.created``) may be 128 emoji: such an identifier is
shortened where it goes into a short string, and kept whole in the message body.
"""

from __future__ import annotations

import hashlib
import re

AMQP_SHORT_STRING_BYTES = 255
# Shortened identifiers end with "~" and this many hex digits of the whole value's SHA-256.
DIGEST_CHARS = 16

NUL_MESSAGE = "Contains a NUL character."
SURROGATE_MESSAGE = "Contains a lone surrogate."

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why no store could hold ``value`` alike, or None when both can."""
    if "\x00" in value:
        return NUL_MESSAGE
    if _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    return None


def is_storable(value: object) -> bool:
    """Whether ``value`` is a string both stores hold alike."""
    return isinstance(value, str) and text_problem(value) is None


def fit_short_string(value: str, limit: int = AMQP_SHORT_STRING_BYTES) -> str:
    """``value`` itself when its UTF-8 fits in ``limit`` bytes; otherwise the longest prefix
    that leaves room for ``~`` and a digest of the whole, cut between two characters.

    Deterministic (a message published twice gets the same id twice) and distinct for distinct
    values, as far as 64 bits of SHA-256 go.
    """
    encoded = value.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return value
    digest = hashlib.sha256(encoded).hexdigest()[:DIGEST_CHARS]
    cut = limit - len(digest) - 1
    while cut and encoded[cut] & 0xC0 == 0x80:  # a continuation byte: inside a character
        cut -= 1
    return f"{encoded[:cut].decode('utf-8', 'surrogatepass')}~{digest}"
