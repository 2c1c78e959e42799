"""Phone numbers as E.164: the one form the platform is sent and report rows are matched by.

``phonenumbers`` decides what a valid number is, but parsing costs ~20 µs a number and a
request may hold 50,000 of them. Almost every number the CRM sends is a Russian mobile or
geographic number in one of a handful of shapes, so those shapes take a fast path that reads
the digits directly and matches them against the same metadata patterns ``phonenumbers`` uses.
Anything else -- another shape, a number the patterns refuse, toll-free, Kazakhstan, another
region -- goes through ``phonenumbers`` itself, so both paths always agree
(``tests/test_phones.py`` holds them to it).
"""

from __future__ import annotations

import re

import phonenumbers

# Separators the fast path drops; any other character sends the number to phonenumbers.
# Longer text also goes there, as phonenumbers refuses input over 250 characters.
_FAST_PATH_MAX_LENGTH = 64
_SEPARATORS = str.maketrans("", "", " -().")
# National numbers starting 3, 4 or 9 are RU geographic or mobile numbers and nothing else.
_FAST_NATIONAL = re.compile(r"[349][0-9]{9}")
_RU_METADATA = phonenumbers.PhoneMetadata.metadata_for_region("RU")
_RU_MOBILE_OR_GEOGRAPHIC = re.compile(
    f"(?:{_RU_METADATA.mobile.national_number_pattern})"
    f"|(?:{_RU_METADATA.fixed_line.national_number_pattern})"
)


def normalise_phone(raw: str | int, region: str = "RU") -> str | None:
    """E.164 ('+79123456789') or None when it cannot be read as a valid number.

    Ints are accepted because a report row may hold the phone as a JSON number.
    """
    if raw is True or raw is False or not isinstance(raw, str | int):
        return None
    text = str(raw)
    if region == "RU" and len(text) <= _FAST_PATH_MAX_LENGTH:
        national = _ru_national_number(text)
        if national is not None and _RU_MOBILE_OR_GEOGRAPHIC.fullmatch(national):
            return "+7" + national
    return _parsed(text, region)


def _ru_national_number(text: str) -> str | None:
    """The ten digits of the common RU shapes, when they start 3, 4 or 9; else None.

    Shapes: ``+7`` and ten digits, ``7`` or ``8`` and ten digits, or the ten digits alone,
    with spaces, dashes, dots and brackets anywhere.
    """
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+7"):
        national = compact[2:]
    elif len(compact) == 11 and compact[0] in "78":
        national = compact[1:]
    else:
        national = compact
    return national if _FAST_NATIONAL.fullmatch(national) else None


def _parsed(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
