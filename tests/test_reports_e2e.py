"""Reports end to end: the sandbox's dialog results reach the CRM through RabbitMQ.

The promise under test: every accepted phone of every campaign reaches the CRM as a report row
or a ``missing`` entry, tied to its ``external_id``. A real worker (or the ``callbridge report``
command) fetches from the sandbox over HTTP, and the tests read the results queue as the CRM.

Only the first test waits for a calling window to close. The others make the report due at
once by taking the request in through the worker's own intake (``handlers.accept.accept``) as
of a few minutes ago, while its window was still open; the worker then creates the campaign
and fetches its report as it would in production.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from kombu import Connection

from adapters.broker import Delivery
from adapters.config import Settings, load_settings
from adapters.platform_client import Created, PlatformClient
from adapters.store import open_store, utcnow
from adapters.topology import contract_queue
from handlers.accept import accept
from sandbox import SandboxServer
from schemas.platform import format_utc_timestamp
from tests.builders import call_request, e164, publish, window_ending_in
from tests.plugins.sandbox import documented_campaign_body
from tests.plugins.services import QueueReader, WorkerProcess, as_if_due, callbridge
from tests.waiting import eventually

MiB = 1024 * 1024


@dataclasses.dataclass
class Bridge:
    """One callbridge deployment: a sandbox platform, a store, this test's queues."""

    sandbox: SandboxServer
    env: dict[str, str]
    start_worker: Callable[[dict[str, str]], WorkerProcess]

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def worker(self) -> WorkerProcess:
        return self.start_worker(self.env)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """``callbridge ARGS`` with the worker's environment."""
        return callbridge(*args, env=self.env)

    def accept_earlier(self, body: dict, *, minutes_ago: int = 5) -> None:
        """Take the request in as the worker's intake did ``minutes_ago``, window still open."""
        store = open_store(self.env["DATABASE_URL"])
        store.create_schema()
        delivery = Delivery(json.dumps(body).encode(), content_type="application/json")
        now = utcnow() - dt.timedelta(minutes=minutes_ago)
        verdict = accept(delivery, settings=self.settings, store=store, now=now)
        store.engine.dispose()
        assert verdict.outcome == "accepted", verdict


@pytest.fixture
def bridge(make_sandbox, worker_env, start_worker, sqlite_url):
    """``bridge(database_url=..., sandbox={options}, **worker env)``: a Bridge, no worker yet."""

    def make(*, database_url: str = sqlite_url, sandbox: dict | None = None, **env: str) -> Bridge:
        server = make_sandbox(**(sandbox or {}))
        return Bridge(server, worker_env(server.url, database_url, **env), start_worker)

    return make


@pytest.fixture
def reply_queue(rabbitmq_url, queues) -> Iterator[str]:
    name = f"{queues.results}.reply"
    with Connection(rabbitmq_url) as connection:
        contract_queue(name).bind(connection.default_channel).declare()
    yield name
    with Connection(rabbitmq_url) as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_delete(name)


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [event for event in events if event["type"] == event_type]


def whole_report(events: list[dict]) -> bool:
    """True once every part of the (one) report has arrived."""
    parts = {event["part"]: event["parts"] for event in of_type(events, "campaign.report")}
    return bool(parts) and len(parts) == next(iter(parts.values()))


def contacts(body: dict) -> dict[str, str]:
    """external_id -> E.164 of the request's phones (built by ``call_request``)."""
    return {entry["external_id"]: e164(n) for n, entry in enumerate(body["phones"])}


def heard_of(reports: list[dict], expected: dict[str, str]) -> tuple[set[str], set[str]]:
    """The external_ids the CRM heard of as rows and as missing, after checking that every
    contact was heard of exactly one way and always with its own phone."""
    in_rows = {row["external_id"]: row["phone"] for r in reports for row in r["rows"]}
    missing = [(entry["external_id"], entry["phone"]) for r in reports for entry in r["missing"]]
    assert len(missing) == len(dict(missing)), "a contact is missing twice"
    assert {**in_rows, **dict(missing)} == expected
    assert not in_rows.keys() & dict(missing).keys(), "a contact is both a row and missing"
    return set(in_rows), set(dict(missing))


