"""A real worker process on RabbitMQ against the sandbox: requests in, events out.

Each test asserts on what the CRM and the platform would see: events on the results queue,
messages on the dead-letter queue, campaigns the sandbox received.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from adapters.store import open_store
from tests.builders import call_request, phone, publish
from tests.plugins.services import callbridge, wait_until_at_rest
from tests.waiting import eventually

TERMINAL = {"campaign.created", "campaign.rejected", "campaign.failed"}


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [event for event in events if event["type"] == event_type]


@pytest.fixture
def worker(make_sandbox, worker_env, start_worker, sqlite_url):
    """Start a worker on SQLite (``sqlite_url``) against a sandbox made with the given options."""

    def start(database_url: str = sqlite_url, sandbox=None, **env):
        sandbox = sandbox or make_sandbox()
        process = start_worker(worker_env(sandbox.url, database_url, **env))
        return process, sandbox

    return start


def test_a_request_becomes_one_campaign_and_one_created_event(
    worker, rabbitmq_url, queues, results_reader
):
    _process, sandbox = worker()
    body = call_request("flow-1", phones=2)
    body["phones"].append({"phone": "12345", "external_id": "bad-one"})
    body["phones"].append(
        {"phone": body["phones"][0]["phone"].replace(" ", ""), "external_id": "repeat"}
    )
    publish(rabbitmq_url, queues.requests, body, correlation_id="corr-7")

    events = results_reader.wait_for(lambda events: events)
    (created,) = events
    assert created["type"] == "campaign.created"
    assert created["event_id"] == "flow-1:campaign.created"
    assert created["request_id"] == "flow-1"
    assert created["phones_accepted"] == 2
    assert [(p["external_id"], p["reason"]) for p in created["phones_rejected"]] == [
        ("bad-one", "invalid phone number"),
        ("repeat", "duplicate of an earlier phone"),
    ]
    (campaign,) = sandbox.campaigns
    assert created["campaign_id"] == campaign.id
    assert [p["phone"] for p in campaign.body["phones"]] == ["+79120000000", "+79120000001"]
    assert campaign.body["phones"][0]["add_data"] == {"name": "Клиент Секретов 0"}
    (_, properties) = results_reader.seen[0]
    assert properties["type"] == "campaign.created"
    assert properties["message_id"] == "flow-1:campaign.created"
    assert properties["correlation_id"] == "corr-7"
    assert properties["delivery_mode"] == 2


def test_reply_to_gets_the_events_and_correlation_defaults_to_the_request_id(
    worker, rabbitmq_url, queues
):
    from kombu import Connection

    from adapters.topology import contract_queue
    from tests.plugins.services import QueueReader

    reply_queue = f"{queues.results}.reply"
    with Connection(rabbitmq_url) as connection:
        contract_queue(reply_queue).bind(connection.default_channel).declare()
    worker()
    publish(rabbitmq_url, queues.requests, call_request("flow-2"), reply_to=reply_queue)
    reader = QueueReader(rabbitmq_url, reply_queue)
    reader.wait_for(lambda events: events)
    assert reader.seen[0][0]["type"] == "campaign.created"
    assert reader.seen[0][1]["correlation_id"] == "flow-2"


def test_the_same_message_three_times_makes_one_campaign(
    worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    process, sandbox = worker()
    for _ in range(3):
        publish(rabbitmq_url, queues.requests, call_request("flow-3"))
    process.wait_for_log('"duplicate"', count=2)
    results_reader.wait_for(lambda events: events)
    wait_until_at_rest(sqlite_url)
    results_reader.poll()
    assert [e["event_id"] for e in results_reader.bodies()] == ["flow-3:campaign.created"]
    assert len(sandbox.campaigns) == 1
    assert process.log_text().count('"duplicate"') == 2


def published(database_url: str, request_id: str) -> bool:
    """Whether the store has marked every event of the request published (never to be
    published again)."""
    store = open_store(database_url, pool_size=1)
    try:
        events = store.events_of(request_id)
    finally:
        store.engine.dispose()
    return bool(events) and all(event["published_at"] for event in events)


GARBAGE = [
    pytest.param(b"{not json", "application/json", None, "body is not JSON", id="not-json"),
    pytest.param(b"\xff\xfe{}", "application/json", None, "not UTF-8", id="not-utf8"),
    pytest.param(b"[1, 2]", "application/json", None, "not an object", id="array"),
    pytest.param(b'{"request_id": "x"}', "text/plain", None, "content type", id="text-plain"),
    pytest.param(b"{}" + b" " * 5000, None, None, "over the limit", id="too-large"),
    pytest.param(
        json.dumps({"request_id": "garbage-shape", "campaign": {}, "phones": []}).encode(),
        "application/json",
        "garbage-shape",
        "breaks the contract",
        id="wrong-shape",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "request_id", "reason"), GARBAGE)
def test_a_malformed_message_is_dead_lettered_unchanged_and_rejected(
    worker,
    rabbitmq_url,
    queues,
    results_reader,
    dead_letter_reader,
    body,
    content_type,
    request_id,
    reason,
):
    _process, sandbox = worker(MAX_MESSAGE_BYTES="4096")
    published_at = dt.datetime.now(dt.UTC)
    publish(rabbitmq_url, queues.requests, body, content_type=content_type)
    publish(rabbitmq_url, queues.requests, call_request("after-garbage"))

    events = results_reader.wait_for(lambda events: len(events) >= 2)
    (rejected,) = of_type(events, "campaign.rejected")
    assert rejected["request_id"] == request_id
    assert rejected["errors"]
    assert of_type(events, "campaign.created")[0]["request_id"] == "after-garbage"
    dead = dead_letter_reader.wait_for(lambda bodies: bodies)
    assert dead == [body]
    properties = dead_letter_reader.seen[0][1]
    assert properties.get("content_type") == content_type, "the dead letter must be unchanged"
    headers = properties["headers"]
    assert reason in headers["x-callbridge-reason"]
    assert json.loads(headers["x-callbridge-errors"]) == rejected["errors"]
    assert headers.get("x-callbridge-request-id") == request_id
    rejected_at = dt.datetime.fromisoformat(headers["x-callbridge-rejected-at"])
    assert published_at <= rejected_at <= dt.datetime.now(dt.UTC)
    assert headers["x-original-queue"] == queues.requests
    assert len(sandbox.campaigns) == 1


@pytest.mark.parametrize(
    ("faults", "status", "outcome"),
    [
        pytest.param(["422"], 422, "not_created", id="422"),
        pytest.param(["409"], 409, "not_created", id="409"),
        pytest.param(["500"], 500, "unknown", id="500"),
        pytest.param(["502"], 502, "unknown", id="502"),
        pytest.param(["drop"], None, "unknown", id="dropped-after-body"),
        pytest.param(["drop-after-create"], None, "unknown", id="created-then-dropped"),
        pytest.param(["no-id"], 200, "unknown", id="2xx-without-id"),
        pytest.param(["404"], 404, "not_created", id="404"),
        pytest.param(["418"], 418, "not_created", id="other-4xx"),
        pytest.param(["504"], 504, "unknown", id="504"),
        pytest.param(["slow:3"], None, "unknown", id="read-timeout"),
    ],
)
def test_each_platform_refusal_ends_in_one_failed_event_never_resent(
    worker, make_sandbox, rabbitmq_url, queues, results_reader, sqlite_url, faults, status, outcome
):
    sandbox = make_sandbox(create_faults=faults)
    worker(sandbox=sandbox, HTTP_TIMEOUT_SECONDS="1")
    publish(rabbitmq_url, queues.requests, call_request("flow-fail"))
    (failed,) = results_reader.wait_for(lambda events: events)
    assert failed["type"] == "campaign.failed"
    assert failed["outcome"] == outcome
    assert failed["error"]["status"] == status
    wait_until_at_rest(sqlite_url)
    creates = [r for r in sandbox.requests if r.path == "/api/campaigns"]
    assert len(creates) == 1, "a refused request must not be sent again"
    assert len(results_reader.poll()) == 0


def test_a_retry_after_longer_than_the_backoff_is_honoured(
    worker, make_sandbox, rabbitmq_url, queues, results_reader
):
    """The first retry's backoff is about a second; the platform asks for four."""
    sandbox = make_sandbox(create_faults=["503:retry-after=4"])
    worker(sandbox=sandbox)
    publish(rabbitmq_url, queues.requests, call_request("flow-retry-after"))
    (created,) = results_reader.wait_for(lambda events: events)
    assert created["type"] == "campaign.created"
    first, second = [r for r in sandbox.requests if r.path == "/api/campaigns"]
    assert (first.status, second.status) == (503, 200)
    assert second.received_at - first.received_at >= 4


