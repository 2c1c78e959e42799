"""Settle the work of workers that died mid-step (and of steps that crashed in this one).

A ``sending`` row nobody works on may or may not have reached the platform. Sending it again
could call every customer twice, so it ends as ``campaign.failed`` with outcome ``unknown`` for
an operator to resolve (``callbridge resolve``). A ``reporting`` row is only a read of the
analytics: it goes back to ``created`` and is fetched again.
"""

from __future__ import annotations

import datetime as dt
import logging

from adapters import error_reporting, metrics
from adapters.liveness import Liveness
from adapters.logs import state_change
from adapters.store import RequestRow, State, utcnow
from handlers.context import StepContext
from handlers.results import result
from schemas.events import campaign_failed

log = logging.getLogger("callbridge.recover")

# How long a row this process owns may sit unchanged before it counts as abandoned: far longer
# than the gap between a claim's commit and the step noting the row as in flight.
ABANDONED_AFTER = dt.timedelta(seconds=60)

UNKNOWN_MESSAGE = (
    "the worker stopped while the campaign was being created; the platform may have created "
    "it. It is not sent again automatically: resolve it with `callbridge resolve`."
)


def settle_orphans(ctx: StepContext, liveness: Liveness) -> int:
    """Settle every in-flight row of dead owners and this process's abandoned rows."""
    owners = liveness.dead_owners(ctx.store.other_owners(exclude=ctx.owner))
    settled = sum(_settle_owner(ctx, owner, abandoned_only=False) for owner in owners)
    return settled + _settle_owner(ctx, ctx.owner, abandoned_only=True)


def _settle_owner(ctx: StepContext, owner: int, *, abandoned_only: bool) -> int:
    settled = 0
    stale_before = utcnow() - ABANDONED_AFTER
    with ctx.store.transaction() as conn:
        for row in ctx.store.in_flight_of(conn, owner):
            if abandoned_only and (row.updated_at > stale_before or _working_on(ctx, row)):
                continue
            _settle_row(ctx, conn, row)
            settled += 1
        if not abandoned_only:
            ctx.store.forget_worker(conn, owner)
    if settled:
        ctx.outbox_ready.set()
    return settled


def _working_on(ctx: StepContext, row: RequestRow) -> bool:
    with ctx.in_flight_lock:
        return row.request_id in ctx.in_flight


def _settle_row(ctx: StepContext, conn, row: RequestRow) -> None:
    if row.state == State.REPORTING:
        ctx.store.settle(
            conn,
            row.request_id,
            from_states=(State.REPORTING,),
            owner=row.owner,
            changes={"state": State.CREATED, "owner": None},
        )
        state_change(log, "report released", request_id=row.request_id, campaign_id=row.campaign_id)
        return
    event = campaign_failed(
        request_id=row.request_id,
        status=None,
        message=UNKNOWN_MESSAGE,
        outcome="unknown",
        occurred_at=utcnow(),
    )
    ctx.store.settle(
        conn,
        row.request_id,
        from_states=(State.SENDING,),
        owner=row.owner,
        changes={"state": State.FAILED, "outcome": "unknown", "owner": None},
    )
    ctx.store.add_event(
        conn, result(ctx.settings, event, correlation_id=row.correlation_id, reply_to=row.reply_to)
    )
    metrics.count_request("failed_unknown")
    state_change(
        log,
        "failed",
        request_id=row.request_id,
        level=logging.WARNING,
        outcome="unknown",
        reason="orphaned while sending",
    )
    error_reporting.capture_failed(
        request_id=row.request_id, outcome="unknown", status=None, message=UNKNOWN_MESSAGE
    )
