"""Hostile messages on the real RabbitMQ, with both stores: each one ends dead-lettered with its
reason, and the valid requests behind it end normally within a bound, while ``callbridge
health`` is checked.

What a hostile CRM can send: JSON nested 100,000 deep, a 5,000-digit number, a lone surrogate,
an id past BIGINT, NUL where PostgreSQL cannot hold it, a delay that overflows its column,
duplicate keys, a long message_id on a malformed body, a prefetch window full of such messages,
and a message that keeps failing intake.
"""

from __future__ import annotations

import json
import re
import subprocess

import psycopg
import pytest

from tests.builders import call_request, publish
from tests.plugins.services import callbridge
from tests.waiting import eventually

pytestmark = [pytest.mark.rabbitmq]

VALID_AFTER = 3
BOUND_SECONDS = 30


def body(value: dict, *, ascii_only: bool = False) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


def with_number(request_id: str, literal: str) -> bytes:
    """A request whose project_id is written as ``literal``."""
    text = json.dumps(call_request(request_id, project_id=123456789), ensure_ascii=False)
    return text.replace("123456789", literal, 1).encode()


# (name, body, AMQP properties, part of the dead letter's reason, request_id of the rejection)
HOSTILE = [
    (
        "nested-100000",
        b'{"request_id": "h-nested", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        {},
        "nest deeper than 32 levels",
        None,
    ),
    (
        "5000-digits",
        with_number("h-digits", "9" * 5000),
        {},
        "written in 5000 characters",
        None,
    ),
    (
        "lone-surrogate",
        body(call_request("h-surrogate", name="\udc00"), ascii_only=True),
        {},
        "lone surrogate",
        None,
    ),
    (
        "project-id-2^63",
        with_number("h-bigint", str(2**63)),
        {},
        "breaks the contract: campaign.project_id",
        "h-bigint",
    ),
    (
        "nul-in-request-id",
        body(call_request("h-\x00-nul")),
        {},
        "breaks the contract: request_id",
        None,
    ),
    (
        "nul-in-correlation-id",
        body(call_request("h-nul-corr")),
        {"correlation_id": "corr-\x00"},
        "breaks the contract: properties.correlation_id",
        "h-nul-corr",
    ),
    (
        "nul-in-reply-to",
        body(call_request("h-nul-reply")),
        {"reply_to": "reply-\x00"},
        "breaks the contract: properties.reply_to",
        "h-nul-reply",
    ),
    (
        "delay-3e9",
        body(call_request("h-delay", report={"delay_minutes": 3_000_000_000})),
        {},
        "breaks the contract: report.delay_minutes",
        "h-delay",
    ),
    (
        "malformed-with-250-char-message-id",
        b"{not json",
        {"message_id": "m" * 250},
        "body is not JSON",
        None,
    ),
    (
        "duplicate-keys",
        b'{"request_id": "h-dup", "request_id": "h-dup-2"}',
        {},
        "the key 'request_id' appears twice",
        None,
    ),
]


def poison(n: int) -> bytes:
    """A message that made intake raise on main, on any store: deep, long or a lone surrogate."""
    kinds = [
        b'{"request_id": "p-%d", "x": ' % n + b"[" * 10_000 + b"]" * 10_000 + b"}",
        with_number(f"p-{n}", "9" * 5000),
        body(call_request(f"p-{n}", name="\udc00"), ascii_only=True),
    ]
    return kinds[n % len(kinds)]


def health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return callbridge("health", *args, env=env, timeout=60)


