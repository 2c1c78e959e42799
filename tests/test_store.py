"""The store on both backends: duplicates change nothing, claims never hand a row out twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from adapters.store import (
    Event,
    NewRequest,
    PlatformView,
    SettleConflict,
    Store,
    StoreMissing,
    open_store,
    utcnow,
)
from adapters.store.tables import PLATFORM_VIEW_COLUMNS, SCHEMA_VERSION, schema_meta


@pytest.fixture
def store(store_url: str) -> Store:
    store = open_store(store_url, pool_size=8)
    store.create_schema()
    yield store
    store.engine.dispose()


def new_request(request_id: str) -> NewRequest:
    start = utcnow() + dt.timedelta(hours=1)
    return NewRequest(
        request_id=request_id,
        project_id=1,
        scenario_id=951,
        start_block_id=10,
        correlation_id=None,
        reply_to=None,
        create_body=b'{"campaign": {}}',
        contacts=[("+79123456789", "lead-1")],
        phones_rejected=[{"phone": "12", "reason": "x"}],
        report_columns=None,
        window_start=start,
        window_end=start + dt.timedelta(hours=1),
        report_delay_minutes=15,
    )


def event(event_id: str) -> Event:
    return Event(event_id, "campaign.created", "results", b"{}", {"type": "campaign.created"})


def test_a_duplicate_request_id_changes_nothing(store: Store) -> None:
    with store.transaction() as conn:
        assert store.add_request(conn, new_request("r-1"))
    changed = new_request("r-1")
    with store.transaction() as conn:
        assert not store.add_request(conn, dataclasses.replace(changed, project_id=99))
    assert store.get_request("r-1").project_id == 1


def test_a_claim_commits_sending_and_returns_the_body(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    row, body, phones_rejected = store.claim_create(owner=7, now=utcnow())
    assert (row.request_id, row.state, row.owner, row.attempts) == ("r-1", "sending", 7, 1)
    assert body == b'{"campaign": {}}'
    assert (row.phones_accepted, phones_rejected) == (1, [{"phone": "12", "reason": "x"}])
    assert store.get_request("r-1").state == "sending"
    assert store.claim_create(owner=8, now=utcnow()) is None


def test_a_request_not_yet_due_is_not_claimed(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    assert store.claim_create(owner=7, now=utcnow() - dt.timedelta(minutes=1)) is None


def test_settling_a_row_someone_else_holds_is_refused(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    store.claim_create(owner=7, now=utcnow())
    with pytest.raises(SettleConflict), store.transaction() as conn:
        store.settle(conn, "r-1", from_states=("sending",), owner=8, changes={"state": "created"})
    assert store.get_request("r-1").state == "sending"


def test_an_event_id_is_queued_once(store: Store) -> None:
    with store.transaction() as conn:
        assert store.add_event(conn, event("e-1"))
        assert not store.add_event(conn, event("e-1"))
    with store.pending_events(10) as (batch, settlement):
        assert [pending.event.event_id for pending in batch] == ["e-1"]
        settlement.published.append(batch[0].id)
    with store.pending_events(10) as (batch, _):
        assert batch == []


def test_an_event_not_marked_published_stays_pending(store: Store) -> None:
    with store.transaction() as conn:
        store.add_event(conn, event("e-1"))
    with pytest.raises(RuntimeError), store.pending_events(10) as (batch, _settlement):
        raise RuntimeError("the broker went away before the confirm")
    with store.pending_events(10) as (batch, _):
        assert [pending.event.event_id for pending in batch] == ["e-1"]


def test_concurrent_claims_never_hand_out_a_row_twice(postgres_url: str) -> None:
    store = open_store(postgres_url, pool_size=8)
    store.create_schema()
    with store.transaction() as conn:
        for n in range(200):
            store.add_request(conn, new_request(f"r-{n}"))
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(owner: int) -> None:
        while (got := store.claim_create(owner, utcnow())) is not None:
            with lock:
                claimed.append(got[0].request_id)

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(f"r-{n}" for n in range(200))
    store.engine.dispose()


def test_a_refused_event_waits_and_a_set_aside_one_is_never_read_again(store: Store) -> None:
    with store.transaction() as conn:
        for n in range(4):
            store.add_event(conn, dataclasses.replace(event(f"e-{n}"), request_id="r-1"))
    with store.pending_events(10) as (batch, settlement):
        refused, aside, readdressed, published = batch
        settlement.refused[refused.id] = utcnow() + dt.timedelta(seconds=60)
        settlement.set_aside[aside.id] = "no queue named 'x' took it"
        settlement.readdressed[readdressed.id] = ("results-2", {"headers": {"h": "\x00\udc00"}})
        settlement.published.append(published.id)
    with store.pending_events(10) as (batch, _):
        assert [(p.event.event_id, p.event.queue) for p in batch] == [("e-2", "results-2")]
        assert batch[0].event.properties == {"headers": {"h": "\x00\udc00"}}
    stats = store.stats()
    assert (stats["outbox_backlog"], stats["outbox_refused"], stats["outbox_set_aside"]) == (
        2,
        1,
        1,
    )
    assert stats["outbox_last_published_age_seconds"] < 60
    shown = {e["event_id"]: (e["refusals"], e["set_aside_reason"]) for e in store.events_of("r-1")}
    assert shown["e-0"] == (1, None)
    assert shown["e-1"] == (0, "no queue named 'x' took it")


def test_deliveries_are_counted_from_the_second_and_forgotten_once_settled(store: Store) -> None:
    now = utcnow()
    assert store.count_deliveries({"f1": "m-1", "f2": "sha256:ab"}, now) == {"f1": 2, "f2": 2}
    assert store.count_deliveries({"f1": "m-1"}, now) == {"f1": 3}
    assert store.most_delivered(now - dt.timedelta(minutes=1))["deliveries"] == 3
    with store.transaction() as conn:
        store.forget_deliveries(conn, ["f1"])
    assert store.most_delivered(now - dt.timedelta(minutes=1))["message_key"] == "sha256:ab"
    assert store.most_delivered(now + dt.timedelta(minutes=1)) is None


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.transaction() as conn:
        conn.execute(sa.update(schema_meta).values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(RuntimeError, match="newer"):
        store.create_schema()


def as_version_2(conn: sa.Connection) -> None:
    """Take away what schema versions 3 and 4 added: the workers' view of the platform, and the
    outbox's refusals."""
    for column in PLATFORM_VIEW_COLUMNS:
        conn.execute(sa.text(f"ALTER TABLE callbridge_workers DROP COLUMN {column.name}"))
    for index in ("ix_callbridge_outbox_waiting", "ix_callbridge_outbox_set_aside"):
        conn.execute(sa.text(f"DROP INDEX {index}"))
    for column in ("refusals", "retry_at", "set_aside_at", "set_aside_reason"):
        conn.execute(sa.text(f"ALTER TABLE callbridge_outbox DROP COLUMN {column}"))
    conn.execute(sa.update(schema_meta).values(value="2"))


