"""A request's outcome, given by whoever settles its last campaign: exactly one event, also when
two workers settle its last two campaigns at the same moment (PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
import sqlalchemy as sa

from adapters.config import load_settings
from adapters.store import State, Store, open_store, utcnow
from adapters.store.tables import outbox_table
from handlers.settlement import Settled, settle_request
from tests.test_store import new_request

pytestmark = [pytest.mark.postgres]

SETTINGS = load_settings({})


@pytest.fixture
def store(postgres_url: str) -> Store:
    store = open_store(postgres_url, pool_size=4)
    store.create_schema()
    yield store
    store.engine.dispose()


def outbox(store: Store) -> list[dict]:
    with store.reading() as conn:
        return [json.loads(body) for (body,) in conn.execute(sa.select(outbox_table.c.body))]


def created(n: int) -> tuple[dict, Settled]:
    due = utcnow()
    changes = {"state": State.CREATED, "outcome": "created", "campaign_id": n, "report_due_at": due}
    return changes, Settled("created", campaign_id=n, report_due_at=due)


@pytest.mark.parametrize("attempt", range(3))
def test_two_last_campaigns_settled_at_once_give_exactly_one_outcome(store, attempt) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("pair", campaigns=2))
    claimed = [store.claim_create(owner, utcnow())[0] for owner in (1, 2)]
    both_updated = threading.Barrier(2, timeout=10)
    both_read = threading.Barrier(2)
    outcomes: dict[int, object] = {}
    read_siblings = store.campaigns_of

    def campaigns_of(request_id, conn=None):
        """Read, then wait for the other worker to have read too: without the request's lock
        both would read the other's campaign as still sending, and neither would settle it.
        With the lock the other cannot read before this one commits: the wait times out."""
        found = read_siblings(request_id, conn)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=1)
        return found

    store.campaigns_of = campaigns_of

    def settle(campaign) -> None:
        changes, settled = created(100 + campaign.group_no)
        with store.transaction() as conn:
            store.settle_campaign(
                conn,
                campaign.id,
                from_states=(State.SENDING,),
                owner=campaign.owner,
                changes=changes,
            )
            # Neither update is committed yet: each sees the other campaign still sending.
            both_updated.wait()
            outcomes[campaign.group_no] = settle_request(
                SETTINGS, store, conn, campaign, settled, utcnow()
            )

    threads = [threading.Thread(target=settle, args=(campaign,)) for campaign in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(outcome is not None for outcome in outcomes.values()) == 1
    (event,) = outbox(store)
    assert (event["event_id"], [c["campaign_id"] for c in event["campaigns"]]) == (
        "pair:campaign.created",
        [101, 102],
    )
    assert store.get_request("pair").state == State.CREATED


def test_a_request_waits_for_its_last_campaign_then_counts_every_one(store) -> None:
    with store.transaction() as conn:
        store.add_request(conn, new_request("three", campaigns=3))
    first, second, third = (store.claim_create(7, utcnow())[0] for _ in range(3))
    failed = {"state": State.FAILED, "outcome": "unknown", "last_error": "no answer"}
    for campaign, (changes, settled) in (
        (first, created(1)),
        (second, (failed, Settled("unknown", message="no answer"))),
        (third, created(3)),
    ):
        with store.transaction() as conn:
            store.settle_campaign(
                conn, campaign.id, from_states=(State.SENDING,), owner=7, changes=changes
            )
            outcome = settle_request(SETTINGS, store, conn, campaign, settled, utcnow())
        assert (outcome is None) == (campaign is not third)
    (event,) = outbox(store)
    assert event["phones_unknown"] == [
        {"phone": "+79123456782", "external_id": "lead-2", "group": 2}
    ]
    assert (event["campaign_id"], event["phones_accepted"]) == (1, 2)
