"""``callbridge report CAMPAIGN_ID``: fetch a campaign's report now and publish it.

For an operator who cannot wait for the due time, for a report that ended
``campaign.report_failed`` once the platform is back, and for a campaign made on the platform
by hand. It works with no worker running: the report goes through the store's outbox like any
other, and this process publishes it.

- A campaign callbridge created is reported under its request's id and ``external_id``s, from
  ``created`` (even before it is due) or ``report_failed``. It is refused while a worker is
  fetching it (``reporting``) and once it is ``reported``: its events went out under the
  event ids a second report would have, so a CRM dropping repeats would never see the new one.
  The request's state is only checked when the report is stored, in the same transaction: if a
  worker claimed it meanwhile, nothing of ours is stored and the worker's report goes out.
- A campaign created outside callbridge needs ``--scenario-id``, ``--start-block-id`` and
  ``--project-id``. Its events carry ``request_id`` ``campaign-<id>`` (so ``event_id``
  ``campaign-<id>:campaign.report:<part>``), rows come as the platform gave them (there are no
  contacts to tie them to) and ``missing`` is empty. The period defaults to the 7 days up to now.

A fetch that fails changes nothing: a created campaign keeps its place in the worker's schedule.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys

from handlers.context import StepContext
from handlers.report import ReportJob, StoredReport, fetch, store_report
from handlers.report_building import ReportTooLarge
from schemas.events import CAMPAIGN_REPORT
from schemas.platform import format_utc_timestamp, load_analytics_response
from worker.config import Settings
from worker.logs import configure_logging, secrets_from
from worker.platform import AuthFailed, PlatformClient, ReportFailed, ReportFetched
from worker.publish_now import PublishFailed, publish_events
from worker.store import RequestRow, SettleConflict, Store, open_store, utcnow

EXIT_REFUSED = 1
EXIT_USAGE = 2
# Worker keys start at 1: this process claims no rows, so it owns none.
NOT_A_WORKER = 0
OUTSIDE_PERIOD = dt.timedelta(days=7)
OUTSIDE_PREFIX = "campaign-"
# States a report may be fetched from by hand (see the module docstring).
REPORTABLE = ("created", "report_failed")
# How long to wait for report parts a running worker's relay is publishing at the same time.


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags; each optional one is a field of ``ReportArgs``."""
    parser.add_argument("campaign_id", type=int, help="the platform's campaign id")
    for name in ("scenario-id", "start-block-id", "project-id"):
        parser.add_argument(
            f"--{name}", type=int, help="required for a campaign callbridge did not create"
        )
    parser.add_argument(
        "--date-start",
        type=parse_moment,
        help="period start, ISO-8601, UTC unless it says (default: the window's start; "
        "for a campaign callbridge did not create, 7 days before the end)",
    )
    parser.add_argument(
        "--date-end",
        type=parse_moment,
        help="period end (default: now, or the due time when that is later)",
    )
    parser.add_argument("--reply-to", help="queue for the report instead of the usual one")


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    fields = {field.name for field in dataclasses.fields(ReportArgs)}
    return report_now(settings, ReportArgs(**{k: v for k, v in vars(args).items() if k in fields}))


def parse_moment(text: str) -> dt.datetime:
    """An ISO-8601 date or date-time from the command line; UTC when it names no offset."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def report_now(settings: Settings, args: ReportArgs) -> int:
    """Fetch, store and publish one campaign's report; the exit status."""
    configure_logging(level="WARNING", fmt=settings.log_format, secrets=secrets_from(settings))
    store = open_store(settings.database_url)
    store.create_schema()
    platform = PlatformClient(settings)
    ctx = StepContext(settings=settings, store=store, platform=platform, owner=NOT_A_WORKER)
    try:
        plan = plan_report(store, args, now=utcnow())
        stored = _fetch_and_store(ctx, plan)
    except Refused as exc:
        print(f"callbridge report: {exc}", file=sys.stderr)
        return exc.code
    finally:
        platform.close()
    job = plan.job
    print(
        f"campaign {job.campaign_id} (request {job.request_id}): {stored.rows} rows, "
        f"{stored.missing} missing, stored as {stored.parts} campaign.report part(s) "
        f"for {format_utc_timestamp(plan.period[0])} .. {format_utc_timestamp(plan.period[1])}"
    )
    return _publish(settings, store, job)


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


