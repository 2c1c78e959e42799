"""``callbridge report CAMPAIGN_ID``: fetch a campaign's report and publish it.

What may be fetched, when, and under which ids, is ``handlers.manual_report``'s to decide: once
the report is due, or before with ``--now``. This process publishes the report itself, so it
works with no worker running. ``--preview`` fetches the report and prints it (phones masked),
storing and publishing nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys

from adapters.config import BROKER, PLATFORM, QUEUES, STORE, Settings
from adapters.logs import PHONE_KEYS, configure_logging, mask_document, secrets_from
from adapters.platform_client import PlatformClient
from adapters.store import Store, open_store, utcnow
from handlers import actions
from handlers.audit import cli_actor
from handlers.context import StepContext
from handlers.manual_report import (
    NOT_A_WORKER,
    Plan,
    Preview,
    Refused,
    ReportArgs,
    plan_report,
    preview,
)
from worker.commands import campaign_id, tell

USES = (STORE, PLATFORM, BROKER, QUEUES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags; each optional one is a field of ``ReportArgs``."""
    parser.add_argument("campaign_id", type=campaign_id, help="the platform's campaign id")
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
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--now",
        dest="early",
        action="store_true",
        help="fetch and publish it before it is due: it is the request's one report, so it "
        "tells the CRM only of the calls made so far",
    )
    when.add_argument(
        "--preview",
        action="store_true",
        help="fetch it and print it (phones masked); store and publish nothing",
    )


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
    """Fetch, store and publish one campaign's report (or preview it); the exit status."""
    configure_logging(level="WARNING", fmt=settings.log_format, secrets=secrets_from(settings))
    store = open_store(settings.database_url, must_exist=True)
    store.create_schema()
    try:
        if args.preview:
            return _preview(settings, store, args)
        told = actions.fetch_report(settings, store, args)
        found = store.find_by_campaign(args.campaign_id)
        told.audit(
            store,
            cli_actor(),
            actions.FETCH_REPORT,
            request_id=found.request_id if found else None,
            subject=str(args.campaign_id),
        )
    finally:
        store.engine.dispose()
    return tell(told, "callbridge report")


def _preview(settings: Settings, store: Store, args: ReportArgs) -> int:
    platform = PlatformClient(settings)
    ctx = StepContext(settings=settings, store=store, platform=platform, owner=NOT_A_WORKER)
    try:
        plan = plan_report(store, args, now=utcnow())
        _print_preview(settings, plan, preview(ctx, plan))
    except Refused as exc:
        print(f"callbridge report: {exc}", file=sys.stderr)
        return exc.code
    finally:
        platform.close()
    return 0


def _print_preview(settings: Settings, plan: Plan, shown: Preview) -> None:
    """The summary, then each row and each missing contact on a line of its own."""
    print(
        f"{plan.heading}: {shown.rows} rows, {shown.missing} missing, would be "
        f"{len(shown.parts)} campaign.report part(s) for {plan.period_text}; a preview: "
        "nothing stored or published"
    )
    secrets = secrets_from(settings)
    phone_keys = PHONE_KEYS | {name.lower() for name in settings.report_phone_fields}
    for part in shown.parts:
        for kind, entries in (("row", part["rows"]), ("missing", part["missing"])):
            for entry in entries:
                masked = mask_document(entry, secrets, phone_keys=phone_keys)
                print(f"{kind} {json.dumps(masked, ensure_ascii=False)}")
