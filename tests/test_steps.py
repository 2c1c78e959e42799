"""The steps on their own: creation, report and orphan settlement, driven one call at a time.

No worker process and no broker: a real SQLite store, intake's own ``accept`` to put requests
in it, and the sandbox platform over real HTTP. What each step leaves behind is read back as a
user would see it: the request's row, and the events waiting in the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib

import pytest
import sqlalchemy as sa

from adapters.broker import Delivery
from adapters.config import Settings
from adapters.liveness import hold_liveness
from adapters.platform_client import PlatformClient
from adapters.store import State, Store, open_store, utcnow
from adapters.store.tables import campaigns_table, outbox_table
from handlers.accept import accept
from handlers.context import StepContext
from handlers.create import create_next
from handlers.orphans import UNKNOWN_MESSAGE, settle_orphans
from handlers.report import report_next
from tests.builders import call_request, e164


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Store:
    store = open_store(f"sqlite:///{tmp_path / 'steps.db'}")
    store.create_schema()
    yield store
    store.engine.dispose()


@pytest.fixture
def ctx(store: Store, sandbox_settings: Settings) -> StepContext:
    owner = store.register_worker(hostname="test", pid=1)
    return StepContext(
        settings=sandbox_settings,
        store=store,
        platform=PlatformClient(sandbox_settings),
        owner=owner,
    )


def receive(ctx: StepContext, body: dict) -> None:
    delivery = Delivery(json.dumps(body).encode(), content_type="application/json")
    assert accept(delivery, settings=ctx.settings, store=ctx.store).outcome == "accepted"


def outbox(store: Store) -> list[dict]:
    with store.reading() as conn:
        rows = conn.execute(sa.select(outbox_table.c.body).order_by(outbox_table.c.id))
        return [json.loads(body) for (body,) in rows]


def campaign(store: Store, request_id: str):
    """The request's one campaign."""
    (found,) = store.campaigns_of(request_id)
    return found


def make_due(store: Store, request_id: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            campaigns_table.update()
            .where(campaigns_table.c.request_id == request_id)
            .values(next_attempt_at=(utcnow() - dt.timedelta(seconds=1)).replace(tzinfo=None))
        )


# -- creation --------------------------------------------------------------------------------


def test_creation_posts_once_and_queues_created(ctx: StepContext, sandbox) -> None:
    receive(ctx, call_request("step-1", phones=2))

    assert create_next(ctx) is True
    assert create_next(ctx) is False, "nothing else is due"

    (made,) = sandbox.campaigns
    row = campaign(ctx.store, "step-1")
    assert (row.state, row.campaign_id, row.owner) == (State.CREATED, made.id, None)
    assert ctx.store.get_request("step-1").state == State.CREATED
    assert made.phones == [e164(0), e164(1)]
    (event,) = outbox(ctx.store)
    assert (event["type"], event["campaign_id"], event["phones_accepted"]) == (
        "campaign.created",
        made.id,
        2,
    )


def test_an_unavailable_platform_schedules_a_retry_and_queues_nothing(ctx, sandbox) -> None:
    sandbox.set_faults(create_faults=["503:retry-after=30"])
    receive(ctx, call_request("step-503"))

    before = utcnow()
    assert create_next(ctx) is True

    row = campaign(ctx.store, "step-503")
    assert (row.state, row.last_status) == (State.RETRY, 503)
    assert row.next_attempt_at >= before + dt.timedelta(seconds=30), "Retry-After is a floor"
    assert outbox(ctx.store) == []
    assert create_next(ctx) is False, "not due again before its time"


def test_a_refusal_fails_the_request_with_the_platforms_message(ctx, sandbox) -> None:
    receive(ctx, call_request("step-422"))
    sandbox.set_faults(create_faults=["422"])

    create_next(ctx)

    (event,) = outbox(ctx.store)
    assert (event["type"], event["outcome"], event["error"]["status"]) == (
        "campaign.failed",
        "not_created",
        422,
    )
    assert campaign(ctx.store, "step-422").state == State.FAILED
    assert ctx.store.get_request("step-422").outcome == "not_created"