def _known_plan(store: Store, row: RequestRow, args: ReportArgs, now: dt.datetime) -> Plan:
    given = {name: value for name, value in args.platform_ids.items() if value is not None}
    if any(getattr(row, name) != value for name, value in given.items()):
        stored = ", ".join(f"{name} {getattr(row, name)}" for name in args.platform_ids)
        raise Refused(
            f"campaign {args.campaign_id} is request {row.request_id}'s, with {stored}: "
            "leave the ids out",
            EXIT_USAGE,
        )
    if row.state == "reporting":
        raise Refused(
            f"a worker is fetching the report of request {row.request_id} right now; "
            f"see `callbridge status {row.request_id}`"
        )
    if row.state == "reported":
        raise Refused(
            f"request {row.request_id} is reported already; its campaign.report events keep "
            f"their event ids, so a CRM dropping repeats would not take a second report. "
            f"See `callbridge status {row.request_id}`"
        )
    if row.state not in REPORTABLE:
        raise Refused(f"request {row.request_id} is {row.state}: there is no report to fetch")
    details = store.request_details(row.request_id)
    job = ReportJob.of(row, details["contacts"], details["report_columns"])
    if args.reply_to:
        job = dataclasses.replace(job, reply_to=args.reply_to)
    start, end = job.period(now)
    return Plan(job, (args.date_start or start, args.date_end or end), REPORTABLE)


def _outside_plan(store: Store, args: ReportArgs, now: dt.datetime) -> Plan:
    missing = [f"--{name.replace('_', '-')}" for name, v in args.platform_ids.items() if v is None]
    if missing:
        raise Refused(
            f"campaign {args.campaign_id} is not one callbridge created on this database; "
            f"to report it anyway give {', '.join(missing)}",
            EXIT_USAGE,
        )
    request_id = f"{OUTSIDE_PREFIX}{args.campaign_id}"
    if store.get_request(request_id) is not None:
        raise Refused(f"request id {request_id} is taken by a CRM request; cannot report under it")
    if store.events_of(request_id):
        raise Refused(
            f"campaign {args.campaign_id} is reported already (request id {request_id}); "
            f"see `callbridge status {request_id}`"
        )
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


def _fetch_and_store(ctx: StepContext, plan: Plan) -> StoredReport:
    match fetch(ctx, plan.job, period=plan.period):
        case ReportFetched(data=data):
            try:
                report = load_analytics_response(data)
            except ValueError as exc:
                raise Refused(f"the platform's answer is not a report: {exc}") from None
        case (
            AuthFailed(status=status, message=message)
            | ReportFailed(status=status, message=message)
        ):
            raise Refused(f"the platform did not give the report (HTTP {status}): {message}")
    try:
        return store_report(ctx, plan.job, report, from_states=plan.from_states, owner=None)
    except SettleConflict:
        raise Refused(
            f"a worker took request {plan.job.request_id} while the report was fetched; "
            f"its report goes out instead. See `callbridge status {plan.job.request_id}`"
        ) from None
    except ReportTooLarge as exc:
        raise Refused(str(exc)) from None


def _publish(settings: Settings, store: Store, job: ReportJob) -> int:
    """Publish the report's parts now; 0 once every part is out."""
    queue = job.reply_to or settings.call_results_queue
    try:
        left = publish_events(settings, store, job.request_id, event_types={CAMPAIGN_REPORT})
    except PublishFailed as exc:
        print(
            f"callbridge report: could not publish ({exc}); the report "
            "stays queued and the next worker to run publishes it",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if left:
        print(
            f"{len(left)} part(s) not yet published to {queue}; they stay queued and the "
            "next worker to run publishes them",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    print(f"published to {queue}")
    return 0
