"""The planner's promises, held for any request (hypothesis), and a few plans worked by hand.

For every request: every contact is either in exactly one campaign or left out with a reason;
what the platform reads each campaign's window as lies, minute by minute, inside every member's
calling hours (read on the member's own clock) and inside the request's window; a contact left
out as outside calling hours had no such minute at all. And a v1 request whose window lies in
its contacts' calling hours is the one campaign v1 sent, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.planner import (
    REASON_OUTSIDE_HOURS,
    REASON_WINDOW_OVER,
    Plan,
    PlanRules,
    plan_request,
)
from schemas.calling_hours import DAYS, DEFAULT_CALLING_HOURS, CallingHours, parse_calling_hours
from schemas.json_codec import compact
from schemas.request import CallRequest, Contact

ZONES = (
    "Asia/Yekaterinburg",
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Asia/Vladivostok",
    "Asia/Kamchatka",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Asia/Beirut",  # changes its clocks at midnight
    "Asia/Kathmandu",
    "Australia/Lord_Howe",  # half an hour of summer time
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
)
PLATFORM_ZONES = ("Asia/Yekaterinburg", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Beirut")
MINUTE = dt.timedelta(minutes=1)


def _clock_changes(year: int) -> list[dt.date]:
    """The days on which some zone of ``ZONES`` changes its clocks (and the days around)."""
    days = set()
    for name in ZONES:
        zone = ZoneInfo(name)
        day = dt.date(year, 1, 1)
        while day.year == year:
            noon = dt.datetime.combine(day, dt.time(12), tzinfo=zone)
            if noon.utcoffset() != (noon + dt.timedelta(days=1)).utcoffset():
                days.update(day + dt.timedelta(days=shift) for shift in (-1, 0, 1, 2))
            day += dt.timedelta(days=1)
    return sorted(days)


CHANGE_DAYS = _clock_changes(2027)


def request_of(
    zones: list[str | None],
    *,
    schedule_zone: str = "Asia/Yekaterinburg",
    date: dt.date = dt.date(2027, 3, 3),
    start: dt.time = dt.time(9),
    end: dt.time = dt.time(17),
    local: bool = False,
) -> CallRequest:
    """A request of one mobile number per zone given (None: no zone of its own)."""
    return CallRequest(
        request_id="plan",
        project_id=1,
        scenario_id=951,
        start_block_id=10,
        phone_id=5,
        name="План",
        description=None,
        date=date,
        start_time=start,
        end_time=end,
        attempts=2,
        interval=5,
        timezone=schedule_zone,
        phones=tuple(
            Contact(f"+7912{n:07d}", f"lead-{n}", {"n": n}, zone) for n, zone in enumerate(zones)
        ),
        phones_rejected=(),
        report_delay_minutes=15,
        report_columns=None,
        local_to_contact=local,
        purpose="debt",
    )


def rules_of(
    hours: str | None = DEFAULT_CALLING_HOURS, platform: str = "Asia/Yekaterinburg", size: int = 100
):
    return PlanRules(platform, None if hours is None else parse_calling_hours(hours), size)


@st.composite
def calling_hours(draw) -> str | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        first, last = draw(st.sampled_from(DAYS)), draw(st.sampled_from(DAYS))
        start = draw(st.integers(0, 47)) * 30
        end = draw(st.integers(start // 30 + 1, 48)) * 30
        segments.append(
            f"{first}-{last} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
        )
    return "; ".join(segments)


@st.composite
def cases(draw) -> tuple[CallRequest, PlanRules, dt.datetime]:
    date = draw(
        st.one_of(
            st.sampled_from(CHANGE_DAYS), st.dates(dt.date(2027, 1, 1), dt.date(2027, 12, 31))
        )
    )
    start = draw(st.integers(0, 1438))
    end = draw(st.integers(start + 1, 1439))
    request = request_of(
        draw(st.lists(st.one_of(st.none(), st.sampled_from(ZONES)), min_size=1, max_size=8)),
        schedule_zone=draw(st.sampled_from(ZONES)),
        date=date,
        start=dt.time(start // 60, start % 60),
        end=dt.time(end // 60, end % 60),
        local=draw(st.booleans()),
    )
    rules = rules_of(
        draw(calling_hours()), draw(st.sampled_from(PLATFORM_ZONES)), draw(st.integers(1, 4))
    )
    noon = dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC)
    now = noon + dt.timedelta(
        minutes=draw(st.integers(-48 * 60, 12 * 60)), seconds=draw(st.integers(0, 59))
    )
    return request, rules, now


def zone_of(request: CallRequest, contact: Contact) -> str:
    return contact.timezone or request.timezone


def request_window(request: CallRequest, zone: str) -> tuple[dt.datetime, dt.datetime]:
    written_in = ZoneInfo(zone if request.local_to_contact else request.timezone)
    return tuple(
        dt.datetime.combine(request.date, clock, tzinfo=written_in).astimezone(dt.UTC)
        for clock in (request.start_time, request.end_time)
    )


def callable_minutes(hours: CallingHours | None, zone: str, start: dt.datetime, end: dt.datetime):
    """Each whole minute from ``start`` to ``end`` at which ``zone``'s clock is in ``hours``."""
    clock_zone = ZoneInfo(zone)
    moment = start
    while moment < end:
        local = moment.astimezone(clock_zone)
        minute = local.hour * 60 + local.minute
        if hours is None or any(
            first <= minute < last for first, last in hours.on(local.weekday())
        ):
            yield moment
        moment += MINUTE


