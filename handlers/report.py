"""Step 3: fetch a created campaign's dialog results and store them as ``campaign.report`` events.

The analytics call only reads, so unlike creation it is safe to repeat: a failure is retried
with backoff until ``REPORT_RETRY_HOURS`` after the report was due, then the CRM gets
``campaign.report_failed``. All parts of a report are stored in one transaction with the state
``reported``, so the CRM gets the whole report or, after a crash, the whole report later.

``callbridge report`` (``worker.commands.report``) reuses ``fetch`` and ``store_report``: it
fetches once, and stores only a report it got, leaving failures to the worker's schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Sequence

from adapters import error_reporting
from adapters.logs import redact, state_change
from adapters.platform_client import AuthFailed, ReportFailed, ReportFetched, ReportOutcome
from adapters.store import REPORT, Attempt, CampaignRow, SettleConflict, State, utcnow
from handlers.context import StepContext
from handlers.report_building import (
    ReportPart,
    ReportTooLarge,
    analytics_window,
    report_events,
)
from handlers.results import encoded_result, result
from handlers.retry_policy import RetryBudget
from schemas.events import CAMPAIGN_REPORT, campaign_report_failed
from schemas.platform import AnalyticsReport, analytics_request_body, load_analytics_response
from schemas.request import report_due_at

log = logging.getLogger("callbridge.report")

# The longest wait between two analytics attempts: a report is retried for hours, not days.
MAX_RETRY_DELAY_SECONDS = 1800.0


@dataclasses.dataclass(frozen=True)
class ReportJob:
    """Everything needed to fetch one campaign's report and address its events.

    ``row_id`` is the campaign's row in the store (none for a campaign callbridge did not
    create); ``campaigns`` how many campaigns its request has, which names its events.
    """

    request_id: str
    campaign_id: int
    project_id: int
    scenario_id: int
    start_block_id: int
    window_start: dt.datetime
    window_end: dt.datetime
    delay_minutes: int
    contacts: Sequence[tuple[str, str | None]]
    columns: Sequence[dict] | None
    correlation_id: str | None = None
    reply_to: str | None = None
    attempts: int = 1
    row_id: int | None = None
    campaigns: int = 1
    group_no: int | None = None

    @property
    def due_at(self) -> dt.datetime:
        return report_due_at(window_end=self.window_end, delay_minutes=self.delay_minutes)

    def period(self, fetched_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The analytics period of a fetch made at ``fetched_at`` (see ``analytics_window``)."""
        return analytics_window(
            window_start=self.window_start,
            window_end=self.window_end,
            delay_minutes=self.delay_minutes,
            fetched_at=fetched_at,
        )

    @classmethod
    def of(cls, campaign: CampaignRow, contacts, columns) -> ReportJob:
        return cls(
            request_id=campaign.request_id,
            campaign_id=campaign.campaign_id,
            project_id=campaign.project_id,
            scenario_id=campaign.scenario_id,
            start_block_id=campaign.start_block_id,
            window_start=campaign.window_start,
            window_end=campaign.window_end,
            delay_minutes=campaign.report_delay_minutes,
            contacts=contacts,
            columns=columns,
            correlation_id=campaign.correlation_id,
            reply_to=campaign.reply_to,
            attempts=campaign.report_attempts,
            row_id=campaign.id,
            campaigns=campaign.campaign_count or 1,
            group_no=campaign.group_no,
        )


def report_next(ctx: StepContext) -> bool:
    """Claim one campaign whose report is due and settle it; False when none was due."""
    claimed = ctx.store.claim_report(ctx.owner, utcnow())
    if claimed is None:
        return False
    job = ReportJob.of(*claimed)
    try:
        with (
            ctx.working_on(job.row_id),
            error_reporting.job_scope(
                "report",
                request_id=job.request_id,
                campaign_id=job.campaign_id,
                project_id=job.project_id,
            ),
        ):
            run_report(ctx, job)
    except SettleConflict:
        # Another worker took our row for orphaned and released it; whoever holds it now
        # settles it. Nothing of ours was stored: the settle shares the events' transaction.
        state_change(
            log,
            "settled elsewhere",
            request_id=job.request_id,
            campaign_id=job.campaign_id,
            level=logging.ERROR,
        )
    return True


