"""Each contact called in its own lawful hours, through a real worker on RabbitMQ.

What the platform would call when is read off the sandbox (each campaign's schedule, and the
moments it reads it as); the expected windows are computed here with ``zoneinfo``, from the
request's window, the contact's zone and the calling hours of the contact's own day. Dates are
picked relative to today, so the tests pass on any day at any hour.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from adapters.broker import Delivery
from adapters.config import load_settings
from adapters.platform_client import Created, PlatformClient
from adapters.store import open_store, utcnow
from handlers.accept import accept
from schemas.platform import format_utc_timestamp
from tests.builders import ZONE, call_request, e164, publish, window_ending_in
from tests.plugins.services import QueueReader, callbridge, wait_until_at_rest
from tests.v2_store import make_v2_store, v2_row
from tests.waiting import eventually

pytestmark = [pytest.mark.rabbitmq]

PLATFORM = ZoneInfo("Asia/Yekaterinburg")
HOURS = "mon-fri 08:00-22:00; sat-sun 09:00-20:00"
WEEKDAY_HOURS, WEEKEND_HOURS = (dt.time(8), dt.time(22)), (dt.time(9), dt.time(20))
TERMINAL = {"campaign.created", "campaign.rejected", "campaign.failed"}


def hours_of(day: dt.date) -> tuple[dt.time, dt.time]:
    return WEEKEND_HOURS if day.weekday() >= 5 else WEEKDAY_HOURS


def next_day(weekdays: set[int]) -> dt.date:
    """The first day from the day after tomorrow (in the platform's zone) on one of
    ``weekdays``: its whole window is still ahead."""
    day = dt.datetime.now(PLATFORM).date() + dt.timedelta(days=2)
    while day.weekday() not in weekdays:
        day += dt.timedelta(days=1)
    return day


def expected_window(
    day: dt.date, start: str, end: str, *, written_in: str, zone: str
) -> tuple[dt.datetime, dt.datetime]:
    """The request's window in UTC, cut to the calling hours of the contact's local day (the
    longer part when it spans two), as zoneinfo reads every clock time."""
    window = [
        dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=ZoneInfo(written_in))
        for clock in (start, end)
    ]
    local = ZoneInfo(zone)
    parts = []
    for local_day in {moment.astimezone(local).date() for moment in window}:
        first, last = (dt.datetime.combine(local_day, t, tzinfo=local) for t in hours_of(local_day))
        part = (max(window[0], first), min(window[1], last))
        if part[0] < part[1]:
            parts.append(part)
    start_at, end_at = max(parts, key=lambda part: part[1] - part[0])
    return start_at.astimezone(dt.UTC), end_at.astimezone(dt.UTC)


def as_platform_schedule(window: tuple[dt.datetime, dt.datetime]) -> tuple[str, str, str]:
    start, end = (moment.astimezone(PLATFORM) for moment in window)
    return start.date().isoformat(), f"{start:%H:%M}", f"{end:%H:%M}"


def schedule_of(campaign) -> tuple[str, str, str]:
    schedule = campaign.body["campaign"]["schedule"]
    return schedule["date"], schedule["start_time"], schedule["end_time"]


def with_zones(body: dict, zones: list[str | None]) -> dict:
    for entry, zone in zip(body["phones"], zones, strict=True):
        if zone is not None:
            entry["timezone"] = zone
    return body


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [event for event in events if event["type"] == event_type]


def posts(sandbox) -> list:
    return [request for request in sandbox.requests if request.path == "/api/campaigns"]


@pytest.fixture
def deploy(make_sandbox, worker_env, start_worker):
    """``deploy(database_url, sandbox={options}, **env)``: a sandbox and a worker with the
    default calling hours; the worker's environment and the sandbox."""

    def make(database_url: str, *, sandbox: dict | None = None, **env: str):
        server = make_sandbox(**(sandbox or {}))
        environment = worker_env(server.url, database_url, **{"CALLING_HOURS": HOURS, **env})
        return start_worker(environment), environment, server

    return make


# -- planning ----------------------------------------------------------------------------------


def test_one_window_for_contacts_in_four_zones_becomes_four_campaigns_in_their_hours(
    deploy, store_url, rabbitmq_url, queues, results_reader
):
    _worker, env, sandbox = deploy(store_url)
    day = next_day({0, 1, 2, 3, 4})
    zones = ["Europe/Kaliningrad", "Europe/Moscow", ZONE, "Asia/Vladivostok", "Europe/Moscow"]
    schedule = {"date": day.isoformat(), "start_time": "07:00", "end_time": "23:00"}
    body = with_zones(call_request("zones-4", phones=5, schedule=schedule), zones)
    publish(rabbitmq_url, queues.requests, body)

    (created,) = results_reader.wait_for(lambda events: events)
    assert (created["type"], created["event_id"]) == (
        "campaign.created",
        "zones-4:campaign.created",
    )
    assert len(sandbox.campaigns) == 4
    campaign_of = {phone: campaign for campaign in sandbox.campaigns for phone in campaign.phones}
    for n, zone in enumerate(zones):
        window = expected_window(day, "07:00", "23:00", written_in=ZONE, zone=zone)
        campaign = campaign_of[e164(n)]
        assert schedule_of(campaign) == as_platform_schedule(window), zone
        assert campaign.window_utc == window, zone
    # Yekaterinburg's own contact: 07:00-23:00 cut to its calling hours, 08:00-22:00.
    assert schedule_of(campaign_of[e164(2)]) == (day.isoformat(), "08:00", "22:00")
    assert campaign_of[e164(1)] is campaign_of[e164(4)], "one zone, one window, one campaign"

    listed = created["campaigns"]
    assert [entry["campaign_id"] for entry in listed] == sorted(
        (c.id for c in sandbox.campaigns), key=lambda cid: campaign_of_id(sandbox, cid).window_utc
    )
    for entry in listed:
        campaign = campaign_of_id(sandbox, entry["campaign_id"])
        assert (entry["date"], entry["start_time"], entry["end_time"]) == schedule_of(campaign)
        assert entry["timezone"] == "Asia/Yekaterinburg"
        assert entry["phones_accepted"] == len(campaign.phones)
        assert entry["report_due_at"] == format_utc_timestamp(
            campaign.window_utc[1] + dt.timedelta(minutes=15)
        )
    assert created["campaign_id"] == listed[0]["campaign_id"]
    assert created["report_due_at"] == max(entry["report_due_at"] for entry in listed)
    assert (created["phones_accepted"], created["phones_rejected"], created["phones_unknown"]) == (
        5,
        [],
        [],
    )

    status = callbridge("status", "zones-4", env=env)
    assert status.returncode == 0, status.stderr
    for group in range(1, 5):
        assert f"  campaign {group} of 4\n" in status.stdout
    assert status.stdout.count(" Asia/Yekaterinburg\n") == 4


def campaign_of_id(sandbox, campaign_id: int):
    (campaign,) = [c for c in sandbox.campaigns if c.id == campaign_id]
    return campaign


def test_contacts_wholly_outside_their_hours_are_left_out_with_the_reason(
    deploy, sqlite_url, rabbitmq_url, queues, results_reader
):
    _worker, _env, sandbox = deploy(sqlite_url)
    day = next_day({0, 1, 2, 3, 4})
    schedule = {"date": day.isoformat(), "start_time": "09:00", "end_time": "11:00"}
    # 09:00-11:00 in Yekaterinburg is the small hours in New York.
    body = with_zones(
        call_request("outside-1", phones=2, schedule=schedule), [None, "America/New_York"]
    )
    nobody = with_zones(
        call_request("outside-all", phones=1, schedule=schedule), ["America/New_York"]
    )
    publish(rabbitmq_url, queues.requests, body)
    publish(rabbitmq_url, queues.requests, nobody)

    events = results_reader.wait_for(lambda events: len(events) == 2)
    (created,) = of_type(events, "campaign.created")
    assert created["phones_accepted"] == 1
    assert created["phones_rejected"] == [
        {"phone": e164(1), "external_id": "outside-1-lead-1", "reason": "outside calling hours"}
    ]
    assert "campaigns" not in created, "one campaign: v1's event"
    (campaign,) = sandbox.campaigns
    assert (campaign.phones, schedule_of(campaign)) == (
        [e164(0)],
        (day.isoformat(), "09:00", "11:00"),
    )
    (rejected,) = of_type(events, "campaign.rejected")
    assert (rejected["request_id"], rejected["errors"]) == (
        "outside-all",
        {"phones": ["no contact can be called: 1 outside calling hours"]},
    )


def test_a_weekend_day_is_called_in_the_weekend_hours(
    deploy, sqlite_url, rabbitmq_url, queues, results_reader
):
    _worker, _env, sandbox = deploy(sqlite_url)
    day = next_day({5, 6})
    schedule = {"date": day.isoformat(), "start_time": "07:00", "end_time": "23:00"}
    body = with_zones(call_request("weekend", phones=2, schedule=schedule), [None, "Europe/Moscow"])
    publish(rabbitmq_url, queues.requests, body)

    results_reader.wait_for(lambda events: events)
    campaign_of = {phone: campaign for campaign in sandbox.campaigns for phone in campaign.phones}
    for n, zone in enumerate([ZONE, "Europe/Moscow"]):
        window = expected_window(day, "07:00", "23:00", written_in=ZONE, zone=zone)
        assert schedule_of(campaign_of[e164(n)]) == as_platform_schedule(window)
    assert schedule_of(campaign_of[e164(0)]) == (day.isoformat(), "09:00", "20:00")


def next_clock_change(zone_name: str) -> dt.date:
    """The next day on which ``zone_name`` changes its clocks."""
    zone = ZoneInfo(zone_name)
    day = dt.datetime.now(PLATFORM).date() + dt.timedelta(days=2)
    while True:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        if start.utcoffset() != dt.datetime.combine(day, dt.time(23), tzinfo=zone).utcoffset():
            return day
        day += dt.timedelta(days=1)


def test_the_day_the_clocks_change_is_planned_on_the_contacts_own_clock(
    deploy, sqlite_url, rabbitmq_url, queues, results_reader
):
    _worker, _env, sandbox = deploy(sqlite_url)
    day = next_clock_change("Europe/Berlin")
    schedule = {
        "date": day.isoformat(),
        "start_time": "07:00",
        "end_time": "23:00",
        "local_to_contact": True,
    }
    body = with_zones(call_request("dst", phones=2, schedule=schedule), ["Europe/Berlin", None])
    publish(rabbitmq_url, queues.requests, body)

    (created,) = results_reader.wait_for(lambda events: events)
    assert len(created["campaigns"]) == 2
    campaign_of = {phone: campaign for campaign in sandbox.campaigns for phone in campaign.phones}
    for n, zone in enumerate(["Europe/Berlin", ZONE]):
        window = expected_window(day, "07:00", "23:00", written_in=zone, zone=zone)
        assert campaign_of[e164(n)].window_utc == window, zone
        assert schedule_of(campaign_of[e164(n)]) == as_platform_schedule(window), zone


# -- one request, several campaigns, each settled on its own -----------------------------------


def test_sigkill_between_two_campaigns_posts_resumes_with_the_next_and_repeats_none(
    deploy, start_worker, store_url, rabbitmq_url, queues, results_reader
):
    """Three campaigns (one phone each), sent one at a time: the first is created, the
    sandbox holds the second's answer, and the worker is killed while it waits."""
    doomed, env, sandbox = deploy(
        store_url,
        sandbox={"create_faults": ["slow:0", "slow:120"]},
        MAX_PHONES_PER_CAMPAIGN="1",
        HTTP_CONCURRENCY="1",
    )
    publish(rabbitmq_url, queues.requests, call_request("kill-2", phones=3))
    # The second POST is on the wire, its answer held.
    eventually(lambda: len(posts(sandbox)) >= 2, what="the second campaign's POST")
    doomed.kill()
    assert results_reader.poll() == [], "the request waits for all three campaigns"
    start_worker(env)

    (created,) = results_reader.wait_for(lambda events: events)
    first, held, last = sandbox.campaigns  # the sandbox made the held one too
    assert [c.phones for c in (first, held, last)] == [[e164(0)], [e164(1)], [e164(2)]]
    assert [entry["campaign_id"] for entry in created["campaigns"]] == [first.id, last.id]
    assert created["phones_unknown"] == [
        {"phone": e164(1), "external_id": "kill-2-lead-1", "group": 2}
    ]
    assert created["phones_accepted"] == 2
    wait_until_at_rest(store_url)  # a (wrong) resend would have been claimed before this
    assert len(posts(sandbox)) == 3, "no campaign may be sent twice"

    resolved = callbridge("resolve", "kill-2", "--campaign-id", str(held.id), env=env)
    assert resolved.returncode == 0, resolved.stderr
    assert "request kill-2, campaign 2: resolved as created" in resolved.stdout
    late = results_reader.wait_for(lambda events: len(events) == 2)[-1]
    assert (late["event_id"], late["campaign_id"], late["phones_accepted"]) == (
        "kill-2:campaign.created:2",
        held.id,
        1,
    )
    assert [entry["campaign_id"] for entry in late["campaigns"]] == [held.id]


def test_a_500_parks_only_its_own_campaign(deploy, store_url, rabbitmq_url, queues, results_reader):
    _worker, env, sandbox = deploy(
        store_url,
        sandbox={"create_faults": ["slow:0", "500", "500"]},
        MAX_PHONES_PER_CAMPAIGN="1",
        HTTP_CONCURRENCY="1",
    )
    publish(rabbitmq_url, queues.requests, call_request("park-1", phones=4))

    (created,) = results_reader.wait_for(lambda events: events)
    assert created["type"] == "campaign.created"
    made = {c.phones[0]: c.id for c in sandbox.campaigns}
    assert sorted(made) == [e164(0), e164(3)], "the campaigns after the 500s went on"
    assert [entry["campaign_id"] for entry in created["campaigns"]] == [
        made[e164(0)],
        made[e164(3)],
    ]
    assert [(p["phone"], p["group"]) for p in created["phones_unknown"]] == [
        (e164(1), 2),
        (e164(2), 3),
    ]

    both = callbridge("resolve", "park-1", "--resend", env=env)
    assert both.returncode == 1
    assert "has 2 campaigns whose outcome is unknown (--group 2, 3)" in both.stderr
    again = callbridge("resolve", "park-1", "--group", "3", "--resend", env=env)
    assert again.returncode == 0, again.stderr
    late = results_reader.wait_for(lambda events: len(events) == 2)[-1]
    assert late["event_id"] == "park-1:campaign.created:3"
    assert late["campaign_id"] == next(c.id for c in sandbox.campaigns if c.phones == [e164(2)])
    assert len(posts(sandbox)) == 5


def test_campaigns_not_created_reject_their_contacts_and_none_created_fails_the_request(
    deploy, sqlite_url, rabbitmq_url, queues, results_reader
):
    _worker, env, sandbox = deploy(
        sqlite_url,
        sandbox={"create_faults": ["slow:0", "422", "slow:0", "422", "500"]},
        MAX_PHONES_PER_CAMPAIGN="1",
        HTTP_CONCURRENCY="1",
    )
    publish(rabbitmq_url, queues.requests, call_request("some-422", phones=3))
    results_reader.wait_for(lambda events: events)
    publish(rabbitmq_url, queues.requests, call_request("all-fail", phones=2))

    created, failed = results_reader.wait_for(lambda events: len(events) == 2)
    assert [p["phone"] for p in created["phones_rejected"]] == [e164(1)]
    assert created["phones_rejected"][0]["reason"].startswith("campaign not created: ")
    assert len(created["campaigns"]) == 2
    assert (failed["type"], failed["request_id"], failed["outcome"]) == (
        "campaign.failed",
        "all-fail",
        "unknown",
    )
    assert failed["error"]["status"] == 500
    assert failed["error"]["message"].startswith("none of the 2 campaigns was created; campaign 2")
    assert len(sandbox.campaigns) == 2

    some = callbridge("status", "some-422", env=env).stdout
    campaign_2 = some[some.index("  campaign 2 of 3\n") : some.index("  campaign 3 of 3\n")]
    assert "    state:           failed\n" in campaign_2
    assert "    error:           HTTP 422: " in campaign_2, "why this campaign was not created"
    none = callbridge("status", "all-fail", env=env).stdout
    assert "\n  error:           HTTP 500: none of the 2 campaigns was created; campaign 2" in none
    assert none.count("    error:           ") == 2, "and each campaign's own error"


# -- events ------------------------------------------------------------------------------------


def accept_earlier(env: dict[str, str], body: dict, *, minutes_ago: int = 5) -> None:
    """Take a request in as the worker's intake did ``minutes_ago``, its window still open."""
    store = open_store(env["DATABASE_URL"])
    store.create_schema()
    delivery = Delivery(json.dumps(body).encode(), content_type="application/json")
    now = utcnow() - dt.timedelta(minutes=minutes_ago)
    verdict = accept(delivery, settings=load_settings(env), store=store, now=now)
    store.engine.dispose()
    assert verdict.outcome == "accepted", verdict


def keys(raw: bytes) -> list[str]:
    return [key for key, _ in json.loads(raw, object_pairs_hook=list)]


V1_REPORT_KEYS = [
    "type",
    "event_id",
    "request_id",
    "occurred_at",
    "campaign_id",
    "columns",
    "rows",
    "missing",
    "total_duration",
    "avg_duration",
    "count",
    "part",
    "parts",
]


def test_a_v1_requests_events_are_v1s_byte_for_byte(
    rabbitmq_url, queues, worker_env, make_sandbox, start_worker, sqlite_url
):
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, sqlite_url, CALLING_HOURS=HOURS)
    finished = call_request(
        "v1-done", phones=2, schedule=window_ending_in(-1), report={"delay_minutes": 0}
    )
    accept_earlier({**env, "CALLING_HOURS": "off"}, finished)  # at any hour of the day
    start_worker(env)
    body = call_request("v1-bytes", phones=1)  # tomorrow 09:00-17:00: in anyone's hours
    body["phones"].append({"phone": "12345", "external_id": "bad"})
    publish(rabbitmq_url, queues.requests, body)

    reader = QueueReader(rabbitmq_url, queues.results, decode=bytes)
    raw = reader.wait_for(lambda found: len(found) == 3)
    by_id = {json.loads(event)["event_id"]: event for event in raw}
    created = json.loads(by_id["v1-bytes:campaign.created"])
    (campaign,) = [c for c in sandbox.campaigns if c.phones == [e164(0)]]
    due = dt.datetime.combine(
        dt.date.fromisoformat(body["campaign"]["schedule"]["date"]),
        dt.time(17, 15),
        tzinfo=PLATFORM,
    )
    assert (
        by_id["v1-bytes:campaign.created"]
        == (
            '{"type":"campaign.created","event_id":"v1-bytes:campaign.created",'
            f'"request_id":"v1-bytes","occurred_at":"{created["occurred_at"]}",'
            f'"campaign_id":{campaign.id},"project_id":1,"phones_accepted":1,'
            '"phones_rejected":[{"phone":"12345","external_id":"bad",'
            '"reason":"invalid phone number"}],'
            f'"report_due_at":"{format_utc_timestamp(due)}"}}'
        ).encode()
    )
    schedule = body["campaign"]["schedule"]
    assert schedule_of(campaign) == (schedule["date"], schedule["start_time"], schedule["end_time"])
    assert keys(by_id["v1-done:campaign.created"]) == keys(by_id["v1-bytes:campaign.created"])
    assert keys(by_id["v1-done:campaign.report:1"]) == V1_REPORT_KEYS