def test_an_invalid_message_with_a_known_request_id_is_dead_lettered_and_changes_nothing(
    worker, rabbitmq_url, queues, results_reader, dead_letter_reader, sqlite_url
):
    _process, sandbox = worker()
    publish(rabbitmq_url, queues.requests, call_request("flow-known"))
    results_reader.wait_for(lambda events: events)
    invalid = call_request("flow-known", schedule={"attempts": 9})
    publish(rabbitmq_url, queues.requests, invalid)

    (dead,) = dead_letter_reader.wait_for(lambda bodies: bodies)
    assert json.loads(dead) == invalid
    headers = dead_letter_reader.seen[0][1]["headers"]
    assert headers["x-callbridge-request-id"] == "flow-known"
    assert "breaks the contract" in headers["x-callbridge-reason"]
    assert "attempts" in headers["x-callbridge-errors"]
    wait_until_at_rest(sqlite_url)
    assert results_reader.poll() == [], "the CRM holds this request's outcome already"
    assert [e["event_id"] for e in results_reader.bodies()] == ["flow-known:campaign.created"]
    assert len(sandbox.campaigns) == 1


def test_an_unavailable_platform_is_retried_until_it_creates(
    worker, make_sandbox, rabbitmq_url, queues, results_reader
):
    sandbox = make_sandbox(create_faults=["503:retry-after=1", "429", "503"])
    process, _ = worker(sandbox=sandbox)
    publish(rabbitmq_url, queues.requests, call_request("flow-retry"))
    (created,) = results_reader.wait_for(lambda events: events, timeout=40)
    assert created["type"] == "campaign.created"
    assert len(sandbox.campaigns) == 1
    assert process.log_text().count('"retry scheduled"') == 3