def test_a_version_2_outbox_is_migrated_and_its_events_stay_pending(store: Store) -> None:
    with store.transaction() as conn:
        store.add_event(conn, event("e-old"))
        as_version_2(conn)
    store.create_schema()
    with store.pending_events(10) as (batch, _):
        assert [(p.event.event_id, p.refusals) for p in batch] == [("e-old", 0)]


def test_a_version_1_store_is_migrated_with_its_phone_counts(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-old"))
        as_version_2(conn)
        conn.execute(sa.text("ALTER TABLE callbridge_requests DROP COLUMN phones_accepted"))
        conn.execute(sa.update(schema_meta).values(value="1"))
    store.create_schema()
    assert store.get_request("r-old").phones_accepted == 1
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema_meta.c.value)).scalar() == str(SCHEMA_VERSION)


def test_a_version_2_store_is_migrated_so_that_workers_show_the_platform(store: Store) -> None:
    worker = store.register_worker(hostname="h", pid=1)
    with store.transaction() as conn:
        as_version_2(conn)
    store.create_schema()
    failing = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    store.heartbeat(
        worker,
        PlatformView(platform_failing_since=failing, platform_error="no answer", pause_status=401),
    )
    (row,) = store.workers()
    assert (row["platform_failing_since"], row["platform_error"], row["pause_status"]) == (
        failing,
        "no answer",
        401,
    )
    assert row["platform_ok_at"] is None


def test_a_command_never_makes_a_sqlite_store_it_was_to_read(tmp_path) -> None:
    path = tmp_path / "elsewhere" / "callbridge.db"
    with pytest.raises(StoreMissing, match=f"DATABASE_URL: no store at {path}"):
        open_store(f"sqlite:///{path}", must_exist=True)
    assert not path.parent.exists()
