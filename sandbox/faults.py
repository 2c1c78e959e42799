"""Failure injection: the ways the real platform can misbehave, written as short specs.

Each row of the worker's classification table (messages.md, guarantee 4) has a fault that
produces it, so tests and demos can drive every outcome over real HTTP:

    503, "429:retry-after=2"   answer that status (with a Retry-After header), create nothing
    "drop"                     read the body, create nothing, close without answering
    "drop-after-create"        create the campaign, then close without answering
    "no-id"                    create the campaign, answer 200 without its id
    "slow:2.5"                 do the work, but answer 2.5 seconds late

and answers no client should trust, each a 200 after doing the work (creating the campaign):

    "endless"                  a chunked body that never ends
    "drip:5"                   the answer after 1 KiB of spaces, one byte every 5 seconds
    "deep", "deep:5000"        JSON nested 100,000 (5,000) levels deep: the campaign's id
                               followed by the nesting, or a report whose data is the nesting
    "id:9223372036854775808"   the campaign, under that id (any integer) instead of its own
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

STATUS = "status"
DROP = "drop"
DROP_AFTER_CREATE = "drop-after-create"
NO_ID = "no-id"
SLOW = "slow"
ENDLESS = "endless"
DRIP = "drip"
DEEP = "deep"
CAMPAIGN_ID = "id"

# The faults that only make sense where a campaign is created.
CREATE_ONLY = frozenset({DROP_AFTER_CREATE, NO_ID, CAMPAIGN_ID})
DEFAULT_DEPTH = 100_000

_STATUS_SPEC = re.compile(r"(?P<status>[45][0-9]{2})(?::retry-after=(?P<retry_after>.+))?")
_TIMED_SPEC = re.compile(r"(?P<kind>slow|drip):(?P<seconds>[0-9]+(\.[0-9]+)?)")
_DEEP_SPEC = re.compile(r"deep(?::(?P<depth>[0-9]{1,7}))?")
_ID_SPEC = re.compile(r"id:(?P<id>-?[0-9]{1,400})")


@dataclass(frozen=True)
class Fault:
    """One injected failure, consumed by one API call."""

    kind: str
    status: int | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    depth: int = DEFAULT_DEPTH
    campaign_id: int = 0

    def __str__(self) -> str:
        if self.kind == STATUS:
            suffix = f":retry-after={self.retry_after}" if self.retry_after else ""
            return f"{self.status}{suffix}"
        if self.kind in (SLOW, DRIP):
            return f"{self.kind}:{self.seconds:g}"
        if self.kind == DEEP:
            return f"{DEEP}:{self.depth}"
        return f"{CAMPAIGN_ID}:{self.campaign_id}" if self.kind == CAMPAIGN_ID else self.kind


def parse_fault(spec: str | int, *, for_create: bool) -> Fault:
    """Read one fault spec; ValueError names the spec when it is not one of the known forms."""
    text = str(spec).strip() if not isinstance(spec, bool) else ""
    if text in (DROP, DROP_AFTER_CREATE, NO_ID, ENDLESS):
        fault = Fault(kind=text)
    elif match := _STATUS_SPEC.fullmatch(text):
        fault = Fault(STATUS, status=int(match["status"]), retry_after=match["retry_after"])
    elif match := _TIMED_SPEC.fullmatch(text):
        fault = Fault(match["kind"], seconds=float(match["seconds"]))
    elif match := _DEEP_SPEC.fullmatch(text):
        fault = Fault(DEEP, depth=int(match["depth"] or DEFAULT_DEPTH))
    elif match := _ID_SPEC.fullmatch(text):
        fault = Fault(CAMPAIGN_ID, campaign_id=int(match["id"]))
    else:
        raise ValueError(
            f"unknown fault {spec!r}: use a 4xx/5xx status (optionally ':retry-after=N'), "
            "'drop', 'drop-after-create', 'no-id', 'slow:SECONDS', 'endless', "
            "'drip:SECONDS', 'deep[:LEVELS]' or 'id:INTEGER'"
        )
    if fault.kind in CREATE_ONLY and not for_create:
        raise ValueError(f"fault {spec!r} only applies to campaign creation")
    return fault


def parse_faults(specs: Iterable[str | int], *, for_create: bool) -> tuple[Fault, ...]:
    """Read a list of fault specs, in the order the calls will consume them."""
    if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
        raise ValueError("faults must be a list of fault specs")
    return tuple(parse_fault(spec, for_create=for_create) for spec in specs)