def test_a_platform_down_for_longer_than_the_retry_budget_ends_not_created(
    worker, make_sandbox, rabbitmq_url, queues, results_reader
):
    sandbox = make_sandbox(create_faults=["503"] * 50)
    worker(sandbox=sandbox, RETRY_MAX_MINUTES="0.05")
    publish(rabbitmq_url, queues.requests, call_request("flow-down"))
    (failed,) = results_reader.wait_for(lambda events: events, timeout=40)
    assert (failed["type"], failed["outcome"], failed["error"]["status"]) == (
        "campaign.failed",
        "not_created",
        503,
    )
    assert sandbox.campaigns == []


def test_a_refused_port_is_retried_as_nothing_created(
    worker,
    rabbitmq_url,
    queues,
    results_reader,
    worker_env,
    start_worker,
    sqlite_url,
    refused_port,
):
    start_worker(
        worker_env(f"http://127.0.0.1:{refused_port}", sqlite_url, RETRY_MAX_MINUTES="0.05")
    )
    publish(rabbitmq_url, queues.requests, call_request("flow-refused"))
    (failed,) = results_reader.wait_for(lambda events: events, timeout=40)
    assert (failed["type"], failed["outcome"], failed["error"]["status"]) == (
        "campaign.failed",
        "not_created",
        None,
    )


def test_sigterm_finishes_the_call_in_flight_and_exits_zero(
    worker, make_sandbox, rabbitmq_url, queues, results_reader
):
    sandbox = make_sandbox(latency=2.0)
    process, _ = worker(sandbox=sandbox)
    publish(rabbitmq_url, queues.requests, call_request("flow-term"))
    process.wait_for_log('"sending"')
    started = time.monotonic()
    assert process.terminate() == 0
    assert time.monotonic() - started < 30
    (created,) = results_reader.wait_for(lambda events: events, timeout=5)
    assert created["type"] == "campaign.created"


def test_a_bad_setting_stops_the_worker_with_one_line_naming_it():
    env = {"PATH": "/usr/bin:/bin", "HTTP_CONCURRENCY": "lots"}
    result = callbridge("run", env=env, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "HTTP_CONCURRENCY" in lines[0]


def test_unpublished_events_are_published_by_the_next_worker(
    worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    from adapters.config import load_settings
    from adapters.store import open_store, utcnow
    from handlers.results import result
    from schemas.events import campaign_failed

    store = open_store(sqlite_url)
    store.create_schema()
    settings = load_settings(queues.env())
    event = campaign_failed(
        request_id="left-over", status=500, message="boom", outcome="unknown", occurred_at=utcnow()
    )
    with store.transaction() as conn:
        store.add_event(conn, result(settings, event, correlation_id=None, reply_to=None))
    store.engine.dispose()
    worker()
    (published,) = results_reader.wait_for(lambda events: events)
    assert published["event_id"] == "left-over:campaign.failed"


def test_phones_are_masked_in_the_log(worker, rabbitmq_url, queues, results_reader):
    process, _ = worker()
    publish(rabbitmq_url, queues.requests, call_request("flow-log", phones=3))
    results_reader.wait_for(lambda events: events)
    log = process.log_text()
    for n in range(3):
        digits = phone(n).replace(" ", "").replace("-", "")
        assert digits not in log and digits[1:] not in log
    assert "Секретов" not in log


def test_an_event_the_broker_refuses_does_not_hold_back_or_repeat_the_others(
    worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    """A CRM's reply_to queue that rejects what does not fit nacks our publish: that event
    stays queued (retried), while the events batched with it go out once each."""
    from kombu import Connection, Queue

    full_queue = f"{queues.results}.full"
    with Connection(rabbitmq_url) as connection:
        Queue(
            full_queue,
            durable=True,
            queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
        ).bind(connection.default_channel).declare()
    try:
        process, _ = worker()
        for n in range(3):
            publish(rabbitmq_url, queues.requests, call_request(f"full-{n}"), reply_to=full_queue)
        publish(rabbitmq_url, queues.requests, call_request("normal"))
        process.wait_for_log('"event refused by the broker"')
        results_reader.wait_for(lambda events: events)
        eventually(lambda: published(sqlite_url, "normal"), what="normal's event marked published")
        # The relay tries the refused events again: from now on, without the published one.
        refusals = process.log_text().count('"event refused by the broker"')
        process.wait_for_log('"event refused by the broker"', count=refusals + 1)
        results_reader.poll()
        assert [e["event_id"] for e in results_reader.bodies()] == ["normal:campaign.created"]
    finally:
        with Connection(rabbitmq_url) as connection:
            connection.default_channel.queue_delete(full_queue)
