"""Planning: the campaigns a request becomes, so that each contact is called in its own hours.

Pure: no I/O, and ``now`` is given. Intake plans a request before storing it, so that every
planned campaign is stored with its own body, claim and settlement.

Per contact:

1. its zone: the ``timezone`` the CRM gave it, else the one zone the numbering plan gives its
   number (a mobile number gives none), else the request's ``schedule.timezone`` (whose default
   is ``CAMPAIGN_TIMEZONE``);
2. its window: the request's window — in ``schedule.timezone``, or in the contact's own zone
   when ``local_to_contact`` — cut to the calling hours of the contact's local days;
3. that in the platform's zone, cut at the platform's midnights (the platform takes one day
   per campaign); a contact is in exactly one campaign, so of the parts it keeps the one with
   the most time left, the earliest of equals;
4. nothing left: the contact is left out, with the reason ``outside calling hours``, or
   ``window over`` when what its calling hours allowed has passed.

Contacts with the same platform window form one campaign, split into chunks of at most
``max_per_campaign`` in the request's order; campaigns are numbered from 1 by window (earliest
first), then chunk. A window that has begun keeps its start: a v1 request whose window lies in
its contacts' calling hours is planned as the one campaign v1 sent, body for body.

The work is done once per zone, not once per contact: 50,000 contacts have a handful of zones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from handlers.calling_windows import (
    PlatformWindow,
    callable_parts,
    platform_windows,
    time_left,
    zone_window,
)
from schemas.calling_hours import CallingHours
from schemas.json_codec import compact
from schemas.request import CallRequest, Contact
from schemas.zones import numbering_plan_zone

REASON_OUTSIDE_HOURS = "outside calling hours"
REASON_WINDOW_OVER = "window over"


@dataclasses.dataclass(frozen=True)
class PlanRules:
    """What the deployment decides about planning: ``PLATFORM_TIMEZONE``, ``CALLING_HOURS``
    (None: any hour) and ``MAX_PHONES_PER_CAMPAIGN``."""

    platform_timezone: str
    calling_hours: CallingHours | None
    max_per_campaign: int


@dataclasses.dataclass(frozen=True)
class PlannedCampaign:
    window: PlatformWindow
    contacts: tuple[Contact, ...]

    def body(self, request: CallRequest) -> bytes:
        """The exact bytes to POST to create this campaign of ``request``."""
        window = self.window
        return compact(
            request.platform_body((window.date, window.start_time, window.end_time), self.contacts)
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """The campaigns to create, in order, and the contacts left out (``phones_rejected``
    entries: the phone as E.164, its ``external_id`` and the reason)."""

    campaigns: tuple[PlannedCampaign, ...]
    rejected: tuple[dict, ...]


def plan_request(request: CallRequest, rules: PlanRules, now: dt.datetime) -> Plan:
    """Plan ``request``'s campaigns. Raises OverflowError for a window at the end of time."""
    planner = _ZonePlanner(request, rules, now)
    by_window: dict[PlatformWindow, list[Contact]] = {}
    # zone -> the members list of its window, or the reason its contacts are left out
    of_zone: dict[str, list[Contact] | str] = {}
    rejected: list[dict] = []
    for contact in request.phones:
        zone = contact.timezone or numbering_plan_zone(contact.phone) or request.timezone
        members = of_zone.get(zone)
        if members is None:
            found = planner.window(zone)
            members = of_zone[zone] = (
                found if isinstance(found, str) else by_window.setdefault(found, [])
            )
        if isinstance(members, str):
            rejected.append(
                {"phone": contact.phone, "external_id": contact.external_id, "reason": members}
            )
        else:
            members.append(contact)
    campaigns = tuple(
        PlannedCampaign(window, chunk)
        for window in sorted(by_window)
        for chunk in _chunks(by_window[window], rules.max_per_campaign)
    )
    return Plan(campaigns, tuple(rejected))


class _ZonePlanner:
    """The platform window of a contact in a given zone, or why it has none."""

    def __init__(self, request: CallRequest, rules: PlanRules, now: dt.datetime) -> None:
        self._request = request
        self._rules = rules
        self._now = now

    def window(self, zone: str) -> PlatformWindow | str:
        request, rules = self._request, self._rules
        told = _told_windows(
            request.date,
            request.start_time,
            request.end_time,
            zone if request.local_to_contact else request.timezone,
            zone,
            rules.calling_hours,
            rules.platform_timezone,
        )
        if told is None:
            return REASON_OUTSIDE_HOURS
        ahead = [window for window in told if window.ends_at > self._now]
        if not ahead:
            return REASON_WINDOW_OVER
        return max(
            ahead, key=lambda told: (time_left(told, self._now), -told.starts_at.timestamp())
        )


@functools.lru_cache(maxsize=1024)
def _told_windows(
    date: dt.date,
    start_time: dt.time,
    end_time: dt.time,
    written_in: str,
    zone: str,
    hours: CallingHours | None,
    platform: str,
) -> tuple[PlatformWindow, ...] | None:
    """The platform windows a contact in ``zone`` may be called in, of a window written in
    ``written_in``; None when its calling hours leave nothing of it. Kept: a burst of requests
    shares a handful of windows and zones."""
    window = zone_window(date, start_time, end_time, ZoneInfo(written_in))
    parts = callable_parts(window, ZoneInfo(zone), hours)
    if not parts:
        return None
    return tuple(told for part in parts for told in platform_windows(part, ZoneInfo(platform)))


def _chunks(contacts: Sequence[Contact], size: int) -> list[tuple[Contact, ...]]:
    return [tuple(contacts[start : start + size]) for start in range(0, len(contacts), size)]
