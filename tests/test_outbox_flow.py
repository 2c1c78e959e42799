"""Nothing in the outbox blocks the rest, and no result is swallowed: a real worker on RabbitMQ.

An identifier too long for an AMQP short string, an event AMQP cannot carry, a reply queue that
refuses every event, a reply queue that does not exist: each event ends published (fitted, or
sent to the results queue instead) or set aside with its reason, visible in ``status``,
``health`` and the metrics, while the other requests' events flow on.
"""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from adapters.config import load_settings
from adapters.store import open_store, utcnow
from handlers.results import result
from schemas.events import campaign_failed
from tests.builders import call_request, publish
from tests.plugins.services import callbridge, on_a_free_port, scrape_metrics

pytestmark = [pytest.mark.rabbitmq]

EMOJI_REQUEST_ID = "😀" * 128
BOUND_SECONDS = 30


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return callbridge(*args, env=env, timeout=60)


def created_ids(events: list[dict]) -> list[str]:
    return sorted(e["request_id"] for e in events if e["type"] == "campaign.created")


def test_a_request_id_of_128_emoji_is_published_and_the_others_flow(
    store_url, make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader
):
    env = worker_env(make_sandbox().url, store_url)
    start_worker(env)
    emoji = call_request(EMOJI_REQUEST_ID)
    for n, phone in enumerate(emoji["phones"]):
        phone["external_id"] = f"lead-{n}"
    publish(rabbitmq_url, queues.requests, emoji)
    for n in range(3):
        publish(rabbitmq_url, queues.requests, call_request(f"after-emoji-{n}"))

    events = results_reader.wait_for(lambda events: len(events) == 4, timeout=BOUND_SECONDS)
    assert created_ids(events) == sorted(
        [EMOJI_REQUEST_ID, *(f"after-emoji-{n}" for n in range(3))]
    )
    ((body, properties),) = [
        seen for seen in results_reader.seen if seen[0]["request_id"] == EMOJI_REQUEST_ID
    ]
    assert body["event_id"] == f"{EMOJI_REQUEST_ID}:campaign.created", "whole in the body"
    for name in ("message_id", "correlation_id"):
        fitted = properties[name]
        assert len(fitted.encode()) <= 255
        assert fitted.startswith("😀" * 59) and "~" in fitted
    assert cli(env, "health").returncode == 0
    status = cli(env, "status", EMOJI_REQUEST_ID)
    assert "published" in status.stdout and "NOT" not in status.stdout


def test_an_event_amqp_cannot_carry_is_set_aside_and_the_others_flow(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    """A header of an integer beyond 64 bits: py-amqp fails to write it, at every try."""
    event = result(
        load_settings(queues.env()),
        campaign_failed(
            request_id="cannot-carry",
            status=500,
            message="boom",
            outcome="unknown",
            occurred_at=utcnow(),
        ),
        correlation_id=None,
        reply_to=None,
    )
    unsendable = dataclasses.replace(
        event, properties={**event.properties, "headers": {"x-big": 2**70}}
    )
    store = open_store(sqlite_url)
    store.create_schema()
    with store.transaction() as conn:
        store.add_event(conn, unsendable)
    store.engine.dispose()
    env = worker_env(make_sandbox().url, sqlite_url)
    start_worker(env)
    publish(rabbitmq_url, queues.requests, call_request("beside-unsendable"))

    events = results_reader.wait_for(lambda events: events, timeout=BOUND_SECONDS)
    assert created_ids(events) == ["beside-unsendable"]
    status = cli(env, "status", "cannot-carry")
    assert "SET ASIDE" in status.stdout and "AMQP cannot carry it (error" in status.stdout
    checked = cli(env, "health")
    assert checked.returncode == 0
    assert "1 event(s) set aside" in checked.stdout


def test_an_event_the_broker_keeps_refusing_is_set_aside_and_shown(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    full_reply_queue,
):
    env = worker_env(make_sandbox().url, sqlite_url, MAX_PUBLISH_REFUSALS="2")
    worker, port = on_a_free_port(lambda port: (start_worker(metrics_on(env, port)), port))
    publish(rabbitmq_url, queues.requests, call_request("refused"), reply_to=full_reply_queue)
    worker.wait_for_log('"event set aside"', timeout=BOUND_SECONDS)
    publish(rabbitmq_url, queues.requests, call_request("after-refused"))

    events = results_reader.wait_for(lambda events: events, timeout=BOUND_SECONDS)
    assert created_ids(events) == ["after-refused"]
    assert worker.log_text().count('"event refused by the broker"') == 1
    status = cli(env, "status", "refused")
    assert "SET ASIDE" in status.stdout
    assert "refused by the broker 2 times (MAX_PUBLISH_REFUSALS)" in status.stdout
    checked = cli(env, "health", "--max-outbox-age", "1")
    assert checked.returncode == 0, "a set-aside event waits for an operator, not the worker"
    assert "1 event(s) set aside" in checked.stdout
    assert scrape_metrics(port)[("callbridge_outbox_set_aside", ())] == 1


def test_an_unroutable_reply_to_goes_to_the_results_queue_counted_and_warned_once(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    sentry_server,
):
    missing = f"{queues.results}.no-such-queue"
    env = worker_env(make_sandbox().url, sqlite_url, SENTRY_DSN=sentry_server.dsn)
    port = on_a_free_port(lambda port: start_worker(metrics_on(env, port)) and port)
    for n in range(2):
        publish(rabbitmq_url, queues.requests, call_request(f"lost-{n}"), reply_to=missing)
    publish(rabbitmq_url, queues.requests, call_request("not-lost"))

    results_reader.wait_for(lambda events: len(events) == 3, timeout=BOUND_SECONDS)
    assert created_ids(results_reader.bodies()) == ["lost-0", "lost-1", "not-lost"]
    headers = {
        body["request_id"]: (properties.get("headers") or {})
        for body, properties in results_reader.seen
    }
    assert headers["lost-0"] == headers["lost-1"] == {"x-callbridge-unroutable-queue": missing}
    assert "x-callbridge-unroutable-queue" not in headers["not-lost"]
    samples = scrape_metrics(port)
    unroutable = ("callbridge_events_unroutable_total", (("type", "campaign.created"),))
    assert samples[unroutable] == 2
    warnings = [
        event
        for event in sentry_server.events()
        if missing in (event.get("message") or event.get("logentry", {}).get("message", ""))
    ]
    assert len(warnings) == 1, sentry_server.events()
    assert warnings[0]["level"] == "warning"
    status = cli(env, "status", "lost-0")
    assert f"→ {queues.results}  published" in status.stdout
    assert cli(env, "health").returncode == 0


def metrics_on(env: dict[str, str], port: int) -> dict[str, str]:
    return {**env, "METRICS_PORT": str(port)}