def finished_request(request_id: str, *, phones: int) -> dict:
    """A request whose window closed a minute or two ago, its report due at once."""
    return call_request(
        request_id, phones=phones, schedule=window_ending_in(-1), report={"delay_minutes": 0}
    )


def window_end(schedule: dict[str, str]) -> dt.datetime:
    day = dt.date.fromisoformat(schedule["date"])
    end = dt.time.fromisoformat(schedule["end_time"])
    return dt.datetime.combine(day, end, ZoneInfo(schedule["timezone"])).astimezone(dt.UTC)


@pytest.mark.slow
def test_the_report_arrives_when_the_calling_window_is_over(
    bridge, rabbitmq_url, queues, results_reader
):
    """The one test that waits for a real window (1-2 minutes)."""
    bridge().worker()
    schedule = window_ending_in(1 if dt.datetime.now().second < 45 else 2)
    body = call_request("e2e-window", phones=3, schedule=schedule, report={"delay_minutes": 0})
    expected = contacts(body)
    body["phones"].append({"phone": "12345", "external_id": "not-a-phone"})
    publish(rabbitmq_url, queues.requests, body, correlation_id="corr-window")

    (created,) = results_reader.wait_for(lambda events: events)
    assert created["type"] == "campaign.created"
    assert created["report_due_at"] == format_utc_timestamp(window_end(schedule))
    assert [p["external_id"] for p in created["phones_rejected"]] == ["not-a-phone"]

    events = results_reader.wait_for(whole_report, timeout=180)
    (report,) = of_type(events, "campaign.report")
    assert (report["event_id"], report["part"], report["parts"]) == (
        "e2e-window:campaign.report:1",
        1,
        1,
    )
    assert report["campaign_id"] == created["campaign_id"]
    assert report["occurred_at"] >= created["report_due_at"]
    assert heard_of([report], expected) == (set(expected), set())
    properties = results_reader.seen[-1][1]
    assert properties["message_id"] == "e2e-window:campaign.report:1"
    assert properties["correlation_id"] == "corr-window"


def test_phones_the_platform_left_out_arrive_as_missing_with_their_external_ids(
    bridge, results_reader
):
    deployment = bridge(sandbox={"report_missing_every": 2})
    body = finished_request("e2e-missing", phones=5)
    deployment.accept_earlier(body)
    deployment.worker()

    events = results_reader.wait_for(whole_report)
    (report,) = of_type(events, "campaign.report")
    rows, missing = heard_of([report], contacts(body))
    assert missing == {"e2e-missing-lead-1", "e2e-missing-lead-3"}
    assert rows == {"e2e-missing-lead-0", "e2e-missing-lead-2", "e2e-missing-lead-4"}
    assert report["count"] == 3


@pytest.mark.parametrize(
    ("sandbox", "written"),
    [
        pytest.param({"report_phone_format": "digits"}, "79120000001", id="digits"),
        pytest.param({"report_phone_format": "e164"}, "+79120000001", id="e164"),
        pytest.param({"report_phone_format": "national"}, "8 (912) 000-00-01", id="national"),
        pytest.param({"report_phone_field": "phone"}, None, id="field-phone"),
    ],
)
def test_rows_are_tied_to_their_contact_however_the_platform_writes_the_phone(
    bridge, results_reader, sandbox, written
):
    deployment = bridge(sandbox={**sandbox, "report_rows_per_phone": 2})
    body = finished_request("e2e-format", phones=3)
    deployment.accept_earlier(body)
    deployment.worker()

    events = results_reader.wait_for(whole_report)
    (report,) = of_type(events, "campaign.report")
    assert heard_of([report], contacts(body)) == (set(contacts(body)), set())
    assert len(report["rows"]) == 6
    second = [row for row in report["rows"] if row["external_id"] == "e2e-format-lead-1"]
    assert [row["phone"] for row in second] == ["+79120000001"] * 2
    if written is not None:  # the platform's own field is passed on as it wrote it
        assert [row["phone_number"] for row in second] == [written] * 2


