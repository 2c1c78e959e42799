"""The operator's commands, run as an operator runs them: ``callbridge health``, ``callbridge
dead-letters`` and ``callbridge resolve`` as processes, beside a real worker on RabbitMQ, or on
the embedded broker with no worker at all."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from kombu import Connection

from adapters import broker
from adapters.broker import Delivery
from adapters.config import load_settings
from adapters.store import open_store
from adapters.store.tables import campaigns_table
from adapters.topology import contract_queue
from handlers.accept import accept
from handlers.health import Health, Limits, assess
from handlers.relay import Relay
from tests.builders import call_request, publish
from tests.plugins.services import callbridge
from worker.cli import main
from worker.commands.dead_letters import list_dead_letters, replay_dead_letters

pytestmark = [pytest.mark.rabbitmq]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return callbridge(*args, env=env, timeout=90)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def depth(url: str, queue: str) -> int:
    with Connection(url) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def wait_for_depth(url: str, queue: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (found := depth(url, queue)) != count:
        assert time.monotonic() < deadline, f"{queue} holds {found} messages, not {count}"
        time.sleep(0.1)


@pytest.fixture
def env(make_sandbox, worker_env, sqlite_url):
    """``env(sandbox=None, **more)``: the environment of a worker and of the commands."""

    def make(sandbox=None, **more: str) -> dict[str, str]:
        return worker_env((sandbox or make_sandbox()).url, sqlite_url, **more)

    return make


@pytest.mark.parametrize("command", ["health", "dead-letters", "resolve"])
def test_every_operator_command_explains_itself(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: callbridge {command}" in capsys.readouterr().out


# -- health ----------------------------------------------------------------------------------


def test_health_judges_each_figure_against_its_limit() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)

    def ago(seconds: float) -> dt.datetime:
        return now - dt.timedelta(seconds=seconds)

    workers = [{"worker_key": 7, "hostname": "h", "pid": 9, "heartbeat_at": ago(3)}]
    quiet = {"outbox_backlog": 0, "outbox_oldest_age_seconds": None}
    assert assess(workers, quiet, {}, limits=Limits(), now=now) == Health(
        True,
        "ok: worker 7 (host h, pid 9) beat 3.0 s ago; outbox empty; no creation due; no report due",
    )
    waiting = {"outbox_backlog": 3, "outbox_oldest_age_seconds": 200.0}
    due = {"created": (2, ago(700)), "received": (1, ago(5)), "retry": (4, ago(9))}
    late = assess(workers, waiting, due, limits=Limits(), now=now)
    assert late.exit_code == 1
    assert late.line == (
        "unhealthy: 3 event(s) unpublished, the oldest for 200 s (limit 120 s): the broker is "
        "unreachable or refuses it; 2 campaign(s) due for report, the longest waiting 700 s "
        "(limit 600 s)"
    )
    assert assess(workers, waiting, due, limits=Limits(outbox=300, due=900), now=now).ok
    stale = assess([{**workers[0], "heartbeat_at": ago(31)}], quiet, {}, limits=Limits(), now=now)
    assert stale.line == (
        "unhealthy: newest heartbeat on this database is 31 s old, from worker 7 (host h, pid 9) "
        "(limit 30 s)"
    )
    assert assess([], quiet, {}, limits=Limits(), now=now, host="h").line == (
        "unhealthy: no worker is registered on host h"
    )


def test_health_is_ok_while_a_worker_beats_and_says_why_not_once_it_died(
    env, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env()
    before = cli(environment, "health")
    assert before.returncode == 1
    assert one_line(before).startswith("unhealthy: ")

    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("health-1"))
    results_reader.wait_for(lambda events: events)
    for flags in ([], ["--local"]):
        alive = cli(environment, "health", *flags)
        assert alive.returncode == 0, alive.stdout
        assert one_line(alive).startswith("ok: worker ")
        assert f"pid {worker.pid}) beat" in alive.stdout

    worker.kill()
    time.sleep(1.5)
    dead = cli(environment, "health", "--max-heartbeat-age", "1")
    assert dead.returncode == 1
    assert one_line(dead).startswith("unhealthy: newest heartbeat on this database is ")
    assert f"pid {worker.pid}" in dead.stdout


def test_health_fails_while_requests_wait_behind_a_refused_token(
    env, make_sandbox, start_worker, rabbitmq_url, queues
):
    environment = env(make_sandbox(token="not-the-workers-token"))
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("health-paused"))
    worker.wait_for_log('"paused"')
    time.sleep(1.5)
    assert cli(environment, "health").returncode == 0, "600 s is the default limit"
    late = cli(environment, "health", "--max-due-age", "1")
    assert late.returncode == 1
    assert "unhealthy: 1 campaign(s) due for creation, the longest waiting" in one_line(late)


def test_health_fails_while_the_outbox_cannot_be_published(
    env, start_worker, rabbitmq_url, queues, full_reply_queue
):
    environment = env()
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("health-full"), reply_to=full_reply_queue)
    worker.wait_for_log('"created"')
    time.sleep(1.5)
    stuck = cli(environment, "health", "--max-outbox-age", "1")
    assert stuck.returncode == 1
    assert "unhealthy: 1 event(s) unpublished, the oldest for" in one_line(stuck)


# -- dead letters ----------------------------------------------------------------------------


def big_request(request_id: str) -> dict:
    """A valid request over 4 KiB: dead-lettered by a worker whose MAX_MESSAGE_BYTES is 4096."""
    return call_request(request_id, phones=40)


def test_listing_dead_letters_takes_none_of_them(
    env, start_worker, rabbitmq_url, queues, dead_letter_reader
):
    environment = env(MAX_MESSAGE_BYTES="4096")
    start_worker(environment)
    bodies = [
        json.dumps(big_request("dl-big"), ensure_ascii=False).encode(),
        json.dumps(call_request("dl-invalid", schedule={"attempts": 9})).encode(),
        b"{not json",
    ]
    publish(rabbitmq_url, queues.requests, bodies[0], message_id="big-1")
    for body in bodies[1:]:
        publish(rabbitmq_url, queues.requests, body)
    wait_for_depth(rabbitmq_url, queues.dead, 3)

    first, second = cli(environment, "dead-letters"), cli(environment, "dead-letters")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    header, *lines, footer = first.stdout.splitlines()
    assert header == f"{queues.dead}: 3 message(s)"
    assert footer == "handed back 3 message(s) unchanged"
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3"]
    assert f"id=big-1 request_id=- size={len(bodies[0])} " in lines[0]
    assert "over the limit of 4096" in lines[0]
    assert "id=sha256:" in lines[1] and "request_id=dl-invalid" in lines[1]
    assert "breaks the contract" in lines[1]
    assert "body is not JSON" in lines[2]
    assert depth(rabbitmq_url, queues.dead) == 3
    assert dead_letter_reader.wait_for(lambda found: len(found) == 3) == bodies


def test_replay_sends_back_only_what_the_worker_would_now_take(
    env, start_worker, rabbitmq_url, queues, results_reader
):
    small = start_worker(env(MAX_MESSAGE_BYTES="4096"))
    big = big_request("dl-big")
    publish(rabbitmq_url, queues.requests, big, message_id="big-1", correlation_id="corr-big")
    publish(rabbitmq_url, queues.requests, call_request("dl-invalid", schedule={"attempts": 9}))
    publish(rabbitmq_url, queues.requests, big, message_id="big-2")  # the CRM sent it twice
    wait_for_depth(rabbitmq_url, queues.dead, 3)
    assert small.terminate() == 0

    environment = env()  # MAX_MESSAGE_BYTES back to its default
    start_worker(environment)
    missing = cli(environment, "dead-letters", "--replay", "no-such-id")
    assert missing.returncode == 1
    assert "no dead letter with id no-such-id" in missing.stderr

    replayed = cli(environment, "dead-letters", "--replay", "big-1")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed #1 id=big-1 to {queues.requests}" in replayed.stdout
    created = results_reader.wait_for(
        lambda events: any(e["type"] == "campaign.created" for e in events)
    )
    assert [(e["type"], e["request_id"]) for e in created if e["request_id"] == "dl-big"] == [
        ("campaign.created", "dl-big")
    ]
    (properties,) = [p for body, p in results_reader.seen if body["request_id"] == "dl-big"]
    assert properties["correlation_id"] == "corr-big"

    rest = cli(environment, "dead-letters", "--replay-all")
    assert rest.returncode == 0, rest.stderr
    lines = rest.stdout.splitlines()
    assert lines[1].startswith("kept #1 id=sha256:")
    assert "intake would refuse it again: it breaks the contract (in campaign)" in lines[1]
    assert lines[2] == (
        "kept #2 id=big-2: request dl-big is known already (created): the worker would drop "
        "the copy as a duplicate"
    )
    assert lines[-1] == "replayed 0, kept 2"
    assert depth(rabbitmq_url, queues.dead) == 2


def test_dead_letters_are_listed_and_replayed_on_the_embedded_broker(tmp_path, capsys) -> None:
    environ = {
        "BROKER_URL": f"filesystem:///{tmp_path / 'broker'}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'callbridge.db'}",
    }
    settings = load_settings(environ)
    strict = settings.replace(max_message_bytes=1024)
    store = open_store(settings.database_url)
    store.create_schema()
    body = json.dumps(call_request("fs-big", phones=10), ensure_ascii=False).encode()
    delivery = Delivery(
        body=body,
        content_type="application/json",
        content_encoding="utf-8",
        message_id="fs-1",
        correlation_id="corr-fs",
        headers={"x-crm-trace": "t-9"},
        routing_key=settings.call_requests_queue,
    )
    assert accept(delivery, settings=strict, store=store).outcome == "rejected"
    with broker.connect(settings) as connection:
        Relay(store, connection, ready=threading.Event()).drain()

    assert list_dead_letters(settings, limit=10) == 0
    assert "#1 id=fs-1 request_id=- size=" in capsys.readouterr().out
    assert replay_dead_letters(settings, key="fs-1", limit=10) == 0
    assert "replayed #1 id=fs-1" in capsys.readouterr().out

    with broker.connect(settings) as connection:
        channel = connection.default_channel
        assert contract_queue(settings.dead_letter_queue)(channel).get(no_ack=True) is None
        copy = contract_queue(settings.call_requests_queue)(channel).get(no_ack=True)
    assert copy.body == body
    assert copy.content_type == "application/json"
    assert copy.properties["message_id"] == "fs-1"
    assert copy.properties["correlation_id"] == "corr-fs"
    assert copy.headers == {"x-crm-trace": "t-9", "x-original-queue": settings.call_requests_queue}


# -- resolve ---------------------------------------------------------------------------------


def test_resolve_with_the_campaign_id_publishes_created_without_a_worker(
    env, make_sandbox, start_worker, rabbitmq_url, queues, results_reader
):
    sandbox = make_sandbox(create_faults=["drop-after-create"])
    environment = env(sandbox)
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("unknown-1"), correlation_id="c-1")
    publish(rabbitmq_url, queues.requests, call_request("created-1"))
    results_reader.wait_for(lambda events: len(events) == 2)
    assert worker.terminate() == 0
    lost, made = sandbox.campaigns  # the platform made both; one answer never came back
    failed = next(e for e in results_reader.bodies() if e["request_id"] == "unknown-1")
    assert (failed["type"], failed["outcome"]) == ("campaign.failed", "unknown")

    taken = cli(environment, "resolve", "unknown-1", "--campaign-id", str(made.id))
    assert taken.returncode == 1
    assert f"campaign {made.id} belongs to request created-1 already" in taken.stderr

    resolved = cli(environment, "resolve", "unknown-1", "--campaign-id", str(lost.id))
    assert resolved.returncode == 0, resolved.stderr
    assert f"request unknown-1: resolved as created, campaign {lost.id}" in resolved.stdout
    assert "published unknown-1:campaign.created" in resolved.stdout
    events = results_reader.wait_for(lambda events: len(events) == 3)
    created = events[-1]
    assert created["type"] == "campaign.created"
    assert created["event_id"] == "unknown-1:campaign.created"
    assert (created["campaign_id"], created["phones_accepted"]) == (lost.id, 2)
    assert results_reader.seen[-1][1]["correlation_id"] == "c-1"

    status = cli(environment, "status", "unknown-1").stdout
    assert "state:           created" in status and "report due:" in status
    again = cli(environment, "resolve", "unknown-1", "--resend")
    assert again.returncode == 1
    assert "request unknown-1 is created (outcome created): only a failed campaign" in again.stderr
    assert cli(environment, "resolve", "never-seen", "--resend").returncode == 1


def test_resolve_resend_lets_a_worker_try_again_and_a_second_failure_stays_quiet(
    env, make_sandbox, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    sandbox = make_sandbox(create_faults=["500"] * 3)
    environment = env(sandbox)
    start_worker(environment)
    for request_id in ("resend-ok", "resend-refused", "resend-late"):
        publish(rabbitmq_url, queues.requests, call_request(request_id))
    results_reader.wait_for(lambda events: len(events) == 3)
    assert {(e["type"], e["outcome"]) for e in results_reader.bodies()} == {
        ("campaign.failed", "unknown")
    }

    ok = cli(environment, "resolve", "resend-ok", "--resend")
    assert ok.returncode == 0, ok.stderr
    assert "request resend-ok: back to received" in ok.stdout
    created = results_reader.wait_for(lambda events: len(events) == 4)[-1]
    assert (created["event_id"], created["campaign_id"]) == (
        "resend-ok:campaign.created",
        sandbox.campaigns[0].id,
    )

    sandbox.set_faults(create_faults=["422"])
    assert cli(environment, "resolve", "resend-refused", "--resend").returncode == 0
    deadline = time.monotonic() + 30
    while "outcome:         not_created" not in cli(environment, "status", "resend-refused").stdout:
        assert time.monotonic() < deadline, "the resent request was never settled"
        time.sleep(0.2)
    time.sleep(1)
    assert results_reader.poll() == [], "the CRM holds resend-refused:campaign.failed already"
    refused_again = cli(environment, "resolve", "resend-refused", "--resend")
    assert refused_again.returncode == 1
    assert "is failed (outcome not_created)" in refused_again.stderr

    store = open_store(sqlite_url)
    ended = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    with store.transaction() as conn:
        conn.execute(
            sa.update(campaigns_table)
            .where(campaigns_table.c.request_id == "resend-late")
            .values(window_end=ended)
        )
    store.engine.dispose()
    late = cli(environment, "resolve", "resend-late", "--resend")
    assert late.returncode == 1
    assert "calling window ended" in late.stderr
    assert len(sandbox.campaigns) == 1
