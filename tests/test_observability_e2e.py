"""What an operator sees of a real worker — Sentry events, log lines, metrics — and that none of
it holds a phone number, an add_data value or the API token."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa

from adapters.store import open_store
from tests.builders import call_request, publish
from tests.plugins.services import as_if_due, on_a_free_port, scrape_metrics
from tests.waiting import eventually

NAME = "Секретов"  # in every add_data the builders write
SEPARATORS_BETWEEN_DIGITS = re.compile(r"(?<=\d)[\s().\-\u00a0]+(?=\d)")


def national_numbers(*bodies: dict) -> set[str]:
    """The ten digits after +7 of every phone of the requests, however they were written."""
    return {re.sub(r"\D", "", entry["phone"])[-10:] for body in bodies for entry in body["phones"]}


def personal_data_in(text: str, numbers: set[str], token: str) -> list[str]:
    """Every phone (+7…, 8…, 7…, bare, with any separators), add_data name or token in ``text``."""
    joined = SEPARATORS_BETWEEN_DIGITS.sub("", text)
    found = [f"phone {number}" for number in sorted(numbers) if number in joined]
    escaped = json.dumps(NAME)[1:-1]
    found += [f"name {form}" for form in (NAME, escaped) if form in text]
    return found + (["the API token"] if token in text else [])


def written_in_every_form(body: dict) -> dict:
    """The request with its phones written the ways CRMs write them."""
    forms = [
        lambda d: f"+7{d}",
        lambda d: f"8{d}",
        lambda d: f"7{d}",
        lambda d: f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
        lambda d: f"+7 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
    ]
    for n, entry in enumerate(body["phones"]):
        digits = re.sub(r"\D", "", entry["phone"])[-10:]
        entry["phone"] = forms[n % len(forms)](digits)
    return body


def of(events: list[dict], event_type: str, request_id: str) -> list[dict]:
    return [e for e in events if e["type"] == event_type and e["request_id"] == request_id]


# -- Sentry ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sentry_gets_each_failure_of_a_real_worker_tagged_and_nothing_personal(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    postgres_url,
    sentry_server,
    sandbox_token,
):
    sandbox = make_sandbox(create_faults=["422", "401"], report_faults=["500"])
    worker = start_worker(
        worker_env(sandbox.url, postgres_url, SENTRY_DSN=sentry_server.dsn, REPORT_RETRY_HOURS="1")
    )
    sent = [
        written_in_every_form(call_request("s-failed", phones=3, first_phone=100)),
        written_in_every_form(call_request("s-paused", phones=3, first_phone=200)),
        written_in_every_form(
            call_request("s-rejected", phones=3, first_phone=300, schedule={"attempts": 9})
        ),
        written_in_every_form(call_request("s-crash", phones=3, first_phone=400)),
    ]
    publish(rabbitmq_url, queues.requests, sent[0])
    results_reader.wait_for(lambda events: of(events, "campaign.failed", "s-failed"))
    publish(rabbitmq_url, queues.requests, sent[1])  # meets the 401: a pause of 5 s
    worker.wait_for_log('"paused"')
    for body in sent[2:]:
        publish(rabbitmq_url, queues.requests, body)
    events = results_reader.wait_for(
        lambda events: (
            of(events, "campaign.created", "s-paused")
            and of(events, "campaign.created", "s-crash")
            and of(events, "campaign.rejected", "s-rejected")
        )
    )
    campaign_of = {e["request_id"]: e["campaign_id"] for e in events if "campaign_id" in e}

    with sentry_server.lock:
        # The fake Sentry answers nothing while the test holds its lock: the report failure's
        # event waits on the wire and the crash's behind it, so only a flush at SIGTERM sends it.
        as_if_due(postgres_url, "s-paused", window_ended_ago=dt.timedelta(days=2))
        results_reader.wait_for(lambda events: of(events, "campaign.report_failed", "s-paused"))
        store = open_store(postgres_url)  # a database problem: report events are refused
        with store.transaction() as conn:
            conn.execute(
                sa.text(
                    "ALTER TABLE callbridge_outbox ADD CONSTRAINT no_reports "
                    "CHECK (event_type <> 'campaign.report')"
                )
            )
        store.engine.dispose()
        as_if_due(postgres_url, "s-crash")
        worker.wait_for_log("loop failed")
        worker.process.send_signal(15)
        worker.wait_for_log("pending events before exit")  # the flush comes next
    assert worker.process.wait(40) == 0
    assert '"worker stopped"' in worker.log_text()

    events = sentry_server.events()
    reports = {e.get("message") or e["exception"]["values"][-1]["type"]: e for e in events}
    assert len(events) == len(reports), "a failure was reported twice"
    assert sorted(reports) == [
        "IntegrityError",
        "campaign.failed: outcome not_created, HTTP status 422",
        "campaign.failed: outcome report_failed, HTTP status 500",
        "platform refused the API credentials (HTTP 401)",
    ], "one event per failure, none for the rejection"
    expected = {
        "campaign.failed: outcome not_created, HTTP status 422": (
            "warning",
            {"stage": "create", "request_id": "s-failed", "project_id": "1"},
        ),
        "platform refused the API credentials (HTTP 401)": (
            "error",
            {"stage": "create", "request_id": "s-paused", "project_id": "1", "status": "401"},
        ),
        "campaign.failed: outcome report_failed, HTTP status 500": (
            "warning",
            {
                "stage": "report",
                "request_id": "s-paused",
                "campaign_id": str(campaign_of["s-paused"]),
                "project_id": "1",
            },
        ),
        "IntegrityError": (
            "error",
            {
                "stage": "report",
                "request_id": "s-crash",
                "campaign_id": str(campaign_of["s-crash"]),
                "project_id": "1",
            },
        ),
    }
    for key, (level, tags) in expected.items():
        assert reports[key]["level"] == level, key
        assert reports[key]["tags"].items() >= tags.items(), (key, reports[key]["tags"])
    raw = sentry_server.raw.decode("utf-8", "replace")
    assert "s-rejected" not in raw
    frames = [
        frame
        for event in events
        for exception in event.get("exception", {}).get("values", [])
        for frame in exception.get("stacktrace", {}).get("frames", [])
    ]
    assert frames, "the crash came with its stack"
    assert not [frame for frame in frames if "vars" in frame], "stack locals reached Sentry"
    assert "+7912***0400" not in raw, "nothing of s-crash's phones, not even masked"
    numbers = national_numbers(*sent)
    assert personal_data_in(raw, numbers, sandbox_token) == []
    assert personal_data_in(worker.log_text(), numbers, sandbox_token) == []


@pytest.mark.slow
def test_a_campaign_created_after_its_request_was_failed_elsewhere_is_reported_to_mend(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    postgres_url,
    sentry_server,
):
    sandbox = make_sandbox(latency=4.0)
    env = worker_env(sandbox.url, postgres_url, SENTRY_DSN=sentry_server.dsn)
    first = start_worker(env)
    publish(rabbitmq_url, queues.requests, call_request("s-lost"))
    first.wait_for_log('"sending"')
    store = open_store(postgres_url)  # the database drops the connection holding its lock
    with store.transaction() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    store.engine.dispose()
    start_worker(env)  # takes the first for dead: fails s-lost as unknown
    (failed,) = results_reader.wait_for(lambda events: events)
    assert (failed["type"], failed["outcome"]) == ("campaign.failed", "unknown")
    first.wait_for_log('"settled elsewhere"', timeout=20)
    assert first.process.wait(30) == 3, "a worker that lost its lock stops"

    (campaign,) = sandbox.campaigns
    (lost,) = [e for e in sentry_server.events() if "exception" in e]
    assert lost["exception"]["values"][-1]["type"] == "SettleConflict"
    assert lost["tags"].items() >= {"stage": "create", "request_id": "s-lost"}.items()
    (crumb,) = [c for c in lost["breadcrumbs"]["values"] if c.get("message") == "settled elsewhere"]
    assert crumb["data"]["campaign_id"] == campaign.id, "what `resolve --campaign-id` needs"
    (unknown,) = [e for e in sentry_server.events() if e.get("tags", {}).get("outcome")]
    assert unknown["tags"]["request_id"] == "s-lost"


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("log_format", "level"), [("json", "INFO"), ("text", "DEBUG")])
def test_no_log_line_of_a_burst_holds_a_phone_a_name_or_the_token(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    sandbox_token,
    log_format,
    level,
):
    sandbox = make_sandbox(
        create_faults=["422", "500", "drop", "503:retry-after=1", "no-id", "401"],
        report_faults=["502"],
    )
    env = worker_env(sandbox.url, sqlite_url, LOG_FORMAT=log_format, LOG_LEVEL=level)
    worker = start_worker(env)
    valid = [
        written_in_every_form(call_request(f"log-{n}", phones=5, first_phone=10 * n))
        for n in range(8)
    ]
    valid[0]["phones"].append({"phone": "+7 912 00", "external_id": "too-short"})
    # A CRM that names requests after the contact: the id is in every line about the request.
    valid.append(call_request("lead-89120000990", phones=1, first_phone=990))
    invalid = [
        written_in_every_form(
            call_request("log-contract", phones=3, first_phone=500, schedule={"attempts": 9})
        ),
        written_in_every_form(call_request("log-add-data", phones=2, first_phone=600)),
    ]
    invalid[1]["phones"][0]["add_data"] = {"name": {"full": f"Клиент {NAME}"}}
    cut = written_in_every_form(call_request("log-garbage", phones=3, first_phone=700))
    garbage = json.dumps(cut, ensure_ascii=False)[:-30].encode()  # not JSON any more
    for body in valid + invalid:
        publish(rabbitmq_url, queues.requests, body)
    publish(rabbitmq_url, queues.requests, valid[1])  # a duplicate delivery
    publish(rabbitmq_url, queues.requests, garbage)
    publish(rabbitmq_url, queues.requests, garbage, content_type="text/plain")
    terminal = {"campaign.created", "campaign.failed", "campaign.rejected"}
    results_reader.wait_for(
        lambda events: sum(e["type"] in terminal for e in events) == len(valid) + 3, timeout=60
    )
    created = [e for e in results_reader.bodies() if e["type"] == "campaign.created"]
    for event in created[:2]:  # one report fails once (502) and is retried, one is reported
        as_if_due(sqlite_url, event["request_id"])
    worker.wait_for_log("report retry scheduled")
    worker.wait_for_log("reported")
    assert worker.terminate() == 0

    lines = worker.log_text().splitlines()
    assert len(lines) > 40
    numbers = national_numbers(*valid, *invalid, cut)
    leaks = {n: personal_data_in(line, numbers, sandbox_token) for n, line in enumerate(lines)}
    assert {lines[n]: found for n, found in leaks.items() if found} == {}
    assert "lead-+7912***0990" in worker.log_text(), "the scan saw no phone at all"


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_of_a_real_worker_count_outcomes_and_show_the_outbox_backlog(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    full_reply_queue,
):
    sandbox = make_sandbox(create_faults=["422", "500"])
    env = worker_env(sandbox.url, sqlite_url)

    def start_serving_metrics(port: int) -> int:
        start_worker({**env, "METRICS_PORT": str(port)})
        return port

    port = on_a_free_port(start_serving_metrics)
    for n in range(4):
        publish(rabbitmq_url, queues.requests, call_request(f"metrics-{n}"))
    publish(rabbitmq_url, queues.requests, call_request("metrics-bad", schedule={"attempts": 9}))
    results_reader.wait_for(lambda events: len(events) == 5)

    samples = scrape_metrics(port)
    requests_by_outcome = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "callbridge_requests_total"
    }
    assert requests_by_outcome == {
        "created": 2,
        "rejected": 1,
        "failed_not_created": 1,
        "failed_unknown": 1,
    }
    assert samples[("callbridge_events_published_total", (("type", "campaign.created"),))] == 2
    assert samples[("callbridge_requests_in_state", (("state", "created"),))] == 2
    assert samples[("callbridge_outbox_backlog", ())] == 0

    stuck = call_request("metrics-stuck")
    publish(rabbitmq_url, queues.requests, stuck, reply_to=full_reply_queue)
    # The outcome is counted just after its commit: wait for both figures, not one.
    eventually(
        lambda: (
            (found := scrape_metrics(port))[("callbridge_outbox_backlog", ())] == 1
            and found[("callbridge_requests_total", (("outcome", "created"),))] == 3
        ),
        what="the unpublishable event in the outbox backlog, its request counted as created",
    )
    eventually(
        lambda: scrape_metrics(port)[("callbridge_outbox_oldest_age_seconds", ())] >= 1,
        what="the unpublishable event's age to reach a second",
    )