@pytest.mark.slow
def test_a_100000_row_report_arrives_in_parts_each_under_the_byte_limit(
    bridge, rabbitmq_url, queues, postgres_url
):
    reader = QueueReader(rabbitmq_url, queues.results, decode=bytes)
    deployment = bridge(
        database_url=postgres_url,
        sandbox={"report_rows_per_phone": 50, "report_missing_every": 1001},
        REPORT_EVENT_MAX_BYTES=str(MiB),
    )
    body = finished_request("e2e-big", phones=2002)
    deployment.accept_earlier(body)
    deployment.worker()

    reader.wait_for(lambda bodies: whole_report([json.loads(b) for b in bodies]), timeout=120)
    messages = [(json.loads(raw), properties) for raw, properties in reader.seen]
    assert all(properties["message_id"] == event["event_id"] for event, properties in messages)
    reports = of_type([event for event, _ in messages], "campaign.report")
    parts = reports[0]["parts"]
    assert parts > 1
    assert sorted(r["part"] for r in reports) == list(range(1, parts + 1))
    assert {r["parts"] for r in reports} == {parts}
    ids = [r["event_id"] for r in reports]
    assert sorted(ids) == sorted({f"e2e-big:campaign.report:{n}" for n in range(1, parts + 1)})
    assert max(map(len, reader.bodies())) <= MiB
    assert sum(len(r["rows"]) for r in reports) == 100_000
    assert {r["count"] for r in reports} == {100_000}
    rows, missing = heard_of(reports, contacts(body))
    assert missing == {"e2e-big-lead-1000", "e2e-big-lead-2001"}
    assert len(rows) == 2000


def analytics_statuses(sandbox: SandboxServer) -> list[int | None]:
    return [r.status for r in sandbox.requests if r.path.startswith("/api/analytics/")]


def test_failed_report_calls_are_retried_until_the_report_arrives(bridge, results_reader):
    deployment = bridge(sandbox={"report_faults": ["503", "drop", "500"]})
    body = finished_request("e2e-faults", phones=2)
    deployment.accept_earlier(body)
    worker = deployment.worker()

    events = results_reader.wait_for(whole_report, timeout=30)
    (report,) = of_type(events, "campaign.report")
    assert heard_of([report], contacts(body)) == (set(contacts(body)), set())
    assert analytics_statuses(deployment.sandbox) == [503, None, 500, 200]
    log = worker.log_text()
    assert log.count('"report retry scheduled"') == 3
    assert not any(e164(n)[2:] in log for n in range(2)), "a phone in the log"
    assert of_type(events, "campaign.report_failed") == []


def test_a_report_failing_past_REPORT_RETRY_HOURS_ends_report_failed_and_can_be_fetched_later(
    bridge, results_reader, sqlite_url
):
    deployment = bridge(sandbox={"report_faults": ["503"] * 100}, REPORT_RETRY_HOURS="1")
    body = finished_request("e2e-gave-up", phones=2)
    deployment.accept_earlier(body)
    deployment.worker()
    eventually(
        lambda: len(analytics_statuses(deployment.sandbox)) >= 3,
        what="three failed report calls, retried with backoff",
    )
    # An hour passes: the report has been due for longer than REPORT_RETRY_HOURS.
    as_if_due(sqlite_url, "e2e-gave-up", window_ended_ago=dt.timedelta(hours=1, minutes=1))

    events = results_reader.wait_for(lambda events: of_type(events, "campaign.report_failed"))
    (created,) = of_type(events, "campaign.created")
    (failed,) = of_type(events, "campaign.report_failed")
    assert failed["event_id"] == "e2e-gave-up:campaign.report_failed"
    assert failed["campaign_id"] == created["campaign_id"]
    assert failed["error"]["status"] == 503
    assert set(analytics_statuses(deployment.sandbox)) == {503}
    assert of_type(events, "campaign.report") == []

    # The platform is back: an operator fetches the report by hand.
    deployment.sandbox.set_faults(report_faults=[])
    done = deployment.cli("report", str(created["campaign_id"]))
    assert done.returncode == 0, done.stderr
    events = results_reader.wait_for(whole_report)
    assert heard_of(of_type(events, "campaign.report"), contacts(body))[0] == set(contacts(body))


