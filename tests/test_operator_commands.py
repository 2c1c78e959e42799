"""The operator's commands, run as an operator runs them: ``callbridge health``, ``callbridge
dead-letters`` and ``callbridge resolve`` as processes, beside a real worker on RabbitMQ, or on
the embedded broker with no worker at all."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading

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
from tests.plugins.services import callbridge, wait_until_at_rest
from tests.waiting import eventually
from worker.cli import main
from worker.commands.dead_letters import list_dead_letters, replay_dead_letters


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return callbridge(*args, env=env, timeout=90)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def depth(url: str, queue: str) -> int:
    with Connection(url) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def wait_for_depth(url: str, queue: str, count: int) -> None:
    eventually(
        lambda: depth(url, queue) == count, interval=0.1, what=f"{count} messages on {queue}"
    )


def eventually_exits(env: dict[str, str], code: int, *args: str) -> subprocess.CompletedProcess:
    """``callbridge ARGS``, run again until it exits with ``code``: what it shows then."""
    return eventually(
        lambda: (result := cli(env, *args)).returncode == code and result,
        interval=0.2,
        what=f"callbridge {' '.join(args)} to exit {code}",
    )


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
        "ok: worker 7 (host h, pid 9) beat 3.0 s ago; outbox empty; no creation due; "
        "no report due; no platform call yet; no unknown outcome; "
        "no campaign held too long by a step",
    )
    waiting = {"outbox_backlog": 3, "outbox_oldest_age_seconds": 200.0}
    due = {"created": (2, ago(700)), "received": (1, ago(5)), "retry": (4, ago(9))}
    late = assess(workers, waiting, due, limits=Limits(), now=now)
    assert late.exit_code == 1
    assert late.line == (
        "unhealthy: 3 event(s) unpublished, the oldest for 200 s (limit 120 s): none published "
        "ever: the broker is unreachable or refuses it, or the relay is stuck; 2 campaign(s) due "
        "for report, the longest waiting 700 s (limit 600 s)"
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


def test_health_fails_when_a_live_workers_step_holds_a_campaign_past_its_limit() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    stale = now - dt.timedelta(minutes=5)
    workers = [
        {"worker_key": 7, "hostname": "h", "pid": 9, "heartbeat_at": now},
        {"worker_key": 8, "hostname": "h", "pid": 10, "heartbeat_at": stale},
    ]
    quiet = {"outbox_backlog": 0, "outbox_oldest_age_seconds": None}

    def held(owner: int, seconds: float) -> dict:
        moment = now - dt.timedelta(seconds=seconds)
        return {
            "request_id": f"r{owner}",
            "group_no": 2,
            "campaign_count": 3,
            "state": "sending",
            "owner": owner,
            "updated_at": moment,
        }

    limits = Limits(step=120)
    stuck = assess(workers, quiet, {}, limits=limits, now=now, held=[held(7, 130)])
    assert stuck == Health(
        False,
        "unhealthy: 1 campaign(s) held by a live worker's step for over 120 s: r7 campaign 2 "
        "sending for 130 s by worker 7 (its step is stuck)",
    )
    dead_owners = assess(workers, quiet, {}, limits=limits, now=now, held=[held(8, 500)])
    assert dead_owners.ok, "a dead worker's rows are settled by the live ones, not a stall"


def test_health_tells_a_stalled_relay_from_refused_events_and_sees_a_message_come_back() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    workers = [{"worker_key": 7, "hostname": "h", "pid": 9, "heartbeat_at": now}]
    waiting = {"outbox_backlog": 2, "outbox_oldest_age_seconds": 200.0, "outbox_refused": 1}
    stalled = {**waiting, "outbox_last_published_age_seconds": 150.0}
    assert assess(workers, stalled, {}, limits=Limits(), now=now).line.startswith(
        "unhealthy: 2 event(s) unpublished, the oldest for 200 s (limit 120 s): none published "
        "for 150 s: the broker is unreachable or refuses it, or the relay is stuck"
    )
    refused = {**waiting, "outbox_last_published_age_seconds": 2.0, "outbox_set_aside": 3}
    assert assess(workers, refused, {}, limits=Limits(), now=now).line.startswith(
        "unhealthy: 2 event(s) unpublished, the oldest for 200 s (limit 120 s): the broker "
        "refuses it (1 event(s) refused, tried again later)"
    )
    quiet = {"outbox_backlog": 0, "outbox_oldest_age_seconds": None, "outbox_set_aside": 3}
    looping = {"message_key": "m-1", "deliveries": 3, "last_at": now - dt.timedelta(seconds=4)}
    ok = assess(workers, quiet, {}, limits=Limits(), now=now, looping=looping)
    assert ok.line == (
        "unhealthy: message m-1 keeps coming back: delivered 3 times, the latest 4 s ago "
        "(limit 3); intake fails on it"
    )
    once_more = assess(workers, quiet, {}, limits=Limits(deliveries=4), now=now, looping=looping)
    assert once_more.ok
    assert "; 3 event(s) set aside, refused for good (callbridge status shows why);" in (
        once_more.line
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
    dead = eventually_exits(environment, 1, "health", "--max-heartbeat-age", "1")
    assert one_line(dead).startswith("unhealthy: newest heartbeat on this database is ")
    assert f"pid {worker.pid}" in dead.stdout


def test_health_fails_while_requests_wait_behind_a_refused_token(
    env, make_sandbox, start_worker, rabbitmq_url, queues
):
    environment = env(make_sandbox(token="not-the-workers-token"))
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("health-paused"))
    worker.wait_for_log('"paused"')
    late = eventually_exits(environment, 1, "health", "--max-due-age", "1")
    assert cli(environment, "health").returncode == 0, "600 s is the default limit"
    assert "unhealthy: 1 campaign(s) due for creation, the longest waiting" in one_line(late)


def test_health_fails_while_the_outbox_cannot_be_published(
    env, start_worker, rabbitmq_url, queues, full_reply_queue
):
    environment = env()
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("health-full"), reply_to=full_reply_queue)
    worker.wait_for_log('"created"')
    stuck = eventually_exits(environment, 1, "health", "--max-outbox-age", "1")
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
    header, *shown, footer = first.stdout.splitlines()
    assert header == f"{queues.dead}: 3 message(s)"
    assert footer == "handed back 3 message(s) unchanged"
    lines = [line for line in shown if not line.startswith("    ")]
    assert [line.split()[0] for line in lines] == ["#1", "#2", "#3"]
    assert f"id=big-1 request_id=- size={len(bodies[0])} " in lines[0]
    assert "over the limit of 4096" in lines[0]
    assert "id=sha256:" in lines[1] and "request_id=dl-invalid" in lines[1]
    assert "breaks the contract" in lines[1]
    # under its line, each error with its message
    assert shown[shown.index(lines[1]) + 1] == (
        "    campaign.schedule.attempts: Must be greater than or equal to 1 and less than or "
        "equal to 5."
    )
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
    assert (
        "intake would refuse it again: campaign.schedule.attempts: "
        "Must be greater than or equal to 1"
    ) in lines[1]
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
        Relay(store, connection, ready=threading.Event(), settings=settings).drain()

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
    for request_id in ("twin-a", "twin-b"):
        body = call_request(request_id, name=f"CRM {request_id}")
        publish(rabbitmq_url, queues.requests, body, correlation_id=f"c-{request_id}")
    results_reader.wait_for(lambda events: len(events) == 2)
    assert worker.terminate() == 0
    # The platform made both; the answer to whichever POST came first never came back.
    (failed,) = [e for e in results_reader.bodies() if e["type"] == "campaign.failed"]
    (made_event,) = [e for e in results_reader.bodies() if e["type"] == "campaign.created"]
    assert failed["outcome"] == "unknown"
    unknown, known = failed["request_id"], made_event["request_id"]
    campaign_of = {c.body["campaign"]["name"].removeprefix("CRM "): c for c in sandbox.campaigns}
    lost, made = campaign_of[unknown], campaign_of[known]
    assert made_event["campaign_id"] == made.id

    taken = cli(environment, "resolve", unknown, "--campaign-id", str(made.id))
    assert taken.returncode == 1
    assert f"campaign {made.id} belongs to request {known} already" in taken.stderr

    resolved = cli(environment, "resolve", unknown, "--campaign-id", str(lost.id))
    assert resolved.returncode == 0, resolved.stderr
    assert f"request {unknown}: resolved as created, campaign {lost.id}" in resolved.stdout
    assert f"published {unknown}:campaign.created" in resolved.stdout
    events = results_reader.wait_for(lambda events: len(events) == 3)
    created = events[-1]
    assert created["type"] == "campaign.created"
    assert created["event_id"] == f"{unknown}:campaign.created"
    assert (created["campaign_id"], created["phones_accepted"]) == (lost.id, 2)
    assert results_reader.seen[-1][1]["correlation_id"] == f"c-{unknown}"

    status = cli(environment, "status", unknown).stdout
    assert "state:           created" in status and "report due:" in status
    again = cli(environment, "resolve", unknown, "--resend")
    assert again.returncode == 1
    assert f"request {unknown} is created (outcome created): only a failed campaign" in again.stderr
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
    wait_until_at_rest(sqlite_url)  # the worker took it again, and settled it
    assert "outcome:         not_created" in cli(environment, "status", "resend-refused").stdout
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
