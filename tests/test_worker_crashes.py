"""Nothing lost, nothing done twice: bursts through killed workers, shared databases, lost
broker connections and refused tokens — on the real RabbitMQ, PostgreSQL and sandbox."""

from __future__ import annotations

import collections
import dataclasses
import subprocess

import pytest
from kombu import Connection

from adapters.topology import contract_queue
from tests.builders import call_request, publish, publish_many
from tests.plugins.services import QueueReader, callbridge, wait_until_at_rest
from tests.waiting import eventually

pytestmark = [pytest.mark.slow]

TERMINAL = {"campaign.created", "campaign.rejected", "campaign.failed"}


def campaigns_by_request(sandbox) -> collections.Counter:
    """How many campaigns the platform holds per request (the name is ``Burst <request_id>``)."""
    return collections.Counter(
        c.body["campaign"]["name"].removeprefix("Burst ") for c in sandbox.campaigns
    )


def burst(prefix: str, count: int) -> list[dict]:
    return [
        call_request(f"{prefix}-{n:04d}", phones=3, name=f"Burst {prefix}-{n:04d}")
        for n in range(count)
    ]


def assert_every_request_settled_once(events: list[dict], request_ids: list[str], sandbox):
    """Each request has exactly one outcome; no request has two campaigns; every created
    names a campaign the platform has; an unknown outcome had at most one campaign."""
    outcomes = collections.defaultdict(set)
    for event in events:
        if event["type"] in TERMINAL:
            outcomes[event["request_id"]].add(
                (event["type"], event.get("campaign_id"), event.get("outcome"))
            )
    assert sorted(outcomes) == sorted(request_ids), "a request has no outcome"
    several = {rid: found for rid, found in outcomes.items() if len(found) != 1}
    assert not several, f"requests with more than one outcome: {several}"
    per_request = campaigns_by_request(sandbox)
    assert max(per_request.values(), default=0) <= 1, "a request was created twice"
    ids = {c.id for c in sandbox.campaigns}
    for rid, ((event_type, campaign_id, outcome),) in outcomes.items():
        if event_type == "campaign.created":
            assert campaign_id in ids, f"{rid} names a campaign the platform does not have"
            assert per_request[rid] == 1
        else:
            assert (event_type, outcome) == ("campaign.failed", "unknown"), rid


def terminal_count(events: list[dict]) -> int:
    return len({e["request_id"] for e in events if e["type"] in TERMINAL})


def test_sigkill_twice_during_a_burst_loses_nothing_and_creates_nothing_twice(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, postgres_url
):
    sandbox = make_sandbox(latency=0.05)
    env = worker_env(sandbox.url, postgres_url, HTTP_CONCURRENCY="4")
    requests = burst("kill", 120)
    publish_many(rabbitmq_url, queues.requests, requests)

    for settled_before_kill in (20, 50):
        worker = start_worker(env)
        results_reader.wait_for(
            lambda events, n=settled_before_kill: terminal_count(events) >= n, timeout=60
        )
        worker.kill()

    start_worker(env)
    ids = [r["request_id"] for r in requests]
    results_reader.wait_for(lambda events: terminal_count(events) >= len(ids), timeout=120)
    wait_until_at_rest(postgres_url)
    results_reader.poll()
    assert_every_request_settled_once(results_reader.bodies(), ids, sandbox)


def test_two_workers_on_one_postgres_share_a_burst_without_a_duplicate(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, postgres_url
):
    sandbox = make_sandbox(latency=0.05)
    env = worker_env(sandbox.url, postgres_url, HTTP_CONCURRENCY="4", PREFETCH_COUNT="10")
    first, second = start_worker(env), start_worker(env)
    requests = burst("pair", 150)
    publish_many(rabbitmq_url, queues.requests, requests)
    ids = [r["request_id"] for r in requests]
    results_reader.wait_for(lambda events: terminal_count(events) >= len(ids), timeout=120)
    wait_until_at_rest(postgres_url)
    results_reader.poll()
    events = results_reader.bodies()
    assert_every_request_settled_once(events, ids, sandbox)
    assert {e["type"] for e in events} == {"campaign.created"}
    for worker in (first, second):
        assert worker.log_text().count('"created"') > 0, "one worker did all the work"