@pytest.mark.parametrize("fault", ["deep", "drip:1"])
def test_a_report_answer_that_cannot_be_read_ends_report_failed_and_the_next_report_arrives(
    bridge, results_reader, fault
):
    """JSON nested 100,000 levels deep, or an answer dripping past HTTP_CALL_DEADLINE_SECONDS:
    each try fails like any other, until the budget is spent."""
    schedule = window_ending_in(0)
    retry_hours = ((utcnow() - window_end(schedule)).total_seconds() + 8) / 3600
    deployment = bridge(
        sandbox={"report_faults": [fault] * 100},
        REPORT_RETRY_HOURS=f"{retry_hours:.6f}",
        HTTP_CALL_DEADLINE_SECONDS="2",
    )
    body = call_request("e2e-hostile", phones=2, schedule=schedule, report={"delay_minutes": 0})
    deployment.accept_earlier(body)
    worker = deployment.worker()

    events = results_reader.wait_for(
        lambda events: of_type(events, "campaign.report_failed"), timeout=40
    )
    (failed,) = of_type(events, "campaign.report_failed")
    assert failed["error"]["status"] == 200
    assert len(analytics_statuses(deployment.sandbox)) >= 2  # retried, with backoff
    assert "Traceback" not in worker.log_text()
    assert deployment.cli("health").returncode == 0

    deployment.sandbox.set_faults(report_faults=[])
    follower = finished_request("e2e-after-hostile", phones=2)
    deployment.accept_earlier(follower)
    events = results_reader.wait_for(whole_report, timeout=30)
    assert heard_of(of_type(events, "campaign.report"), contacts(follower))[0] == set(
        contacts(follower)
    )
    assert deployment.cli("health").returncode == 0


def test_report_command_publishes_a_campaigns_report_before_it_is_due_with_no_worker_running(
    bridge, rabbitmq_url, queues, results_reader
):
    deployment = bridge(sandbox={"report_missing_every": 3})
    worker = deployment.worker()
    body = call_request("cli-known", phones=3)  # its window is tomorrow
    publish(rabbitmq_url, queues.requests, body, correlation_id="corr-cli")
    (created,) = results_reader.wait_for(lambda events: events)
    assert worker.terminate() == 0
    campaign = str(created["campaign_id"])

    clash = deployment.cli("report", campaign, "--project-id", "2")
    assert clash.returncode == 2
    assert "is request cli-known's, with scenario_id 951, start_block_id 10, project_id 1" in (
        clash.stderr
    )
    early = deployment.cli("report", campaign)
    assert early.returncode == 1
    assert early.stderr.splitlines()[-1].startswith(
        f"callbridge report: the report of request cli-known is due at {created['report_due_at']}"
    )
    assert "--preview shows it now" in early.stderr

    previewed = deployment.cli("report", campaign, "--preview")
    assert previewed.returncode == 0, previewed.stderr
    summary, *entries = previewed.stdout.splitlines()
    assert summary.startswith(
        f"campaign {campaign} (request cli-known): 2 rows, 1 missing, would be 1 "
        "campaign.report part(s) for "
    )
    assert summary.endswith("a preview: nothing stored or published")
    rows = [json.loads(entry.removeprefix("row ")) for entry in entries if entry.startswith("row")]
    assert sorted((row["phone"], row["external_id"]) for row in rows) == [
        (f"{e164(n)[:5]}***{e164(n)[-4:]}", f"cli-known-lead-{n}") for n in range(2)
    ]
    assert entries[-1] == f'missing {{"phone": "{e164(2)[:5]}***{e164(2)[-4:]}", ' + (
        '"external_id": "cli-known-lead-2"}'
    )
    assert not any(e164(n)[2:] in previewed.stdout for n in range(3)), "a phone shown whole"
    assert results_reader.poll() == []
    assert "state:           created" in deployment.cli("status", "cli-known").stdout

    done = deployment.cli("report", campaign, "--now")
    assert done.returncode == 0, done.stderr
    assert f"campaign {campaign} (request cli-known): 2 rows, 1 missing, stored as 1" in done.stdout
    assert f"published to {queues.results}" in done.stdout
    events = results_reader.wait_for(whole_report)
    (report,) = of_type(events, "campaign.report")
    assert heard_of([report], contacts(body))[1] == {"cli-known-lead-2"}
    assert results_reader.seen[-1][1]["correlation_id"] == "corr-cli"

    again = deployment.cli("report", campaign)
    assert again.returncode == 1
    assert "reported already" in again.stderr
    assert results_reader.poll() == []

    status = deployment.cli("status", "cli-known")
    assert status.returncode == 0, status.stderr
    shown = status.stdout
    for label, value in [
        ("state", "reported"),
        ("campaign id", campaign),
        ("phones accepted", "3"),
        ("phones rejected", "0"),
        ("report due", created["report_due_at"].replace(".000Z", "Z")),
    ]:
        assert re.search(rf"^  {label}: +{re.escape(value)}$", shown, re.MULTILINE), shown
    assert re.search(rf"cli-known:campaign.created +→ {queues.results} +published ", shown)
    assert re.search(rf"cli-known:campaign.report:1 +→ {queues.results} +published ", shown)