def test_each_campaign_is_reported_on_its_own_under_its_own_ids(
    worker_env, make_sandbox, start_worker, sqlite_url, results_reader
):
    sandbox = make_sandbox(report_missing_every=2)
    env = worker_env(sandbox.url, sqlite_url, MAX_PHONES_PER_CAMPAIGN="2")
    body = call_request(
        "chunks", phones=5, schedule=window_ending_in(-1), report={"delay_minutes": 0}
    )
    accept_earlier(env, body)
    start_worker(env)

    events = results_reader.wait_for(lambda events: len(of_type(events, "campaign.report")) == 3)
    created = events[0]
    assert created["type"] == "campaign.created", "the CRM hears of the campaigns first"
    assert sorted(c.phones for c in sandbox.campaigns) == [
        [e164(0), e164(1)],
        [e164(2), e164(3)],
        [e164(4)],
    ], "sent at once, in any order"
    assert len({schedule_of(c) for c in sandbox.campaigns}) == 1, "one window, in chunks"
    assert [entry["phones_accepted"] for entry in created["campaigns"]] == [2, 2, 1]
    heard = []
    for report in of_type(events, "campaign.report"):
        assert report["event_id"] == f"chunks:campaign.report:{report['campaign_id']}:1"
        assert (report["campaigns"], report["part"], report["parts"]) == (3, 1, 1)
        (campaign,) = [c for c in sandbox.campaigns if c.id == report["campaign_id"]]
        tied = [row["phone"] for row in report["rows"]] + [m["phone"] for m in report["missing"]]
        assert sorted(tied) == sorted(campaign.phones), "each report tells of its own contacts"
        heard.extend(tied)
    assert sorted(heard) == [e164(n) for n in range(5)]