def test_each_hostile_message_is_dead_lettered_and_the_valid_ones_flow(
    store_url,
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    dead_letter_reader,
):
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, store_url)
    worker = start_worker(env)
    for _name, raw, properties, _reason, _request_id in HOSTILE:
        publish(rabbitmq_url, queues.requests, raw, **properties)
    for n in range(VALID_AFTER):
        publish(rabbitmq_url, queues.requests, call_request(f"valid-{n}"))

    dead_letter_reader.wait_for(lambda found: len(found) >= len(HOSTILE), timeout=BOUND_SECONDS)
    checked = health(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    events = results_reader.wait_for(
        lambda events: len(events) >= len(HOSTILE) + VALID_AFTER, timeout=BOUND_SECONDS
    )

    created = sorted(e["request_id"] for e in events if e["type"] == "campaign.created")
    assert created == [f"valid-{n}" for n in range(VALID_AFTER)]
    assert len(sandbox.campaigns) == VALID_AFTER
    rejected = [e for e in events if e["type"] == "campaign.rejected"]
    assert len(rejected) == len(HOSTILE)
    reasons = {
        bytes(letter): properties["headers"]["x-callbridge-reason"]
        for letter, properties in dead_letter_reader.seen
    }
    assert len(reasons) == len(HOSTILE)
    for name, raw, _properties, reason, request_id in HOSTILE:
        assert reason in reasons[raw], f"{name}: {reasons[raw]}"
        if request_id is not None:
            assert request_id in {e["request_id"] for e in rejected}, name
    assert "Traceback" not in worker.log_text()
    assert health(env).returncode == 0


def test_a_prefetch_window_of_poison_is_dead_lettered_and_intake_goes_on(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    dead_letter_reader,
    sqlite_url,
):
    window = 12
    start_worker(worker_env(make_sandbox().url, sqlite_url, PREFETCH_COUNT=str(window)))
    for n in range(window):
        publish(rabbitmq_url, queues.requests, poison(n), message_id=f"p-{n}")
    for n in range(VALID_AFTER):
        publish(rabbitmq_url, queues.requests, call_request(f"after-poison-{n}"))

    events = results_reader.wait_for(
        lambda events: sum(e["type"] == "campaign.created" for e in events) == VALID_AFTER,
        timeout=BOUND_SECONDS,
    )
    assert sum(e["type"] == "campaign.rejected" for e in events) == window
    dead_letter_reader.wait_for(lambda found: len(found) == window, timeout=10)


def test_a_message_the_store_keeps_failing_on_is_dead_lettered_after_max_deliveries(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    dead_letter_reader,
    postgres_url,
):
    """A lock the store never grants for one request: requeued with backoff, counted, and
    dead-lettered at its fourth delivery, while health names it and the others go on."""
    env = worker_env(make_sandbox().url, postgres_url, MAX_DELIVERIES="3")
    worker = start_worker(env)
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION never_granted() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'lock not granted' USING ERRCODE = '55P03'; END $$ LANGUAGE plpgsql"
        )
        db.execute(
            "CREATE TRIGGER never_granted BEFORE INSERT ON callbridge_requests FOR EACH ROW "
            "WHEN (NEW.request_id = 'locked-out') EXECUTE FUNCTION never_granted()"
        )
    stuck = body(call_request("locked-out"))
    publish(rabbitmq_url, queues.requests, stuck, message_id="locked-out-1")
    for n in range(VALID_AFTER):
        publish(rabbitmq_url, queues.requests, call_request(f"beside-{n}"))

    lines = []
    while not dead_letter_reader.poll():
        assert len(lines) < BOUND_SECONDS, f"not dead-lettered; health said {lines}"
        lines.append(health(env, "--max-deliveries", "2").stdout)
    assert any(
        re.match(r"unhealthy: message locked-out-1 keeps coming back: delivered [23] times", line)
        for line in lines
    ), lines
    assert dead_letter_reader.bodies() == [stuck]
    reason = dead_letter_reader.seen[0][1]["headers"]["x-callbridge-reason"]
    assert reason == "intake failed repeatedly: delivered 4 times (limit 3)"
    events = results_reader.wait_for(lambda events: len(events) == VALID_AFTER + 1, timeout=10)
    assert sorted((e["type"], e["request_id"] or "") for e in events) == [
        *[("campaign.created", f"beside-{n}") for n in range(VALID_AFTER)],
        ("campaign.rejected", ""),
    ]
    assert worker.log_text().count("message(s) go back to the queue") == 3
    assert health(env, "--max-deliveries", "2").returncode == 0


def test_send_and_replay_reach_the_verdict_intake_reached(
    tmp_path,
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    dead_letter_reader,
    postgres_url,
):
    env = worker_env(make_sandbox().url, postgres_url)
    start_worker(env)
    hostile = tmp_path / "hostile.json"
    hostile.write_bytes(HOSTILE[0][1])

    sent = callbridge("send", "--raw", str(hostile), env=env, timeout=60)
    assert sent.returncode == 0, sent.stderr
    kept = eventually(
        lambda: (
            "kept #1" in (found := callbridge("dead-letters", "--replay-all", env=env)).stdout
            and found
        ),
        what="the hostile message dead-lettered and kept by a replay",
        timeout=BOUND_SECONDS,
    )
    (letter,) = dead_letter_reader.wait_for(lambda found: found, timeout=10)
    assert letter == HOSTILE[0][1]
    reason = dead_letter_reader.seen[0][1]["headers"]["x-callbridge-reason"]
    assert reason == "body: arrays and objects nest deeper than 32 levels"
    assert f"intake will refuse it: {reason}" in sent.stdout
    assert f"intake would refuse it again: {reason}" in kept.stdout