def test_report_command_reports_a_campaign_made_outside_callbridge(
    bridge, rabbitmq_url, reply_queue
):
    deployment = bridge()
    made = PlatformClient(deployment.settings).create_campaign(
        json.dumps(documented_campaign_body(e164(0), e164(1))).encode()
    )
    assert isinstance(made, Created)
    campaign = str(made.campaign_id)
    request_id = f"campaign-{campaign}"
    database = deployment.settings.database_url
    nowhere = deployment.cli("report", campaign)
    assert nowhere.returncode == 2
    assert nowhere.stderr.splitlines()[-1].startswith(
        f"callbridge report: DATABASE_URL: no store at {database.removeprefix('sqlite:///')}"
    )
    store = open_store(database)  # as a worker would have made it
    store.create_schema()
    store.engine.dispose()

    unknown = deployment.cli("report", campaign)
    assert unknown.returncode == 2
    assert "give --scenario-id, --start-block-id, --project-id" in unknown.stderr
    ids = ["--scenario-id", "951", "--start-block-id", "10", "--project-id", "1"]
    backwards = deployment.cli("report", campaign, *ids, "--date-start", "2999-01-01")
    assert backwards.returncode == 2
    assert "the period is empty" in backwards.stderr

    done = deployment.cli("report", campaign, *ids, "--reply-to", reply_queue)
    assert done.returncode == 0, done.stderr
    assert f"(request {request_id}): 2 rows, 0 missing" in done.stdout
    reader = QueueReader(rabbitmq_url, reply_queue)
    (report,) = reader.wait_for(whole_report)
    assert (report["request_id"], report["event_id"]) == (
        request_id,
        f"{request_id}:campaign.report:1",
    )
    assert [row["phone_number"] for row in report["rows"]] == ["79120000000", "79120000001"]
    assert all("external_id" not in row and "phone" not in row for row in report["rows"])
    assert report["missing"] == []
    assert reader.seen[0][1]["correlation_id"] == request_id

    again = deployment.cli("report", campaign, *ids)
    assert again.returncode == 1
    assert "reported already" in again.stderr
    status = deployment.cli("status", request_id)
    assert status.returncode == 0, status.stderr
    assert re.search(rf"{request_id}:campaign.report:1 +→ {reply_queue} +published ", status.stdout)
