"""Time zones: the contract and the settings accept IANA names only; a phone number's own zone."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

# For +7 numbers, the numbering plan decides a number's type (geographic or not) and its zone by
# the first three digits after the country code (checked for every range in
# tests/test_zones.py), so one lookup serves every number sharing them.
_PLAN_PREFIX = len("+7") + 3
# The numbering plan's metadata puts Kaliningrad's range (+7 401) in Europe/Bucharest, which
# moves its clocks in summer while Kaliningrad does not: an hour off half the year.
_PLAN_ZONE_FIXES = {7: {"Europe/Bucharest": "Europe/Kaliningrad"}}
# Numbers outside +7 are looked up one by one (rare in a Russian CRM); the cache stays bounded.
_CACHE_LIMIT = 10_000
_zone_of_prefix: dict[str, str | None] = {}


@functools.lru_cache(maxsize=1024)
def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (``Asia/Yekaterinburg``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def numbering_plan_zone(e164: str) -> str | None:
    """The one zone the numbering plan gives a number's range, or None: a mobile or otherwise
    non-geographic number gets the country's zones (several, in Russia), so none."""
    key = e164[:_PLAN_PREFIX] if e164.startswith("+7") else e164
    try:
        return _zone_of_prefix[key]
    except KeyError:
        pass
    zone = _looked_up(e164)
    if len(_zone_of_prefix) < _CACHE_LIMIT:
        _zone_of_prefix[key] = zone
    return zone


def _looked_up(e164: str) -> str | None:
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    zones = number_zones.time_zones_for_number(number)
    if len(zones) != 1 or zones[0] == number_zones.UNKNOWN_TIMEZONE:
        return None
    zone = _PLAN_ZONE_FIXES.get(number.country_code, {}).get(zones[0], zones[0])
    return zone if is_time_zone(zone) else None
