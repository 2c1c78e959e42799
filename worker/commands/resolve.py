"""``callbridge resolve REQUEST_ID``: settle a campaign whose creation outcome is unknown.

``--campaign-id N``: the platform did create it; ``--resend``: it did not, send it again (see
``handlers.resolve``); ``--group N`` names the campaign in a request of several. A campaign id
is checked where it can be (on the sandbox). This process publishes the event itself, so it
works with no worker running.
"""

from __future__ import annotations

import argparse
import sys

from adapters.config import BROKER, PLATFORM, QUEUES, STORE, Settings
from adapters.logs import configure_logging, secrets_from
from adapters.store import Store, open_store
from handlers.publish_now import PublishFailed, publish_events
from handlers.resolve import Refused, check_campaign, name, resend, resolve_created
from schemas.events import CAMPAIGN_CREATED
from schemas.platform import format_utc_timestamp
from worker.commands import campaign_id

USES = (STORE, PLATFORM, BROKER, QUEUES)

EXIT_OK = 0
EXIT_REFUSED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id")
    parser.add_argument(
        "--group",
        type=_group,
        metavar="N",
        help="the campaign of a request of several (the group of phones_unknown); "
        "default: its only campaign whose outcome is unknown",
    )
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--campaign-id",
        type=campaign_id,
        metavar="N",
        help="the platform did create it, as campaign N: publish campaign.created",
    )
    how.add_argument(
        "--resend",
        action="store_true",
        help="the platform did not create it: let a worker send it again now",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(level="WARNING", fmt=settings.log_format, secrets=secrets_from(settings))
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
    store.create_schema()
    request_id = args.request_id
    try:
        if args.resend:
            campaign = resend(store, request_id, group=args.group)
            print(
                f"{name(campaign)}: back to received; the next worker sends it to the "
                "platform. Created, it publishes campaign.created; failed again after the "
                "request's outcome went out, nothing new is published (the CRM holds it "
                f"already): see `callbridge status {request_id}`"
            )
            return EXIT_OK
        if check_campaign(settings, args.campaign_id):
            print(f"campaign {args.campaign_id} exists on the sandbox")
        else:
            print(
                f"could not check that campaign {args.campaign_id} exists: the platform has no "
                "lookup; make sure it is the one you found"
            )
        resolved = resolve_created(settings, store, request_id, args.campaign_id, group=args.group)
        print(
            f"{name(resolved.campaign)}: resolved as created, campaign {args.campaign_id}; its "
            f"report is due {format_utc_timestamp(resolved.report_due_at)}"
        )
        if resolved.event is None:
            print(
                f"request {request_id} waits for its other campaigns: its campaign.created "
                "goes out once every one is settled"
            )
            return EXIT_OK
        return publish(settings, store, request_id, resolved.event["event_id"])
    except Refused as exc:
        print(f"callbridge resolve: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.engine.dispose()


def publish(settings: Settings, store: Store, request_id: str, event_id: str) -> int:
    """Publish ``campaign.created`` now; a worker's relay may be publishing it too."""
    try:
        left = publish_events(settings, store, request_id, event_types={CAMPAIGN_CREATED})
    except PublishFailed as exc:
        print(
            f"callbridge resolve: could not publish {event_id} ({exc}); it stays "
            "queued and the next worker to run publishes it",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if left:
        print(f"{event_id} is not published yet; the worker's relay publishes it", file=sys.stderr)
        return EXIT_REFUSED
    print(f"published {event_id}")
    return EXIT_OK


def _group(text: str) -> int:
    """A campaign's number in its request: 1, 2, ... (bounded as the store's column is)."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a campaign's group (1, 2, ...)")
    return value
