"""The store on both backends: duplicates change nothing, claims never hand a row out twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from adapters.store import (
    Event,
    NewCampaign,
    NewRequest,
    PlatformView,
    SettleConflict,
    State,
    Store,
    StoreMissing,
    open_store,
    utcnow,
)
from adapters.store.tables import SCHEMA_VERSION, schema_meta
from tests.builders import call_request
from tests.v2_store import V2_OUTBOX, V2_WORKERS, make_v2_store, v2_row


@pytest.fixture
def store(store_url: str) -> Store:
    store = open_store(store_url, pool_size=8)
    store.create_schema()
    yield store
    store.engine.dispose()


def new_request(request_id: str, *, campaigns: int = 1) -> NewRequest:
    start = utcnow() + dt.timedelta(hours=1)
    return NewRequest(
        request_id=request_id,
        project_id=1,
        scenario_id=951,
        start_block_id=10,
        correlation_id=None,
        reply_to=None,
        purpose="scenario:951",
        timezone="Asia/Yekaterinburg",
        phones_rejected=[{"phone": "12", "reason": "x"}],
        report_columns=None,
        report_delay_minutes=15,
        campaigns=[
            NewCampaign(
                group_no=group,
                create_body=b'{"campaign": {}}',
                contacts=[(f"+7912345678{group}", f"lead-{group}")],
                window_start=start,
                window_end=start + dt.timedelta(hours=1),
                platform_date="2026-12-01",
                platform_start="09:00",
                platform_end="10:00",
            )
            for group in range(1, campaigns + 1)
        ],
    )


def event(event_id: str) -> Event:
    return Event(event_id, "campaign.created", "results", b"{}", {"type": "campaign.created"})


def test_a_duplicate_request_id_changes_nothing(store: Store) -> None:
    with store.transaction() as conn:
        assert store.add_request(conn, new_request("r-1"))
    changed = new_request("r-1", campaigns=3)
    with store.transaction() as conn:
        assert not store.add_request(conn, dataclasses.replace(changed, project_id=99))
    assert store.get_request("r-1").project_id == 1
    assert len(store.campaigns_of("r-1")) == 1


def test_a_claim_commits_sending_and_returns_the_body_and_what_the_request_gives(
    store: Store,
) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    row, body = store.claim_create(owner=7, now=utcnow())
    assert (row.request_id, row.group_no, row.state, row.owner, row.attempts) == (
        "r-1",
        1,
        "sending",
        7,
        1,
    )
    assert body == b'{"campaign": {}}'
    assert (row.phones_accepted, row.project_id, row.campaign_count) == (1, 1, 1)
    assert store.campaigns_of("r-1")[0].state == "sending"
    assert store.get_request("r-1").state == "pending"
    assert store.claim_create(owner=8, now=utcnow()) is None


def test_a_claim_reads_its_own_requests_fields_among_others(store: Store) -> None:
    with store.transaction() as conn:
        store.add_rejected_request(conn, request_id="r-0", correlation_id="c-0", reply_to=None)
        store.add_request(conn, dataclasses.replace(new_request("r-1"), project_id=1))
        store.add_request(conn, dataclasses.replace(new_request("r-2"), project_id=2))
    claimed = [store.claim_create(owner=7, now=utcnow())[0] for _ in range(2)]
    assert sorted((row.request_id, row.project_id) for row in claimed) == [("r-1", 1), ("r-2", 2)]
    assert {row.report_delay_minutes for row in claimed} == {15}


def test_each_campaign_of_a_request_is_claimed_on_its_own(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-3", campaigns=3))
    claimed = [store.claim_create(owner=7, now=utcnow())[0] for _ in range(3)]
    assert sorted(row.group_no for row in claimed) == [1, 2, 3]
    assert {row.campaign_count for row in claimed} == {3}
    assert store.claim_create(owner=7, now=utcnow()) is None
    assert store.contacts_of([claimed[0].id]) == {
        claimed[0].id: [(f"+7912345678{claimed[0].group_no}", f"lead-{claimed[0].group_no}")]
    }


def test_a_request_not_yet_due_is_not_claimed(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    assert store.claim_create(owner=7, now=utcnow() - dt.timedelta(minutes=1)) is None


def test_settling_a_row_someone_else_holds_is_refused(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    row, _body = store.claim_create(owner=7, now=utcnow())
    with pytest.raises(SettleConflict), store.transaction() as conn:
        store.settle_campaign(
            conn, row.id, from_states=("sending",), owner=8, changes={"state": "created"}
        )
    assert store.campaigns_of("r-1")[0].state == "sending"


def test_a_requests_outcome_is_set_once(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-1"))
    with store.transaction() as conn:
        rejected = store.settle_request(
            conn, "r-1", from_states=(State.PENDING,), state=State.CREATED, outcome="created"
        )
        again = store.settle_request(
            conn, "r-1", from_states=(State.PENDING,), state=State.FAILED, outcome="unknown"
        )
    assert (rejected, again) == ([{"phone": "12", "reason": "x"}], None)
    assert (store.get_request("r-1").state, store.get_request("r-1").outcome) == (
        "created",
        "created",
    )


def test_health_reads_held_work_and_unknown_outcomes_off_the_campaigns(store: Store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("r-2", campaigns=2))
    first, _ = store.claim_create(owner=7, now=utcnow())
    second, _ = store.claim_create(owner=7, now=utcnow())
    with store.transaction() as conn:
        store.settle_campaign(
            conn,
            first.id,
            from_states=(State.SENDING,),
            owner=7,
            changes={"state": State.FAILED, "outcome": "unknown", "owner": None},
        )
    later = utcnow() + dt.timedelta(minutes=1)
    assert [
        (row["request_id"], row["group_no"], row["campaign_count"], row["state"], row["owner"])
        for row in store.held_since(later)
    ] == [("r-2", second.group_no, 2, "sending", 7)]
    assert store.held_since(utcnow() - dt.timedelta(minutes=1)) == []
    count, oldest = store.unknown_outcomes()
    assert (count, oldest <= utcnow()) == (1, True)
    assert store.get_request("r-2").state == "pending", "the request waits for its other one"


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
        for n in range(100):
            store.add_request(conn, new_request(f"r-{n}", campaigns=2))
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def claim_all(owner: int) -> None:
        while (got := store.claim_create(owner, utcnow())) is not None:
            with lock:
                claimed.append((got[0].request_id, got[0].group_no))

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted((f"r-{n}", group) for n in range(100) for group in (1, 2))
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


def test_a_version_1_store_is_migrated_with_its_phone_counts(store_url: str) -> None:
    make_v2_store(store_url, [v2_row("r-old", "received", call_request("r-old"))], version=1)
    store = open_store(store_url)
    store.create_schema()
    (campaign,) = store.campaigns_of("r-old")
    assert campaign.phones_accepted == 2
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema_meta.c.value)).scalar() == str(SCHEMA_VERSION)
    store.engine.dispose()


def test_a_version_2_store_becomes_one_campaign_per_request_as_it_stood(store_url: str) -> None:
    body = call_request("v2")
    due = dt.datetime(2026, 1, 1, 12, 0)
    make_v2_store(
        store_url,
        [
            v2_row("v2-received", "received", body),
            v2_row("v2-sending", "sending", body, owner=99, attempts=1),
            v2_row("v2-reported", "reported", body, campaign_id=7, report_due_at=due),
            v2_row("v2-unknown", "failed", body, outcome="unknown", attempts=1),
            {**v2_row("v2-rejected", "rejected", body, outcome="rejected"), "create_body": None},
        ],
    )
    store = open_store(store_url)
    store.create_schema()
    seen = {
        request_id: (
            store.get_request(request_id).state,
            [(c.group_no, c.state, c.outcome, c.owner) for c in store.campaigns_of(request_id)],
        )
        for request_id in ("v2-received", "v2-sending", "v2-reported", "v2-unknown", "v2-rejected")
    }
    assert seen == {
        "v2-received": ("pending", [(1, "received", None, None)]),
        "v2-sending": ("pending", [(1, "sending", None, 99)]),
        "v2-reported": ("created", [(1, "reported", None, None)]),
        "v2-unknown": ("failed", [(1, "failed", "unknown", None)]),
        "v2-rejected": ("rejected", []),
    }
    (reported,) = store.campaigns_of("v2-reported")
    assert (reported.campaign_id, reported.report_due_at) == (7, due.replace(tzinfo=dt.UTC))
    assert store.get_request("v2-received").purpose == "scenario:951"
    assert store.claim_create(owner=1, now=utcnow())[0].request_id == "v2-received"
    assert store.unknown_outcomes()[0] == 1
    store.engine.dispose()


def test_a_version_2_outbox_is_migrated_and_its_events_stay_pending(store_url: str) -> None:
    make_v2_store(store_url, [])
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            V2_OUTBOX.insert().values(
                event_id="e-old",
                event_type="campaign.created",
                queue="results",
                body=b"{}",
                properties="{}",
                created_at=dt.datetime(2026, 1, 1),
            )
        )
    engine.dispose()
    store = open_store(store_url)
    store.create_schema()
    with store.pending_events(10) as (batch, _):
        assert [(p.event.event_id, p.refusals) for p in batch] == [("e-old", 0)]
    store.engine.dispose()


def test_a_version_2_store_is_migrated_so_that_workers_show_the_platform(store_url: str) -> None:
    make_v2_store(store_url, [])
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        started = dt.datetime(2026, 12, 1, 8, 0)
        worker = conn.execute(
            V2_WORKERS.insert()
            .values(hostname="h", pid=1, started_at=started, heartbeat_at=started)
            .returning(V2_WORKERS.c.worker_key)
        ).scalar_one()
    engine.dispose()
    store = open_store(store_url)
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
    store.engine.dispose()


def test_a_command_never_makes_a_sqlite_store_it_was_to_read(tmp_path) -> None:
    path = tmp_path / "elsewhere" / "callbridge.db"
    with pytest.raises(StoreMissing, match=f"DATABASE_URL: no store at {path}"):
        open_store(f"sqlite:///{path}", must_exist=True)
    assert not path.parent.exists()