def test_an_operator_reports_one_campaign_of_several_by_its_own_id(
    deploy, sqlite_url, rabbitmq_url, queues, results_reader
):
    _worker, env, sandbox = deploy(sqlite_url, MAX_PHONES_PER_CAMPAIGN="1")
    publish(rabbitmq_url, queues.requests, call_request("by-hand", phones=2))  # tomorrow
    (created,) = results_reader.wait_for(lambda events: events)
    first, second = created["campaigns"]
    campaign = str(first["campaign_id"])

    early = callbridge("report", campaign, env=env)
    assert early.returncode == 1
    assert early.stderr.splitlines()[-1].startswith(
        f"callbridge report: the report of campaign {campaign} of request by-hand is due at "
        f"{first['report_due_at']}"
    )
    assert "it is the campaign's one report" in early.stderr
    previewed = callbridge("report", campaign, "--preview", env=env)
    assert previewed.returncode == 0, previewed.stderr
    assert previewed.stdout.startswith(f"campaign {campaign} (request by-hand): ")
    assert results_reader.poll() == []

    done = callbridge("report", campaign, "--now", env=env)
    assert done.returncode == 0, done.stderr
    report = results_reader.wait_for(lambda events: len(events) == 2)[-1]
    assert (report["event_id"], report["campaigns"]) == (f"by-hand:campaign.report:{campaign}:1", 2)
    (made,) = [c for c in sandbox.campaigns if c.id == first["campaign_id"]]
    tied = [row["phone"] for row in report["rows"]] + [m["phone"] for m in report["missing"]]
    assert tied == made.phones, "the report of that campaign's contacts alone"
    shown = callbridge("status", "by-hand", env=env).stdout
    assert "  campaign 1 of 2\n    state:           reported\n" in shown
    assert "  campaign 2 of 2\n    state:           created\n" in shown
    assert callbridge("report", str(second["campaign_id"]), env=env).returncode == 1


