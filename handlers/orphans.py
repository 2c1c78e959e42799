"""Settle the work of workers that died mid-step (and of steps that crashed in this one).

A ``sending`` campaign nobody works on may or may not have reached the platform. Sending it
again could call every customer twice, so it ends ``failed`` with outcome ``unknown`` for an
operator to resolve (``callbridge resolve``), and its request is settled as any other (a request
of one campaign gets ``campaign.failed``, ``unknown``). A ``reporting`` row is only a read of the
analytics: it goes back to ``created`` and is fetched again.
"""

from __future__ import annotations

import datetime as dt
import logging

from adapters import error_reporting, metrics
from adapters.liveness import Liveness
from adapters.logs import state_change
from adapters.store import CampaignRow, State, utcnow
from handlers.context import StepContext
from handlers.settlement import UNKNOWN, Settled, settle_request

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
    counted: list[str] = []
    stale_before = utcnow() - ABANDONED_AFTER
    with ctx.store.transaction() as conn:
        for campaign in ctx.store.in_flight_of(conn, owner):
            if abandoned_only and (
                campaign.updated_at > stale_before or ctx.is_working_on(campaign.id)
            ):
                continue
            counted.extend(_settle_row(ctx, conn, campaign))
            settled += 1
        if not abandoned_only:
            ctx.store.forget_worker(conn, owner)
    for outcome in counted:
        metrics.count_request(outcome)
    if settled:
        ctx.outbox_ready.set()
    return settled


def _settle_row(ctx: StepContext, conn, campaign: CampaignRow) -> list[str]:
    """Settle one orphaned campaign; the request outcomes that counts (for metrics)."""
    if campaign.state == State.REPORTING:
        ctx.store.settle_campaign(
            conn,
            campaign.id,
            from_states=(State.REPORTING,),
            owner=campaign.owner,
            changes={"state": State.CREATED, "owner": None},
        )
        state_change(
            log,
            "report released",
            request_id=campaign.request_id,
            campaign_id=campaign.campaign_id,
        )
        return []
    ctx.store.settle_campaign(
        conn,
        campaign.id,
        from_states=(State.SENDING,),
        owner=campaign.owner,
        changes={
            "state": State.FAILED,
            "outcome": UNKNOWN,
            "owner": None,
            "last_status": None,
            "last_error": UNKNOWN_MESSAGE,
        },
    )
    settled = Settled(UNKNOWN, message=UNKNOWN_MESSAGE)
    outcome = settle_request(ctx.settings, ctx.store, conn, campaign, settled, utcnow())
    state_change(
        log,
        "failed",
        request_id=campaign.request_id,
        group=campaign.group_no,
        level=logging.WARNING,
        outcome=UNKNOWN,
        reason="orphaned while sending",
    )
    error_reporting.capture_failed(
        request_id=campaign.request_id, outcome=UNKNOWN, status=None, message=UNKNOWN_MESSAGE
    )
    return [outcome.counted] if outcome is not None and outcome.counted else []