def run_report(ctx: StepContext, job: ReportJob) -> State:
    """Fetch and settle one claimed report; the state it ends in (reported, created,
    report_failed)."""
    state_change(
        log,
        "report due",
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        attempt=job.attempts,
    )
    started = utcnow()
    match fetch(ctx, job, period=job.period(started)):
        case ReportFetched(data=data):
            try:
                report = load_analytics_response(data)
            except ValueError as exc:  # the platform's answer is not a report
                return _not_fetched(ctx, job, 200, str(exc), None, started=started)
            try:
                store_report(
                    ctx,
                    job,
                    report,
                    from_states=(State.REPORTING,),
                    owner=ctx.owner,
                    attempt=attempt_of(job, started, State.REPORTED, 200, None),
                )
            except ReportTooLarge as exc:
                return _report_failed(ctx, job, None, str(exc), started=started)
            return State.REPORTED
        case AuthFailed(status=status, message=message):
            if ctx.gate.refused():
                error_reporting.capture_auth_pause(status=status, message=message)
                state_change(
                    log, "paused", request_id=job.request_id, level=logging.ERROR, status=status
                )
            return _not_fetched(
                ctx, job, status, message, ctx.gate.seconds_left(), started=started, counts=False
            )
        case ReportFailed(status=status, message=message, retry_after=retry_after):
            return _not_fetched(ctx, job, status, message, retry_after, started=started)
        case outcome:
            raise TypeError(f"unexpected report outcome {outcome!r}")


def fetch(
    ctx: StepContext, job: ReportJob, *, period: tuple[dt.datetime, dt.datetime]
) -> ReportOutcome:
    """Ask the platform once for the campaign's dialogs between ``period``'s two moments."""
    date_start, date_end = period
    body = analytics_request_body(
        scenario_id=job.scenario_id,
        start_block_id=job.start_block_id,
        campaign_id=job.campaign_id,
        date_start=date_start,
        date_end=date_end,
        columns=job.columns or None,
    )
    return ctx.platform.fetch_report(job.project_id, body)


@dataclasses.dataclass(frozen=True)
class StoredReport:
    """What ``store_report`` queued: how many events, rows and missing contacts."""

    parts: int
    rows: int
    missing: int


def store_report(
    ctx: StepContext,
    job: ReportJob,
    report: AnalyticsReport,
    *,
    from_states: Sequence[str],
    owner: int | None,
    attempt: Attempt | None = None,
) -> StoredReport:
    """Queue every part of the report and mark the campaign ``reported``, in one transaction
    (with the ``attempt`` that fetched it in the attempts log, when given).

    ``from_states`` are the states the campaign may be in (none for a campaign callbridge did
    not create: it has no row); SettleConflict, with nothing stored, when it is in another.
    Raises ReportTooLarge, with nothing stored, when a row cannot fit in an event.
    """
    stored = _queue_report(ctx, job, report, from_states, owner, attempt)
    ctx.outbox_ready.set()
    state_change(
        log,
        "reported",
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        rows=stored.rows,
        missing=stored.missing,
        parts=stored.parts,
    )
    return stored


def report_parts(
    ctx: StepContext, job: ReportJob, report: AnalyticsReport, now: dt.datetime
) -> Iterator[ReportPart]:
    """The report's ``campaign.report`` events, as the settings make them."""
    return report_events(
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        report=report,
        contacts=job.contacts,
        phone_fields=ctx.settings.report_phone_fields,
        max_bytes=ctx.settings.report_event_max_bytes,
        occurred_at=now,
        campaigns=job.campaigns,
    )