def worker_connections(pid: int) -> list[str]:
    """RabbitMQ's ids of the connections a process has open (matched by client port)."""
    sockets = subprocess.run(
        ["ss", "-tnpH", "dport", "=", ":5672"], capture_output=True, text=True, check=True
    ).stdout
    ports = {
        line.split()[3].rsplit(":", 1)[1] for line in sockets.splitlines() if f"pid={pid}," in line
    }
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = []
    for line in listing.splitlines():
        name, _, port = line.rpartition("\t")
        if port.strip() in ports:
            names.append(name)
    return names


def test_the_broker_closing_the_workers_connection_mid_burst_loses_nothing(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    sandbox = make_sandbox(latency=0.02)
    worker = start_worker(worker_env(sandbox.url, sqlite_url))
    requests = burst("close", 100)
    publish_many(rabbitmq_url, queues.requests, requests)
    results_reader.wait_for(lambda events: terminal_count(events) >= 10, timeout=60)
    names = worker_connections(worker.pid)
    assert names, "found none of the worker's connections"
    for name in names:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", name, "test closes it"],
            check=True,
            capture_output=True,
        )
    ids = [r["request_id"] for r in requests]
    results_reader.wait_for(lambda events: terminal_count(events) >= len(ids), timeout=120)
    wait_until_at_rest(sqlite_url)
    results_reader.poll()
    assert_every_request_settled_once(results_reader.bodies(), ids, sandbox)
    assert {e["type"] for e in results_reader.bodies()} == {"campaign.created"}
    eventually(
        lambda: worker.log_text().count("consuming from") >= 2,
        what="the consumer to reconnect (after its backoff)",
    )


def test_a_wrong_token_pauses_creation_and_the_right_one_resumes_it(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    sandbox_token,
):
    sandbox = make_sandbox(token="the-platform-expects-this")
    worker = start_worker(worker_env(sandbox.url, sqlite_url))
    publish(rabbitmq_url, queues.requests, call_request("token-1"))
    publish(rabbitmq_url, queues.requests, call_request("token-2"))
    worker.wait_for_log('"paused"')
    eventually(
        lambda: len([r for r in sandbox.requests if r.status == 401]) >= 2,
        timeout=20,
        what="the paused worker to try again (a second 401)",
    )
    assert results_reader.poll() == [], "no request may be settled for a wrong token"
    assert sandbox.campaigns == []
    assert worker.log_text().count('"paused"') == 1, "one report per pause, not per retry"

    sandbox.set_token(sandbox_token)  # the platform takes the worker's token again
    events = results_reader.wait_for(lambda events: len(events) >= 2, timeout=60)
    assert sorted(e["type"] for e in events) == ["campaign.created"] * 2
    assert '"resumed"' in worker.log_text()


def test_a_worker_killed_while_sending_leaves_an_unknown_outcome_never_resent(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, store_url
):
    """SQLite: the next worker finds the row at start. PostgreSQL: a live peer finds it as soon
    as the dead worker's advisory lock is gone."""
    # The sandbox sits on the POST far longer than the test needs, and the worker would wait
    # for it as long: the kill, not an answer or a timeout, is what ends the call.
    sandbox = make_sandbox(create_faults=["slow:120"])
    env = worker_env(sandbox.url, store_url, HTTP_TIMEOUT_SECONDS="120")
    doomed = start_worker(env)
    publish(rabbitmq_url, queues.requests, call_request("killed-mid-post"))
    eventually(
        lambda: [r for r in sandbox.requests if r.path == "/api/campaigns"],
        what="the POST to reach the sandbox",
    )
    if store_url.startswith("postgresql"):
        survivor = start_worker(env)  # alive before the kill: it must notice the death itself
        assert "orphaned" not in survivor.log_text()
        doomed.kill()
    else:
        doomed.kill()
        survivor = start_worker(env)  # one process per SQLite file: the next one finds the row
    (failed,) = results_reader.wait_for(lambda events: events, timeout=30)
    assert (failed["type"], failed["outcome"]) == ("campaign.failed", "unknown")
    assert "callbridge resolve" in failed["error"]["message"]
    wait_until_at_rest(store_url)
    posts = [r for r in sandbox.requests if r.path == "/api/campaigns"]
    assert len(posts) == 1, "a request whose outcome is unknown must never be sent again"
    assert results_reader.poll() == []
    assert "orphaned while sending" in survivor.log_text()