def check(request: CallRequest, rules: PlanRules, now: dt.datetime, plan: Plan) -> None:
    accepted = [contact.phone for campaign in plan.campaigns for contact in campaign.contacts]
    left_out = [entry["phone"] for entry in plan.rejected]
    assert sorted(accepted + left_out) == sorted(contact.phone for contact in request.phones)
    assert len(set(accepted)) == len(accepted), "a contact is in two campaigns"
    platform = ZoneInfo(rules.platform_timezone)
    for campaign in plan.campaigns:
        window = campaign.window
        assert 1 <= len(campaign.contacts) <= rules.max_per_campaign
        read = [
            dt.datetime.combine(window.date, clock, tzinfo=platform).astimezone(dt.UTC)
            for clock in (window.start_time, window.end_time)
        ]
        assert read == [window.starts_at, window.ends_at], "the platform reads another window"
        assert window.starts_at < window.ends_at and window.ends_at > now
        for zone in {zone_of(request, contact) for contact in campaign.contacts}:
            start, end = request_window(request, zone)
            assert start <= window.starts_at and window.ends_at <= end, zone
            minutes = list(
                callable_minutes(rules.calling_hours, zone, window.starts_at, window.ends_at)
            )
            assert len(minutes) * MINUTE == window.ends_at - window.starts_at, zone
    by_phone = {contact.phone: contact for contact in request.phones}
    for entry in plan.rejected:
        assert entry["reason"] in (REASON_OUTSIDE_HOURS, REASON_WINDOW_OVER)
        if entry["reason"] == REASON_OUTSIDE_HOURS:
            zone = zone_of(request, by_phone[entry["phone"]])
            start, end = request_window(request, zone)
            assert next(callable_minutes(rules.calling_hours, zone, start, end), None) is None


@settings(max_examples=300, deadline=None)
@given(cases())
def test_every_contact_is_planned_once_and_only_into_its_own_hours(case) -> None:
    request, rules, now = case
    check(request, rules, now, plan_request(request, rules, now))


