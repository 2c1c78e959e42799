"""Step 2: create the campaign of one due request on the platform.

The claim marks the request ``sending`` and commits *before* the POST, so that whatever
happens next — a crash, a kill, a broken connection — the request can never be sent twice: a
``sending`` row nobody is working on is settled as an unknown outcome, not retried. The answer
is settled in one transaction with its result event and its line in the attempts log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from adapters import error_reporting, metrics
from adapters.logs import redact, state_change
from adapters.platform_client import CreateOutcome, Unknown
from adapters.store import CREATE, Attempt, RequestRow, SettleConflict, State, utcnow
from handlers.context import StepContext
from handlers.results import result
from handlers.retry_policy import Accept, Fail, Pause, RetryAt
from schemas.events import campaign_created, campaign_failed
from schemas.request import report_due_at

log = logging.getLogger("callbridge.create")


def create_next(ctx: StepContext) -> bool:
    """Claim one due request and settle its creation; False when nothing was due."""
    if not ctx.gate.allows():
        return False
    claimed = ctx.store.claim_create(ctx.owner, utcnow())
    if claimed is None:
        return False
    row, body, phones_rejected = claimed
    with (
        ctx.working_on(row.request_id),
        error_reporting.job_scope("create", request_id=row.request_id, project_id=row.project_id),
    ):
        state_change(log, "sending", request_id=row.request_id, attempt=row.attempts)
        started = utcnow()
        outcome = _post(ctx, body)
        settle_creation(ctx, row, outcome, phones_rejected=phones_rejected, started_at=started)
    return True


def _post(ctx: StepContext, body: bytes) -> CreateOutcome:
    try:
        return ctx.platform.create_campaign(body)
    except Exception as exc:  # the body may have left: never guess "not sent"
        error_reporting.capture_exception(exc)
        return Unknown(status=None, message=f"internal error while sending: {type(exc).__name__}")


def settle_creation(
    ctx: StepContext,
    row: RequestRow,
    outcome: CreateOutcome,
    *,
    phones_rejected: Sequence[Mapping[str, Any]],
    started_at: dt.datetime,
) -> None:
    """Store what the platform's answer means for the request, with its result event and
    the attempt (the call made at ``started_at``) in the attempts log."""
    now = utcnow()
    decision = ctx.creation_policy.decide(
        outcome, attempt=row.attempts, first_attempt_at=row.first_attempt_at or now, now=now
    )
    attempt = _attempt(row, decision, started_at, now)
    match decision:
        case Accept(campaign_id=campaign_id):
            _created(ctx, row, campaign_id, now, phones_rejected, attempt)
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
    row: RequestRow,
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
        kind=CREATE,
        attempt=row.attempts,
        started_at=started,
        finished_at=now,
        outcome=outcome,
        status=status,
        message=None if message is None else redact(message),
        campaign_id=campaign_id,
    )


def created_outcome(
    row: RequestRow,
    campaign_id: int,
    now: dt.datetime,
    *,
    phones_rejected: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's changes and the ``campaign.created`` event of a campaign the platform made.

    Shared with ``callbridge resolve --campaign-id``, which settles an unknown outcome the same
    way, so both schedule the report alike.
    """
    assert row.window_end is not None and row.report_delay_minutes is not None
    due = report_due_at(window_end=row.window_end, delay_minutes=row.report_delay_minutes)
    event = campaign_created(
        request_id=row.request_id,
        campaign_id=campaign_id,
        project_id=row.project_id,
        phones_accepted=row.phones_accepted,
        phones_rejected=phones_rejected,
        report_due_at=due,
        occurred_at=now,
    )
    changes = {
        "state": State.CREATED,
        "outcome": State.CREATED,
        "campaign_id": campaign_id,
        "report_due_at": due,
        "next_attempt_at": due,
        "owner": None,
    }
    return changes, event


def _created(
    ctx: StepContext,
    row: RequestRow,
    campaign_id: int,
    now: dt.datetime,
    phones_rejected: Sequence[Mapping[str, Any]],
    attempt: Attempt,
) -> None:
    changes, event = created_outcome(row, campaign_id, now, phones_rejected=phones_rejected)
    due = changes["report_due_at"]
    if _settle(ctx, row, changes, event, attempt, campaign_id=campaign_id):
        metrics.count_request("created")
        state_change(
            log,
            "created",
            request_id=row.request_id,
            campaign_id=campaign_id,
            report_due_at=due.isoformat(),
        )


def _failed(
    ctx: StepContext,
    row: RequestRow,
    status: int | None,
    message: str,
    outcome: str,
    now: dt.datetime,
    attempt: Attempt,
    platform_campaign_id: str | None = None,
) -> None:
    event = campaign_failed(
        request_id=row.request_id, status=status, message=message, outcome=outcome, occurred_at=now
    )
    changes = {"state": State.FAILED, "outcome": outcome, "owner": None}
    if _settle(ctx, row, changes, event, attempt):
        metrics.count_request(f"failed_{outcome}")
        state_change(
            log,
            "failed",
            request_id=row.request_id,
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
    row: RequestRow,
    status: int | None,
    message: str,
    when: dt.datetime,
    attempt: Attempt,
) -> None:
    changes = {"state": State.RETRY, "next_attempt_at": when, "owner": None}
    if _settle(ctx, row, changes, None, attempt):
        state_change(
            log,
            "retry scheduled",
            request_id=row.request_id,
            status=status,
            attempt=row.attempts,
            next_attempt_at=when.isoformat(),
            reason=message[:200],
        )


def _auth_refused(ctx: StepContext, row: RequestRow, pause: Pause, attempt: Attempt) -> None:
    """Put the request back untouched (the attempt does not count); report a new pause once."""
    changes = {"state": State.RECEIVED, "attempts": row.attempts - 1, "owner": None}
    _settle(ctx, row, changes, None, attempt)
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
    row: RequestRow,
    changes: Mapping[str, Any],
    event: Mapping[str, Any] | None,
    attempt: Attempt,
    *,
    campaign_id: int | None = None,
) -> bool:
    try:
        with ctx.store.transaction() as conn:
            ctx.store.settle(
                conn, row.request_id, from_states=(State.SENDING,), owner=ctx.owner, changes=changes
            )
            ctx.store.add_attempt(conn, attempt)
            if event is not None:
                ctx.store.add_event(
                    conn,
                    result(
                        ctx.settings,
                        event,
                        correlation_id=row.correlation_id,
                        reply_to=row.reply_to,
                    ),
                )
    except SettleConflict as exc:
        # Another worker took this row for orphaned and failed it as unknown while we were
        # waiting for the platform: the request already has its one outcome. Reported, with
        # this line as its breadcrumb: a dropped ``created`` names the campaign an operator
        # resolves the unknown outcome with.
        state_change(
            log,
            "settled elsewhere",
            request_id=row.request_id,
            campaign_id=campaign_id,
            level=logging.ERROR,
            dropped_state=changes.get("state"),
        )
        error_reporting.capture_exception(exc)
        return False
    if event is not None:
        ctx.outbox_ready.set()
    return True