def test_a_message_the_store_refuses_is_dead_lettered_and_its_batch_goes_through(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, postgres_url
):
    """Intake commits the messages that arrive together as one batch; when the batch fails
    for a reason of one message (here the database refuses its row), each message is taken
    alone: the others are stored and acked, the refused one is dead-lettered with the reason
    (never requeued for ever), and goes back with ``dead-letters --replay`` once the cause is
    gone."""
    import sqlalchemy as sa

    sandbox = make_sandbox()
    env = worker_env(sandbox.url, postgres_url)
    worker = start_worker(env)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "ALTER TABLE callbridge_requests ADD CONSTRAINT refuse_poison "
                "CHECK (request_id <> 'poison')"
            )
        )
    requests = burst("batch", 30)
    requests.insert(15, call_request("poison", name="Burst poison"))
    publish_many(rabbitmq_url, queues.requests, requests)

    good = [r["request_id"] for r in requests if r["request_id"] != "poison"]
    results_reader.wait_for(lambda events: len(events) >= len(good) + 1, timeout=60)
    assert "storing them one by one" in worker.log_text()
    assert "poison" not in campaigns_by_request(sandbox)
    listed = callbridge("dead-letters", env=env).stdout
    assert "reason='the store refused it (CheckViolation: new row" in listed, listed

    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE callbridge_requests DROP CONSTRAINT refuse_poison"))
    engine.dispose()
    replayed = callbridge("dead-letters", "--replay-all", env=env)
    assert replayed.stdout.splitlines()[-1] == "replayed 1, kept 0", replayed.stdout
    results_reader.wait_for(lambda events: len(events) >= len(good) + 2, timeout=60)
    wait_until_at_rest(postgres_url)
    results_reader.poll()
    events = results_reader.bodies()
    unnamed = [e for e in events if e["request_id"] is None]
    assert [e["type"] for e in unnamed] == ["campaign.rejected"]
    named = [e for e in events if e["request_id"] is not None]
    assert_every_request_settled_once(named, [*good, "poison"], sandbox)


def test_a_broker_restart_mid_burst_loses_nothing_and_creates_nothing_twice(
    private_rabbitmq, make_sandbox, worker_env, start_worker, queues, sqlite_url
):
    """The node is stopped (every connection closed, deliveries not yet acked go back to
    their queue) and started again while requests are in every stage: in the queue, taken in
    but unacked, being created, their events waiting to be published."""
    broker = private_rabbitmq
    sandbox = make_sandbox(latency=0.05)
    env = worker_env(
        sandbox.url, sqlite_url, BROKER_URL=broker.url, HTTP_CONCURRENCY="2", PREFETCH_COUNT="5"
    )
    with Connection(broker.url) as connection:
        for name in dataclasses.astuple(queues):
            contract_queue(name).bind(connection.default_channel).declare()
    results = QueueReader(broker.url, queues.results)
    worker = start_worker(env)
    requests = burst("restart", 150)
    publish_many(broker.url, queues.requests, requests[:100])
    results.wait_for(lambda events: terminal_count(events) >= 20, timeout=60)

    broker.restart()
    publish_many(broker.url, queues.requests, requests[100:])
    ids = [r["request_id"] for r in requests]
    results.wait_for(lambda events: terminal_count(events) >= len(ids), timeout=120)
    wait_until_at_rest(sqlite_url)
    results.poll()
    assert_every_request_settled_once(results.bodies(), ids, sandbox)
    assert {e["type"] for e in results.bodies()} == {"campaign.created"}
    assert worker.process.poll() is None, "the worker must ride out the restart"
    assert worker.log_text().count("consuming from") >= 2, "the consumer never reconnected"
