"""Step 2: create one due campaign of a request on the platform.

The claim marks the campaign ``sending`` and commits *before* the POST, so that whatever
happens next — a crash, a kill, a broken connection — the campaign can never be sent twice: a
``sending`` row nobody is working on is settled as an unknown outcome, not retried. The answer
is settled in one transaction with what it means for the request (``handlers.settlement``):
its outcome event, once every campaign of it is settled; and with the call's line in the
attempts log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from adapters import error_reporting, metrics
from adapters.logs import redact, state_change
from adapters.platform_client import CreateOutcome, Unknown
from adapters.store import CREATE, Attempt, CampaignRow, SettleConflict, State, utcnow
from handlers.context import StepContext
from handlers.retry_policy import Accept, Fail, Pause, RetryAt
from handlers.settlement import CREATED, RequestOutcome, Settled, settle_request
from schemas.request import report_due_at

log = logging.getLogger("callbridge.create")


def create_next(ctx: StepContext) -> bool:
    """Claim one due campaign and settle its creation; False when nothing was due."""
    if not ctx.gate.allows():
        return False
    claimed = ctx.store.claim_create(ctx.owner, utcnow())
    if claimed is None:
        return False
    row, body = claimed
    with (
        ctx.working_on(row.id),
        error_reporting.job_scope("create", request_id=row.request_id, project_id=row.project_id),
    ):
        state_change(
            log,
            "sending",
            request_id=row.request_id,
            group=row.group_no,
            attempt=row.attempts,
        )
        started = utcnow()
        outcome = _post(ctx, body)
        settle_creation(ctx, row, outcome, started_at=started)
    return True


def _post(ctx: StepContext, body: bytes) -> CreateOutcome:
    try:
        return ctx.platform.create_campaign(body)
    except Exception as exc:  # the body may have left: never guess "not sent"
        error_reporting.capture_exception(exc)
        return Unknown(status=None, message=f"internal error while sending: {type(exc).__name__}")


def settle_creation(
    ctx: StepContext, row: CampaignRow, outcome: CreateOutcome, *, started_at: dt.datetime
) -> None:
    """Store what the platform's answer means for the campaign, and for its request; and the
    call, made at ``started_at``, in the attempts log."""
    now = utcnow()
    decision = ctx.creation_policy.decide(
        outcome,
        attempt=row.attempts,
        first_attempt_at=row.first_attempt_at or now,
        now=now,
    )
    attempt = _attempt(row, decision, started_at, now)
    match decision:
        case Accept(campaign_id=campaign_id):
            _created(ctx, row, campaign_id, now, attempt)
        case Pause():
            _auth_refused(ctx, row, decision, attempt)
        case RetryAt(when=when, status=status, message=message):
            _retry(ctx, row, status, message, when, attempt)
        case Fail(outcome=failed, status=status, message=message):
            # An id the stores cannot hold is logged for the operator to look up.
            shown = outcome.shown_campaign_id if isinstance(outcome, Unknown) else None
            _failed(ctx, row, status, message, failed, now, attempt, platform_campaign_id=shown)
    if isinstance(decision, Accept | Fail) and decision.resumed:
        state_change(log, "resumed", request_id=row.request_id)


def _attempt(
    row: CampaignRow,
    decision: Accept | Pause | RetryAt | Fail,
    started: dt.datetime,
    now: dt.datetime,
) -> Attempt:
    """The call as the attempts log keeps it: what its answer came to."""
    match decision:
        case Accept(campaign_id=campaign_id):
            outcome, status, message = State.CREATED, None, None
        case Pause(status=status, message=message):
            outcome, campaign_id = "paused", None
        case RetryAt(status=status, message=message):
            outcome, campaign_id = State.RETRY, None
        case Fail(outcome=failed, status=status, message=message):
            outcome, campaign_id = f"failed, {failed}", None
    return Attempt(
        request_id=row.request_id,
        group_no=row.group_no,
        kind=CREATE,
        attempt=row.attempts,
        started_at=started,
        finished_at=now,
        outcome=outcome,
        status=status,
        message=None if message is None else redact(message),
        campaign_id=campaign_id,
    )


def created_changes(row: CampaignRow, campaign_id: int) -> tuple[dict, Settled]:
    """The row's changes, and how it settled, for a campaign the platform made.

    Shared with ``callbridge resolve --campaign-id``, which settles an unknown outcome the same
    way, so both schedule the report alike.
    """
    assert row.window_end is not None and row.report_delay_minutes is not None
    due = report_due_at(window_end=row.window_end, delay_minutes=row.report_delay_minutes)
    changes = {
        "state": State.CREATED,
        "outcome": CREATED,
        "campaign_id": campaign_id,
        "report_due_at": due,
        "next_attempt_at": due,
        "owner": None,
    }
    return changes, Settled(CREATED, campaign_id=campaign_id, report_due_at=due)


def _created(
    ctx: StepContext, row: CampaignRow, campaign_id: int, now: dt.datetime, attempt: Attempt
) -> None:
    changes, settled = created_changes(row, campaign_id)
    if _settle(ctx, row, changes, settled, now, attempt):
        state_change(
            log,
            "created",
            request_id=row.request_id,
            campaign_id=campaign_id,
            group=row.group_no,
            report_due_at=settled.report_due_at.isoformat(),
        )


def _failed(
    ctx: StepContext,
    row: CampaignRow,
    status: int | None,
    message: str,
    outcome: str,
    now: dt.datetime,
    attempt: Attempt,
    platform_campaign_id: str | None = None,
) -> None:
    changes = {
        "state": State.FAILED,
        "outcome": outcome,
        "owner": None,
        "last_status": status,
        "last_error": message,
    }
    settled = Settled(outcome, status=status, message=message)
    if _settle(ctx, row, changes, settled, now, attempt):
        state_change(
            log,
            "failed",
            request_id=row.request_id,
            group=row.group_no,
            level=logging.WARNING,
            outcome=outcome,
            status=status,
            platform_campaign_id=platform_campaign_id,
        )
        error_reporting.capture_failed(
            request_id=row.request_id, outcome=outcome, status=status, message=message
        )


def _retry(
    ctx: StepContext,
    row: CampaignRow,
    status: int | None,
    message: str,
    when: dt.datetime,
    attempt: Attempt,
) -> None:
    changes = {
        "state": State.RETRY,
        "next_attempt_at": when,
        "owner": None,
        "last_status": status,
        "last_error": message,
    }
    if _settle(ctx, row, changes, None, utcnow(), attempt):
        state_change(
            log,
            "retry scheduled",
            request_id=row.request_id,
            group=row.group_no,
            status=status,
            attempt=row.attempts,
            next_attempt_at=when.isoformat(),
            reason=message[:200],
        )


def _auth_refused(ctx: StepContext, row: CampaignRow, pause: Pause, attempt: Attempt) -> None:
    """Put the campaign back untouched (the attempt does not count); report a new pause once."""
    changes = {"state": State.RECEIVED, "attempts": row.attempts - 1, "owner": None}
    _settle(ctx, row, changes, None, utcnow(), attempt)
    if pause.starts_pause:
        state_change(
            log,
            "paused",
            request_id=row.request_id,
            level=logging.ERROR,
            status=pause.status,
            retry_in_seconds=round(pause.seconds, 1),
        )
        error_reporting.capture_auth_pause(status=pause.status, message=pause.message)


def _settle(
    ctx: StepContext,
    row: CampaignRow,
    changes: Mapping[str, Any],
    settled: Settled | None,
    now: dt.datetime,
    attempt: Attempt,
) -> bool:
    """Move the campaign on from ``sending``, and log the ``attempt``; when its creation
    ``settled``, settle its request in the same transaction."""
    outcome: RequestOutcome | None = None
    try:
        with ctx.store.transaction() as conn:
            ctx.store.settle_campaign(
                conn, row.id, from_states=(State.SENDING,), owner=ctx.owner, changes=changes
            )
            ctx.store.add_attempt(conn, attempt)
            if settled is not None:
                outcome = settle_request(ctx.settings, ctx.store, conn, row, settled, now)
    except SettleConflict as exc:
        # Another worker took this row for orphaned and failed it as unknown while we were
        # waiting for the platform: the campaign already has its one outcome. Reported, with
        # this line as its breadcrumb: a dropped ``created`` names the campaign an operator
        # resolves the unknown outcome with.
        state_change(
            log,
            "settled elsewhere",
            request_id=row.request_id,
            campaign_id=settled.campaign_id if settled else None,
            group=row.group_no,
            level=logging.ERROR,
            dropped_state=changes.get("state"),
        )
        error_reporting.capture_exception(exc)
        return False
    if outcome is not None:
        if outcome.counted is not None:
            metrics.count_request(outcome.counted)
        ctx.outbox_ready.set()
    return True