# -- a store made before campaigns were planned ------------------------------------------------


def test_a_version_2_store_migrated_mid_flight_keeps_working(
    store_url, make_sandbox, worker_env, start_worker, results_reader
):
    """A v2 store goes through every later step (3, 4 and 5) with work in each state."""
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, store_url)
    platform = PlatformClient(load_settings(env))
    ended = call_request("ended", schedule=window_ending_in(-1))
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1)

    def made(request_id: str) -> int:
        answer = platform.create_campaign(v2_row(request_id, "received", ended)["create_body"])
        assert isinstance(answer, Created)
        return answer.campaign_id

    dead = {"owner": 424242, "attempts": 1}
    make_v2_store(
        store_url,
        [
            v2_row("v2-received", "received", call_request("v2-received")),
            v2_row("v2-retry", "retry", call_request("v2-retry"), attempts=1),
            v2_row("v2-sending", "sending", call_request("v2-sending"), **dead),
            v2_row("v2-created", "created", ended, campaign_id=made("c"), report_due_at=past),
            v2_row("v2-reporting", "reporting", ended, campaign_id=made("r"), **dead),
            v2_row("v2-unknown", "failed", call_request("v2-unknown"), outcome="unknown"),
        ],
    )
    start_worker(env)

    events = results_reader.wait_for(lambda events: len(events) == 5)
    seen = sorted((e["event_id"], e.get("outcome")) for e in events)
    assert seen == [
        ("v2-created:campaign.report:1", None),
        ("v2-received:campaign.created", None),
        ("v2-reporting:campaign.report:1", None),
        ("v2-retry:campaign.created", None),
        ("v2-sending:campaign.failed", "unknown"),
    ]
    assert all("campaigns" not in event for event in events)
    resend = callbridge("resolve", "v2-unknown", "--resend", env=env)
    assert resend.returncode == 0, resend.stderr
    late = results_reader.wait_for(lambda events: len(events) == 6)[-1]
    assert late["event_id"] == "v2-unknown:campaign.created"
    assert len(posts(sandbox)) == 5, "two made beforehand, three sent by the worker"
