"""Fetching a campaign's report now, at an operator's word.

For an operator who cannot wait for the due time, for a report that ended
``campaign.report_failed`` once the platform is back, and for a campaign made on the platform
by hand. It needs no worker: the report goes through the store's outbox like any other.

- A campaign callbridge created is reported under its request's id and ``external_id``s (and,
  for a request of several campaigns, under that campaign's event ids), from ``created`` (even
  before it is due) or ``report_failed``. It is refused while a worker is fetching it
  (``reporting``) and once it is ``reported``: its events went out under the event ids a second
  report would have, so a CRM dropping repeats would never see the new one. The campaign's
  state is only checked when the report is stored, in the same transaction: if a worker
  claimed it meanwhile, nothing of ours is stored and the worker's report goes out.
- A campaign created outside callbridge needs its scenario, start block and project ids. Its
  events carry ``request_id`` ``campaign-<id>`` (so ``event_id``
  ``campaign-<id>:campaign.report:<part>``), rows come as the platform gave them (there are no
  contacts to tie them to) and ``missing`` is empty. The period defaults to the 7 days up to now.

A report is fetched by hand only once it is due, unless the operator says ``early``: a
campaign has one report (its events' ids are fixed), and one fetched before the calling window
is over would tell the CRM about calls not made yet. ``preview`` fetches and builds the report
and changes nothing: no state is checked, nothing is stored or published.

A fetch that fails changes nothing: a created campaign keeps its place in the worker's schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from adapters.platform_client import AuthFailed, ReportFailed, ReportFetched
from adapters.store import CampaignRow, SettleConflict, State, Store, utcnow
from handlers.context import StepContext
from handlers.report import (
    ReportJob,
    StoredReport,
    attempt_of,
    fetch,
    report_parts,
    store_report,
)
from handlers.report_building import ReportTooLarge
from schemas.platform import AnalyticsReport, format_utc_timestamp, load_analytics_response

EXIT_REFUSED = 1
EXIT_USAGE = 2
# Worker keys start at 1: a process that claims no rows owns none.
NOT_A_WORKER = 0
OUTSIDE_PERIOD = dt.timedelta(days=7)
OUTSIDE_PREFIX = "campaign-"
# States a report may be fetched from by hand (see the module docstring).
REPORTABLE = (State.CREATED, State.REPORT_FAILED)


@dataclasses.dataclass(frozen=True)
class ReportArgs:
    """What the operator asked for on the command line."""

    campaign_id: int
    scenario_id: int | None = None
    start_block_id: int | None = None
    project_id: int | None = None
    date_start: dt.datetime | None = None
    date_end: dt.datetime | None = None
    reply_to: str | None = None
    early: bool = False  # fetch and publish before the report is due
    preview: bool = False  # fetch and show, change nothing

    @property
    def platform_ids(self) -> dict[str, int | None]:
        return {
            "scenario_id": self.scenario_id,
            "start_block_id": self.start_block_id,
            "project_id": self.project_id,
        }


class Refused(Exception):
    """The report is not fetched; the message says why and what to do instead."""

    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class Plan:
    """One report to fetch: the job, its analytics period, and the states it may be stored from."""

    job: ReportJob
    period: tuple[dt.datetime, dt.datetime]
    from_states: tuple[str, ...]

    @property
    def heading(self) -> str:
        """How the operator's messages name the report."""
        return f"campaign {self.job.campaign_id} (request {self.job.request_id})"

    @property
    def period_text(self) -> str:
        start, end = self.period
        return f"{format_utc_timestamp(start)} .. {format_utc_timestamp(end)}"


def plan_report(store: Store, args: ReportArgs, *, now: dt.datetime) -> Plan:
    """What to fetch for ``args``, or Refused saying why not."""
    row = store.find_by_campaign(args.campaign_id)
    plan = _outside_plan(store, args, now) if row is None else _known_plan(store, row, args, now)
    start, end = plan.period
    if start >= end:
        raise Refused(
            f"the period is empty: {start.isoformat()} is not before {end.isoformat()}",
            EXIT_USAGE,
        )
    return plan


def _known_plan(store: Store, row: CampaignRow, args: ReportArgs, now: dt.datetime) -> Plan:
    given = {name: value for name, value in args.platform_ids.items() if value is not None}
    if any(getattr(row, name) != value for name, value in given.items()):
        stored = ", ".join(f"{name} {getattr(row, name)}" for name in args.platform_ids)
        raise Refused(
            f"campaign {args.campaign_id} is request {row.request_id}'s, with {stored}: "
            "leave the ids out",
            EXIT_USAGE,
        )
    contacts = store.contacts_of([row.id])[row.id]
    job = ReportJob.of(row, contacts, store.request_details(row.request_id)["report_columns"])
    if args.reply_to:
        job = dataclasses.replace(job, reply_to=args.reply_to)
    if not args.preview:
        _check_reportable(row, job, early=args.early, now=now)
    start, end = job.period(now)
    return Plan(job, (args.date_start or start, args.date_end or end), REPORTABLE)