def test_a_refused_token_puts_the_request_back_and_closes_the_gate(ctx, sandbox) -> None:
    sandbox.set_token("another-token")
    receive(ctx, call_request("step-401"))

    assert create_next(ctx) is True

    row = campaign(ctx.store, "step-401")
    assert (row.state, row.attempts) == (State.RECEIVED, 0), "the attempt does not count"
    assert outbox(ctx.store) == []
    assert create_next(ctx) is False, "the gate is closed: nothing is claimed"


# -- the report ------------------------------------------------------------------------------


def test_a_due_report_is_fetched_and_queued_in_parts(ctx: StepContext, sandbox) -> None:
    receive(ctx, call_request("step-report", phones=3))
    create_next(ctx)
    make_due(ctx.store, "step-report")

    assert report_next(ctx) is True

    assert campaign(ctx.store, "step-report").state == State.REPORTED
    created, report = outbox(ctx.store)
    assert (created["type"], report["type"]) == ("campaign.created", "campaign.report")
    assert sorted(row["external_id"] for row in report["rows"]) == [
        f"step-report-lead-{n}" for n in range(3)
    ]
    assert (report["part"], report["parts"], report["missing"]) == (1, 1, [])


def test_a_failing_report_call_is_retried_later(ctx: StepContext, sandbox) -> None:
    receive(ctx, call_request("step-report-502"))
    create_next(ctx)
    make_due(ctx.store, "step-report-502")
    sandbox.set_faults(report_faults=["502"])

    report_next(ctx)

    row = campaign(ctx.store, "step-report-502")
    assert (row.state, row.report_attempts) == (State.CREATED, 1)
    assert row.next_attempt_at > utcnow()
    assert [event["type"] for event in outbox(ctx.store)] == ["campaign.created"]


# -- orphans ---------------------------------------------------------------------------------


def test_a_dead_workers_sending_row_fails_unknown_and_its_reporting_row_goes_back(
    ctx: StepContext, store: Store
) -> None:
    receive(ctx, call_request("orphan-sending"))
    receive(ctx, call_request("orphan-reporting"))
    dead = store.register_worker(hostname="gone", pid=2)
    claimed, _body = store.claim_create(dead, utcnow())  # left "sending" by it
    with store.transaction() as conn:
        conn.execute(
            campaigns_table.update()
            .where(campaigns_table.c.state == State.RECEIVED)
            .values(state=State.REPORTING, owner=dead)
        )
    liveness = hold_liveness(store, ctx.owner)
    try:
        settled = settle_orphans(ctx, liveness)
    finally:
        liveness.close()

    assert settled == 2
    other = ({"orphan-sending", "orphan-reporting"} - {claimed.request_id}).pop()
    assert campaign(store, claimed.request_id).state == State.FAILED
    assert store.get_request(claimed.request_id).state == State.FAILED
    assert campaign(store, other).state == State.CREATED, "a report is only a read: again"
    (event,) = outbox(store)
    assert event["request_id"] == claimed.request_id
    assert (event["type"], event["outcome"]) == ("campaign.failed", "unknown")
    assert event["error"]["message"] == UNKNOWN_MESSAGE
    assert dead not in [worker["worker_key"] for worker in store.workers()]


def test_a_row_this_process_is_working_on_is_left_alone(ctx: StepContext, store: Store) -> None:
    receive(ctx, call_request("mine"))
    mine, _body = store.claim_create(ctx.owner, utcnow())
    with store.transaction() as conn:  # as if claimed long ago
        conn.execute(campaigns_table.update().values(updated_at=dt.datetime(2020, 1, 1)))
    liveness = hold_liveness(store, ctx.owner)
    try:
        with ctx.working_on(mine.id):
            assert settle_orphans(ctx, liveness) == 0
        assert settle_orphans(ctx, liveness) == 1, "abandoned once no step holds it"
    finally:
        liveness.close()
    assert campaign(store, "mine").outcome == "unknown"