def attempt_of(
    job: ReportJob, started: dt.datetime, outcome: str, status: int | None, message: str | None
) -> Attempt:
    """A fetch of the report as the attempts log keeps it."""
    return Attempt(
        request_id=job.request_id,
        group_no=job.group_no,
        kind=REPORT,
        attempt=job.attempts,
        started_at=started,
        finished_at=utcnow(),
        outcome=outcome,
        status=status,
        message=None if message is None else redact(message),
        campaign_id=job.campaign_id,
    )


def _queue_report(ctx, job: ReportJob, report, from_states, owner, attempt) -> StoredReport:
    now = utcnow()
    parts = missing = 0
    with ctx.store.transaction() as conn:
        for part in report_parts(ctx, job, report, now):
            ctx.store.add_event(
                conn,
                encoded_result(
                    ctx.settings,
                    event_id=part.event_id,
                    event_type=CAMPAIGN_REPORT,
                    request_id=job.request_id,
                    body=part.body,
                    correlation_id=job.correlation_id,
                    reply_to=job.reply_to,
                ),
            )
            parts += 1
            missing += part.missing
        if from_states:
            ctx.store.settle_campaign(
                conn,
                job.row_id,
                from_states=from_states,
                owner=owner,
                changes={"state": State.REPORTED, "owner": None},
            )
        if attempt is not None:
            ctx.store.add_attempt(conn, attempt)
    return StoredReport(parts=parts, rows=len(report.rows), missing=missing)


def _not_fetched(ctx, job, status, message, retry_after, *, started, counts=True) -> State:
    """Try again later, or give up once the retry budget after the due time is spent."""
    budget = RetryBudget(
        dt.timedelta(hours=ctx.settings.report_retry_hours), max_delay=MAX_RETRY_DELAY_SECONDS
    )
    # A refused token spends none of the budget: the pause alone decides when to try again.
    when = budget.next_try(
        job.attempts, since=job.due_at, now=utcnow(), retry_after=retry_after, bounded=counts
    )
    if when is None:
        return _report_failed(ctx, job, status, message, started=started)
    outcome = State.RETRY if counts else "paused"
    with ctx.store.transaction() as conn:
        _settle(ctx, conn, job, {"state": State.CREATED, "owner": None, "next_attempt_at": when})
        ctx.store.add_attempt(conn, attempt_of(job, started, outcome, status, message))
    state_change(
        log,
        "report retry scheduled",
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        status=status,
        attempt=job.attempts,
        next_attempt_at=when.isoformat(),
        reason=message[:200],
    )
    return State.CREATED


def _report_failed(ctx, job, status, message, *, started) -> State:
    event = campaign_report_failed(
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        status=status,
        message=message,
        occurred_at=utcnow(),
        campaigns=job.campaigns,
    )
    with ctx.store.transaction() as conn:
        ctx.store.add_event(
            conn,
            result(ctx.settings, event, correlation_id=job.correlation_id, reply_to=job.reply_to),
        )
        _settle(ctx, conn, job, {"state": State.REPORT_FAILED, "owner": None})
        attempt = attempt_of(job, started, State.REPORT_FAILED, status, message)
        ctx.store.add_attempt(conn, attempt)
    ctx.outbox_ready.set()
    state_change(
        log,
        "report failed",
        request_id=job.request_id,
        campaign_id=job.campaign_id,
        level=logging.WARNING,
        status=status,
    )
    error_reporting.capture_failed(
        request_id=job.request_id, outcome="report_failed", status=status, message=message
    )
    return State.REPORT_FAILED


def _settle(ctx, conn, job: ReportJob, changes) -> None:
    """Move on the row this worker claimed (``reporting``, owned by it)."""
    ctx.store.settle_campaign(
        conn, job.row_id, from_states=(State.REPORTING,), owner=ctx.owner, changes=changes
    )