def _check_reportable(row: CampaignRow, job: ReportJob, *, early: bool, now: dt.datetime) -> None:
    """Refused when the campaign's report may not be fetched and published now."""
    whose = _whose(row)
    if row.state == State.REPORTING:
        raise Refused(
            f"a worker is fetching the report of {whose} right now; "
            f"see `callbridge status {row.request_id}`"
        )
    if row.state == State.REPORTED:
        raise Refused(
            f"{whose} is reported already; its campaign.report events keep "
            f"their event ids, so a CRM dropping repeats would not take a second report. "
            f"See `callbridge status {row.request_id}`"
        )
    if row.state not in REPORTABLE:
        raise Refused(f"{whose} is {row.state}: there is no report to fetch")
    if row.state == State.CREATED and not early and now < job.due_at:
        minutes = (job.due_at - now).total_seconds() / 60
        raise Refused(
            f"the report of {whose} is due at "
            f"{format_utc_timestamp(job.due_at)}, in {minutes:.0f} min: a worker fetches and "
            "publishes it then. --preview shows it now and publishes nothing; --now publishes it "
            f"now, and it is the {'campaign' if row.several else 'request'}'s one report"
        )


def _whose(row: CampaignRow) -> str:
    """How a refusal names the campaign: by its request, unless the request has several."""
    if row.several:
        return f"campaign {row.campaign_id} of request {row.request_id}"
    return f"request {row.request_id}"


def _outside_plan(store: Store, args: ReportArgs, now: dt.datetime) -> Plan:
    missing = [f"--{name.replace('_', '-')}" for name, v in args.platform_ids.items() if v is None]
    if missing:
        raise Refused(
            f"campaign {args.campaign_id} is not one callbridge created on this database; "
            f"to report it anyway give {', '.join(missing)}",
            EXIT_USAGE,
        )
    request_id = f"{OUTSIDE_PREFIX}{args.campaign_id}"
    if not args.preview:
        _check_unreported(store, args.campaign_id, request_id)
    end = args.date_end or now
    start = args.date_start or end - OUTSIDE_PERIOD
    job = ReportJob(
        request_id=request_id,
        campaign_id=args.campaign_id,
        project_id=args.project_id,
        scenario_id=args.scenario_id,
        start_block_id=args.start_block_id,
        window_start=start,
        window_end=end,
        delay_minutes=0,
        contacts=(),
        columns=None,
        reply_to=args.reply_to,
    )
    return Plan(job, (start, end), ())


def _check_unreported(store: Store, campaign_id: int, request_id: str) -> None:
    """Refused when the events of a campaign made outside callbridge could not go out."""
    if store.get_request(request_id) is not None:
        raise Refused(f"request id {request_id} is taken by a CRM request; cannot report under it")
    if store.events_of(request_id):
        raise Refused(
            f"campaign {campaign_id} is reported already (request id {request_id}); "
            f"see `callbridge status {request_id}`"
        )


def fetch_and_store(ctx: StepContext, plan: Plan) -> StoredReport:
    started = utcnow()
    report = _fetched(ctx, plan)
    attempt = attempt_of(plan.job, started, State.REPORTED, 200, None)
    try:
        return store_report(
            ctx, plan.job, report, from_states=plan.from_states, owner=None, attempt=attempt
        )
    except SettleConflict:
        raise Refused(
            f"a worker took request {plan.job.request_id} while the report was fetched; "
            f"its report goes out instead. See `callbridge status {plan.job.request_id}`"
        ) from None
    except ReportTooLarge as exc:
        raise Refused(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class Preview:
    """A report as it would be published: its ``campaign.report`` events, decoded."""

    parts: list[dict]
    rows: int
    missing: int


def preview(ctx: StepContext, plan: Plan) -> Preview:
    """Fetch the report and build its events, storing and publishing nothing."""
    report = _fetched(ctx, plan)
    try:
        parts = [json.loads(part.body) for part in report_parts(ctx, plan.job, report, utcnow())]
    except ReportTooLarge as exc:
        raise Refused(str(exc)) from None
    return Preview(parts, rows=len(report.rows), missing=sum(len(p["missing"]) for p in parts))


def _fetched(ctx: StepContext, plan: Plan) -> AnalyticsReport:
    """The report, fetched once; Refused when the platform did not give one."""
    match fetch(ctx, plan.job, period=plan.period):
        case ReportFetched(data=data):
            try:
                return load_analytics_response(data)
            except ValueError as exc:
                raise Refused(f"the platform's answer is not a report: {exc}") from None
        case (
            AuthFailed(status=status, message=message)
            | ReportFailed(status=status, message=message)
        ):
            raise Refused(f"the platform did not give the report (HTTP {status}): {message}")
    raise TypeError("unexpected report outcome")