@settings(max_examples=150, deadline=None)
@given(
    date=st.one_of(
        st.sampled_from(CHANGE_DAYS), st.dates(dt.date(2027, 1, 1), dt.date(2027, 12, 31))
    ),
    start=st.integers(9 * 60, 19 * 60),
    length=st.integers(1, 60),
    phones=st.integers(1, 5),
    zone=st.sampled_from(ZONES),
    hours=st.sampled_from([DEFAULT_CALLING_HOURS, None, "mon-sun 00:00-24:00"]),
)
def test_a_v1_request_in_calling_hours_is_the_one_campaign_v1_sent(
    date, start, length, phones, zone, hours
) -> None:
    """No v1.1 field, every contact in the request's zone (mobile numbers, no zone of their own),
    the platform in that zone too, and the window inside the calling hours of its day."""
    end = min(start + length, 20 * 60)
    request = request_of(
        [None] * phones,
        schedule_zone=zone,
        date=date,
        start=dt.time(start // 60, start % 60),
        end=dt.time(end // 60, end % 60),
    )
    now = request.window_start - dt.timedelta(hours=1)
    (campaign,) = plan_request(request, rules_of(hours, platform=zone), now).campaigns
    assert campaign.body(request) == compact(request.platform_body())
    assert (campaign.window.starts_at, campaign.window.ends_at) == (
        request.window_start,
        request.window_end,
    )


# -- plans worked by hand ----------------------------------------------------------------------


def windows(plan: Plan) -> list[tuple[str, str, str, list[str]]]:
    return [
        (
            campaign.window.date.isoformat(),
            f"{campaign.window.start_time:%H:%M}",
            f"{campaign.window.end_time:%H:%M}",
            [contact.external_id for contact in campaign.contacts],
        )
        for campaign in plan.campaigns
    ]


NOW = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


def test_one_window_for_four_zones_is_four_campaigns_in_platform_time() -> None:
    request = request_of(
        ["Europe/Kaliningrad", "Europe/Moscow", "Asia/Vladivostok", None, "Europe/Moscow"],
        start=dt.time(7),
        end=dt.time(23),
    )  # a Wednesday, in Yekaterinburg time
    assert windows(plan_request(request, rules_of(), NOW)) == [
        ("2027-03-03", "07:00", "17:00", ["lead-2"]),  # Vladivostok: 12:00-22:00 its time
        ("2027-03-03", "08:00", "22:00", ["lead-3"]),  # Yekaterinburg: cut to 08:00-22:00
        ("2027-03-03", "10:00", "23:00", ["lead-1", "lead-4"]),  # Moscow: from 08:00 its time
        ("2027-03-03", "11:00", "23:00", ["lead-0"]),  # Kaliningrad: from 08:00 its time
    ]


def test_a_window_is_cut_at_the_platforms_midnight_and_keeps_its_longer_part() -> None:
    # Yekaterinburg 10:00-23:59 is Kamchatka 17:00 to 06:59 the next morning: 17:00-22:00.
    evening = request_of(["Asia/Kamchatka"], start=dt.time(10), end=dt.time(23, 59))
    assert windows(plan_request(evening, rules_of(), NOW)) == [
        ("2027-03-03", "10:00", "15:00", ["lead-0"])
    ]
    # Kamchatka's own day, 08:00-22:00 there, is 01:00-15:00 in Yekaterinburg.
    own_day = request_of(["Asia/Kamchatka"], start=dt.time(0), end=dt.time(23, 59), local=True)
    assert windows(plan_request(own_day, rules_of(), NOW)) == [
        ("2027-03-03", "01:00", "15:00", ["lead-0"])
    ]
    # With the platform in Kamchatka, Yekaterinburg's 08:00-22:00 is 15:00 to 05:00 there:
    # 15:00-23:59 (it cannot be told 24:00) is kept, the 5 hours after midnight are not.
    split = request_of([None], start=dt.time(0), end=dt.time(23, 59))
    assert windows(plan_request(split, rules_of(platform="Asia/Kamchatka"), NOW)) == [
        ("2027-03-03", "15:00", "23:59", ["lead-0"])
    ]


def test_contacts_outside_their_hours_or_past_them_are_left_out_with_the_reason() -> None:
    request = request_of(["America/New_York", None], start=dt.time(9), end=dt.time(11))
    plan = plan_request(request, rules_of(), NOW)
    assert windows(plan) == [("2027-03-03", "09:00", "11:00", ["lead-1"])]
    assert plan.rejected == (
        {"phone": "+79120000000", "external_id": "lead-0", "reason": REASON_OUTSIDE_HOURS},
    )
    late = dt.datetime(2027, 3, 3, 17, 30, tzinfo=dt.UTC)  # 22:30 in Yekaterinburg
    over = plan_request(request_of([None], start=dt.time(7), end=dt.time(23)), rules_of(), late)
    assert (over.campaigns, [entry["reason"] for entry in over.rejected]) == (
        (),
        [REASON_WINDOW_OVER],
    )


def test_a_weekend_day_has_the_weekend_hours() -> None:
    saturday = request_of(
        [None, "Europe/Moscow"], date=dt.date(2027, 3, 6), start=dt.time(7), end=dt.time(23)
    )
    assert windows(plan_request(saturday, rules_of(), NOW)) == [
        ("2027-03-06", "09:00", "20:00", ["lead-0"]),
        ("2027-03-06", "11:00", "22:00", ["lead-1"]),
    ]


def test_the_day_the_clocks_change_is_read_on_the_contacts_own_clock() -> None:
    """Berlin moves to summer time at 02:00 on 28 March 2027 (a Sunday): 09:00 there is 07:00
    UTC, 12:00 in Yekaterinburg, not the 13:00 that the day's midnight offset would give."""
    request = request_of(
        ["Europe/Berlin"], date=dt.date(2027, 3, 28), start=dt.time(7), end=dt.time(23), local=True
    )
    assert windows(plan_request(request, rules_of(), NOW)) == [
        ("2027-03-28", "12:00", "23:00", ["lead-0"])
    ]


def test_campaigns_are_chunks_of_at_most_max_phones_in_the_requests_order() -> None:
    request = request_of([None, "Europe/Moscow", None, None, None])
    plan = plan_request(request, rules_of(size=2), NOW)
    assert [ids for *_, ids in windows(plan)] == [
        ["lead-0", "lead-2"],
        ["lead-3", "lead-4"],
        ["lead-1"],
    ]


@pytest.mark.parametrize("zone", ["Asia/Yekaterinburg", "Europe/Berlin"])
def test_fifty_thousand_contacts_across_zones_plan_quickly(zone: str) -> None:
    import time

    request = request_of(
        [ZONES[n % len(ZONES)] for n in range(50_000)],
        schedule_zone=zone,
        start=dt.time(0),
        end=dt.time(23, 59),
    )
    started = time.process_time()
    plan = plan_request(request, rules_of(size=50_000), NOW)
    assert time.process_time() - started < 0.5
    assert sum(len(campaign.contacts) for campaign in plan.campaigns) + len(plan.rejected) == 50_000
