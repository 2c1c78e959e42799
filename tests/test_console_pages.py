"""Each page of the console through Flask's test client, over a real store and broker: what an
operator sees, and what each action did (rows in the store, messages on the queues)."""

from __future__ import annotations

import json
import threading

import pytest

from adapters import broker
from adapters.broker import Delivery
from adapters.config import load_settings
from adapters.topology import contract_queue
from handlers.accept import accept
from handlers.audit import Actor, record
from handlers.relay import Relay
from tests.builders import call_request, e164, phone
from tests.plugins.console import OPERATOR, VIEWER, post_form
from worker.commands.dead_letters import drop_dead_letter, replay_dead_letters


@pytest.fixture
def embedded(tmp_path):
    """The embedded broker and a SQLite store: dead letters without RabbitMQ."""
    return {
        "BROKER_URL": f"filesystem:///{tmp_path / 'broker'}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'callbridge.db'}",
    }


def dead_letter(environment: dict, store, body: dict | bytes, message_id: str, **changes) -> None:
    """Put a message on the dead-letter queue as a worker would: intake refuses it (with the
    settings ``changes``), the relay publishes the copy."""
    settings = load_settings(environment)
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    delivery = Delivery(
        body=raw,
        content_type="application/json",
        content_encoding="utf-8",
        message_id=message_id,
        routing_key=settings.call_requests_queue,
    )
    assert accept(delivery, settings=settings.replace(**changes), store=store).outcome == "rejected"
    with broker.connect(settings) as connection:
        Relay(store, connection, ready=threading.Event(), settings=settings).drain()


def queued(environment: dict, queue_setting: str) -> list[bytes]:
    """Take every message off a queue; their bodies."""
    settings = load_settings(environment)
    bodies = []
    with broker.connect(settings) as connection:
        queue = contract_queue(getattr(settings, queue_setting))(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            bodies.append(message.body)
    return bodies


def test_the_overview_shows_states_outbox_workers_and_the_health_verdict(
    make_console, embedded
) -> None:
    console = make_console(**embedded)
    dead_letter(embedded, console.store, {"request_id": "r-bad"}, "m-0")
    worker_key = console.store.register_worker(hostname="host-a", pid=4242)
    page = console.client(VIEWER).get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<meta http-equiv="refresh" content="15">' in html
    assert "unhealthy: " not in html or "newest heartbeat" not in html
    assert f"<td>{worker_key}</td><td>host-a</td>" in html
    assert "Not paused" in html
    assert "store SQLite " in html
    rows = {state: html.split(f"<td>{state}</td>")[1].split("</tr>")[0] for state in ("rejected",)}
    assert rows["rejected"].count('<td class="num">1</td>') == 2, "one rejected in 24 h and 7 d"


def test_dead_letters_are_listed_shown_with_phones_masked_and_replayed(
    make_console, embedded
) -> None:
    console = make_console(**embedded)
    dead_letter(
        embedded, console.store, call_request("dl-big", phones=10), "big-1", max_message_bytes=1024
    )
    client = console.client(OPERATOR)
    listing = client.get("/dead-letters/").get_data(as_text=True)
    assert "1 message(s)" in listing
    assert 'href="/dead-letters/message?id=big-1"' in listing
    assert "over the limit of 1024" in listing

    shown = client.get("/dead-letters/message?id=big-1").get_data(as_text=True)
    assert "dl-big" in shown
    assert e164(0)[:5] + "***" + e164(0)[-4:] in shown
    for n in range(10):
        assert phone(n) not in shown and e164(n) not in shown

    done = post_form(client, "/dead-letters/message?id=big-1", "/dead-letters/replay", id="big-1")
    assert done.status_code == 303
    entry = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "replayed #1 id=big-1 to crm.call_requests" in entry
    assert "dead_letters.replay" in entry and ">done<" in entry
    (copy,) = queued(embedded, "call_requests_queue")
    assert json.loads(copy)["request_id"] == "dl-big"
    assert queued(embedded, "dead_letter_queue") == []


def test_a_drop_asks_first_and_removes_only_what_intake_would_never_take(
    make_console, embedded
) -> None:
    console = make_console(**embedded)
    dead_letter(embedded, console.store, b"not json at all", "bad-1")
    dead_letter(
        embedded, console.store, call_request("dl-ok", phones=10), "big-2", max_message_bytes=1024
    )
    client = console.client(OPERATOR)
    ask = client.get("/dead-letters/drop?id=bad-1").get_data(as_text=True)
    assert "Drop it" in ask and 'name="confirm" value="yes"' in ask
    unconfirmed = post_form(client, "/dead-letters/drop?id=bad-1", "/dead-letters/drop", id="bad-1")
    assert unconfirmed.status_code == 400

    kept = post_form(
        client, "/dead-letters/drop?id=big-2", "/dead-letters/drop", id="big-2", confirm="yes"
    )
    assert "intake would take it now" in client.get(kept.headers["Location"]).get_data(True)
    dropped = post_form(
        client, "/dead-letters/drop?id=bad-1", "/dead-letters/drop", id="bad-1", confirm="yes"
    )
    assert "id=bad-1 from crm.call_requests.dead: intake would refuse it again" in client.get(
        dropped.headers["Location"]
    ).get_data(True)
    remaining = queued(embedded, "dead_letter_queue")
    assert [json.loads(body)["request_id"] for body in remaining] == ["dl-ok"]
    actions = [(e.action, e.outcome, e.subject) for e in console.store.audit_before(None, limit=2)]
    assert actions == [
        ("dead_letters.drop", "done", "bad-1"),
        ("dead_letters.drop", "refused", "big-2"),
    ]


def test_the_audit_log_pages_by_key(make_console, embedded) -> None:
    console = make_console(**embedded)
    for n in range(119):
        record(
            console.store, Actor("cli-user", "cli", "cli@h"), f"act-{n}", outcome="done", lines=[]
        )
    client = console.client(VIEWER)  # the 120th entry: its login
    pages = [client.get("/audit/").get_data(as_text=True)]
    while 'href="/audit/?before=' in pages[-1]:
        older = pages[-1].split('href="/audit/?before=')[1].split('"')[0]
        pages.append(client.get(f"/audit/?before={older}").get_data(as_text=True))
    assert [page.count("<tr>") - 1 for page in pages] == [50, 50, 20]
    assert ">login<" in pages[0] and ">act-118<" in pages[0] and ">act-0<" in pages[2]


def test_the_cli_writes_its_replays_and_drops_to_the_audit_log_too(
    make_console, embedded, capsys
) -> None:
    console = make_console(**embedded)
    dead_letter(embedded, console.store, b"[1, 2]", "cli-bad")
    settings = load_settings(embedded)
    assert replay_dead_letters(settings, key="cli-bad", limit=10) == 1
    assert drop_dead_letter(settings, key="cli-bad", limit=10) == 0
    capsys.readouterr()
    dropped, kept = console.store.audit_before(None, limit=2)
    assert (kept.action, kept.outcome, kept.role, kept.subject) == (
        "dead_letters.replay",
        "refused",
        "cli",
        "cli-bad",
    )
    assert kept.address.startswith("cli@")
    assert "intake would refuse it again" in kept.detail
    assert (dropped.action, dropped.outcome) == ("dead_letters.drop", "done")
    page = console.client(VIEWER).get(f"/audit/{dropped.id}").get_data(as_text=True)
    assert "dropped #1 id=cli-bad from crm.call_requests.dead" in page
